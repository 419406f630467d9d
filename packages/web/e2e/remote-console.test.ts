/**
 * Remote consoles in the browser (issue 12), real Chromium, Panel, Agent and OpenArena: the
 * console tab's header shows the transport and its state (Quake 3 rcon · connected), a command
 * typed into the console comes back with the game's response under it and in the console, and
 * the template page shows the template's console transport. Screenshots: rc-*.png.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { RunningAgent } from '@cap/agent';
import type { RunningPanel } from '@cap/panel';
import type { Page } from 'playwright-core';
import {
  apiFromPage,
  createServer,
  type E2E,
  freePort,
  openE2E,
  openServer,
  ownerWithNode,
  SHOTS,
  serverStatus,
  startFromPage,
  stepper,
} from './harness.ts';

const run = randomBytes(3).toString('hex');
const OWNER = { email: `rcowner-${run}@example.test`, password: `pw-${run}-owner-secret` };
const WAIT = 60_000;

let e2e: E2E | undefined;
let panel: RunningPanel;
let page: Page;
let agent: RunningAgent | undefined;
let nodeId: string | undefined;

const byTestId = (id: string) => page.locator(`[data-testid="${id}"]`);
const shot = (name: string) => page.screenshot({ path: join(SHOTS, `rc-${name}.png`), fullPage: true });

before(async () => {
  e2e = await openE2E('rc', { width: 1280, height: 900 });
  ({ panel, page } = e2e);
});
after(async () => {
  await e2e?.close({ agent, nodeId });
});

test('the console shows the remote console state and a command’s response (OpenArena over rcon)', {
  timeout: 240_000,
}, async (t) => {
  const step = stepper(t, () => page, 'rc-');
  let serverId = '';
  let templateId = '';

  await step('an owner, a node with its Agent, an OpenArena server with an rcon password', async () => {
    ({ nodeId, agent } = await ownerWithNode(e2e, {
      owner: OWNER,
      nodeName: `rc-node-${run}`,
      timeout: WAIT,
    }));
    const list = await apiFromPage<{ id: string; name: string; builtin: boolean }[]>(
      page,
      'GET',
      '/templates',
    );
    templateId = list.body.find((x) => x.name === 'OpenArena' && x.builtin)?.id ?? '';
    assert.ok(templateId, 'the built-in OpenArena template');
    serverId = await createServer(page, {
      name: `rc-openarena-${run}`,
      nodeId,
      templateId,
      port: await freePort(),
      environment: { RCON_PASSWORD: `rc-${run}-pw` },
      limits: { memory: 1024 },
    });
    await serverStatus(page, serverId, 'offline', WAIT);
  });

  await step('the template page shows its console transport', async () => {
    await page.goto(`${panel.url}/templates/${templateId}`);
    await byTestId('template-remote-console').waitFor({ timeout: WAIT });
    assert.equal(await byTestId('remote-console-transport').inputValue(), 'Quake 3 rcon');
    assert.equal(
      await byTestId('remote-console-password-variable').inputValue(),
      'Rcon Password (RCON_PASSWORD)',
    );
    await shot('1-template');
  });

  await step('start it: the console header says Quake 3 rcon · connected', async () => {
    await openServer(panel, page, serverId, WAIT);
    await startFromPage(page, WAIT);
    await byTestId('tab-console').click();
    await page
      .locator(
        '[data-testid="remote-console-state"][data-state="authenticated"][data-transport="quake3-rcon"]',
      )
      .waitFor({ timeout: 30_000 });
    assert.match((await byTestId('remote-console-state').textContent()) ?? '', /Quake 3 rcon · connected/);
  });

  await step(
    '`status` typed into the console: its response under the command and in the console',
    async () => {
      await byTestId('command-input').fill('status');
      await byTestId('command-input').press('Enter');
      await page.waitForFunction(
        () =>
          /map: oa_dm1/.test(document.querySelector('[data-testid="command-response"]')?.textContent ?? ''),
        undefined,
        { timeout: WAIT },
      );
      assert.match((await byTestId('command-response').textContent()) ?? '', /^> status\n/);
      await page.waitForFunction(
        () => {
          const el = document.querySelector('[data-testid="console-terminal"]') as
            | (HTMLElement & { capReadBuffer?: () => string })
            | null;
          return /> status[\s\S]*map: oa_dm1/.test(el?.capReadBuffer?.() ?? '');
        },
        undefined,
        { timeout: WAIT },
      );
      await shot('2-console-response');
    },
  );

  await step('killed: the console goes idle', async () => {
    const kill = await apiFromPage(page, 'POST', `/servers/${serverId}/power`, { action: 'kill' });
    assert.equal(kill.status, 202, JSON.stringify(kill.body));
    await page.locator('[data-testid="remote-console-state"][data-state="idle"]').waitFor({ timeout: WAIT });
  });
  assert.deepEqual(e2e?.pageErrors ?? [], []);
});
