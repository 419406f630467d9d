/**
 * A real game backed up and restored through the Agent (issue 10 "How it must be shown"): an
 * OpenTTD server is installed from the built-in template and started; a backup is made while it
 * runs; with the server stopped its files are changed (config rewritten, a directory removed, a
 * file added); the restore (with truncate) gives back exactly the tree the backup holds, file
 * for file (sha256, modes, links), and the game starts again from it.
 * Image: `bash scripts/images/build.sh games` (this test fails, never skips, without it).
 */
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { EggConfig } from '@cap/protocol';
import { importTemplate, templateToEggConfig } from '@cap/protocol/templates/index.ts';
import { extractArchive } from '../src/archive/archive.ts';
import { type Fixture, fixture, freePort, uid, waitStatus } from './helpers.ts';
import { treeDigest } from './tree-digest.ts';

describe('OpenTTD backed up and restored through the Agent (real Docker)', () => {
  let f: Fixture;
  let scratch: string;
  const id = uid('ottd-bk-');

  before(async () => {
    f = await fixture();
    await f.panel.waitConnected();
    scratch = await mkdtemp(path.join(tmpdir(), 'cap-ottd-bk-'));
  });
  after(async () => {
    await f.cleanup();
    await rm(scratch, { recursive: true, force: true });
  });

  async function operation(action: string, payload: Record<string, unknown>, timeoutMs = 120_000) {
    const operationId = uid('op-');
    const since = f.panel.received.length;
    const ack = await f.panel.command(
      action as never,
      payload as never,
      { serverId: id, operationId } as never,
    );
    assert.equal(ack.success, true, JSON.stringify(ack.error));
    return (
      await f.panel.waitEvent('operation_completed', (d) => d.operationId === operationId, {
        since,
        timeoutMs,
      })
    ).data;
  }

  it('backup while running → files changed → restore: byte-identical, and the game starts again', {
    timeout: 300_000,
  }, async () => {
    const source = await import('node:fs/promises').then((fs) =>
      fs.readFile(new URL('../../../templates/builtin/openttd.json', import.meta.url), 'utf8'),
    );
    const { template } = importTemplate(source, { filename: 'openttd.json' });
    const port = await freePort();
    const eggConfig: EggConfig = templateToEggConfig(template, {
      name: 'backup openttd',
      environment: { SERVER_NAME: 'backup openttd' },
      system: { ip: '127.0.0.1', port, memoryMiB: 1024 },
      ports: { [String(port)]: { hostPort: port, hostIp: '127.0.0.1' } },
      limits: { memory: 1024 },
      stopTimeout: 20,
    });
    const since = f.panel.received.length;
    const created = await f.panel.command('create_server', { serverId: id, eggConfig });
    assert.equal(created.success, true, JSON.stringify(created.error));
    const installed = await f.panel.waitEvent('install_completed', (d) => d.serverId === id, {
      since,
      timeoutMs: 120_000,
    });
    assert.equal(installed.data.success, true);
    await waitStatus(f, id, 'offline', since, 60_000);
    const root = path.join(f.dataDir, 'servers', id);

    const s1 = f.panel.received.length;
    assert.equal((await f.panel.command('start_server', {}, { serverId: id })).success, true);
    await waitStatus(f, id, 'running', s1, 60_000);

    // made while the game runs; OpenTTD's own console saves first
    const made = await operation('backup_create', {
      backupId: 'ottd1',
      commandsBefore: ['save backup-check'],
      commandWaitSeconds: 3,
    });
    assert.equal(made.success, true, JSON.stringify(made.error));
    const listed = await f.panel.command('backup_list', {} as never, { serverId: id });
    const [rec] = (listed.data as { backups: { sha256: string; size: number; entries: number }[] }).backups;
    assert.ok(rec && rec.entries > 10 && rec.size > 0, JSON.stringify(rec));

    // what the backup holds, unpacked beside (the tree "as backed up")
    const asBackedUp = path.join(scratch, 'as-backed-up');
    await mkdir(asBackedUp);
    await extractArchive(createReadStream(path.join(f.dataDir, 'backups', id, 'ottd1.tar.zst')), asBackedUp, {
      format: 'tar.zst',
    });
    const want = await treeDigest(asBackedUp);
    assert.ok(
      want.some((l) => l.startsWith('save/backup-check.sav file')),
      'the save made by the command before is in the backup',
    );

    const s2 = f.panel.received.length;
    assert.equal((await f.panel.command('stop_server', {}, { serverId: id })).success, true);
    await waitStatus(f, id, 'offline', s2, 60_000);

    // the game's files changed: config rewritten, saves gone, a stray file
    await writeFile(path.join(root, 'openttd.cfg'), '[network]\nserver_name = vandalised\n');
    await rm(path.join(root, 'save'), { recursive: true, force: true });
    await writeFile(path.join(root, 'stray.txt'), 'not in the backup');
    assert.notDeepEqual(await treeDigest(root), want);

    const restored = await operation('backup_restore', { backupId: 'ottd1', truncate: true });
    assert.equal(restored.success, true, JSON.stringify(restored.error));
    assert.deepEqual(await treeDigest(root), want, 'the restored tree differs from the backup');
    assert.ok(!(await readdir(root)).includes('stray.txt'));

    // and it is a working server again
    const s3 = f.panel.received.length;
    assert.equal((await f.panel.command('start_server', {}, { serverId: id })).success, true);
    await waitStatus(f, id, 'running', s3, 60_000);
    const s4 = f.panel.received.length;
    await f.panel.command('kill_server', {}, { serverId: id });
    await waitStatus(f, id, 'offline', s4, 30_000);
  });
});
