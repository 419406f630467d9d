/**
 * The web UI in real Chromium against a real Panel, a real Agent and the real Docker Engine:
 * first-run setup, logout, login, add a node and start its Agent with what the UI showed, see it
 * online, create a server, start it, console output, a command and its output, the config modal
 * (change a variable, the server comes back with it), files, users, stop, and the
 * "disconnected — reconnecting" banner. Screenshots of each page go to test-artifacts/screenshots.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { RunningAgent } from '@cap/agent';
import type { RunningPanel } from '@cap/panel';
import type { Browser, Page } from 'playwright-core';
import { type E2E, FAST_AGENT, openE2E, SHOTS, startNodeAgent, stepper } from './harness.ts';

const IMAGE = 'ctrl-alt-play/busybox:latest';
const run = randomBytes(3).toString('hex');
const OWNER = { email: `owner-${run}@example.test`, password: `pw-${run}-owner-secret` };
const SERVER_NAME = `e2e-echo-${run}`;
// the variable is printed at start (and written to a file), so the console and the files tab
// prove which value the server runs with; the coloured line with markup checks the safe rendering
// and "stop" on the console ends it, as a game server's own stop command does
const STARTUP =
  'printf "\\033[32mgreen\\033[0m <b>not-html</b>\\n"; echo "greeting={{GREETING}}" | tee greeting.txt; echo ready; ' +
  'while read l; do [ "$l" = stop ] && exit 0; echo "got:$l"; done';
const WAIT = 60_000;

let panel: RunningPanel;
let agent: RunningAgent | undefined;
let browser: Browser;
let page: Page;
let agentDir: string;
let nodeId: string | undefined;
let serverId: string | undefined;
let pageErrors: string[] = [];

/** fullPage for pages; the viewport for dialogs, whose overlay only covers the viewport */

async function shot(name: string, fullPage = true): Promise<void> {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage });
}

const byTestId = (id: string) => page.locator(`[data-testid="${id}"]`);

async function terminalText(): Promise<string> {
  return page.evaluate(() => {
    const el = document.querySelector('[data-testid="console-terminal"]') as
      | (HTMLElement & { capReadBuffer?: () => string })
      | null;
    return el?.capReadBuffer?.() ?? '';
  });
}

async function waitForTerminal(text: string): Promise<void> {
  await page.waitForFunction(
    (t) => {
      const el = document.querySelector('[data-testid="console-terminal"]') as
        | (HTMLElement & { capReadBuffer?: () => string })
        | null;
      return (el?.capReadBuffer?.() ?? '').includes(t);
    },
    text,
    { timeout: WAIT },
  );
}

async function waitForStatus(status: string): Promise<void> {
  await page.waitForSelector(
    `[data-testid="page-server-detail"] [data-testid="server-status"][data-status="${status}"]`,
    {
      timeout: WAIT,
    },
  );
}

let e2e: E2E | undefined;

before(async () => {
  e2e = await openE2E('ui', { width: 1366, height: 1240 });
  ({ panel, browser, page, agentDir } = e2e);
  pageErrors = e2e.pageErrors;
});

after(async () => {
  await e2e?.close({ agent, nodeId });
});

test('the UI drives a real Panel, Agent and Docker Engine end to end', { timeout: 240_000 }, async (t) => {
  const step = stepper(t, () => page, '');
  await step('first run: setup with the printed token, then log out and log in', async () => {
    const setupUrl = panel.app.setupUrl;
    assert.ok(setupUrl, 'a fresh Panel prints a setup link');
    await page.goto(`${panel.url}/`);
    await page.waitForURL(/\/setup$/, { timeout: WAIT });
    await page.goto(setupUrl);
    assert.equal(await byTestId('setup-token').inputValue(), new URL(setupUrl).searchParams.get('token'));
    await byTestId('setup-email').fill(OWNER.email);
    await byTestId('setup-password').fill(OWNER.password);
    await byTestId('setup-confirm').fill(OWNER.password);
    await shot('01-setup');
    await byTestId('setup-submit').click();
    await byTestId('page-dashboard').waitFor({ timeout: WAIT });
    await byTestId('state-empty').first().waitFor();
    await shot('02-dashboard-empty');

    await byTestId('logout').click();
    await page.waitForURL(/\/login$/);
    await byTestId('login-email').fill(OWNER.email);
    await byTestId('login-password').fill('wrong-password');
    await byTestId('login-submit').click();
    assert.equal(await byTestId('error-code').textContent({ timeout: WAIT }), 'AUTH_FAILED');
    await shot('03-login-error');
    await byTestId('login-password').fill(OWNER.password);
    await byTestId('login-password').press('Enter'); // the keyboard is enough
    await byTestId('page-dashboard').waitFor({ timeout: WAIT });
    assert.equal(await byTestId('current-user').textContent(), OWNER.email);
  });

  await step('add a node in the UI, start its Agent with what the UI showed, see it online', async () => {
    await page.getByRole('link', { name: 'Nodes' }).click();
    await byTestId('page-nodes').waitFor();
    await byTestId('add-node').click();
    await byTestId('node-name').fill(`e2e-node-${run}`);
    // submitted from the keyboard: a click can land while the dialog is still animating in
    await byTestId('node-name').press('Enter');
    const secret = (await byTestId('agent-secret').textContent({ timeout: WAIT }))?.trim() ?? '';
    const command = (await byTestId('agent-command').textContent())?.trim() ?? '';
    assert.ok(secret.length >= 8);
    assert.ok(command.includes(`AGENT_SECRET=${secret}`), 'the command carries the secret');
    await shot('04-node-added', false);
    nodeId = /NODE_ID=(\S+)/.exec(command)?.[1];
    assert.ok(nodeId, 'the command names the node');
    const panelUrl = /PANEL_URL=(\S+)/.exec(command)?.[1];
    assert.equal(panelUrl, panel.url);
    await page.getByRole('button', { name: 'Done' }).click();
    await page
      .locator(`[data-testid="node-card-e2e-node-${run}"] [data-testid="node-status"][data-online="false"]`)
      .waitFor();

    agent = await startNodeAgent({ panelUrl, nodeId, secret, agentDir, extra: FAST_AGENT });
    // no reload: the node_status event flips the badge live
    await page
      .locator(`[data-testid="node-card-e2e-node-${run}"] [data-testid="node-status"][data-online="true"]`)
      .waitFor({ timeout: WAIT });
    await shot('05-nodes-online');
    await page.getByRole('link', { name: `e2e-node-${run}` }).click();
    await byTestId('node-system-info').waitFor({ timeout: WAIT });
    assert.match((await byTestId('node-system-info').textContent()) ?? '', /Docker/);
    // default limits for servers created without them: the Panel's until the node has its own
    assert.match(
      (await byTestId('node-default-limits-effective').textContent()) ?? '',
      /memory 1024m, CPU 1 cores.*the Panel's defaults/,
    );
    await byTestId('node-default-memory').fill('lots');
    await byTestId('node-default-save').click();
    await page.getByText('A size like 1024m or 2g').waitFor();
    await byTestId('node-default-memory').fill('256m');
    await byTestId('node-default-cpu').fill('0');
    await byTestId('node-default-save').click();
    await page
      .locator('[data-testid="node-default-limits-effective"]', { hasText: 'memory 256m, CPU unlimited' })
      .waitFor({ timeout: WAIT });
    await shot('06-node-detail');
  });

  await step('create a server from the form, with validation messages first', async () => {
    await page.getByRole('link', { name: 'Servers' }).click();
    await byTestId('page-servers').waitFor();
    await byTestId('state-empty').waitFor({ timeout: WAIT });
    await byTestId('new-server').click();
    await byTestId('page-server-create').waitFor();
    await page.getByText('Custom image', { exact: true }).click();
    // invalid input is caught beside the field
    await byTestId('create-env-add').click();
    await byTestId('create-env-key-0').fill('1BAD NAME');
    await byTestId('create-submit').click();
    await page.getByText('Use letters, digits and _; must not start with a digit').waitFor();
    await page.getByText('Name is required').waitFor();
    await shot('07-server-create-invalid');

    await byTestId('create-name').fill(SERVER_NAME);
    await byTestId('create-node').click();
    await page.getByRole('option', { name: `e2e-node-${run}` }).click();
    await byTestId('create-template').click();
    await page.getByRole('option', { name: 'Busybox echo console (test)' }).click();
    assert.equal(await byTestId('create-image').inputValue(), IMAGE);
    assert.equal(await byTestId('create-done').inputValue(), 'ready');
    assert.equal(await byTestId('create-stop').inputValue(), 'stop');
    await byTestId('create-startup').fill(STARTUP);
    await byTestId('create-env-key-0').fill('GREETING');
    await byTestId('create-env-value-0').fill('hello');
    await shot('08-server-create');
    await byTestId('create-submit').click();
    await byTestId('page-server-detail').waitFor({ timeout: WAIT });
    serverId = new URL(page.url()).pathname.split('/').pop();
    assert.ok(serverId);
    assert.equal(await byTestId('server-name').textContent(), SERVER_NAME);
    await waitForStatus('offline');
    // the form left the limits out: the node's defaults apply (256m memory, CPU unlimited), and
    // the page says the server has no CPU limit
    await byTestId('badge-no-cpu-limit').waitFor({ timeout: WAIT });
    assert.equal(await byTestId('badge-no-memory-limit').count(), 0);
    await page.getByText('memory 256m').first().waitFor();
  });

  await step('start it, see console output, send a command and see its output', async () => {
    await byTestId('power-start').click();
    await waitForStatus('running');
    await byTestId('tab-console').click();
    await waitForTerminal('ready');
    const text = await terminalText();
    assert.ok(text.includes('greeting=hello'));
    // ANSI colour is rendered by xterm (escape codes gone, a green cell), markup stays text
    assert.ok(text.includes('green <b>not-html</b>'), text);
    // xterm paints rows on the next animation frame: wait for the green cell to be drawn
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll('[data-testid="console-terminal"] .xterm-rows span')].some(
          (el) => el.textContent === 'green' && el.classList.contains('xterm-fg-2'),
        ),
      undefined,
      { timeout: WAIT },
    );
    assert.equal(
      await page.locator('[data-testid="console-terminal"] b').count(),
      0,
      'console text never becomes HTML (checked after the rows are painted)',
    );
    await byTestId('command-input').fill('hello-from-ui');
    await byTestId('command-input').press('Enter');
    await waitForTerminal('got:hello-from-ui');
    // history: up brings the last command back
    await byTestId('command-input').press('ArrowUp');
    assert.equal(await byTestId('command-input').inputValue(), 'hello-from-ui');
    await byTestId('command-input').fill('');
    await shot('09-server-console');

    await byTestId('tab-overview').click();
    await byTestId('quick-command-input').fill('quick-one');
    await byTestId('quick-command-send').click();
    await page.waitForFunction(
      () => document.querySelector('[data-testid="console-preview"]')?.textContent?.includes('got:quick-one'),
      undefined,
      { timeout: WAIT },
    );
    // live stats reach the page: uptime is counted
    await page.waitForFunction(
      () => /\d+s|\d+m/.test(document.querySelector('[data-testid="server-uptime"]')?.textContent ?? ''),
      undefined,
      { timeout: WAIT },
    );
    await byTestId('charts').waitFor({ timeout: WAIT });
    await shot('10-server-overview');
    // longer ranges come from the Panel's history endpoint
    await page.getByText('24h', { exact: true }).click();
    await page.waitForSelector('[data-testid="charts"], [data-testid="charts-empty"]', { timeout: WAIT });
    assert.equal(await byTestId('state-error').count(), 0);
    await page.getByText('Live · 1h', { exact: true }).click();
    await byTestId('charts').waitFor({ timeout: WAIT });
  });

  await step('the config modal changes a variable and the server comes back with it', async () => {
    await byTestId('open-config').click();
    await byTestId('config-env-value-0').waitFor();
    assert.equal(await byTestId('config-env-key-0').inputValue(), 'GREETING');
    await byTestId('config-env-value-0').fill('world');
    await byTestId('config-memory').fill('not a size');
    assert.equal(await byTestId('config-save').isDisabled(), true, 'an invalid limit blocks saving');
    await byTestId('config-memory').fill('256m');
    await shot('11-config-modal', false);
    await byTestId('config-save').click();
    await byTestId('config-success').waitFor({ timeout: 120_000 });
    // the stages came live from the Agent through the relay, not from the REST answer
    const reached = await page.locator('[data-testid="config-progress"] [data-reached="true"]').count();
    assert.ok(reached >= 3, `progress stages shown: ${reached}`);
    await shot('12-config-success', false);
    await byTestId('config-close').click();
    await waitForStatus('running');
    assert.match((await byTestId('server-env').textContent()) ?? '', /GREETING=world/);
    await byTestId('tab-console').click();
    await waitForTerminal('greeting=world');
  });

  await step('files tab lists the server directory and shows a file', async () => {
    await byTestId('tab-files').click();
    await byTestId('file-greeting.txt').waitFor({ timeout: WAIT });
    // the listing is a page of the folder with its total
    assert.match((await byTestId('files-range').textContent()) ?? '', /^1–\d+ of \d+ entries$/);
    await page.getByRole('button', { name: 'View file greeting.txt' }).click();
    await page.waitForFunction(
      () => document.querySelector('[data-testid="file-content"]')?.textContent?.includes('greeting=world'),
      undefined,
      { timeout: WAIT },
    );
    await shot('13-server-files');
  });

  await step('stop it', async () => {
    await byTestId('tab-overview').click();
    await byTestId('power-stop').click();
    await waitForStatus('offline');
    await shot('14-server-stopped');
  });

  await step('dashboard, servers list and users', async () => {
    await page.getByRole('link', { name: 'Dashboard' }).click();
    await byTestId(`dash-server-${SERVER_NAME}`).waitFor({ timeout: WAIT });
    assert.equal(await byTestId('total-nodes-value').textContent(), '1 / 1');
    await byTestId('players-untracked').waitFor();
    await shot('15-dashboard');
    await page.getByRole('link', { name: 'Servers' }).click();
    await byTestId(`server-row-${SERVER_NAME}`).waitFor({ timeout: WAIT });
    await shot('16-servers');

    await page.getByRole('link', { name: 'Users' }).click();
    await byTestId('page-users').waitFor();
    const spectator = `spectator-${run}@example.test`;
    await byTestId('user-email').fill(spectator);
    await byTestId('user-password').fill('spectator-password');
    await byTestId('user-submit').click();
    await byTestId(`user-row-${spectator}`).waitFor({ timeout: WAIT });
    await page.getByRole('combobox', { name: `Role of ${spectator}` }).click();
    await page.getByRole('option', { name: /^Admin/ }).click();
    await page.waitForFunction(
      (email) => {
        const input = document.querySelector(`[aria-label="Role of ${email}"]`) as HTMLInputElement | null;
        return input?.value.startsWith('Admin');
      },
      spectator,
      { timeout: WAIT },
    );
    await shot('17-users');
  });

  await step("the activity page lists this test's own actions, filterable", async () => {
    await page.getByRole('link', { name: 'Activity' }).click();
    await byTestId('activity-table').waitFor({ timeout: WAIT });
    const rowsText = async () =>
      (await page.locator('[data-testid="activity-row"]').allTextContents()).join('\n');
    await page.waitForFunction(
      () => document.querySelectorAll('[data-testid="activity-row"]').length > 0,
      undefined,
      { timeout: WAIT },
    );
    const all = await rowsText();
    // the wrong password at the first login, the login, the server's stop and its end, the users
    assert.match(all, /auth\.login.*AUTH_FAILED/);
    assert.match(all, new RegExp(`auth\\.login${OWNER.email.replace(/[.]/g, '\\.')}`));
    assert.match(all, /server\.power\.stop/);
    assert.match(all, /operation\.completed \(stop\)/);
    assert.match(all, /user\.create/);
    assert.ok(!all.includes('wrong-password') && !all.includes(OWNER.password), 'no password shown');
    await byTestId('activity-filter-action').fill('server.power');
    await page.waitForFunction(
      () => {
        const rows = [...document.querySelectorAll('[data-testid="activity-row"]')];
        return rows.length > 0 && rows.every((r) => r.textContent?.includes('server.power.'));
      },
      undefined,
      { timeout: WAIT },
    );
    await shot('17b-activity');
    // the next step goes on from the users page
    await page.getByRole('link', { name: 'Users' }).click();
    await byTestId('page-users').waitFor();
  });

  await step('a spectator sees the server read-only', async () => {
    const email = `viewer-${run}@example.test`;
    await byTestId('user-email').fill(email);
    await byTestId('user-password').fill('viewer-password');
    await byTestId('user-submit').click();
    await byTestId(`user-row-${email}`).waitFor({ timeout: WAIT });
    const ctx = await browser.newContext({ viewport: { width: 390, height: 844 } });
    try {
      const p2 = await ctx.newPage();
      p2.on('pageerror', (e) => pageErrors.push(e.message));
      await p2.goto(`${panel.url}/login`);
      await p2.locator('[data-testid="login-email"]').fill(email);
      await p2.locator('[data-testid="login-password"]').fill('viewer-password');
      await p2.locator('[data-testid="login-submit"]').click();
      await p2.locator('[data-testid="page-dashboard"]').waitFor({ timeout: WAIT });
      await p2.screenshot({ path: join(SHOTS, '17b-mobile-dashboard-spectator.png'), fullPage: true });
      await p2.goto(`${panel.url}/servers/${serverId}`);
      await p2.locator('[data-testid="page-server-detail"]').waitFor({ timeout: WAIT });
      for (const id of ['power-start', 'power-stop', 'open-config', 'quick-command-input', 'delete-server']) {
        assert.equal(
          await p2.locator(`[data-testid="${id}"]`).count(),
          0,
          `${id} is hidden from a spectator`,
        );
      }
      await p2.screenshot({ path: join(SHOTS, '17c-mobile-server-spectator.png'), fullPage: true });
      // and the Panel agrees: the API refuses a spectator's power action with its code
      const res = await p2.evaluate(async (id) => {
        const me = await (await fetch('/api/auth/me')).json();
        const r = await fetch(`/api/servers/${id}/power`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrfToken },
          body: JSON.stringify({ action: 'start' }),
        });
        return { status: r.status, body: await r.json() };
      }, serverId);
      assert.equal(res.status, 403);
      assert.equal(res.body.code, 'FORBIDDEN');
    } finally {
      await ctx.close();
    }
  });

  await step('with the Agent gone, actions fail with the error code shown', async () => {
    await agent?.stop();
    agent = undefined;
    await page.getByRole('link', { name: 'Dashboard' }).click();
    await page
      .locator(`[data-testid="node-card-e2e-node-${run}"] [data-testid="node-status"][data-online="false"]`)
      .waitFor({ timeout: WAIT });
    await page.goto(`${panel.url}/servers/${serverId}`);
    await byTestId('page-server-detail').waitFor({ timeout: WAIT });
    // the Panel's nodeOnline: the status shown is the last one the node reported
    const lastKnown = page.locator(
      '[data-testid="page-server-detail"] [data-testid="server-status"][data-node-online="false"]',
    );
    await lastKnown.waitFor({ timeout: WAIT });
    assert.match((await lastKnown.textContent()) ?? '', /node offline/);
    // stopTimeout and lastUpdate (the config change above) reach the details
    assert.match((await byTestId('server-stop').textContent()) ?? '', /killed after 30 s \(default\)/);
    assert.match((await byTestId('server-last-update').textContent()) ?? '', /^applied /);
    await byTestId('power-start').click();
    assert.match((await byTestId('power-error').textContent({ timeout: WAIT })) ?? '', /^AGENT_OFFLINE: /);
    await byTestId('open-config').click();
    await byTestId('config-save').click();
    await byTestId('config-error').waitFor({ timeout: WAIT });
    assert.equal(
      await page.locator('[data-testid="config-error"] [data-testid="error-code"]').textContent(),
      'AGENT_OFFLINE',
    );
    await shot('18-config-error', false);
    await byTestId('config-close').click();

    // deleting needs the node too; the UI offers removing it from the Panel only
    await byTestId('delete-server').click();
    await byTestId('delete-confirm').click();
    assert.equal(
      await page.locator('[data-testid="delete-error"] [data-testid="error-code"]').textContent(),
      'AGENT_OFFLINE',
    );
    await byTestId('delete-force').click();
    await byTestId('page-servers').waitFor({ timeout: WAIT });
    await byTestId('state-empty').waitFor({ timeout: WAIT });
  });

  await step('the Panel going away shows the reconnecting banner', async () => {
    await page.getByRole('link', { name: 'Dashboard' }).click();
    await byTestId('page-dashboard').waitFor();
    await panel.stop();
    await byTestId('reconnect-banner').waitFor({ timeout: WAIT });
    await shot('19-disconnected');
  });

  assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
});
