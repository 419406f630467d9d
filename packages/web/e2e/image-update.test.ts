/**
 * Image updates in real Chromium (issue 13 item 3) against a real Panel, Agent, Docker Engine and
 * registry (docker-registry on loopback): a server runs v1 of `<registry>/cap/app:latest`; v2 is
 * pushed under the same tag → "Check now" shows the "update available" badge → Update shows the
 * pull's per-layer progress and then "Updated"; an image that exits at once → Update ends
 * "Rolled back" with the reason. Screenshots: test-artifacts/screenshots/iu-*.png.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { RunningAgent } from '@cap/agent';
import type { RunningPanel } from '@cap/panel';
import Docker from 'dockerode';
import type { Page } from 'playwright-core';
import {
  addNode,
  createServer,
  type E2E,
  nodeOnline,
  openE2E,
  openServer,
  setupOwner,
  startFromPage,
  startNodeAgent,
  stepper,
} from './harness.ts';
import { pushImage, type RunningRegistry, startRegistry } from './registry.ts';

const run = randomBytes(3).toString('hex');
const OWNER = { email: `iuowner-${run}@example.test`, password: `pw-${run}-owner-secret` };
const WAIT = 60_000;
const docker = new Docker({ socketPath: '/var/run/docker.sock' });

let e2e: E2E | undefined;
let panel: RunningPanel;
let page: Page;
let agentDir: string;
let agent: RunningAgent | undefined;
let nodeId: string | undefined;
let registry: RunningRegistry | undefined;
let ref = '';

const byTestId = (id: string) => page.locator(`[data-testid="${id}"]`);
/** an image whose /app/run is `body` (after a blob, so the pull has a layer to show) */
const push = (body: string) =>
  pushImage(docker, ref, {
    cmd: [
      'sh',
      '-c',
      `head -c 8000000 /dev/urandom > /blob && mkdir -p /app && printf '%s\\n' '#!/bin/sh' ${JSON.stringify(body)} > /app/run && chmod 755 /app/run`,
    ],
  });

before(async () => {
  registry = await startRegistry();
  ref = `${registry.host}/cap/app:latest`;
  e2e = await openE2E('image-update', { width: 1400, height: 950 });
  ({ panel, page, agentDir } = e2e);
});

after(async () => {
  await e2e?.close({ agent, nodeId });
  const mine = (await docker.listImages({ all: true })).filter(
    (i) =>
      (i.RepoTags ?? []).some((t) => t.startsWith(`${registry?.host}/cap/app:`)) ||
      (i.RepoDigests ?? []).some((d) => d.startsWith(`${registry?.host}/cap/app@`)),
  );
  for (const i of mine)
    await docker
      .getImage(i.Id)
      .remove({ force: true })
      .catch(() => undefined);
  await registry?.stop();
});

test('image updates: badge, update with pull progress, updated; a broken image is rolled back', {
  timeout: 300_000,
}, async (t) => {
  const step = stepper(t, () => page, 'iu-');
  let serverId = '';

  await step('an owner, a node, a running server on v1 of the registry image', async () => {
    await push('echo "ready v1"; exec sleep 3600');
    await setupOwner(panel, page, OWNER, WAIT);
    const node = await addNode(page, `iu-node-${run}`);
    nodeId = node.nodeId;
    agent = await startNodeAgent({ panelUrl: panel.url, nodeId, secret: node.secret, agentDir });
    await nodeOnline(page, nodeId, WAIT);
    serverId = await createServer(page, {
      name: `iu-server-${run}`,
      nodeId,
      image: ref,
      startup: '/app/run',
      done: 'ready',
      stopTimeout: 1,
    });
    await openServer(panel, page, serverId, WAIT);
    await startFromPage(page, WAIT);
    assert.equal(await byTestId('image-update-badge').count(), 0);
  });

  await step('v2 under the same tag: Check now shows the update available badge', async () => {
    // v2 takes a few seconds to be ready: the finished pull stays on screen meanwhile
    await push('sleep 4; echo "ready v2"; exec sleep 3600');
    await byTestId('image-update-open').click();
    await byTestId('image-check-now').click();
    await byTestId('image-update-badge').waitFor({ timeout: WAIT });
    await page.waitForSelector('[data-testid="image-check-state"]:has-text("newer image")', {
      timeout: WAIT,
    });
  });

  await step('Update: the pull with its layers, then Updated', async () => {
    await byTestId('image-update-run').click();
    await page.waitForSelector('[data-testid="pull-progress"] [data-testid="pull-layer"]', { timeout: WAIT });
    await page.waitForSelector('[data-testid="pull-progress"][data-done="true"]', { timeout: WAIT });
    await page.waitForSelector('[data-testid="image-update-outcome"][data-outcome="updated"]', {
      timeout: WAIT,
    });
    await page.waitForSelector('[data-testid="image-check-state"]:has-text("current")', { timeout: WAIT });
  });

  await step('a broken image: Update ends rolled back with the reason', async () => {
    await push('echo "broken"; exit 3');
    await byTestId('image-check-now').click();
    await byTestId('image-update-badge').waitFor({ timeout: WAIT });
    await byTestId('image-update-run').click();
    await page.waitForSelector('[data-testid="image-update-outcome"][data-outcome="rolled_back"]', {
      timeout: 120_000,
    });
    const text = (await byTestId('image-update-outcome').textContent()) ?? '';
    assert.match(text, /Rolled back to the previous image: .+/);
  });
});
