/**
 * Registries in real Chromium (issue 11 item 3) against a real Panel, Agent, Docker Engine and a
 * real registry asking for credentials (docker-registry with htpasswd on 127.0.0.1): a registry is
 * added on the Docker section's Registries tab (the password field write-only), its test login
 * passes from the node's Engine, and a local image is pushed to it from the Images tab by choosing
 * that registry (tagged for it first), with per-layer progress, with the stored credentials only.
 * Screenshots: test-artifacts/screenshots/registries-*.png.
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
  type E2E,
  nodeOnline,
  openE2E,
  SHOTS,
  setupOwner,
  startNodeAgent,
  stepper,
} from './harness.ts';
import { type RunningRegistry, startRegistry } from './registry.ts';

const run = randomBytes(3).toString('hex');
const OWNER = { email: `rowner-${run}@example.test`, password: `pw-${run}-owner-secret` };
const WAIT = 60_000;
const IMAGE = 'ctrl-alt-play/busybox:latest';
const REG_USER = 'e2e-pusher';
const REG_PASSWORD = `reg-${run}-secret`;
const docker = new Docker({ socketPath: '/var/run/docker.sock' });

let e2e: E2E | undefined;
let panel: RunningPanel;
let page: Page;
let agentDir: string;
let agent: RunningAgent | undefined;
let nodeId: string | undefined;
let registry: RunningRegistry | undefined;
let pushedRef = '';

const byTestId = (id: string) => page.locator(`[data-testid="${id}"]`);
const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`) });

before(async () => {
  e2e = await openE2E('registries', { width: 1440, height: 900 });
  ({ panel, page, agentDir } = e2e);
});

after(async () => {
  if (pushedRef)
    await docker
      .getImage(pushedRef)
      .remove()
      .catch(() => undefined);
  await registry?.stop();
  await e2e?.close({ agent, nodeId });
});

test('Registries: add one, test its login, push an image to it with per-layer progress', {
  timeout: 300_000,
}, async (t) => {
  const step = stepper(t, () => page, 'registries-');

  await step('an owner, a node with its Agent, a registry that asks for credentials', async () => {
    registry = await startRegistry({ htpasswd: { username: REG_USER, password: REG_PASSWORD } });
    await setupOwner(panel, page, OWNER, WAIT);
    const node = await addNode(page, `r-node-${run}`);
    nodeId = node.nodeId;
    agent = await startNodeAgent({
      panelUrl: panel.url,
      nodeId,
      secret: node.secret,
      agentDir,
      extra: { AGENT_SFTP_PORT: '0' },
    });
    await nodeOnline(page, nodeId, WAIT);
  });

  await step('the registry is added on the Registries tab; its password is never shown again', async () => {
    const host = registry?.host ?? '';
    await page.goto(`${panel.url}/docker/${nodeId}/registries`);
    await byTestId('registries-tab').waitFor({ timeout: WAIT });
    await byTestId('registry-add').click();
    await byTestId('registry-name').fill('local e2e');
    await byTestId('registry-host').fill(host);
    await byTestId('registry-username').fill(REG_USER);
    await byTestId('registry-password').fill(REG_PASSWORD);
    await byTestId('registry-save').click();
    const row = page.locator(`[data-testid="registry-row"][data-host="${host}"]`);
    await row.waitFor({ timeout: WAIT });
    assert.match((await row.textContent()) ?? '', /stored/);
    assert.ok(!(await page.content()).includes(REG_PASSWORD), 'the password is not in the page');
    await row.locator('[data-testid="registry-edit"]').click();
    assert.equal(await byTestId('registry-password').inputValue(), '', 'the edit form does not have it');
    await page.keyboard.press('Escape');
    await row.locator('[data-testid="registry-test"]').click();
    const result = row.locator('[data-testid="registry-test-result"]');
    await result.waitFor({ timeout: WAIT });
    assert.equal(await result.getAttribute('data-ok'), 'true', (await result.textContent()) ?? '');
    assert.match((await result.textContent()) ?? '', /login succeeded/i);
    await shot('registries-1-list');
  });

  await step('a local image is pushed to the chosen registry with per-layer progress', async () => {
    const host = registry?.host ?? '';
    pushedRef = `${host}/${IMAGE}`;
    await page.goto(`${panel.url}/docker/${nodeId}/images`);
    await byTestId('images-tab').waitFor({ timeout: WAIT });
    const row = page.locator(`[data-testid="image-row"][data-tags~="${IMAGE}"]`);
    await row.waitFor({ timeout: WAIT });
    await row.locator('[data-testid="image-actions"]').click();
    await page.locator('[data-testid="image-push"]', { hasText: IMAGE }).click();
    const choice = await byTestId('push-registry').locator('option', { hasText: host }).getAttribute('value');
    await byTestId('push-registry').selectOption(choice ?? '');
    assert.match(
      (await byTestId('push-target').textContent()) ?? '',
      new RegExp(`${pushedRef.replace(/[.]/g, '\\.')}`),
    );
    await byTestId('push-submit').click();
    await page.waitForSelector('[data-testid="pull-progress"][data-done="true"]', { timeout: WAIT });
    assert.equal(await byTestId('pull-progress').getAttribute('data-error'), '');
    const phases = await byTestId('pull-layer').evaluateAll((els) =>
      els.map((e) => e.getAttribute('data-phase')),
    );
    assert.ok(phases.length > 0 && phases.every((p) => p === 'complete' || p === 'exists'), phases.join(','));
    assert.ok(phases.includes('complete'), `a layer was pushed: ${phases.join(',')}`);
    await shot('registries-2-push-progress');
    // the registry has it (asked with the credentials, which the browser never had)
    const tags = await fetch(`http://${host}/v2/${IMAGE.split(':')[0]}/tags/list`, {
      headers: { authorization: `Basic ${Buffer.from(`${REG_USER}:${REG_PASSWORD}`).toString('base64')}` },
    });
    assert.equal(tags.status, 200);
    assert.deepEqual(((await tags.json()) as { tags: string[] }).tags, ['latest']);
    assert.deepEqual(e2e?.pageErrors, []);
  });
});
