/**
 * A Docker volume's files in real Chromium against a real Panel, a real Agent and the real Docker
 * Engine (issue 11): a volume filled by a container (`docker run -v vol:/data busybox …`) is
 * browsed in the shared file table (links with their targets, a file opened, a link out of the
 * volume refused, a folder entered); then a file is uploaded from the browser (streamed to the
 * ticket's URL), shows in the list and reads back, a folder is made, the file renamed into it, and
 * both deleted. Screenshots: test-artifacts/screenshots/volumes-*.png.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { RunningAgent } from '@cap/agent';
import type { RunningPanel } from '@cap/panel';
import Docker from 'dockerode';
import type { Page } from 'playwright-core';
import { apiFromPage, type E2E, openE2E, ownerWithNode, SHOTS, stepper, until } from './harness.ts';

const run = randomBytes(3).toString('hex');
const OWNER = { email: `vowner-${run}@example.test`, password: `pw-${run}-owner-secret` };
const WAIT = 60_000;
const IMAGE = 'ctrl-alt-play/busybox:latest';
const VOLUME = `cap-e2e-vol-${run}`;
const docker = new Docker({ socketPath: '/var/run/docker.sock' });

let e2e: E2E | undefined;
let panel: RunningPanel;
let page: Page;
let agent: RunningAgent | undefined;
let nodeId: string | undefined;

const byTestId = (id: string) => page.locator(`[data-testid="${id}"]`);
const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`) });
const row = (name: string) => byTestId('volume-browser').locator(`tr[data-testid="file-${name}"]`);
const names = () =>
  byTestId('volume-browser')
    .locator('tbody tr[data-testid^="file-"]')
    .evaluateAll((els) => els.map((e) => e.getAttribute('data-testid')?.slice('file-'.length)));

before(async () => {
  e2e = await openE2E('volumes', { width: 1440, height: 900 });
  ({ panel, page } = e2e);
});

after(async () => {
  await e2e?.close({ agent, nodeId });
  await docker
    .getVolume(VOLUME)
    .remove({ force: true })
    .catch(() => undefined);
});

test("Volumes: browse a volume's files, upload one, see it, rename and delete it", {
  timeout: 300_000,
}, async (t) => {
  const step = stepper(t, () => page, 'volumes-');

  await step('an owner, a node with its Agent, a volume filled by a container', async () => {
    ({ nodeId, agent } = await ownerWithNode(e2e, {
      owner: OWNER,
      nodeName: `v-node-${run}`,
      timeout: WAIT,
      agentEnv: { AGENT_SFTP_PORT: '0' },
    }));
    await docker.createVolume({ Name: VOLUME });
    const c = await docker.createContainer({
      Image: IMAGE,
      Cmd: [
        'sh',
        '-c',
        'mkdir -p /data/maps && echo "motd=hello from the volume" > /data/server.properties && echo m1 > /data/maps/one.map && ln -s server.properties /data/props-link && ln -s /etc/hostname /data/outside-link',
      ],
      HostConfig: { Binds: [`${VOLUME}:/data`] },
    });
    try {
      await c.start();
      assert.equal(((await c.wait()) as { StatusCode: number }).StatusCode, 0);
    } finally {
      await c.remove({ force: true });
    }
  });

  await step("the volume's files are browsed and a file opened; a link out of it is refused", async () => {
    await page.goto(`${panel.url}/docker/${nodeId}/volumes`);
    const vrow = page.locator(`[data-testid="volume-row"][data-name="${VOLUME}"]`);
    await vrow.waitFor({ timeout: WAIT });
    await vrow.locator('[data-testid="volume-actions"]').click();
    await byTestId('volume-browse').click();
    await row('maps').waitFor({ timeout: WAIT });
    assert.deepEqual(await names(), ['maps', 'outside-link', 'props-link', 'server.properties']);
    assert.equal(await row('maps').getAttribute('data-type'), 'directory');
    assert.equal(await row('outside-link').getAttribute('data-type'), 'symlink');
    assert.match((await row('outside-link').textContent()) ?? '', /→ \/etc\/hostname/);
    await row('server.properties').getByRole('button', { name: 'View file server.properties' }).click();
    await byTestId('volume-file-content').waitFor({ timeout: WAIT });
    assert.equal((await byTestId('volume-file-content').textContent())?.trim(), 'motd=hello from the volume');
    await shot('volumes-1-file');
    await byTestId('volume-file-close').click();
    await row('outside-link').getByRole('button', { name: 'View file outside-link' }).click();
    const code = byTestId('volume-browser').locator('[data-testid="error-code"]');
    await code.waitFor({ timeout: WAIT });
    assert.equal(await code.textContent(), 'PATH_OUTSIDE_ROOT');
    await byTestId('volume-file-close').click();
    await row('maps').getByRole('button', { name: 'Open folder maps' }).click();
    await row('one.map').waitFor({ timeout: WAIT });
    await shot('volumes-2-folder');
    await byTestId('volume-path').getByRole('button', { name: VOLUME }).click();
    await row('server.properties').waitFor({ timeout: WAIT });
  });

  const content = `uploaded from Chromium ${run}\n`.repeat(2000);
  await step('a file is uploaded from the browser, shows in the list and reads back', async () => {
    await byTestId('volume-upload-input').setInputFiles({
      name: 'hello.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from(content),
    });
    await row('hello.txt').waitFor({ timeout: WAIT });
    const back = await apiFromPage<{ content: string }>(
      page,
      'GET',
      `/nodes/${nodeId}/volumes/${VOLUME}/file?path=/hello.txt`,
    );
    assert.equal(back.status, 200, JSON.stringify(back.body));
    assert.equal(back.body.content, content);
    await shot('volumes-3-uploaded');
  });

  await step('a folder is made, the file renamed into it, and both deleted', async () => {
    await byTestId('volume-new-folder').click();
    await byTestId('new-folder-input').fill('uploads');
    await byTestId('new-folder-submit').click();
    await row('uploads').waitFor({ timeout: WAIT });
    await byTestId('actions-hello.txt').click();
    await page.getByRole('menuitem', { name: 'Rename / move' }).click();
    await byTestId('rename-input').fill('uploads/hello.txt');
    await byTestId('rename-submit').click();
    await row('hello.txt').waitFor({ state: 'detached', timeout: WAIT });
    await row('uploads').getByRole('button', { name: 'Open folder uploads' }).click();
    await row('hello.txt').waitFor({ timeout: WAIT });
    await byTestId('volume-path').getByRole('button', { name: VOLUME }).click();
    await row('uploads').waitFor({ timeout: WAIT });
    await byTestId('actions-uploads').click();
    await page.getByRole('menuitem', { name: 'Delete' }).click();
    assert.match((await byTestId('delete-counts').textContent()) ?? '', /0 files and 1 folder/);
    await byTestId('delete-confirm').click();
    await row('uploads').waitFor({ state: 'detached', timeout: WAIT });
    assert.deepEqual(await names(), ['maps', 'outside-link', 'props-link', 'server.properties']);
    await until(
      'the folder gone from the volume',
      async () =>
        (await apiFromPage(page, 'GET', `/nodes/${nodeId}/volumes/${VOLUME}/files?path=/uploads`)).status ===
        404,
      { timeout: WAIT, every: 200 },
    );
    const act = await apiFromPage<{ entries: { action: string; details?: { volume?: string } }[] }>(
      page,
      'GET',
      '/activity?action=node.volume&limit=50',
    );
    const mine = act.body.entries.filter((e) => e.details?.volume === VOLUME).map((e) => e.action);
    for (const a of ['node.volume.upload', 'node.volume.mkdir', 'node.volume.rename', 'node.volume.delete'])
      assert.ok(mine.includes(a), `${a} in ${JSON.stringify(mine)}`);
    await shot('volumes-4-deleted');
    await page.keyboard.press('Escape');
    assert.deepEqual(e2e?.pageErrors, []);
  });
});
