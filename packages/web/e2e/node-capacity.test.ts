/**
 * The node page's capacity and health (issue 16 items 1 and 4) in real Chromium against a real
 * Panel, a real Agent and the real Docker Engine: the memory bar shows what the node's servers
 * take against its capacity; an admin sets a capacity and an over-allocation on the page and the
 * bar follows; a server past it is refused with INSUFFICIENT_RESOURCES; the health panel shows the
 * Agent link and its Docker Engine. Screenshots go to test-artifacts/screenshots/nc*.png.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { RunningAgent } from '@cap/agent';
import type { RunningPanel } from '@cap/panel';
import type { Page } from 'playwright-core';
import {
  apiFromPage as api,
  createServer,
  type E2E,
  FAST_AGENT,
  openE2E,
  ownerWithNode,
  SHOTS,
  stepper,
  until,
} from './harness.ts';

const run = randomBytes(3).toString('hex');
const OWNER = { email: `ncowner-${run}@example.test`, password: `pw-${run}-owner-secret` };
const WAIT = 60_000;

let e2e: E2E | undefined;
let panel: RunningPanel;
let page: Page;
let agent: RunningAgent | undefined;
let nodeId: string | undefined;

const byTestId = (id: string) => page.locator(`[data-testid="${id}"]`);
const text = async (id: string) => ((await byTestId(id).textContent()) ?? '').replace(/\s+/g, ' ').trim();

before(async () => {
  e2e = await openE2E('node-capacity', { width: 1400, height: 1000 });
  ({ panel, page } = e2e);
});

after(async () => {
  await e2e?.close({ agent, nodeId });
});

test('the node page: capacity bars, an admin sets capacity and over-allocation, health', {
  timeout: 180_000,
}, async (t) => {
  const step = stepper(t, () => page, 'nc-');

  await step('an owner, a node with its Agent, a 512 MiB server on it', async () => {
    ({ nodeId, agent } = await ownerWithNode(e2e, {
      owner: OWNER,
      nodeName: `nc-node-${run}`,
      timeout: WAIT,
      agentEnv: { AGENT_SFTP_PORT: '0', ...FAST_AGENT },
    }));
    await createServer(page, {
      name: `nc-server-${run}`,
      nodeId,
      image: 'ctrl-alt-play/busybox:latest',
      startup: 'sleep 3600',
      limits: { memory: '512m', cpu: 0.5 },
    });
  });

  await step(
    "the memory bar: 512 MiB allocated of the machine's memory, as the Agent reports it",
    async () => {
      await page.goto(`${panel.url}/nodes/${nodeId}`);
      await byTestId('node-capacity').waitFor({ timeout: WAIT });
      await until('the capacity from the Agent', async () =>
        /512 MiB of /.test(await text('node-capacity-memory')),
      );
      assert.doesNotMatch(await text('node-capacity-memory'), /set by an admin/);
      // CPU is not checked by default
      assert.match(await text('node-capacity-cpu'), /0\.5 cores allocated · not checked/);
    },
  );

  await step('an admin sets 1g and 50 % over-allocation: the bar shows 512 MiB of 1.5 GiB', async () => {
    await byTestId('node-capacity-memory-input').fill('1g');
    await byTestId('node-overallocate-memory').fill('50');
    await byTestId('node-capacity-save').click();
    await until('the new capacity', async () =>
      /512 MiB of 1\.5 GiB \(1\.0 GiB \+ 50 %\) · set by an admin/.test(await text('node-capacity-memory')),
    );
    assert.match(await text('node-capacity-memory'), /Memory allocated: 33 %/);
    await page.screenshot({ path: join(SHOTS, 'nc1-node-capacity.png'), fullPage: true });
  });

  await step('a server past it is refused with INSUFFICIENT_RESOURCES and what is short', async () => {
    const r = await api<{ code: string; details: { memory: { needed: number; free: number } } }>(
      page,
      'POST',
      '/servers?wait=true',
      {
        name: 'too-big',
        nodeId,
        image: 'ctrl-alt-play/busybox:latest',
        limits: { memory: '1100m', cpu: 0.5 },
      },
    );
    assert.equal(r.status, 409, JSON.stringify(r.body));
    assert.equal(r.body.code, 'INSUFFICIENT_RESOURCES');
    assert.deepEqual(r.body.details.memory, { needed: 1100 * 1024 ** 2, free: 1024 ** 3 });
  });

  await step('the create page places a server automatically on the node that fits', async () => {
    await page.goto(`${panel.url}/servers/new`);
    await byTestId('page-server-create').waitFor({ timeout: WAIT });
    await page.getByText('Custom image', { exact: true }).click();
    await byTestId('create-name').fill(`nc-auto-${run}`);
    await byTestId('create-node').click();
    await page.getByRole('option', { name: 'Automatic (most headroom)' }).click();
    await page.getByText('The Panel picks the online node with the most headroom').waitFor();
    await byTestId('create-image').fill('ctrl-alt-play/busybox:latest');
    await byTestId('create-startup').fill('sleep 3600');
    await byTestId('create-submit').click();
    await byTestId('page-server-detail').waitFor({ timeout: WAIT });
    const id = new URL(page.url()).pathname.split('/').pop() ?? '';
    const s = await api<{ nodeId: string }>(page, 'GET', `/servers/${id}`);
    assert.equal(s.body.nodeId, nodeId);
    await page.goto(`${panel.url}/nodes/${nodeId}`);
    await byTestId('node-capacity').waitFor({ timeout: WAIT });
  });

  await step('health: the Agent link (no reconnects, heartbeat gaps) and its Docker Engine up', async () => {
    await until('a heartbeat gap', async () =>
      /\d+ ms|\d\.\d s/.test(await text('node-health-heartbeat-gap')),
    );
    assert.match(await text('node-docker-health'), /^Docker up \d+\./);
    assert.equal(await text('node-health-reconnects'), '0');
    assert.match(await text('node-health-clock-skew'), /ms|s|—/);
    await page.screenshot({ path: join(SHOTS, 'nc2-node-health.png'), fullPage: true });
    assert.deepEqual(e2e?.pageErrors ?? [], []);
  });
});
