/**
 * The transfer dialog, the node capacity view and the failover panel (issue 16) in real Chromium
 * against a real Panel, two real Agents (two nodes, two data dirs, one Docker Engine) and a third
 * node that never connects: on the server page an admin opens the dialog, sees the offline node
 * and a node too small for the server's limits disabled with the reason, then (the node given
 * room) transfers the running server to it, picking the target's allocation; the steps are seen
 * live, the server ends on the target node (its page, the REST answer, its container on the
 * target's Agent), the history lists it; the two nodes' capacity views show the 512 MiB leave
 * one and arrive on the other. The failover switch is turned on and saved. Screenshots go to
 * test-artifacts/screenshots/tr*.png.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { RunningAgent } from '@cap/agent';
import type { RunningPanel } from '@cap/panel';
import type { Page } from 'playwright-core';
import {
  addNode,
  apiFromPage as api,
  createServer,
  dockerApi,
  type E2E,
  freePort,
  nodeOnline,
  openE2E,
  openServer,
  removeNodeContainers,
  SHOTS,
  serverStatus,
  setupOwner,
  startNodeAgent,
  stepper,
  until,
} from './harness.ts';

const run = randomBytes(3).toString('hex');
const OWNER = { email: `trowner-${run}@example.test`, password: `pw-${run}-owner-secret` };
const WAIT = 60_000;
const STEPS = [
  'stopping',
  'archiving',
  'creating',
  'streaming',
  'restoring',
  'starting',
  'switching',
  'cleaning',
];
/** incompressible, so archiving and streaming it takes a while (the steps are seen) */
const WORLD = randomBytes(32 * 1024 * 1024);
/** its stop takes 3 s (the stopping step is seen) */
const LOOP = `trap 'sleep 3; exit 0' TERM; echo up; while true; do sleep 1; done`;

let e2e: E2E | undefined;
let panel: RunningPanel;
let page: Page;
let agentDir: string;
let agentA: RunningAgent | undefined;
let agentB: RunningAgent | undefined;
let dirB: string | undefined;
let nodeA: string | undefined;
let nodeB: string | undefined;
let serverId = '';

const byTestId = (id: string) => page.locator(`[data-testid="${id}"]`);
const text = async (id: string) => ((await byTestId(id).textContent()) ?? '').replace(/\s+/g, ' ').trim();
const radio = (nodeId: string) => page.locator(`[data-testid="transfer-node-${nodeId}"] input[type="radio"]`);

before(async () => {
  e2e = await openE2E('transfer', { width: 1400, height: 1100 });
  ({ panel, page, agentDir } = e2e);
  // a loaded machine (software rendering, two Agents, Docker) answers input slowly
  page.setDefaultTimeout(90_000);
});

after(async () => {
  await agentB?.stop().catch(() => undefined);
  if (nodeB) await removeNodeContainers(nodeB).catch(() => undefined);
  if (dirB) rmSync(dirB, { recursive: true, force: true });
  await e2e?.close({ agent: agentA, nodeId: nodeA });
});

/**
 * A screenshot; with the dialog open the viewport only (a full page under its overlay is slow to
 * paint without a GPU), and a long timeout for a loaded machine.
 */
const shot = (file: string, fullPage: boolean) =>
  page.screenshot({ path: join(SHOTS, file), fullPage, timeout: 120_000 });

/** The node page's memory bar text, once loaded. */
async function memoryBar(nodeId: string): Promise<string> {
  await page.goto(`${panel.url}/nodes/${nodeId}`);
  await byTestId('node-capacity').waitFor({ timeout: WAIT });
  return text('node-capacity-memory');
}

test('transfer dialog: disabled nodes with reasons, a live transfer to the other node, capacity after, failover saved', {
  timeout: 600_000,
}, async (t) => {
  const step = stepper(t, () => page, 'tr-');
  let portB = 0;
  let allocB = '';

  await step(
    'an owner, two nodes with their Agents, a third never connected, a running 512 MiB server on A',
    async () => {
      await setupOwner(panel, page, OWNER, WAIT);
      const a = await addNode(page, `tr-a-${run}`);
      const b = await addNode(page, `tr-b-${run}`);
      await addNode(page, `tr-c-${run}`);
      nodeA = a.nodeId;
      nodeB = b.nodeId;
      agentA = await startNodeAgent({
        panelUrl: panel.url,
        nodeId: nodeA,
        secret: a.secret,
        agentDir,
        extra: { AGENT_SFTP_PORT: '0', AGENT_CONTAINER_PREFIX: `cap-tra${run}-` },
      });
      dirB = mkdtempSync(join(tmpdir(), 'cap-web-e2e-transfer-agent-b-'));
      agentB = await startNodeAgent({
        panelUrl: panel.url,
        nodeId: nodeB,
        secret: b.secret,
        agentDir: dirB,
        extra: { AGENT_SFTP_PORT: '0', AGENT_CONTAINER_PREFIX: `cap-trb${run}-` },
      });
      await nodeOnline(page, nodeA, WAIT);
      await nodeOnline(page, nodeB, WAIT);
      const poolA = await api<{ id: string }[]>(page, 'POST', `/nodes/${nodeA}/allocations`, {
        ip: '0.0.0.0',
        ports: [String(await freePort())],
      });
      assert.equal(poolA.status, 201, JSON.stringify(poolA.body));
      portB = await freePort();
      const poolB = await api<{ id: string }[]>(page, 'POST', `/nodes/${nodeB}/allocations`, {
        ip: '0.0.0.0',
        ports: [String(portB)],
      });
      assert.equal(poolB.status, 201, JSON.stringify(poolB.body));
      allocB = poolB.body[0]?.id ?? '';
      // B may hold 256 MiB only: too small for the server
      const cap = await api(page, 'PATCH', `/nodes/${nodeB}`, { capacity: { memory: '256m' } });
      assert.equal(cap.status, 200, JSON.stringify(cap.body));
      serverId = await createServer(page, {
        name: `tr-server-${run}`,
        nodeId: nodeA,
        image: 'ctrl-alt-play/busybox:latest',
        startup: LOOP,
        allocationId: poolA.body[0]?.id,
        limits: { memory: '512m', cpu: 0.5 },
      });
      assert.equal((await api(page, 'POST', `/servers/${serverId}/power`, { action: 'start' })).status, 202);
      await serverStatus(page, serverId, 'running', WAIT);
      // a file of its own to move (an empty server folder fails to restore on the target: ARCHIVE_INVALID)
      writeFileSync(join(agentDir, 'servers', serverId, 'world.dat'), WORLD);
    },
  );

  await step('the node capacity views before: 512 MiB allocated on A, none on B (of 256 MiB)', async () => {
    assert.match(await memoryBar(nodeA ?? ''), /^Memory allocated.*512 MiB of /);
    assert.match(await memoryBar(nodeB ?? ''), /0 B of 256 MiB · set by an admin/);
  });

  await step(
    'the dialog: the offline node and the too-small node are disabled with their reasons',
    async () => {
      await openServer(panel, page, serverId, WAIT);
      await byTestId('transfers-panel').waitFor({ timeout: WAIT });
      assert.match(await text('transfers-panel'), /Not transferred yet/);
      await byTestId('transfer-open').click();
      await byTestId('transfer-dialog').waitFor({ timeout: WAIT });
      const nodes = await api<{ id: string; name: string }[]>(page, 'GET', '/nodes');
      const c = nodes.body.find((n) => n.name === `tr-c-${run}`);
      assert.ok(c);
      // the server's own node is not offered
      assert.equal(await byTestId(`transfer-node-${nodeA}`).count(), 0);
      await until('the offline node disabled', async () => radio(c.id).isDisabled());
      assert.match(await text(`transfer-node-reason-${c.id}`), /Cannot hold it: offline/);
      assert.equal(await radio(nodeB ?? '').isDisabled(), true);
      assert.match(
        await text(`transfer-node-reason-${nodeB}`),
        /Cannot hold it: too small \(memory: needs 512 MiB, 256 MiB free\)/,
      );
      assert.match(
        await text(`transfer-node-headroom-${nodeB}`),
        /memory 256 MiB free · disk .* · cpu not checked/,
      );
      assert.equal(await byTestId('transfer-confirm').isDisabled(), true, 'nothing picked: no transfer');
      await shot('tr1-transfer-dialog-disabled.png', false);
      await page.keyboard.press('Escape');
      await byTestId('transfer-dialog').waitFor({ state: 'detached', timeout: WAIT });
    },
  );

  await step(
    'B given 2 GiB: enabled with its headroom; its allocation picked; the transfer runs live',
    async () => {
      const cap = await api(page, 'PATCH', `/nodes/${nodeB}`, { capacity: { memory: '2g' } });
      assert.equal(cap.status, 200, JSON.stringify(cap.body));
      await page.reload();
      await byTestId('transfer-open').click();
      await byTestId('transfer-dialog').waitFor({ timeout: WAIT });
      await until('B enabled', async () => !(await radio(nodeB ?? '').isDisabled()));
      assert.equal(await byTestId(`transfer-node-reason-${nodeB}`).count(), 0);
      assert.match(await text(`transfer-node-headroom-${nodeB}`), /memory 2\.0 GiB free/);
      await radio(nodeB ?? '').check();
      await byTestId('transfer-allocation').click();
      await page.getByRole('option', { name: `0.0.0.0:${portB}` }).click();
      // every step seen as the current one, sampled in the page (a short one may pass between two samples)
      await page.evaluate(() => {
        const w = window as unknown as { __steps: string[] };
        w.__steps = [];
        setInterval(() => {
          for (const el of document.querySelectorAll(
            '[data-testid="transfer-dialog-steps"] [data-state="current"]',
          )) {
            const s = el.getAttribute('data-testid') ?? '';
            if (w.__steps.at(-1) !== s) w.__steps.push(s);
          }
        }, 20);
      });
      await byTestId('transfer-confirm').click();
      await byTestId('transfer-dialog-steps').waitFor({ timeout: WAIT });
      await page
        .locator('[data-testid="transfer-dialog-steps"][data-state="completed"]')
        .waitFor({ timeout: 120_000 });
      const seen = await page.evaluate(() => (window as unknown as { __steps: string[] }).__steps);
      // sampled on a loaded machine, short steps pass unseen: at least two, in the transfer's order
      const order = seen.map((s) => STEPS.indexOf(s.replace('transfer-step-', '')));
      assert.ok(seen.length >= 2 && !order.includes(-1), `steps seen live (${seen})`);
      assert.deepEqual(
        order,
        [...order].sort((x, y) => x - y),
        `in order (${seen})`,
      );
      assert.equal(await text('transfer-new-node'), `tr-b-${run}`);
      for (const s of ['stopping', 'archiving', 'streaming', 'switching', 'cleaning'])
        assert.equal(await byTestId(`transfer-step-${s}`).getAttribute('data-state'), 'done');
      await shot('tr2-transfer-done.png', false);
    },
  );

  await step(
    'the server is on B: its page, the REST answer, the history, its container on B only',
    async () => {
      await byTestId('transfer-close').click();
      const s = await api<{ nodeId: string; allocation: { id: string; port: number } }>(
        page,
        'GET',
        `/servers/${serverId}`,
      );
      assert.equal(s.body.nodeId, nodeB);
      assert.equal(s.body.allocation.id, allocB);
      await until('the page on node B', async () => (await page.getByText(`on tr-b-${run}`).count()) > 0);
      await serverStatus(page, serverId, 'running', WAIT);
      await until('the history row', async () => /completed/.test(await text('transfer-history')));
      assert.match(await text('transfer-history'), new RegExp(`tr-a-${run} → tr-b-${run}`));
      const filters = encodeURIComponent(JSON.stringify({ label: [`ctrl-alt-play.server=${serverId}`] }));
      const list = JSON.parse((await dockerApi('GET', `/containers/json?all=1&filters=${filters}`)).body) as {
        Labels: Record<string, string>;
      }[];
      assert.deepEqual(
        list.map((c) => c.Labels['ctrl-alt-play.node']),
        [nodeB],
      );
      assert.deepEqual(readFileSync(join(dirB ?? '', 'servers', serverId, 'world.dat')), WORLD);
      await shot('tr3-server-on-b.png', true);
    },
  );

  await step('the capacity views after: none on A, 512 MiB of 2.0 GiB on B', async () => {
    await until('A freed', async () => /^Memory allocated.*0 B of /.test(await memoryBar(nodeA ?? '')), {
      timeout: WAIT,
      every: 1000,
    });
    await until(
      'B holds it',
      async () => /512 MiB of 2\.0 GiB · set by an admin/.test(await memoryBar(nodeB ?? '')),
      { timeout: WAIT, every: 1000 },
    );
    assert.match(await text('node-capacity-memory'), /Memory allocated: 25 %/);
    await shot('tr4-node-capacity-after.png', true);
  });

  await step('the failover panel: turned on after 45 s, saved, still on after a reload', async () => {
    await openServer(panel, page, serverId, WAIT);
    await byTestId('failover-panel').waitFor({ timeout: WAIT });
    assert.equal(await text('failover-enabled'), 'off');
    await page.getByLabel('Fail over').check();
    await byTestId('failover-after').fill('45');
    await byTestId('failover-save').click();
    await until('the badge on', async () => (await text('failover-enabled')) === 'on, after 45 s offline');
    const s = await api<{ failover: { enabled: boolean; afterSeconds: number } }>(
      page,
      'GET',
      `/servers/${serverId}`,
    );
    assert.deepEqual(s.body.failover, { enabled: true, afterSeconds: 45 });
    await page.reload();
    await byTestId('failover-panel').waitFor({ timeout: WAIT });
    assert.equal(await text('failover-enabled'), 'on, after 45 s offline');
    assert.equal(await page.getByLabel('Fail over').isChecked(), true);
    assert.deepEqual(e2e?.pageErrors ?? [], []);
  });
});
