/**
 * The Backups tab in real Chromium against a real Panel, a real Agent and the real Docker Engine:
 * a backup is created from the tab (its progress shown live), downloaded through the short-lived
 * link (the bytes checked against the sha256 the list shows), a file is changed, the backup is
 * restored from the tab (confirm dialog, "delete current files first", progress) and the file is
 * back. Screenshots go to test-artifacts/screenshots/b*.png.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { RunningAgent } from '@cap/agent';
import type { RunningPanel } from '@cap/panel';
import type { Page } from 'playwright-core';
import {
  apiFromPage as api,
  createServer,
  type E2E,
  openE2E,
  openServer,
  ownerWithNode,
  SHOTS,
  startFromPage,
  stepper,
  switchUser,
} from './harness.ts';

const run = randomBytes(3).toString('hex');
const OWNER = { email: `bowner-${run}@example.test`, password: `pw-${run}-owner-secret` };
const WAIT = 60_000;
const CONFIG = 'motd=the original\nmax-players=8\n';

let e2e: E2E | undefined;
let panel: RunningPanel;
let page: Page;
let agentDir: string;
let agent: RunningAgent | undefined;
let nodeId: string | undefined;
let serverId = '';

const byTestId = (id: string) => page.locator(`[data-testid="${id}"]`);

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

/** A REST call from the page, with its session and CSRF token, as the UI makes it. */
const apiFromPage = <T>(method: string, path: string, body?: unknown) => api<T>(page, method, path, body);

before(async () => {
  e2e = await openE2E('backups', { width: 1400, height: 900 });
  ({ panel, page, agentDir } = e2e);
});

after(async () => {
  await e2e?.close({ agent, nodeId });
});

test('the Backups tab: create, download (sha256 checked), change a file, restore, the file is back', {
  timeout: 240_000,
}, async (t) => {
  const step = stepper(t, () => page, 'b-');
  const serverDir = () => join(agentDir, 'servers', serverId);

  await step('an owner, a node with its Agent, a running server with a config file', async () => {
    ({ nodeId, agent } = await ownerWithNode(e2e, {
      owner: OWNER,
      nodeName: `b-node-${run}`,
      timeout: WAIT,
      agentEnv: { AGENT_SFTP_PORT: '0' },
    }));
    serverId = await createServer(page, {
      name: `b-server-${run}`,
      nodeId,
      image: 'ctrl-alt-play/busybox:latest',
      startup: 'sleep 3600',
      stopTimeout: 1,
      backupLimit: 3,
    });
    await writeFile(join(serverDir(), 'server.properties'), CONFIG);
    await writeFile(join(serverDir(), 'world.dat'), randomBytes(256 * 1024));
    await openServer(panel, page, serverId, WAIT);
    await startFromPage(page, WAIT);
  });

  await step('a backup is created from the tab, its progress shown, then listed completed', async () => {
    await byTestId('tab-backups').click();
    await byTestId('backups-empty').waitFor({ timeout: WAIT });
    assert.equal((await byTestId('backup-count').textContent())?.trim(), '0 of 3');
    await byTestId('backup-create').click();
    await byTestId('backup-name-input').fill('before the change');
    await page.getByText('tar.gz', { exact: true }).click();
    await byTestId('backup-create-submit').click();
    await byTestId('backup-create-progress').waitFor({ timeout: WAIT });
    await page.waitForSelector('[data-testid="backup-create-progress"][data-success="true"]', {
      timeout: WAIT,
    });
    await page.waitForSelector('[data-testid^="backup-row-"][data-state="completed"]', { timeout: WAIT });
    assert.equal((await byTestId('backup-count').textContent())?.trim(), '1 of 3');
    assert.equal((await byTestId('backup-name').first().textContent())?.trim(), 'before the change');
    assert.equal((await byTestId('backup-storage').first().textContent())?.trim(), 'node');
    const row = page.locator('[data-testid^="backup-row-"]').first();
    assert.match((await row.textContent()) ?? '', new RegExp(OWNER.email.split('@')[0] ?? 'x'));
    assert.match((await row.textContent()) ?? '', /tar\.gz/);
    await shot('b1-backup-created');
  });

  await step('downloaded through the link: the bytes match the sha256 in the list', async () => {
    const sha = await byTestId('backup-sha256').first().getAttribute('data-sha256');
    assert.match(sha ?? '', /^[0-9a-f]{64}$/);
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: WAIT }),
      byTestId('backup-download').first().click(),
    ]);
    const file = await download.path();
    assert.ok(file && existsSync(file), 'the download was saved');
    const bytes = await readFile(file);
    assert.ok(bytes.length > 0);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), sha);
    assert.match(download.suggestedFilename(), /\.tar\.gz$/);
  });

  await step(
    'a file changed, the backup restored (delete current files first): the file is back',
    async () => {
      await writeFile(join(serverDir(), 'server.properties'), 'motd=griefed\n');
      await writeFile(join(serverDir(), 'junk.txt'), 'junk');
      await byTestId('backup-restore').first().click();
      await byTestId('backup-restore-truncate').check();
      await shot('b2-restore-dialog');
      await byTestId('backup-restore-confirm').click();
      await byTestId('backup-restore-progress').waitFor({ timeout: WAIT });
      await page.waitForSelector('[data-testid="backup-restore-progress"][data-success="true"]', {
        timeout: WAIT,
      });
      assert.equal(await readFile(join(serverDir(), 'server.properties'), 'utf8'), CONFIG);
      assert.equal(existsSync(join(serverDir(), 'junk.txt')), false);
      await page.waitForSelector('[data-testid="server-status"][data-status="running"]', { timeout: WAIT });
      await shot('b3-restored');
    },
  );

  await step('locked it cannot be deleted; unlocked, deleted after the confirm', async () => {
    await byTestId('backup-lock').first().click();
    await byTestId('backup-locked').waitFor({ timeout: WAIT });
    assert.equal(await byTestId('backup-delete').first().isDisabled(), true);
    await byTestId('backup-lock').first().click();
    await byTestId('backup-locked').waitFor({ state: 'detached', timeout: WAIT });
    await byTestId('backup-delete').first().click();
    await byTestId('backup-delete-confirm').click();
    await byTestId('backups-empty').waitFor({ timeout: WAIT });
  });

  await step('a subuser holding backup.read only sees the list and none of the controls', async () => {
    const made = await apiFromPage<{ state: string }>('POST', `/servers/${serverId}/backups?wait=true`, {
      name: 'for the viewer',
    });
    assert.equal(made.status, 200, JSON.stringify(made.body));
    const viewer = { email: `bviewer-${run}@example.test`, password: `pw-${run}-viewer-secret` };
    const u = await apiFromPage('POST', '/users', { ...viewer, role: 'user' });
    assert.equal(u.status, 201, JSON.stringify(u.body));
    const sub = await apiFromPage('POST', `/servers/${serverId}/users`, {
      email: viewer.email,
      permissions: ['backup.read'],
    });
    assert.equal(sub.status, 201, JSON.stringify(sub.body));
    await switchUser(page, viewer, WAIT);
    await page.goto(`${panel.url}/servers/${serverId}`);
    await byTestId('tab-backups').click();
    await byTestId('backups-table').waitFor({ timeout: WAIT });
    assert.equal((await byTestId('backup-name').first().textContent())?.trim(), 'for the viewer');
    for (const control of [
      'backup-create',
      'backup-download',
      'backup-restore',
      'backup-lock',
      'backup-delete',
    ])
      assert.equal(await byTestId(control).count(), 0, control);
    await shot('b4-viewer');
    assert.deepEqual(e2e?.pageErrors, []);
  });
});
