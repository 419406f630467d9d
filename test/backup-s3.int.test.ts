/**
 * Backups offloaded to S3-compatible object storage (issue 10 item 4) with the real Panel, a real
 * Agent, the real Docker Engine and a real S3 server on loopback (@20minutes/s3rver): a backup made
 * on the node streams through the Panel into a multipart upload, the node copy is deleted, the
 * server's files change, the object streams back to the node (imported, verified) and
 * backup_restore makes the tree byte-identical to the one backed up. A stored object that is not
 * the backup's bytes is refused by the Agent, leaving nothing on the node.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { BackupRecord, isCodedError } from '@cap/protocol';
import {
  importBackup,
  offloadBackup,
  restoreFromS3,
} from '../packages/panel/src/modules/backups/s3-offload.ts';
import { S3Store } from '../packages/panel/src/modules/backups/s3-store.ts';
import type { PanelServices } from '../packages/panel/src/services.ts';
import { startTestS3, type TestS3 } from '../packages/panel/test/s3.ts';
import { IMAGE, type Stack, startStack } from './harness.ts';

type Tree = Record<string, string>;

/** Every entry under `root`: type, permission bits and content hash (or link target). */
async function snapshot(root: string, rel = ''): Promise<Tree> {
  const out: Tree = {};
  for (const name of (await readdir(path.join(root, rel))).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    const p = path.join(root, r);
    const st = await lstat(p);
    const mode = (st.mode & 0o777).toString(8);
    if (st.isSymbolicLink()) out[r] = `link ${await readlink(p)}`;
    else if (st.isDirectory()) {
      out[r] = `dir ${mode}`;
      Object.assign(out, await snapshot(root, r));
    } else
      out[r] = `file ${mode} ${createHash('sha256')
        .update(await readFile(p))
        .digest('hex')}`;
  }
  return out;
}

describe('Panel + Agent: backups in S3 (s3rver on loopback)', () => {
  let s3: TestS3;
  let stack: Stack | undefined;
  let services: PanelServices;
  let serverId = '';
  let dir = '';
  let backupDir = '';
  let original: Tree = {};
  let rec: BackupRecord;

  const where = () => ({ nodeId: stack!.nodeId, serverId });
  const deps = () => ({ gateway: services.gateway, transfers: services.transferRelay, store: services.s3! });
  const nodeBackups = async () =>
    (
      (await services.gateway.request(
        stack!.nodeId,
        'backup_list',
        { offset: 0, limit: 100 },
        { serverId },
      )) as {
        backups: BackupRecord[];
      }
    ).backups;

  before(async () => {
    s3 = await startTestS3();
    // 5 MiB parts: the ~12 MB archive takes several (multipart really used on this path too)
    stack = await startStack('backup-s3', { panelEnv: s3.env({ PANEL_S3_PART_SIZE_MB: '5' }) });
    services = (stack.panel.app as unknown as { panel: PanelServices }).panel;
    assert.ok(services.s3, 'PANEL_BACKUP_STORAGE=s3 made a store');
    const r = await stack.panel.api(stack.owner, 'POST', '/api/servers?wait=true', {
      name: 'backup-s3',
      nodeId: stack.nodeId,
      image: IMAGE,
      startup: 'sleep 3600',
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    serverId = r.body.id as string;
    dir = path.join(stack.agentDir, 'servers', serverId);
    backupDir = path.join(stack.agentDir, 'backups', serverId);
    // a tree with binary data that does not compress, folders, modes and a link inside
    await mkdir(path.join(dir, 'world/region'), { recursive: true });
    await writeFile(path.join(dir, 'world/region/r.0.0.mca'), randomBytes(12 * 1024 * 1024));
    await writeFile(path.join(dir, 'server.properties'), 'motd=before\nmax-players=10\n');
    await writeFile(path.join(dir, 'start.sh'), '#!/bin/sh\nexec sleep 3600\n');
    await chmod(path.join(dir, 'start.sh'), 0o755);
    await writeFile(path.join(dir, 'empty.txt'), '');
    await symlink('server.properties', path.join(dir, 'props-link'));
    original = await snapshot(dir);
  });

  after(async () => {
    await stack?.stop();
    await s3?.stop();
  });

  it('a node backup streams into the bucket (multipart, checksum matched) and the node copy is deleted', async () => {
    rec = BackupRecord.parse(
      await services.gateway.request(
        stack!.nodeId,
        'backup_create',
        {
          format: 'tar.zst',
          name: 'before the change',
          ignore: [],
          commandsBefore: [],
          commandsAfter: [],
          commandWaitSeconds: 0,
          locked: true,
        },
        { serverId, timeoutMs: 120_000 },
      ),
    );
    assert.equal(rec.state, 'completed');
    const nodeFile = path.join(backupDir, `${rec.backupId}.tar.zst`);
    assert.ok(existsSync(nodeFile));
    const rssBefore = process.memoryUsage().rss;
    const put = await offloadBackup(deps(), where(), rec);
    assert.equal(put.sha256, rec.sha256);
    assert.equal(put.size, rec.size);
    assert.ok(put.parts >= 2, `multipart: ${put.parts} parts`);
    assert.ok(process.memoryUsage().rss - rssBefore < 64 * 1024 * 1024, 'the Panel did not hold the backup');
    const key = services.s3!.keyOf(serverId, rec.backupId, 'tar.zst');
    const head = await services.s3!.head(key);
    assert.equal(head?.size, rec.size);
    assert.equal(head?.sha256, rec.sha256);
    assert.deepEqual(s3.pendingUploads(), []);
    // the bytes in the bucket are the backup's
    const got = await services.s3!.get(key);
    const h = createHash('sha256');
    for await (const c of got.stream as AsyncIterable<Buffer>) h.update(c);
    assert.equal(h.digest('hex'), rec.sha256);
    // the node copy is gone: file and record
    assert.ok(!existsSync(nodeFile));
    assert.deepEqual(
      (await nodeBackups()).map((b) => b.backupId),
      [],
    );
  });

  it('an object that is not the backup is refused by the Agent: nothing imported, no partial file', async () => {
    const key = services.s3!.keyOf(serverId, 'forged', 'tar.zst');
    const forged = { ...rec, backupId: 'forged' };
    // same size, other bytes
    await services.s3!.put(key, Readable.from([randomBytes(rec.size ?? 0)]));
    await assert.rejects(importBackup(deps(), where(), forged), (e: unknown) => {
      assert.ok(isCodedError(e) && e.code === 'ARCHIVE_INVALID', String(e));
      return true;
    });
    assert.deepEqual(
      (await nodeBackups()).map((b) => b.backupId),
      [],
    );
    assert.deepEqual(
      (await readdir(backupDir)).filter((f) => f !== 'index.json'),
      [],
    );
    await services.s3!.delete(key);
  });

  it('imported back from the bucket, backup_restore makes the tree byte-identical; the node copy goes again', async () => {
    // the files change: edited, removed, added
    await writeFile(path.join(dir, 'server.properties'), 'motd=after\n');
    await rm(path.join(dir, 'world'), { recursive: true });
    await writeFile(path.join(dir, 'new-file.txt'), 'not in the backup');
    assert.notDeepEqual(await snapshot(dir), original);
    const restored = await restoreFromS3(deps(), where(), rec, { truncate: true });
    assert.equal(restored.backupId, rec.backupId);
    assert.deepEqual(await snapshot(dir), original);
    assert.ok(!existsSync(path.join(backupDir, `${rec.backupId}.tar.zst`)));
    assert.deepEqual(
      (await nodeBackups()).map((b) => b.backupId),
      [],
    );
    // the object stays in the bucket (it is the backup now)
    assert.ok(await services.s3!.head(services.s3!.keyOf(serverId, rec.backupId, 'tar.zst')));
  });

  it('an import of a backup id the node has is CONFLICT; a store with other credentials cannot be read', async () => {
    const other = new S3Store(s3.settings({ secretAccessKey: 'wrong-secret-value' }));
    await assert.rejects(other.get(services.s3!.keyOf(serverId, rec.backupId, 'tar.zst')), (e: unknown) => {
      assert.ok(isCodedError(e) && e.code === 'STORAGE_AUTH_FAILED');
      return true;
    });
    other.close();
    await importBackup(deps(), where(), rec);
    await assert.rejects(importBackup(deps(), where(), rec), (e: unknown) => {
      assert.ok(isCodedError(e) && e.code === 'CONFLICT', String(e));
      return true;
    });
  });
  it('an offload the store refuses keeps the node copy (listed, file there) and leaves no upload', async () => {
    // the node has the backup again (imported by the test before)
    const nodeFile = path.join(backupDir, `${rec.backupId}.tar.zst`);
    assert.ok(existsSync(nodeFile));
    const bad = new S3Store(s3.settings({ secretAccessKey: 'wrong-secret-value', partSizeMb: 5 }));
    await assert.rejects(offloadBackup({ ...deps(), store: bad }, where(), rec), (e: unknown) => {
      assert.ok(isCodedError(e) && e.code === 'STORAGE_AUTH_FAILED', String(e));
      return true;
    });
    bad.close();
    assert.ok(existsSync(nodeFile));
    assert.deepEqual(
      (await nodeBackups()).map((b) => b.backupId),
      [rec.backupId],
    );
    assert.deepEqual(s3.pendingUploads(), []);
  });
});
