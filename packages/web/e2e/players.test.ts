/**
 * Players in real Chromium (issue 12 item 2) against a real Panel, a real Agent, Docker and a real
 * OpenArena server (the built-in template with a 5 s player poll): two bots added on the console
 * show up in the dashboard's donut (2 online, the server's line with their names), in the server
 * page's player list (names, bot badge, time online) and in its players chart, whose history
 * reaches a peak of 2. Screenshots: test-artifacts/screenshots/players-*.png.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { RunningAgent } from '@cap/agent';
import type { RunningPanel } from '@cap/panel';
import type { Page } from 'playwright-core';
import {
  addNode,
  apiFromPage,
  createServer,
  type E2E,
  freePortBlock,
  importEgg,
  nodeOnline,
  openE2E,
  openServer,
  ROOT,
  SHOTS,
  serverStatus,
  setupOwner,
  startNodeAgent,
  stepper,
  until,
} from './harness.ts';

const run = randomBytes(3).toString('hex');
const OWNER = { email: `powner-${run}@example.test`, password: `pw-${run}-owner-secret` };
const PORT = await freePortBlock(1);
const WAIT = 90_000;

/** The built-in OpenArena template, polled every 5 s (the shortest interval a template may ask). */
function fastOpenArena(): string {
  const egg = JSON.parse(readFileSync(join(ROOT, 'templates/builtin/openarena.json'), 'utf8'));
  egg.name = `OpenArena players e2e ${run}`;
  egg.players = {
    query: 'gamedig:openarena',
    intervalSeconds: 5,
    kick: ['clientkick {id}', 'kick "{name}"'],
  };
  return JSON.stringify(egg);
}

let e2e: E2E | undefined;
let panel: RunningPanel;
let page: Page;
let agentDir: string;
let agent: RunningAgent | undefined;
let nodeId: string | undefined;
let serverId = '';
const byTestId = (id: string) => page.locator(`[data-testid="${id}"]`);

before(async () => {
  e2e = await openE2E('players', { width: 1280, height: 1000 });
  ({ panel, page, agentDir } = e2e);
});
after(async () => {
  await e2e?.close({ agent, nodeId });
});

test('players: the donut, the player list and the history chart show the bots', {
  timeout: 420_000,
}, async (t) => {
  const step = stepper(t, () => page, 'players-');

  await step('an owner, a node with its Agent, and a running OpenArena server', async () => {
    await setupOwner(panel, page, OWNER, WAIT);
    await assert.ok(await byTestId('players-untracked').isVisible(), 'the donut says not tracked at first');
    const node = await addNode(page, `p-node-${run}`);
    nodeId = node.nodeId;
    agent = await startNodeAgent({ panelUrl: panel.url, nodeId, secret: node.secret, agentDir });
    await nodeOnline(page, nodeId, WAIT);
    serverId = await createServer(page, {
      name: `p-arena-${run}`,
      nodeId,
      templateId: await importEgg(page, fastOpenArena(), 'openarena-players.json'),
      port: PORT,
      environment: { MAX_PLAYERS: '8' },
      limits: { memory: 1024 },
    });
    await serverStatus(page, serverId, 'offline', WAIT);
    const started = await apiFromPage(page, 'POST', `/servers/${serverId}/power`, { action: 'start' });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    await serverStatus(page, serverId, 'running', WAIT);
  });

  await step('two bots added on the console', async () => {
    for (const bot of ['sarge', 'grunt']) {
      const r = await apiFromPage(page, 'POST', `/servers/${serverId}/command`, {
        command: `addbot ${bot} 1`,
      });
      assert.equal(r.status, 202, JSON.stringify(r.body));
    }
    await until(
      'two players reported',
      async () =>
        (await apiFromPage<{ online: number }>(page, 'GET', `/servers/${serverId}/players`)).body.online ===
        2,
      { timeout: 30_000, every: 500 },
    );
  });

  await step('the dashboard donut: 2 online of 8 slots, the server with its bots', async () => {
    await page.goto(`${panel.url}/`);
    await byTestId('players-online').waitFor({ timeout: WAIT });
    await until(
      'the donut at 2',
      async () => (await byTestId('players-online').textContent())?.trim() === '2',
      {
        timeout: 30_000,
      },
    );
    const line = (await byTestId(`players-server-${serverId}`).textContent()) ?? '';
    assert.match(line, /2 \/ 8/);
    assert.match(line.toLowerCase(), /sarge/);
    assert.match(line.toLowerCase(), /grunt/);
    await page.screenshot({ path: join(SHOTS, 'players-dashboard.png') });
  });

  await step('the server page: the player list and the history chart', async () => {
    await openServer(panel, page, serverId, WAIT);
    await byTestId('players-list').waitFor({ timeout: WAIT });
    const names = (await byTestId('player-name').allTextContents()).map((n) => n.toLowerCase()).sort();
    assert.deepEqual(names, ['grunt', 'sarge']);
    assert.equal(await byTestId('players-count').textContent(), '2 / 8');
    const onlineFor = await byTestId('player-online-for').first().textContent();
    assert.match(onlineFor ?? '', /^\d+(m \d+)?s$/);
    // the chart fills: its history has the two bots at their peak
    let peak: string | null = null;
    await until(
      'the players chart with a peak of 2',
      async () => {
        peak = await page.evaluate(
          () =>
            document.querySelector('[data-testid="chart-players-plot"]')?.getAttribute('data-peak') ?? null,
        );
        return peak === '2';
      },
      { timeout: 45_000, every: 500 },
    ).catch((e: unknown) => {
      throw new Error(`${(e as Error).message} (data-peak ${peak})`);
    });
    let html = '';
    await until(
      'the players chart drawn',
      async () => {
        html = await page.evaluate(
          () => document.querySelector('[data-testid="chart-players-plot"]')?.innerHTML ?? '(none)',
        );
        return /recharts-area-area/.test(html);
      },
      { timeout: 15_000 },
    ).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}: ${html.slice(0, 600)}`);
    });
    await byTestId('players-panel').scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(SHOTS, 'players-server.png'), fullPage: true });
  });

  await step('kick a bot from the player list (with a confirm): it leaves the next poll', async () => {
    assert.equal(await byTestId('player-ban').count(), 0, 'the template declares no ban: no button');
    const dialogs: string[] = [];
    // the harness answers confirms yes; this records what was asked
    page.once('dialog', (d) => void dialogs.push(d.message()));
    const row = byTestId('player-row').filter({ hasText: /sarge/i });
    await row.locator('[data-testid="player-kick"]').click();
    await byTestId('player-action-result').waitFor({ timeout: 15_000 });
    assert.match(dialogs[0] ?? '', /^Kick sarge\?$/i);
    assert.match((await byTestId('player-action-result').textContent()) ?? '', /kick "sarge"/i);
    await until(
      'sarge gone from the list',
      async () => {
        const names = (await byTestId('player-name').allTextContents()).map((n) => n.toLowerCase());
        return names.length === 1 && names[0] === 'grunt';
      },
      { timeout: 30_000, every: 500 },
    );
    await page.screenshot({ path: join(SHOTS, 'players-kicked.png'), fullPage: true });
  });
});
