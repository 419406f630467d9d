/**
 * Per-server access in real Chromium against a real Panel, a real Agent and the real Docker
 * Engine (issue 9 item 3): the owner creates a `user` account on the Users page and adds it, on
 * one server's Users tab, as a subuser with control.console + control.command; that user logs
 * in, sees only that server, its console and command input but no power buttons and no Files tab,
 * and sends a command; the server's activity log, as the owner sees it, shows both users' actions.
 * Screenshots: test-artifacts/screenshots/sub-*.png.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { RunningAgent } from '@cap/agent';
import type { RunningPanel } from '@cap/panel';
import type { Page } from 'playwright-core';
import {
  type Account,
  apiFromPage as api,
  createServer,
  type E2E,
  freePortBlock,
  importEgg,
  loginAs,
  logout as logoutPage,
  openE2E,
  ownerWithNode,
  SHOTS,
  serverStatus,
  stepper,
} from './harness.ts';

const EGG = readFileSync(fileURLToPath(new URL('./fixtures/egg-busybox-echo.json', import.meta.url)), 'utf8');
const run = randomBytes(3).toString('hex');
const OWNER = { email: `sowner-${run}@example.test`, password: `pw-${run}-owner-secret` };
const SUB = { email: `sub-${run}@example.test`, password: `pw-${run}-sub-secret` };
const SHARED = `shared-${run}`;
const PRIVATE = `private-${run}`;
const WAIT = 60_000;

let e2e: E2E | undefined;
let panel: RunningPanel;
let page: Page;
let agent: RunningAgent | undefined;
let nodeId: string | undefined;
let shared = '';

const byTestId = (id: string) => page.locator(`[data-testid="${id}"]`);
const shot = (name: string) => page.screenshot({ path: join(SHOTS, `sub-${name}.png`), fullPage: true });

/** A REST call from the page, with its session and CSRF token, as the UI makes it. */
const apiFromPage = <T>(method: string, path: string, body?: unknown) => api<T>(page, method, path, body);

async function login(who: Account): Promise<void> {
  await page.goto(`${panel.url}/login`);
  await loginAs(page, who, WAIT);
}

const logout = () => logoutPage(page, WAIT);

before(async () => {
  e2e = await openE2E('sub', { width: 1280, height: 900 });
  ({ panel, page } = e2e);
});

after(async () => {
  await e2e?.close({ agent, nodeId });
});

test('a subuser with console + command: one server, exactly those controls, both in the activity log', {
  timeout: 300_000,
}, async (t) => {
  const step = stepper(t, () => page, 'sub-');

  await step('an owner, a node with its Agent, two servers; the shared one running', async () => {
    ({ nodeId, agent } = await ownerWithNode(e2e, {
      owner: OWNER,
      nodeName: `sub-node-${run}`,
      timeout: WAIT,
    }));
    const templateId = await importEgg(page, EGG, 'egg-busybox-echo.json');
    for (const name of [SHARED, PRIVATE]) {
      const id = await createServer(page, {
        name,
        nodeId,
        templateId,
        port: await freePortBlock(1),
      });
      if (name === SHARED) shared = id;
    }
    // the install runs on create; start once it is done
    await serverStatus(page, shared, 'offline', WAIT);
    const start = await apiFromPage('POST', `/servers/${shared}/power`, { action: 'start' });
    assert.equal(start.status, 202, JSON.stringify(start.body));
  });

  await step('the owner creates a `user` account on the Users page', async () => {
    await page.getByRole('link', { name: 'Users' }).click();
    await byTestId('page-users').waitFor();
    await byTestId('user-email').fill(SUB.email);
    await byTestId('user-password').fill(SUB.password);
    await byTestId('user-role').click();
    await page.getByRole('option', { name: /^User/ }).click();
    await byTestId('user-submit').click();
    await byTestId(`user-row-${SUB.email}`).waitFor({ timeout: WAIT });
    await shot('1-users');
  });

  await step('on the shared server’s Users tab: added with control.console + control.command', async () => {
    await page.goto(`${panel.url}/servers/${shared}`);
    await byTestId('page-server-detail').waitFor({ timeout: WAIT });
    await byTestId('tab-users').click();
    await byTestId('subusers-tab').waitFor({ timeout: WAIT });
    await byTestId('subuser-email').fill(SUB.email);
    // control.console is ticked by default; tick control.command
    assert.equal(await byTestId('subuser-new-perms-control.console').isChecked(), true);
    await byTestId('subuser-new-perms-control.command').check();
    await byTestId('subuser-add').click();
    const row = byTestId(`subuser-row-${SUB.email}`);
    await row.waitFor({ timeout: WAIT });
    const text = (await row.textContent()) ?? '';
    assert.match(text, /control\.console/);
    assert.match(text, /control\.command/);
    assert.doesNotMatch(text, /control\.stop|file\./);
    await shot('2-subuser-added');
    await logout();
  });

  await step(
    'the subuser sees only that server, its console and command input, no power or files',
    async () => {
      await login(SUB);
      await page.getByRole('link', { name: 'Servers' }).click();
      await byTestId(`server-row-${SHARED}`).waitFor({ timeout: WAIT });
      assert.equal(await byTestId(`server-row-${PRIVATE}`).count(), 0, 'the other server is not listed');
      assert.equal(await page.getByRole('link', { name: 'Nodes' }).count(), 0, 'no Nodes for a user');
      assert.equal(await page.getByRole('link', { name: 'Users' }).count(), 0, 'no Users page');
      await page.goto(`${panel.url}/servers/${shared}`);
      await byTestId('page-server-detail').waitFor({ timeout: WAIT });
      await page.waitForSelector('[data-testid="server-status"][data-status="running"]', { timeout: WAIT });
      for (const id of [
        'power-start',
        'power-stop',
        'power-restart',
        'power-kill',
        'tab-files',
        'open-config',
      ])
        assert.equal(await byTestId(id).count(), 0, `${id} is not shown`);
      assert.equal(await byTestId('tab-activity').count(), 0, 'no activity.read');
      assert.equal(await byTestId('tab-users').count(), 0, 'no user.read');
      await byTestId('tab-console').click();
      await byTestId('command-input').fill(`hello-${run}`);
      await byTestId('command-send').click();
      await page.waitForFunction(
        (want) => {
          const el = document.querySelector('[data-testid="console-terminal"]') as
            | (HTMLElement & { capReadBuffer?: () => string })
            | null;
          return (el?.capReadBuffer?.() ?? '').includes(want);
        },
        `got:hello-${run}`,
        { timeout: WAIT },
      );
      await shot('3-subuser-console');
      // the other server does not exist for this user, in the API as on the page
      const foreign = await apiFromPage<{ code: string }>('GET', '/servers');
      assert.deepEqual(
        (foreign.body as unknown as { name: string }[]).map((s) => s.name),
        [SHARED],
      );
      await logout();
    },
  );

  await step('the owner sees both users’ actions in the server’s activity log', async () => {
    await login(OWNER);
    await page.goto(`${panel.url}/servers/${shared}`);
    await byTestId('page-server-detail').waitFor({ timeout: WAIT });
    await byTestId('tab-activity').click();
    await byTestId('activity-table').waitFor({ timeout: WAIT });
    const rows = byTestId('activity-row');
    await page.waitForFunction(
      (emails) => {
        const text = [...document.querySelectorAll('[data-testid="activity-row"]')].map((r) => r.textContent);
        return (
          text.some((t) => t?.includes('server.command') && t.includes(emails[1] as string)) &&
          text.some((t) => t?.includes('server.subuser.create') && t.includes(emails[0] as string))
        );
      },
      [OWNER.email, SUB.email],
      { timeout: WAIT },
    );
    assert.ok((await rows.count()) >= 2);
    await shot('4-activity');
    assert.deepEqual(e2e?.pageErrors ?? [], []);
  });
});
