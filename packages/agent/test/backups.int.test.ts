/**
 * Backups on the node (issue 10 item 4), against the real Docker Engine: made while the server
 * runs (console commands before and after), sha256 and size recorded, listed, streamed out over
 * the Agent's HTTP API with its key only; restored as one operation, byte for byte; a corrupt
 * archive refused before anything is touched; one at a time; retention with locks; a full disk
 * leaves a failed backup and no partial file.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BackupRecord } from '@cap/protocol';
import { egg, type Fixture, fixture, uid, waitStatus } from './helpers.ts';
import { treeDigest } from './tree-digest.ts';

const API_KEY = `key-${randomBytes(16).toString('hex')}`;
// answers console lines; `stop` (the egg's stop command) ends it at once
const ECHO = egg('echo ready; while read l; do [ "$l" = stop ] && exit 0; echo "got:$l"; done', {
  stop: 'stop',
});

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function makeTree(root: string): Promise<void> {
  await mkdir(path.join(root, 'world', 'region'), { recursive: true });
  await mkdir(path.join(root, 'plugins', 'empty'), { recursive: true });
  await mkdir(path.join(root, 'cache'), { recursive: true });
  await writeFile(path.join(root, 'server.properties'), 'motd=backed up\nmax-players=20\n');
  await writeFile(path.join(root, 'world', 'region', 'r.0.0.mca'), randomBytes(2 * 1024 * 1024));
  await writeFile(path.join(root, 'world', 'level.dat'), Buffer.alloc(100_000, 7));
  await writeFile(path.join(root, 'start.sh'), '#!/bin/sh\necho hi\n');
  await chmod(path.join(root, 'start.sh'), 0o755);
  await writeFile(path.join(root, 'cache', 'big.tmp'), randomBytes(100_000));
  await symlink('world/level.dat', path.join(root, 'level-link'));
}

describe('backups on the node (real Docker)', () => {
  let f: Fixture;
  const id = uid('bk-');
  let root: string;
  let backupDir: string;

  const cmd = (action: string, payload: Record<string, unknown>, opts: { operationId?: string } = {}) =>
    f.panel.command(action as never, payload as never, { serverId: id, ...opts });

  async function operation(action: string, payload: Record<string, unknown>, timeoutMs = 60_000) {
    const operationId = uid('op-');
    const since = f.panel.received.length;
    const ack = await cmd(action, payload, { operationId });
    assert.equal(ack.success, true, JSON.stringify(ack.error));
    const done = await f.panel.waitEvent('operation_completed', (d) => d.operationId === operationId, {
      since,
      timeoutMs,
    });
    return { since, done: done.data, operationId };
  }

  async function list(): Promise<BackupRecord[]> {
    const r = await cmd('backup_list', {});
    assert.equal(r.success, true, JSON.stringify(r.error));
    return (r.data as { backups: BackupRecord[] }).backups;
  }

  before(async () => {
    f = await fixture({ env: { AGENT_API_KEY: API_KEY } });
    await f.panel.waitConnected();
    const res = await f.panel.command('create_server', { serverId: id, eggConfig: ECHO });
    assert.equal(res.success, true, JSON.stringify(res.error));
    root = path.join(f.dataDir, 'servers', id);
    backupDir = path.join(f.dataDir, 'backups', id);
    await makeTree(root);
    const since = f.panel.received.length;
    assert.equal((await cmd('start_server', {})).success, true);
    await waitStatus(f, id, 'running', since);
  });
  after(() => f.cleanup());

  it('is made while the server runs, with the console commands around it; sha256 and size recorded; downloadable with the API key only', async () => {
    const { since, done } = await operation('backup_create', {
      backupId: 'b1',
      commandsBefore: ['save-off', 'save-all'],
      commandsAfter: ['save-on'],
      commandWaitSeconds: 1,
      ignore: ['cache/'],
    });
    assert.equal(done.success, true, JSON.stringify(done.error));
    const stages = f.panel.received
      .slice(since)
      .filter((m) => m.type === 'event' && m.event === 'operation_progress')
      .map((m) => (m as { data: { stage: string } }).data.stage);
    assert.ok(
      stages.includes('commands_before') && stages.includes('archiving') && stages.includes('done'),
      String(stages),
    );
    // the commands reached the game's console, in order, and the save-on after the archive
    const deadline = Date.now() + 10_000;
    let consoleText = '';
    while (Date.now() < deadline) {
      consoleText = f.panel
        .events('server_log')
        .filter((e) => e.data.serverId === id)
        .map((e) => e.data.message)
        .join('\n');
      if (consoleText.includes('got:save-on')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const order = ['got:save-off', 'got:save-all', 'got:save-on'].map((s) => consoleText.indexOf(s));
    assert.ok(order[0]! >= 0 && order[0]! < order[1]! && order[1]! < order[2]!, consoleText);

    const [b] = await list();
    assert.equal(b?.backupId, 'b1');
    assert.equal(b?.state, 'completed');
    const file = await readFile(path.join(backupDir, 'b1.tar.zst'));
    assert.equal(b?.sha256, sha256(file));
    assert.equal(b?.size, file.length);
    assert.ok((b?.entries ?? 0) >= 7);

    const url = `http://127.0.0.1:${f.agent.httpPort}/api/servers/${id}/backups/b1/download`;
    const denied = await fetch(url);
    assert.equal(denied.status, 401);
    const wrong = await fetch(url, { headers: { 'x-api-key': `${API_KEY}x` } });
    assert.equal(wrong.status, 401);
    const got = await fetch(url, { headers: { 'x-api-key': API_KEY } });
    assert.equal(got.status, 200);
    assert.equal(got.headers.get('x-checksum-sha256'), b?.sha256);
    assert.equal(sha256(Buffer.from(await got.arrayBuffer())), b?.sha256);
    const missing = await fetch(url.replace('/b1/', '/nope/'), { headers: { 'x-api-key': API_KEY } });
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).code, 'BACKUP_NOT_FOUND');
  });

  it('restores as one operation: every file byte-identical, modes and links too, and the server runs again', async () => {
    const want = await treeDigest(root, { skip: (r) => r === 'cache' });
    // change everything a restore must undo
    await writeFile(path.join(root, 'server.properties'), 'motd=changed\n');
    await unlink(path.join(root, 'world', 'level.dat'));
    await writeFile(path.join(root, 'world', 'region', 'r.0.0.mca'), randomBytes(1000));
    await chmod(path.join(root, 'start.sh'), 0o600);
    await unlink(path.join(root, 'level-link'));
    await symlink('server.properties', path.join(root, 'level-link'));
    await writeFile(path.join(root, 'griefed.txt'), 'new file');
    assert.notDeepEqual(await treeDigest(root, { skip: (r) => r === 'cache' }), want);

    const { since, done } = await operation('backup_restore', { backupId: 'b1', truncate: true });
    assert.equal(done.success, true, JSON.stringify(done.error));
    // truncate removed what the backup did not have (cache/ was ignored, so it is gone too)
    assert.deepEqual(await treeDigest(root), want);
    const stages = f.panel.received
      .slice(since)
      .filter((m) => m.type === 'event' && m.event === 'operation_progress')
      .map((m) => (m as { data: { stage: string } }).data.stage);
    for (const s of ['verifying', 'stopping', 'deleting', 'extracting', 'starting'])
      assert.ok(stages.includes(s), `${s} in ${stages}`);
    const status = await cmd('get_status', {});
    assert.equal((status.data as { status: string }).status, 'running');

    // without truncate: files the backup has are put back, others are left
    await writeFile(path.join(root, 'server.properties'), 'motd=changed again\n');
    await writeFile(path.join(root, 'extra.txt'), 'kept');
    const again = await operation('backup_restore', { backupId: 'b1' });
    assert.equal(again.done.success, true, JSON.stringify(again.done.error));
    assert.deepEqual(await treeDigest(root, { skip: (r) => r === 'extra.txt' }), want);
    assert.equal(await readFile(path.join(root, 'extra.txt'), 'utf8'), 'kept');
    await unlink(path.join(root, 'extra.txt'));
  });

  it('a corrupt backup is refused before anything is touched, even with truncate', async () => {
    assert.equal((await operation('backup_create', { backupId: 'b-corrupt' })).done.success, true);
    const file = path.join(backupDir, 'b-corrupt.tar.zst');
    const buf = await readFile(file);
    for (let i = Math.floor(buf.length / 2); i < Math.floor(buf.length / 2) + 32; i++)
      buf[i] = (buf[i] ?? 0) ^ 0xff;
    await writeFile(file, buf);
    const before = await treeDigest(root);
    const { done } = await operation('backup_restore', { backupId: 'b-corrupt', truncate: true });
    assert.equal(done.success, false);
    assert.equal(done.error?.code, 'ARCHIVE_INVALID');
    assert.deepEqual(await treeDigest(root), before);
    const status = await cmd('get_status', {});
    assert.equal(
      (status.data as { status: string }).status,
      'running',
      'the server was stopped for a bad archive',
    );
    // truncated too
    await writeFile(file, buf.subarray(0, 100));
    const t = await operation('backup_restore', { backupId: 'b-corrupt', truncate: true });
    assert.equal(t.done.error?.code, 'ARCHIVE_INVALID');
    assert.deepEqual(await treeDigest(root), before);
    assert.equal((await cmd('backup_delete', { backupId: 'b-corrupt' })).success, true);
  });

  it('one backup at a time per server, while power and console stay usable', async () => {
    const operationId = uid('op-');
    const since = f.panel.received.length;
    const ack = await cmd(
      'backup_create',
      { backupId: 'b-slow', commandWaitSeconds: 3, commandsBefore: ['save-all'] },
      { operationId },
    );
    assert.equal(ack.success, true, JSON.stringify(ack.error));
    const busy = await cmd('backup_create', { backupId: 'b-second' });
    assert.equal(busy.error?.code, 'SERVER_BUSY');
    const restore = await cmd('backup_restore', { backupId: 'b1' });
    assert.equal(restore.error?.code, 'SERVER_BUSY');
    assert.equal((await cmd('send_command', { command: 'still here' })).success, true);
    assert.equal((await cmd('get_status', {})).success, true);
    const done = await f.panel.waitEvent('operation_completed', (d) => d.operationId === operationId, {
      since,
      timeoutMs: 30_000,
    });
    assert.equal(done.data.success, true, JSON.stringify(done.data.error));
    assert.equal(
      (await list()).find((b) => b.backupId === 'b-second'),
      undefined,
    );
  });

  it('retention keeps the newest N completed and every locked one; a locked backup is not deleted; the list pages', async () => {
    assert.equal(
      (await operation('backup_create', { backupId: 'b-locked', locked: true })).done.success,
      true,
    );
    for (const b of ['b-3', 'b-4', 'b-5']) {
      await new Promise((r) => setTimeout(r, 5)); // distinct creation times
      assert.equal((await operation('backup_create', { backupId: b, retain: 2 })).done.success, true);
    }
    const ids = (await list()).map((b) => b.backupId);
    assert.deepEqual(ids, ['b-5', 'b-4', 'b-locked']);
    assert.deepEqual((await readdir(backupDir)).filter((n) => n.endsWith('.tar.zst')).sort(), [
      'b-4.tar.zst',
      'b-5.tar.zst',
      'b-locked.tar.zst',
    ]);
    const page = await cmd('backup_list', { offset: 1, limit: 1 });
    assert.deepEqual(
      (page.data as { backups: BackupRecord[]; total: number }).backups.map((b) => b.backupId),
      ['b-4'],
    );
    assert.equal((page.data as { total: number }).total, 3);
    const refused = await cmd('backup_delete', { backupId: 'b-locked' });
    assert.equal(refused.error?.code, 'INVALID_STATE');
    assert.equal((await cmd('backup_lock', { backupId: 'b-locked', locked: false })).success, true);
    assert.equal((await cmd('backup_delete', { backupId: 'b-locked' })).success, true);
    assert.equal((await cmd('backup_delete', { backupId: 'b-locked' })).error?.code, 'BACKUP_NOT_FOUND');
  });
});

describe('a backup cut by an Agent restart', () => {
  let f: Fixture;
  const id = uid('bkrs-');

  before(async () => {
    f = await fixture();
    await f.panel.waitConnected();
    assert.equal((await f.panel.command('create_server', { serverId: id, eggConfig: ECHO })).success, true);
    await writeFile(path.join(f.dataDir, 'servers', id, 'world.bin'), randomBytes(1024 * 1024));
    const since = f.panel.received.length;
    assert.equal((await f.panel.command('start_server', {}, { serverId: id })).success, true);
    await waitStatus(f, id, 'running', since);
  });
  after(() => f.cleanup());

  it('is failed (AGENT_RESTARTED) after the restart, its partial file gone, the operation reported cut', async () => {
    const since = f.panel.received.length;
    const ack = await f.panel.command(
      'backup_create',
      { backupId: 'cut', commandsBefore: ['save-all'], commandWaitSeconds: 30 } as never,
      { serverId: id, operationId: 'op-cut' } as never,
    );
    assert.equal(ack.success, true, JSON.stringify(ack.error));
    await f.panel.waitEvent(
      'operation_progress',
      (d) => d.operationId === 'op-cut' && d.stage === 'commands_before',
      {
        since,
      },
    );
    await f.restartAgent();
    await f.panel.waitConnected();
    const cut = await f.panel.waitEvent('operation_completed', (d) => d.operationId === 'op-cut', {
      since,
      timeoutMs: 20_000,
    });
    assert.equal(cut.data.error?.code, 'AGENT_RESTARTED');
    const listed = await f.panel.command('backup_list', {} as never, { serverId: id });
    const [b] = (listed.data as { backups: BackupRecord[] }).backups;
    assert.equal(b?.state, 'failed');
    assert.equal(b?.error?.code, 'AGENT_RESTARTED');
    assert.deepEqual(await readdir(path.join(f.dataDir, 'backups', id)), ['index.json']);
    // and the next one works
    const again = await f.panel.command('backup_create', { backupId: 'after' } as never, { serverId: id });
    assert.equal(again.success, true, JSON.stringify(again.error));
  });
});

describe('backups on a full disk', () => {
  let f: Fixture;
  const id = uid('bkfull-');
  let mnt: string;

  before(async () => {
    mnt = path.join(tmpdir(), uid('cap-full-'));
    await mkdir(mnt);
    // a 1 MiB file system for the backups: the archive of 4 MiB of random data cannot fit
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
    f = await fixture({ env: { AGENT_BACKUP_DIR: mnt } });
    await f.panel.waitConnected();
    const res = await f.panel.command('create_server', { serverId: id, eggConfig: ECHO });
    assert.equal(res.success, true, JSON.stringify(res.error));
    await writeFile(path.join(f.dataDir, 'servers', id, 'world.bin'), randomBytes(4 * 1024 * 1024));
  });
  after(async () => {
    await f?.cleanup();
    try {
      execFileSync('umount', [mnt]);
    } catch {
      // not mounted
    }
    await rm(mnt, { recursive: true, force: true });
  });

  it('fails the backup (INSUFFICIENT_RESOURCES), leaves no partial file and never lists it as completed', async () => {
    const r = await f.panel.command('backup_create', { backupId: 'full' } as never, { serverId: id });
    assert.equal(r.success, false);
    assert.equal(r.error?.code, 'INSUFFICIENT_RESOURCES');
    const listed = await f.panel.command('backup_list', {} as never, { serverId: id });
    const [b] = (listed.data as { backups: BackupRecord[] }).backups;
    assert.equal(b?.state, 'failed');
    assert.equal(b?.error?.code, 'INSUFFICIENT_RESOURCES');
    assert.equal(b?.sha256, null);
    assert.deepEqual(await readdir(path.join(mnt, id)), ['index.json']);
    // downloading or restoring it is refused
    const restore = await f.panel.command('backup_restore', { backupId: 'full' } as never, { serverId: id });
    assert.equal(restore.error?.code, 'INVALID_STATE');
  });
});
