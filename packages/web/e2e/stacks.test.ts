/**
 * Compose stacks in real Chromium against a real Panel, a real Agent and the real Docker Engine:
 * the Stacks tab deploys a two-service stack from the YAML editor, shows both services running
 * (linked to their containers), updates it (only the changed service recreated), stops, starts
 * and removes it with its volumes. Screenshots: test-artifacts/screenshots/stacks-*.png.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { RunningAgent } from '@cap/agent';
import type { RunningPanel } from '@cap/panel';
import Docker from 'dockerode';
import type { Page } from 'playwright-core';
import { type E2E, openE2E, ownerWithNode, SHOTS, stepper, until } from './harness.ts';

const run = randomBytes(3).toString('hex');
const OWNER = { email: `sowner-${run}@example.test`, password: `pw-${run}-owner-secret` };
const WAIT = 60_000;
const NAME = `e2e${run}`;
const PROJECT = 'com.docker.compose.project';
const docker = new Docker({ socketPath: '/var/run/docker.sock' });

let e2e: E2E | undefined;
let panel: RunningPanel;
let page: Page;
let agent: RunningAgent | undefined;
let nodeId: string | undefined;

const byTestId = (id: string) => page.locator(`[data-testid="${id}"]`);
const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`) });
const containers = () => docker.listContainers({ all: true, filters: { label: [`${PROJECT}=${NAME}`] } });

async function cleanup(): Promise<void> {
  const filters = { label: [`${PROJECT}=${NAME}`] };
  for (const c of await containers())
    await docker
      .getContainer(c.Id)
      .remove({ force: true })
      .catch(() => undefined);
  for (const n of await docker.listNetworks({ filters }))
    await docker
      .getNetwork(n.Id)
      .remove()
      .catch(() => undefined);
  for (const v of (await docker.listVolumes({ filters })).Volumes ?? [])
    await docker
      .getVolume(v.Name)
      .remove()
      .catch(() => undefined);
}

const loop = `["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]`;
const updated = `services:
  db:
    image: ctrl-alt-play/busybox
    command: ${loop}
    volumes: ["data:/data"]
    networks: [back]
  web:
    image: ctrl-alt-play/busybox
    command: ${loop}
    depends_on: [db]
    networks: [back]
    environment: { RELEASE: "2" }
networks:
  back: {}
volumes:
  data: {}
`;

before(async () => {
  e2e = await openE2E('stacks', { width: 1440, height: 900 });
  ({ panel, page } = e2e);
});

after(async () => {
  await cleanup().catch(() => undefined);
  await e2e?.close({ agent, nodeId });
});

test('Stacks: deploy from the editor, services linked, update, stop, start, remove', {
  timeout: 300_000,
}, async (t) => {
  const step = stepper(t, () => page, 'stacks-');
  const row = () => page.locator(`[data-testid="stack-row"][data-name="${NAME}"]`);
  const serviceStates = async () =>
    row()
      .locator('[data-testid="stack-service"] [data-testid="container-state"]')
      .evaluateAll((els) => els.map((e) => e.getAttribute('data-state')));

  await step('an owner and a node with its Agent', async () => {
    ({ nodeId, agent } = await ownerWithNode(e2e, {
      owner: OWNER,
      nodeName: `s-node-${run}`,
      timeout: WAIT,
      agentEnv: { AGENT_SFTP_PORT: '0' },
    }));
  });

  await step('deploy the example two-service stack from the YAML editor', async () => {
    await page.goto(`${panel.url}/docker/${nodeId}/containers`);
    await byTestId('docker-tab-stacks').click();
    await byTestId('stacks-tab').waitFor({ timeout: WAIT });
    await byTestId('stack-new').click();
    await page.locator('[data-testid="stack-compose"] .cm-content').waitFor({ timeout: WAIT });
    await byTestId('stack-name').fill(NAME);
    assert.match((await byTestId('stack-help').textContent()) ?? '', /STACK_UNSUPPORTED/);
    await shot('stacks-editor');
    await byTestId('stack-submit').click();
    await row().waitFor({ timeout: WAIT });
    await until('both services running', async () => {
      const s = await serviceStates();
      return s.length === 2 && s.every((x) => x === 'running');
    });
    assert.match((await byTestId('stack-notice').textContent()) ?? '', /db: created, web: created/);
    const list = await containers();
    assert.equal(list.length, 2);
    // each service links to its container's page
    const href = await row()
      .locator('[data-testid="stack-service"][data-service="web"] a')
      .getAttribute('href');
    const web = list.find((c) => c.Labels['com.docker.compose.service'] === 'web');
    assert.equal(href, `/docker/${nodeId}/containers/${web?.Id}`);
    await shot('stacks-list');
  });

  await step('update: only the changed service is recreated', async () => {
    const before = await containers();
    await row().locator('[data-testid="stack-edit"]').click();
    const editor = page.locator('[data-testid="stack-compose"] .cm-content');
    await editor.waitFor({ timeout: WAIT });
    await until('the stored file is loaded', async () =>
      ((await editor.textContent()) ?? '').includes('depends_on'),
    );
    await editor.click();
    await page.keyboard.press('Control+A');
    await page.keyboard.insertText(updated);
    await byTestId('stack-submit').click();
    await until('the update is reported', async () =>
      /db: unchanged, web: recreated/.test(
        (await byTestId('stack-notice')
          .textContent()
          .catch(() => '')) ?? '',
      ),
    );
    const after = await containers();
    const id = (list: Docker.ContainerInfo[], s: string) =>
      list.find((c) => c.Labels['com.docker.compose.service'] === s)?.Id;
    assert.equal(id(after, 'db'), id(before, 'db'));
    assert.notEqual(id(after, 'web'), id(before, 'web'));
  });

  await step('stop and start', async () => {
    await row().locator('[data-testid="stack-stop"]').click();
    await until(
      'stopped',
      async () => (await row().locator('[data-testid="stack-status"]').textContent())?.trim() === 'stopped',
    );
    for (const c of await containers()) assert.equal(c.State, 'exited');
    await row().locator('[data-testid="stack-start"]').click();
    await until('running again', async () => {
      const s = await serviceStates();
      return s.length === 2 && s.every((x) => x === 'running');
    });
  });

  await step('remove with its volumes, after a confirm', async () => {
    await row().locator('[data-testid="stack-remove"]').click();
    await byTestId('stack-remove-yes').waitFor({ timeout: WAIT });
    await byTestId('stack-remove-volumes').check();
    await shot('stacks-remove');
    await byTestId('stack-remove-yes').click();
    await row().waitFor({ state: 'detached', timeout: WAIT });
    assert.equal((await containers()).length, 0);
    const vols = (await docker.listVolumes({ filters: { label: [`${PROJECT}=${NAME}`] } })).Volumes ?? [];
    assert.equal(vols.length, 0);
    assert.deepEqual(e2e?.pageErrors, []);
  });
});
