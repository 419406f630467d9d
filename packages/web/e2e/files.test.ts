/**
 * The Files tab in real Chromium against a real Panel, a real Agent and the real Docker Engine
 * (issue 10 item 1): a config file edited in CodeMirror and saved with Ctrl-S; the conflict
 * message when the file changed behind the editor (reload, then overwrite); a folder uploaded
 * through the folder picker with the upload throttled (DevTools network emulation) so the total
 * progress bar is seen at two or more values between 0 and 100 %; two files dropped on the list;
 * new folder, rename into it, chmod, delete many (counts shown), a file downloaded through its
 * ticket and its bytes compared; then compress a selection, decompress it, a folder downloaded as
 * .tar.gz. Screenshots: test-artifacts/screenshots/files-*.png.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { RunningAgent } from '@cap/agent';
import type { RunningPanel } from '@cap/panel';
import type { Page } from 'playwright-core';
import {
  apiFromPage as api,
  createServer,
  type E2E,
  freePortBlock,
  importEgg,
  openE2E,
  ownerWithNode,
  SHOTS,
  serverStatus,
  stepper,
  switchUser,
  until as waitUntil,
} from './harness.ts';

const EGG = readFileSync(fileURLToPath(new URL('./fixtures/egg-busybox-echo.json', import.meta.url)), 'utf8');
const run = randomBytes(3).toString('hex');
const OWNER = { email: `files-${run}@example.test`, password: `pw-${run}-files-secret` };
const WAIT = 60_000;
const BIG = 12 * 1024 * 1024;

let e2e: E2E | undefined;
let panel: RunningPanel;
let page: Page;
let agentDir: string;
let agent: RunningAgent | undefined;
let nodeId: string | undefined;
let serverId = '';
const local = mkdtempSync(join(tmpdir(), 'cap-web-e2e-files-local-'));

const byTestId = (id: string) => page.locator(`[data-testid="${id}"]`);
const shot = (name: string) => page.screenshot({ path: join(SHOTS, `files-${name}.png`), fullPage: true });
const onDisk = (rel: string) => join(agentDir, 'servers', serverId, rel);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const apiFromPage = <T>(method: string, path: string, body?: unknown) => api<T>(page, method, path, body);

/** The editor's whole text, as CodeMirror holds it (not what its viewport happens to render). */
const editorText = () =>
  page.evaluate(() => {
    const lines = [...document.querySelectorAll('[data-testid="code-editor"] .cm-line')];
    return lines.map((l) => l.textContent).join('\n');
  });

const until = (what: string, check: () => boolean | Promise<boolean>) =>
  waitUntil(what, check, { timeout: WAIT });

/** Open the row's ⋯ menu and pick one action. */
async function rowAction(name: string, action: string): Promise<void> {
  await byTestId(`actions-${name}`).click();
  await page.getByRole('menuitem', { name: action }).click();
}

before(async () => {
  e2e = await openE2E('files', { width: 1280, height: 900 });
  ({ panel, page, agentDir } = e2e);
});

after(async () => {
  await e2e?.close({ agent, nodeId });
  rmSync(local, { recursive: true, force: true });
});

test('files tab: edit with conflict check, folder upload with progress, drop, folder, rename, chmod, delete many, download', {
  timeout: 300_000,
}, async (t) => {
  const step = stepper(t, () => page, 'files-');

  await step('an owner, a node with its Agent, one installed server', async () => {
    ({ nodeId, agent } = await ownerWithNode(e2e, {
      owner: OWNER,
      nodeName: `files-node-${run}`,
      timeout: WAIT,
    }));
    serverId = await createServer(page, {
      name: `files-${run}`,
      nodeId,
      templateId: await importEgg(page, EGG, 'egg-busybox-echo.json'),
      port: await freePortBlock(1),
    });
    await serverStatus(page, serverId, 'offline', WAIT);
    writeFileSync(onDisk('server.properties'), 'motd=A server\nmax-players=10\n');
    mkdirSync(onDisk('many'));
    for (let i = 0; i < 205; i += 1)
      writeFileSync(onDisk(`many/f-${String(i).padStart(3, '0')}.txt`), `${i}\n`);
  });

  await step('the Files tab lists the folder with its columns', async () => {
    await page.goto(`${panel.url}/servers/${serverId}`);
    await byTestId('tab-files').click();
    await byTestId('file-server.properties').waitFor({ timeout: WAIT });
    const row = (await byTestId('file-server.properties').textContent()) ?? '';
    assert.match(row, /server\.properties/);
    assert.match(row, /29 B/);
    assert.match(row, /06[0-7]{2}/);
    const order = async () =>
      (
        await page
          .locator('table[aria-label="Files"] tbody tr')
          .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-testid')))
      ).filter((id) => ['file-many', 'file-installed.txt', 'file-server.properties'].includes(id ?? ''));
    assert.deepEqual(await order(), ['file-many', 'file-installed.txt', 'file-server.properties']);
    // by name, descending (folders stay first): the header says so
    await byTestId('files-sort-name').click();
    await until(
      'the descending order',
      async () => (await order()).join() === 'file-many,file-server.properties,file-installed.txt',
    );
    assert.match((await byTestId('files-sort-name').textContent()) ?? '', /▼/);
    // by size, largest first: server.properties (29 B) before installed.txt
    await byTestId('files-sort-size').click();
    await byTestId('files-sort-size').click();
    assert.match((await byTestId('files-sort-size').textContent()) ?? '', /▼/);
    await byTestId('files-sort-name').click();
    await until(
      'the name order',
      async () => (await order()).join() === 'file-many,file-installed.txt,file-server.properties',
    );
    await shot('1-list');
    // a big folder comes in pages
    await page.getByRole('button', { name: 'Open folder many' }).click();
    await until(
      'the first page',
      async () => ((await byTestId('files-range').textContent()) ?? '') === '1–200 of 205 entries',
    );
    await byTestId('files-next').click();
    await until(
      'the second page',
      async () => ((await byTestId('files-range').textContent()) ?? '') === '201–205 of 205 entries',
    );
    await byTestId('file-f-204.txt').waitFor();
    await byTestId('crumb-/').click();
    await byTestId('file-server.properties').waitFor({ timeout: WAIT });
  });

  await step('edit server.properties in CodeMirror and save with Ctrl-S', async () => {
    await page.getByRole('button', { name: 'View file server.properties' }).click();
    await page.locator('[data-testid="code-editor"] .cm-content').waitFor({ timeout: WAIT });
    assert.equal(await byTestId('code-editor').getAttribute('data-language'), 'properties');
    await page.locator('[data-testid="code-editor"] .cm-content').click();
    await page.keyboard.press('Control+End');
    await page.keyboard.type('difficulty=hard');
    await byTestId('file-dirty').waitFor();
    await page.keyboard.press('Control+s');
    await byTestId('file-saved').waitFor({ timeout: WAIT });
    assert.equal(
      readFileSync(onDisk('server.properties'), 'utf8'),
      'motd=A server\nmax-players=10\ndifficulty=hard',
    );
    await shot('2-saved');
  });

  await step('changed behind the editor: the conflict message; reload shows theirs', async () => {
    await page.keyboard.type('\npvp=false');
    writeFileSync(onDisk('server.properties'), 'motd=Changed on disk\n');
    await byTestId('file-save').click();
    await byTestId('file-conflict').waitFor({ timeout: WAIT });
    assert.match((await byTestId('file-conflict').textContent()) ?? '', /changed since you opened it/);
    // nothing was written over theirs
    assert.equal(readFileSync(onDisk('server.properties'), 'utf8'), 'motd=Changed on disk\n');
    await shot('3-conflict');
    await byTestId('file-conflict-reload').click();
    await until('the reloaded text', async () => (await editorText()) === 'motd=Changed on disk\n');
    assert.equal(await byTestId('file-conflict').count(), 0);
    assert.equal(await byTestId('file-dirty').count(), 0);
  });

  await step('changed behind the editor again: overwrite writes mine', async () => {
    await page.locator('[data-testid="code-editor"] .cm-content').click();
    await page.keyboard.press('Control+End');
    await page.keyboard.type('max-players=20');
    writeFileSync(onDisk('server.properties'), 'motd=Someone else\n');
    await page.keyboard.press('Control+s');
    await byTestId('file-conflict').waitFor({ timeout: WAIT });
    await byTestId('file-conflict-overwrite').click();
    await byTestId('file-saved').waitFor({ timeout: WAIT });
    assert.equal(readFileSync(onDisk('server.properties'), 'utf8'), 'motd=Changed on disk\nmax-players=20');
    await byTestId('file-close').click();
  });

  await step('upload a folder with the picker: the total progress bar moves', async () => {
    const pack = join(local, 'pack');
    mkdirSync(join(pack, 'sub'), { recursive: true });
    writeFileSync(join(pack, 'big.bin'), randomBytes(BIG));
    writeFileSync(join(pack, 'sub', 'small.txt'), 'small file\n');
    // ~4 MB/s: the 12 MiB file takes a few seconds, the bar shows where it is
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: 4 * 1024 * 1024,
    });
    await page.evaluate(() => {
      const w = window as unknown as { seenPercents: number[] };
      w.seenPercents = [];
      const timer = setInterval(() => {
        const bar = document.querySelector('[data-testid="upload-total-bar"]');
        const p = bar ? Number(bar.getAttribute('data-percent')) : Number.NaN;
        if (Number.isFinite(p) && !w.seenPercents.includes(p)) w.seenPercents.push(p);
        if (p === 100) clearInterval(timer);
      }, 25);
    });
    await byTestId('upload-folder-input').setInputFiles(pack);
    await until('the upload to end', async () =>
      /^Uploaded 2 of 2 files$/.test(((await byTestId('upload-summary').textContent()) ?? '').trim()),
    );
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: -1,
    });
    await cdp.detach();
    const seen = await page.evaluate(() => (window as unknown as { seenPercents: number[] }).seenPercents);
    const between = seen.filter((p) => p > 0 && p < 100);
    t.diagnostic(`upload progress seen: ${JSON.stringify(seen)}`);
    assert.ok(between.length >= 2, `progress seen: ${JSON.stringify(seen)}`);
    assert.match((await byTestId('upload-total').textContent()) ?? '', /12.0 MiB of 12.0 MiB \(100%\)/);
    assert.equal(sha(readFileSync(onDisk('pack/big.bin'))), sha(readFileSync(join(pack, 'big.bin'))));
    assert.equal(readFileSync(onDisk('pack/sub/small.txt'), 'utf8'), 'small file\n');
    await byTestId('file-pack').waitFor({ timeout: WAIT });
    await shot('4-uploaded');
    await byTestId('upload-clear').click();
  });

  await step('cancel an upload half-way: no file, no temporary file left', async () => {
    writeFileSync(join(local, 'cancel-me.bin'), randomBytes(BIG));
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: 1024 * 1024,
    });
    await byTestId('upload-files-input').setInputFiles(join(local, 'cancel-me.bin'));
    const row = byTestId('upload-/cancel-me.bin');
    await until('bytes going', async () => {
      const pct = Number(await byTestId('upload-total-bar').getAttribute('data-percent'));
      return (await row.getAttribute('data-state')) === 'uploading' && pct > 0;
    });
    await page.getByRole('button', { name: 'Cancel /cancel-me.bin' }).click();
    await until('cancelled', async () => (await row.getAttribute('data-state')) === 'cancelled');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: -1,
    });
    await cdp.detach();
    await until(
      'no temporary file',
      () => readdirSync(onDisk('.')).filter((n) => n.startsWith('.cap-upload-')).length === 0,
    );
    assert.equal(existsSync(onDisk('cancel-me.bin')), false);
    await byTestId('upload-clear').click();
  });

  await step('drop three files on the list: two land, the refused one says why', async () => {
    const dt = await page.evaluateHandle(() => {
      const d = new DataTransfer();
      d.items.add(new File(['dropped a\n'], 'dropped-a.txt', { type: 'text/plain' }));
      d.items.add(new File(['dropped b\n'], 'dropped-b.txt', { type: 'text/plain' }));
      // over 255 bytes: the Agent refuses the name
      d.items.add(new File(['x'], `${'n'.repeat(300)}.txt`, { type: 'text/plain' }));
      return d;
    });
    await byTestId('files-drop').dispatchEvent('dragover', { dataTransfer: dt });
    await byTestId('files-drop').dispatchEvent('drop', { dataTransfer: dt });
    await until('the drop upload', async () =>
      /^Uploaded 2 of 3 files, 1 failed$/.test(
        ((await byTestId('upload-summary').textContent()) ?? '').trim(),
      ),
    );
    assert.match((await byTestId('upload-error').textContent()) ?? '', /^NAME_INVALID /);
    await byTestId('file-dropped-b.txt').waitFor({ timeout: WAIT });
    assert.equal(readFileSync(onDisk('dropped-a.txt'), 'utf8'), 'dropped a\n');
    await shot('4b-dropped');
    await byTestId('upload-clear').click();
  });

  await step('new folder, then rename a file into it', async () => {
    await byTestId('files-new-folder').click();
    await byTestId('new-folder-input').fill('configs');
    await byTestId('new-folder-submit').click();
    await byTestId('file-configs').waitFor({ timeout: WAIT });
    assert.ok(statSync(onDisk('configs')).isDirectory());
    await rowAction('dropped-a.txt', 'Rename / move');
    // a path above the server folder is refused in place
    await byTestId('rename-input').fill('../../etc/x');
    assert.equal(await byTestId('rename-submit').isDisabled(), true);
    await byTestId('rename-input').fill('configs/a-renamed.txt');
    await byTestId('rename-submit').click();
    await until('the rename', () => existsSync(onDisk('configs/a-renamed.txt')));
    assert.equal(existsSync(onDisk('dropped-a.txt')), false);
    await page.getByRole('button', { name: 'Open folder configs' }).click();
    await byTestId('file-a-renamed.txt').waitFor({ timeout: WAIT });
    await byTestId('crumb-/').click();
    await byTestId('file-server.properties').waitFor({ timeout: WAIT });
  });

  await step('copy a file into the folder; a new file opens in the editor and saves', async () => {
    await rowAction('server.properties', 'Copy');
    assert.equal(await byTestId('copy-input').inputValue(), 'server.properties copy');
    await byTestId('copy-input').fill('configs/server.copy');
    await byTestId('copy-submit').click();
    // the dialog closes when the Agent has answered: then the copy is whole (it exists, empty, a moment before)
    await byTestId('copy-input').waitFor({ state: 'detached', timeout: WAIT });
    assert.deepEqual(readFileSync(onDisk('configs/server.copy')), readFileSync(onDisk('server.properties')));
    // a name that exists is refused with the Panel's code, the dialog stays
    await byTestId('files-new-file').click();
    await byTestId('new-file-input').fill('server.properties');
    await byTestId('new-file-submit').click();
    assert.match((await byTestId('new-file-error').textContent({ timeout: WAIT })) ?? '', /FILE_EXISTS/);
    await byTestId('new-file-input').fill('notes.yml');
    await byTestId('new-file-submit').click();
    await page.locator('[data-testid="code-editor"] .cm-content').waitFor({ timeout: WAIT });
    assert.equal(await byTestId('code-editor').getAttribute('data-language'), 'yaml');
    assert.equal(readFileSync(onDisk('notes.yml'), 'utf8'), '');
    await page.locator('[data-testid="code-editor"] .cm-content').click();
    await page.keyboard.type('key: value');
    await byTestId('file-save').click();
    await byTestId('file-saved').waitFor({ timeout: WAIT });
    assert.equal(readFileSync(onDisk('notes.yml'), 'utf8'), 'key: value');
    await byTestId('file-close').click();
  });

  await step('chmod: a bad mode is refused in the dialog, 600 is set', async () => {
    await rowAction('server.properties', 'Permissions');
    await byTestId('chmod-input').fill('4755');
    assert.equal(await byTestId('chmod-submit').isDisabled(), true);
    await byTestId('chmod-input').fill('600');
    await byTestId('chmod-submit').click();
    await until('the mode', () => (statSync(onDisk('server.properties')).mode & 0o777) === 0o600);
    await until('the listed mode', async () =>
      /0600/.test((await byTestId('file-server.properties').textContent()) ?? ''),
    );
  });

  await step('delete many: a folder and a file, with the counts', async () => {
    await byTestId('select-pack').check();
    await byTestId('select-dropped-b.txt').check();
    assert.equal(((await byTestId('files-selected-count').textContent()) ?? '').trim(), '2 selected');
    await byTestId('files-delete-selected').click();
    assert.match(
      (await byTestId('delete-counts').textContent()) ?? '',
      /1 file and 1 folder \(with everything in them\)/,
    );
    await shot('5-delete');
    await byTestId('delete-confirm').click();
    await until('the delete', () => !existsSync(onDisk('pack')) && !existsSync(onDisk('dropped-b.txt')));
    await until('the rows gone', async () => (await byTestId('file-pack').count()) === 0);
    assert.equal(await byTestId('file-dropped-b.txt').count(), 0);
    assert.equal(await byTestId('files-selection').count(), 0);
  });

  await step('download a file through its ticket: the same bytes', async () => {
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: WAIT }),
      rowAction('server.properties', 'Download'),
    ]);
    assert.equal(download.suggestedFilename(), 'server.properties');
    const file = await download.path();
    assert.deepEqual(readFileSync(file), readFileSync(onDisk('server.properties')));
    await shot('6-downloaded');
  });

  await step('search by name finds a file below; closing it with unsaved edits asks first', async () => {
    await byTestId('files-search').fill('a-renamed');
    await byTestId('match-/configs/a-renamed.txt').waitFor({ timeout: WAIT });
    await shot('7-search');
    await page.locator('[data-testid="match-/configs/a-renamed.txt"] button').click();
    await byTestId('crumb-/configs').waitFor({ timeout: WAIT });
    assert.equal(
      ((await byTestId('file-open-path').textContent({ timeout: WAIT })) ?? '').trim(),
      '/configs/a-renamed.txt',
    );
    await page.locator('[data-testid="code-editor"] .cm-content').click();
    await page.keyboard.type('never saved ');
    await byTestId('file-dirty').waitFor();
    const asked: string[] = [];
    page.once('dialog', (d) => asked.push(d.message()));
    await byTestId('file-close').click();
    await byTestId('file-viewer').waitFor({ state: 'detached', timeout: WAIT });
    assert.deepEqual(asked, ['Discard your unsaved changes?']);
    // leaving the tab (which unmounts the editor) asks too
    await page.getByRole('button', { name: 'View file a-renamed.txt' }).click();
    await page.locator('[data-testid="code-editor"] .cm-content').click();
    await page.keyboard.type('not saved either ');
    await byTestId('file-dirty').waitFor();
    page.once('dialog', (d) => asked.push(d.message()));
    await byTestId('tab-overview').click();
    await byTestId('metric-cpu').waitFor({ timeout: WAIT });
    assert.deepEqual(asked, ['Discard your unsaved changes?', 'Discard your unsaved changes?']);
    assert.equal(readFileSync(onDisk('configs/a-renamed.txt'), 'utf8'), 'dropped a\n');
    await byTestId('tab-files').click();
    await byTestId('file-server.properties').waitFor({ timeout: WAIT });
    assert.deepEqual(e2e?.pageErrors, []);
  });

  await step('a subuser with file.read + file.read-content: no control that changes anything', async () => {
    const reader = { email: `reader-${run}@example.test`, password: `pw-${run}-reader-secret` };
    const made = await apiFromPage('POST', '/users', { ...reader, role: 'user' });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const added = await apiFromPage('POST', `/servers/${serverId}/users`, {
      email: reader.email,
      permissions: ['file.read', 'file.read-content'],
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    await switchUser(page, reader, WAIT);
    await page.goto(`${panel.url}/servers/${serverId}`);
    await byTestId('tab-files').click();
    await byTestId('file-server.properties').waitFor({ timeout: WAIT });
    for (const id of [
      'files-new-file',
      'files-new-folder',
      'files-upload',
      'files-select-all',
      'select-server.properties',
    ])
      assert.equal(await byTestId(id).count(), 0, `${id} shown`);
    await byTestId('actions-server.properties').click();
    // the menu renders after the click (a transition): read it once it is there
    await page.getByRole('menuitem').first().waitFor({ timeout: WAIT });
    const items = await page.getByRole('menuitem').allTextContents();
    assert.deepEqual(items, ['Download']);
    await page.keyboard.press('Escape');
    await page.getByRole('button', { name: 'View file server.properties' }).click();
    await page.locator('[data-testid="code-editor"] .cm-content').waitFor({ timeout: WAIT });
    assert.equal(await byTestId('file-save').count(), 0);
    assert.equal(
      await page.locator('[data-testid="code-editor"] .cm-content').getAttribute('contenteditable'),
      'false',
    );
    await shot('8-read-only');
    assert.deepEqual(e2e?.pageErrors, []);
  });
});

test('files tab: compress a selection, decompress it, download a folder as .tar.gz', {
  timeout: 180_000,
}, async (t) => {
  const step = stepper(t, () => page, 'files-arch-');
  let archive = '';
  const lastOp = () => page.locator('[data-testid="file-operation"]').first();

  await step('the owner compresses configs/ and installed.txt into a .tar.gz', async () => {
    assert.ok(serverId, 'the first test made the server');
    await switchUser(page, OWNER, WAIT);
    await page.goto(`${panel.url}/servers/${serverId}`);
    await byTestId('tab-files').click();
    await byTestId('file-configs').waitFor({ timeout: WAIT });
    await byTestId('select-configs').check();
    await byTestId('select-installed.txt').check();
    await byTestId('files-compress-selected').click();
    await page.getByRole('menuitem', { name: 'as .tar.gz' }).click();
    await until(
      'the compress to end',
      async () => (await lastOp().getAttribute('data-result')) !== 'running',
    );
    assert.equal(await lastOp().getAttribute('data-result'), 'ok', (await lastOp().textContent()) ?? '');
    const made = readdirSync(onDisk('.')).filter((n) => /^archive-.*\.tar\.gz$/.test(n));
    assert.equal(made.length, 1, made.join());
    archive = made[0] ?? '';
    await byTestId(`file-${archive}`).waitFor({ timeout: WAIT });
    await shot('a1-compressed');
  });

  await step('both deleted, then the archive decompressed in place: they are back', async () => {
    if ((await byTestId('files-selection').count()) > 0)
      await page.getByRole('button', { name: 'Clear selection' }).click();
    await byTestId('select-configs').check();
    await byTestId('select-installed.txt').check();
    await byTestId('files-delete-selected').click();
    await byTestId('delete-confirm').click();
    await until('the delete', () => !existsSync(onDisk('configs')) && !existsSync(onDisk('installed.txt')));
    await rowAction(archive, 'Decompress here');
    await until(
      'the decompress to end',
      async () =>
        /Decompress/.test((await lastOp().textContent()) ?? '') &&
        (await lastOp().getAttribute('data-result')) !== 'running',
    );
    assert.equal(await lastOp().getAttribute('data-result'), 'ok', (await lastOp().textContent()) ?? '');
    assert.equal(readFileSync(onDisk('configs/a-renamed.txt'), 'utf8'), 'dropped a\n');
    assert.ok(existsSync(onDisk('installed.txt')));
    await byTestId('file-configs').waitFor({ timeout: WAIT });
    await shot('a2-decompressed');
  });

  await step('a folder downloads as <folder>.tar.gz holding its files', async () => {
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: WAIT }),
      rowAction('configs', 'Download as .tar.gz'),
    ]);
    assert.equal(download.suggestedFilename(), 'configs.tar.gz');
    const file = await download.path();
    const listed = execFileSync('tar', ['-tzf', file], { encoding: 'utf8' }).split('\n');
    assert.ok(listed.includes('configs/a-renamed.txt'), listed.join(' '));
    assert.deepEqual(e2e?.pageErrors, []);
  });
});
