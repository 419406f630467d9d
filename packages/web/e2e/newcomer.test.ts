/**
 * A brand-new owner's first walk through the product, in real Chromium against a real Panel, a
 * real Agent and the real Docker Engine, using only what the UI shows: first-run setup with the
 * printed token, add a node and start its Agent with the command the UI showed, add a port range,
 * create a server from the built-in OpenTTD template with its defaults, watch the install, start
 * it, see OpenTTD's console, `say` something and see the server echo it, stop it gracefully.
 * Screenshots go to test-artifacts/screenshots/n*.png.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { RunningAgent } from '@cap/agent';
import type { RunningPanel } from '@cap/panel';
import type { Page } from 'playwright-core';
import {
  dockerApi,
  type E2E,
  FAST_AGENT,
  freePortBlock,
  openE2E,
  SHOTS,
  startNodeAgent,
  stepper,
} from './harness.ts';

const run = randomBytes(3).toString('hex');
const OWNER = { email: `newcomer-${run}@example.test`, password: `pw-${run}-newcomer` };
const NODE_NAME = `n-node-${run}`;
const SERVER_NAME = `n-openttd-${run}`;
const WAIT = 60_000;

let panel: RunningPanel;
let agent: RunningAgent | undefined;
let page: Page;
let agentDir: string;
let nodeId: string | undefined;
let pageErrors: string[] = [];

async function shot(name: string, fullPage = true): Promise<void> {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage });
}

const byTestId = (id: string) => page.locator(`[data-testid="${id}"]`);

async function waitForStatus(status: string, timeout = WAIT): Promise<void> {
  await page.waitForSelector(
    `[data-testid="page-server-detail"] [data-testid="server-status"][data-status="${status}"]`,
    { timeout },
  );
}

async function waitForTerminal(pattern: RegExp): Promise<void> {
  await page.waitForFunction(
    (src) => {
      const el = document.querySelector('[data-testid="console-terminal"]') as
        | (HTMLElement & { capReadBuffer?: () => string })
        | null;
      return new RegExp(src).test(el?.capReadBuffer?.() ?? '');
    },
    pattern.source,
    { timeout: WAIT },
  );
}

let e2e: E2E | undefined;

before(async () => {
  e2e = await openE2E('new', { width: 1366, height: 1000 });
  ({ panel, page, agentDir } = e2e);
  pageErrors = e2e.pageErrors;
});

after(async () => {
  await e2e?.close({ agent, nodeId });
});

test('a newcomer sets up the Panel and runs OpenTTD from the built-in template', {
  timeout: 150_000,
}, async (t) => {
  const step = stepper(t, () => page, 'n-');

  await step('first-run setup with the printed token, then the dashboard', async () => {
    const setupUrl = panel.app.setupUrl;
    assert.ok(setupUrl, 'a fresh Panel prints a setup link');
    await page.goto(setupUrl);
    await byTestId('setup-email').waitFor({ timeout: WAIT });
    await byTestId('setup-email').fill(OWNER.email);
    await byTestId('setup-password').fill(OWNER.password);
    await byTestId('setup-confirm').fill(OWNER.password);
    await shot('n01-setup');
    await byTestId('setup-submit').click();
    await byTestId('page-dashboard').waitFor({ timeout: WAIT });
    await shot('n02-dashboard-empty');
  });

  await step('add a node, start its Agent with the shown command, see it online', async () => {
    await page.getByRole('link', { name: 'Nodes' }).click();
    await byTestId('add-node').click();
    await byTestId('node-name').fill(NODE_NAME);
    await byTestId('node-submit').click();
    const command = (await byTestId('agent-command').textContent({ timeout: WAIT }))?.trim() ?? '';
    await shot('n03-node-added-command', false);
    // exactly the values the UI showed
    const env = Object.fromEntries(
      [...command.matchAll(/\b([A-Z_]+)=(\S+)/g)].map((m) => [m[1] as string, m[2] as string]),
    );
    assert.equal(env['PANEL_URL'], panel.url, 'the command points at this Panel');
    nodeId = env['NODE_ID'];
    assert.ok(nodeId && env['AGENT_SECRET']);
    await page.getByRole('button', { name: 'Done' }).click();
    agent = await startNodeAgent({
      panelUrl: env['PANEL_URL'],
      nodeId,
      secret: env['AGENT_SECRET'],
      agentDir,
      extra: FAST_AGENT,
    });
    await page
      .locator(`[data-testid="node-card-${NODE_NAME}"] [data-testid="node-status"][data-online="true"]`)
      .waitFor({ timeout: WAIT });
    await shot('n04-node-online');
  });

  let base = 0;
  await step('add a port range on 127.0.0.1', async () => {
    base = await freePortBlock(3);
    await page.getByRole('link', { name: NODE_NAME }).click();
    await byTestId('allocations-empty').waitFor({ timeout: WAIT });
    await byTestId('allocation-ip').fill('127.0.0.1');
    await byTestId('allocation-ports').fill(`${base}-${base + 2}`);
    await byTestId('allocation-add').click();
    await byTestId(`allocation-127.0.0.1:${base + 2}`).waitFor({ timeout: WAIT });
    assert.equal(await byTestId('allocations-count').textContent(), '3 allocated · 3 free');
    await shot('n05-node-allocations');
  });

  await step('the built-in OpenTTD template: create a server from it with its defaults', async () => {
    await page.getByRole('link', { name: 'Templates' }).click();
    await byTestId('template-row-OpenTTD').waitFor({ timeout: WAIT });
    await shot('n06-templates');
    await page.getByRole('link', { name: 'OpenTTD', exact: true }).first().click();
    await byTestId('page-template-detail').waitFor();
    await byTestId('template-variables').waitFor();
    await shot('n07-template-openttd');
    await page.getByRole('link', { name: 'Create a server from it' }).click();
    await byTestId('page-server-create').waitFor();
    await byTestId('create-var-SERVER_NAME').waitFor({ timeout: WAIT });
    assert.equal(await byTestId('create-var-MAX_CLIENTS').inputValue(), '25', 'defaults filled in');
    await byTestId('create-name').fill(SERVER_NAME);
    await byTestId('create-node').click();
    await page.getByRole('option', { name: NODE_NAME }).click();
    await shot('n08-create-form');
    await byTestId('create-submit').click();
    await byTestId('page-server-detail').waitFor({ timeout: WAIT });
    // no allocation chosen: the node's first free one
    assert.equal(await byTestId('server-address').textContent(), `127.0.0.1:${base}`);
  });

  await step('the install runs with its output shown, then the server is offline', async () => {
    await byTestId('tab-install').click();
    await page.waitForFunction(
      () =>
        (document.querySelector('[data-testid="install-output"]')?.textContent ?? '').includes(
          'OpenTTD install complete',
        ),
      undefined,
      { timeout: WAIT },
    );
    await page.locator('[data-testid="install-state"][data-state="ok"]').waitFor({ timeout: WAIT });
    await waitForStatus('offline');
    await shot('n09-install');
  });

  await step('start it: running, OpenTTD in the console, say something, stop it', async () => {
    await byTestId('tab-overview').click();
    await byTestId('power-start').click();
    await waitForStatus('running', WAIT);
    await shot('n10-running');
    await byTestId('tab-console').click();
    await waitForTerminal(/Map generated, starting game/);
    await byTestId('command-input').fill('say "hello-newcomer"');
    await byTestId('command-input').press('Enter');
    // the server's own chat line, not the typed command
    await waitForTerminal(/\[All\] [^\r\n]*: hello-newcomer/);
    await shot('n11-console-say');
    await byTestId('power-stop').click();
    await waitForStatus('offline', WAIT);
    // graceful: the template's stop command went to the console and OpenTTD exited 0 (a kill is 137)
    await waitForTerminal(/(^|\n)quit\r?\n/);
    const filters = encodeURIComponent(JSON.stringify({ label: [`ctrl-alt-play.node=${nodeId}`] }));
    const list = JSON.parse((await dockerApi('GET', `/containers/json?all=1&filters=${filters}`)).body) as {
      Id: string;
      Image: string;
    }[];
    const game = list.find((c) => c.Image === 'ctrl-alt-play/openttd:latest');
    assert.ok(game, 'the OpenTTD container is labelled with its node');
    const state = JSON.parse((await dockerApi('GET', `/containers/${game.Id}/json`)).body).State;
    assert.equal(state.Running, false);
    assert.equal(state.ExitCode, 0);
    // Mantine fades a button's loader out: shoot once it is gone
    await page.locator('[data-testid="power-stop"] .mantine-Button-loader').waitFor({ state: 'detached' });
    await shot('n12-stopped');
  });

  assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
});
