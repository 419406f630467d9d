/**
 * The Docker section in real Chromium against a real Panel, a real Agent, the real Docker Engine
 * and a real registry (Debian's `docker-registry` on 127.0.0.1, which the Engine trusts over plain
 * HTTP): a container started outside the Panel (dockerode, like `docker run`) appears in the list
 * and is found by the filters; a container is made with the create wizard and its log shows; a
 * command runs in the exec terminal and the terminal's size reaches the TTY after a resize; an image
 * pushed to the registry (with a fresh random layer, so it really downloads) is pulled from the
 * Images tab with its per-layer progress (a volume's files: e2e/volumes.test.ts). Screenshots:
 * test-artifacts/screenshots/docker-*.png.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { RunningAgent } from '@cap/agent';
import type { RunningPanel } from '@cap/panel';
import Docker from 'dockerode';
import type { Page } from 'playwright-core';
import {
  addNode,
  apiFromPage,
  type E2E,
  nodeOnline,
  openE2E,
  SHOTS,
  setupOwner,
  startNodeAgent,
  stepper,
  switchUser,
  until,
} from './harness.ts';
import { pushImage, type RunningRegistry, startRegistry } from './registry.ts';

const run = randomBytes(3).toString('hex');
const OWNER = { email: `downer-${run}@example.test`, password: `pw-${run}-owner-secret` };
const WAIT = 60_000;
const IMAGE = 'ctrl-alt-play/busybox:latest';
const LABEL = 'cap-e2e-docker';
const docker = new Docker({ socketPath: '/var/run/docker.sock' });

let e2e: E2E | undefined;
let panel: RunningPanel;
let page: Page;
let agentDir: string;
let agent: RunningAgent | undefined;
let nodeId: string | undefined;
let registry: RunningRegistry | undefined;
let pulledRef = '';

const byTestId = (id: string) => page.locator(`[data-testid="${id}"]`);
const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`) });

async function readTerminal(testId: string): Promise<string> {
  return page.evaluate((id) => {
    const el = document.querySelector(`[data-testid="${id}"]`) as
      | (HTMLElement & { capReadBuffer?: () => string })
      | null;
    return el?.capReadBuffer?.() ?? '';
  }, testId);
}

async function removeLabelled(): Promise<void> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL}=${run}`] } });
  await Promise.all(
    list.map((c) =>
      docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined),
    ),
  );
}

before(async () => {
  e2e = await openE2E('docker', { width: 1440, height: 900 });
  ({ panel, page, agentDir } = e2e);
});

after(async () => {
  await removeLabelled().catch(() => undefined);
  if (pulledRef)
    await docker
      .getImage(pulledRef)
      .remove({ force: true })
      .catch(() => undefined);
  await registry?.stop();
  await e2e?.close({ agent, nodeId });
});

test('Docker: the list with a foreign container, the create wizard, a pull with per-layer progress, exec with resize', {
  timeout: 300_000,
}, async (t) => {
  const step = stepper(t, () => page, 'docker-');
  const outside = `outside-${run}`;
  const wizard = `wizard-${run}`;

  await step('an owner, a node with its Agent, a container started outside the Panel', async () => {
    await setupOwner(panel, page, OWNER, WAIT);
    const node = await addNode(page, `d-node-${run}`);
    nodeId = node.nodeId;
    agent = await startNodeAgent({
      panelUrl: panel.url,
      nodeId,
      secret: node.secret,
      agentDir,
      extra: { AGENT_SFTP_PORT: '0' },
    });
    await nodeOnline(page, nodeId, WAIT);
    // what `docker run -d --name outside-… --label cap-e2e-docker=… busybox sleep 3600` does
    const c = await docker.createContainer({
      name: outside,
      Image: IMAGE,
      Cmd: ['sleep', '3600'],
      Labels: { [LABEL]: run, purpose: 'e2e' },
    });
    await c.start();
  });

  await step('it appears in the Docker list (all nodes) and the filters find it', async () => {
    await page.getByRole('link', { name: 'Docker' }).click();
    await byTestId('page-docker').waitFor({ timeout: WAIT });
    const row = page.locator(`[data-testid="container-row"][data-name="${outside}"]`);
    // the list is virtualised: narrow it first so the row is rendered whatever else runs here
    await byTestId('filter-text').fill(run);
    await row.waitFor({ timeout: WAIT });
    assert.equal(await row.getAttribute('data-state'), 'running');
    assert.equal(await row.getAttribute('data-node'), nodeId);
    await byTestId('filter-label').fill(`${LABEL}=${run}`);
    await until(
      'one row',
      async () => (await byTestId('container-count').getAttribute('data-shown')) === '1',
    );
    await byTestId('filter-label').fill(`${LABEL}=nope`);
    await until('no row', async () => (await byTestId('container-count').getAttribute('data-shown')) === '0');
    await byTestId('filter-label').fill('');
    await byTestId('filter-image').fill('busybox');
    await row.waitFor({ timeout: WAIT });
    // a foreign container is not "managed"
    assert.equal(await row.locator('[data-testid="managed-badge"]').count(), 0);
    await byTestId('filter-image').fill('');
    await byTestId('filter-text').fill('');
    await row
      .first()
      .waitFor({ state: 'attached', timeout: WAIT })
      .catch(() => undefined);
    await shot('docker-1-containers');
  });

  await step('the create wizard makes and starts a container; its log shows', async () => {
    await page.goto(`${panel.url}/docker/${nodeId}/create`);
    await byTestId('create-wizard').waitFor({ timeout: WAIT });
    // a bad name is caught beside the field before anything is sent
    await byTestId('wizard-image').fill(IMAGE);
    await byTestId('wizard-name').fill('-bad name');
    await byTestId('wizard-next').click();
    await page.getByText('Letters, digits', { exact: false }).waitFor({ timeout: WAIT });
    await byTestId('wizard-name').fill(wizard);
    await byTestId('wizard-command').fill(`sh -c "echo hello-from-the-wizard $GREETING; sleep 3600"`);
    await byTestId('wizard-env-add').click();
    await byTestId('env-key-0').fill('GREETING');
    await byTestId('env-value-0').fill('ahoy');
    await byTestId('wizard-tty').check();
    await byTestId('wizard-next').click();
    await byTestId('wizard-ports-add').click();
    await byTestId('port-container-0').fill('8080');
    await byTestId('wizard-next').click();
    await byTestId('wizard-memory').fill('64');
    await byTestId('wizard-cpus').fill('0.5');
    await byTestId('wizard-labels-add').click();
    await byTestId('labels-key-0').fill(LABEL);
    await byTestId('labels-value-0').fill(run);
    await byTestId('wizard-next').click();
    const review = JSON.parse((await byTestId('wizard-review').textContent()) ?? '{}');
    assert.deepEqual(review.Cmd, ['sh', '-c', 'echo hello-from-the-wizard $GREETING; sleep 3600']);
    assert.deepEqual(review.Env, ['GREETING=ahoy']);
    assert.equal(review.HostConfig.Memory, 64 * 1024 * 1024);
    assert.equal(review.HostConfig.NanoCpus, 500_000_000);
    await shot('docker-2-wizard');
    await byTestId('wizard-create').click();
    await page.waitForSelector(`[data-testid="container-detail"][data-name="${wizard}"]`, { timeout: WAIT });
    await page.waitForSelector('[data-testid="container-state"][data-state="running"]', { timeout: WAIT });
    await page.getByText('hello-from-the-wizard ahoy').first().waitFor({ timeout: WAIT });
    const info = await docker.getContainer(wizard).inspect();
    assert.equal(info.HostConfig.Memory, 64 * 1024 * 1024);
    assert.equal(info.Config.Labels?.[LABEL], run);
  });

  await step('a pull from a local registry shows per-layer progress to the end', async () => {
    registry = await startRegistry();
    // a fresh image: busybox plus a random 24 MB layer, pushed, then removed here
    const repo = `${registry.host}/e2e/random-${run}`;
    pulledRef = `${repo}:v1`;
    await pushImage(docker, pulledRef, { layerBytes: 25165824, labels: { [LABEL]: run } });

    await page.goto(`${panel.url}/docker/${nodeId}/images`);
    await byTestId('images-tab').waitFor({ timeout: WAIT });
    // every fraction the bar shows, recorded in the page as it changes
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { capSeen: string[] }).capSeen = seen;
      new MutationObserver(() => {
        const f = document.querySelector('[data-testid="pull-progress"]')?.getAttribute('data-fraction');
        if (f && seen[seen.length - 1] !== f) seen.push(f);
      }).observe(document.body, { subtree: true, attributes: true, childList: true });
    });
    await byTestId('pull-image').fill(pulledRef);
    await byTestId('pull-submit').click();
    await page.waitForSelector('[data-testid="pull-progress"][data-done="true"]', { timeout: WAIT });
    assert.equal(await byTestId('pull-progress').getAttribute('data-error'), '');
    assert.equal(await byTestId('pull-progress').getAttribute('data-fraction'), '1.000');
    const phases = await byTestId('pull-layer').evaluateAll((els) =>
      els.map((e) => e.getAttribute('data-phase')),
    );
    assert.ok(phases.includes('complete'), `a layer was downloaded: ${phases.join(',')}`);
    assert.ok(phases.includes('exists'), `busybox's layer was already here: ${phases.join(',')}`);
    const seen = await page.evaluate(() => (window as unknown as { capSeen: string[] }).capSeen);
    assert.ok(
      seen.some((f) => Number(f) > 0 && Number(f) < 1),
      `the bar moved through values between 0 and 1: ${seen.join(' ')}`,
    );
    await shot('docker-3-pull-progress');
    await page.locator(`[data-testid="image-row"][data-tags~="${pulledRef}"]`).waitFor({ timeout: WAIT });
  });
  await step('exec: a command runs in the terminal, and a resize reaches the TTY', async () => {
    const id = (await docker.getContainer(wizard).inspect()).Id;
    await page.goto(`${panel.url}/docker/${nodeId}/containers/${id}`);
    await byTestId('ctab-exec').click();
    await byTestId('exec-connect').click();
    await page.waitForSelector('[data-testid="exec-phase"][data-phase="open"]', { timeout: WAIT });
    await byTestId('exec-terminal').click();
    await page.keyboard.type('echo "sum=$((6*7)) greeting=$GREETING"\n');
    await until('the command output', async () =>
      /sum=42 greeting=ahoy/.test(await readTerminal('exec-terminal')),
    );
    const before = await byTestId('exec-terminal').getAttribute('data-cols');
    await page.setViewportSize({ width: 1100, height: 900 });
    await until(
      'a new size',
      async () => (await byTestId('exec-terminal').getAttribute('data-cols')) !== before,
      { timeout: WAIT },
    );
    const cols = await byTestId('exec-terminal').getAttribute('data-cols');
    const rows = await byTestId('exec-terminal').getAttribute('data-rows');
    // the resize frame and the keystrokes travel apart: ask again until the TTY has the new size
    let lastAsked = 0;
    await until('stty showing the new size', async () => {
      if (new RegExp(`^${rows} ${cols}$`, 'm').test(await readTerminal('exec-terminal'))) return true;
      if (Date.now() - lastAsked > 1000) {
        lastAsked = Date.now();
        await page.keyboard.type('stty size\n');
      }
      return false;
    });
    await shot('docker-4-exec');
    await page.setViewportSize({ width: 1440, height: 900 });
    await byTestId('exec-disconnect').click();
    assert.deepEqual(e2e?.pageErrors, []);
  });

  await step('a user with docker.read sees the Docker nav and a read-only UI', async () => {
    const reader = { email: `dreader-${run}@example.test`, password: `pw-${run}-reader-secret` };
    const u = await apiFromPage<{ id: string }>(page, 'POST', '/users', { ...reader, role: 'user' });
    assert.equal(u.status, 201, JSON.stringify(u.body));
    const g = await apiFromPage(page, 'PUT', `/nodes/${nodeId}/docker-access/${u.body.id}`, {
      permissions: ['docker.read'],
    });
    assert.equal(g.status, 200, JSON.stringify(g.body));
    await switchUser(page, reader, WAIT);
    await page.getByRole('link', { name: 'Docker' }).click();
    await byTestId('page-docker').waitFor({ timeout: WAIT });
    await byTestId('filter-text').fill(outside);
    const row = page.locator(`[data-testid="container-row"][data-name="${outside}"]`);
    await row.waitFor({ timeout: WAIT });
    assert.equal(await row.locator('[data-testid="container-actions"]').count(), 0, 'no row actions');
    await row.locator('[data-testid="container-link"]').click();
    await byTestId('container-detail').waitFor({ timeout: WAIT });
    for (const control of ['detail-stop', 'detail-restart', 'detail-kill', 'detail-remove', 'ctab-exec'])
      assert.equal(await byTestId(control).count(), 0, control);
    assert.equal(await byTestId('docker-tab-create').count(), 0, 'no create section');
    assert.equal(await byTestId('docker-readonly-note').count(), 1);
    await shot('docker-5-read-only');
    // volumes: browsed and inspected, never created, removed, backed up or restored
    const vol = `dr-vol-${run}`;
    await docker.createVolume({ Name: vol });
    try {
      await page.goto(`${panel.url}/docker/${nodeId}/volumes`);
      const vrow = page.locator(`[data-testid="volume-row"][data-name="${vol}"]`);
      await vrow.waitFor({ timeout: WAIT });
      assert.equal(await byTestId('volume-create').count(), 0, 'no volume create');
      await vrow.locator('[data-testid="volume-actions"]').click();
      for (const control of ['volume-remove', 'volume-backup', 'volume-restore'])
        assert.equal(await byTestId(control).count(), 0, control);
      await byTestId('volume-browse').click();
      await byTestId('volume-browser').waitFor({ timeout: WAIT });
    } finally {
      await docker
        .getVolume(vol)
        .remove()
        .catch(() => undefined);
    }
    assert.deepEqual(e2e?.pageErrors, []);
  });
});
