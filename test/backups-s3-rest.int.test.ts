/**
 * Backups with PANEL_BACKUP_STORAGE=s3 through the REST routes (issue 10 item 4), with the real
 * Panel, a real Agent, the real Docker Engine and a real S3 server on loopback (@20minutes/s3rver):
 * a create (?wait) ends with the backup in the bucket (`storage: 's3'`) and no copy on the node;
 * its download is a presigned GET (or, with PANEL_S3_DOWNLOADS=relay, streamed by the Panel) with
 * the recorded bytes; a restore brings it back and makes the tree byte-identical; lock, delete and
 * the server's deletion act on the object.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { importBackup } from '../packages/panel/src/modules/backups/s3-offload.ts';
import { type Json, type Session, type TestPanel, until } from '../packages/panel/test/helpers.ts';
import { startTestS3, type TestS3 } from '../packages/panel/test/s3.ts';
import { createTestServer, type Stack, startStack } from './harness.ts';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = path.join(e.parentPath, e.name);
    out[path.relative(dir, p)] = sha256(await readFile(p));
  }
  return out;
}

async function withServer(stack: Stack, name: string): Promise<{ serverId: string; dir: string }> {
  const { serverId, dir } = await createTestServer(stack, name);
  await writeFile(path.join(dir, 'server.properties'), 'motd=hello\nmax-players=8\n');
  await mkdir(path.join(dir, 'world', 'region'), { recursive: true });
  await writeFile(path.join(dir, 'world', 'region', 'r.0.0.mca'), randomBytes(7 * 1024 * 1024));
  return { serverId, dir };
}

describe('Panel + Agent + S3: backups through REST (presigned downloads)', () => {
  let s3: TestS3;
  let stack: Stack | undefined;
  let panel: TestPanel;
  let owner: Session;
  let serverId = '';
  let dir = '';
  let backupId = '';
  let backup: Json;
  let original: Record<string, string> = {};
  const key = (id: string, format = 'tar.zst') => `backups/${serverId}/${id}.${format}`;

  before(async () => {
    s3 = await startTestS3();
    stack = await startStack('backups-s3', { panelEnv: s3.env({ PANEL_S3_PART_SIZE_MB: '5' }) });
    ({ panel, owner } = stack);
    ({ serverId, dir } = await withServer(stack, 'backups-s3'));
    original = await tree(dir);
  });
  after(async () => {
    await stack?.stop();
    await s3?.stop();
  });

  it('a create (?wait) ends with the backup in the bucket and none on the node', async () => {
    const r = await panel.api(owner, 'POST', `/api/servers/${serverId}/backups?wait=true`, {
      name: 'to the bucket',
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.state, 'completed');
    assert.equal(r.body.storage, 's3');
    backupId = r.body.backupId;
    backup = r.body;
    assert.ok(s3.objects().includes(key(backupId)), JSON.stringify(s3.objects()));
    assert.deepEqual(s3.pendingUploads(), []);
    assert.equal(existsSync(path.join(stack!.agentDir, 'backups', serverId, `${backupId}.tar.zst`)), false);
    const list = await panel.api(owner, 'GET', `/api/servers/${serverId}/backups`);
    assert.equal(list.status, 200, JSON.stringify(list.body));
    assert.equal(list.body.total, 1);
    const b = list.body.backups[0];
    assert.equal(b.backupId, backupId);
    assert.equal(b.storage, 's3');
    assert.equal(b.sha256, backup.sha256);
    assert.ok(b.createdBy);
  });

  it('downloads through a presigned GET: the recorded bytes, the sha256 given', async () => {
    const link = await panel.api(owner, 'POST', `/api/servers/${serverId}/backups/${backupId}/download`);
    assert.equal(link.status, 201, JSON.stringify(link.body));
    assert.ok((link.body.url as string).startsWith(`${s3.endpoint}/${s3.bucket}/`), link.body.url);
    assert.match(link.body.url, /X-Amz-Expires=300/);
    assert.equal(link.body.sha256, backup.sha256);
    const res = await fetch(link.body.url);
    assert.equal(res.status, 200);
    const bytes = Buffer.from(await res.arrayBuffer());
    assert.equal(bytes.length, backup.size);
    assert.equal(sha256(bytes), backup.sha256);
  });

  it('restores from the bucket (?wait): the changed tree is back byte for byte, no node copy after', async () => {
    await writeFile(path.join(dir, 'server.properties'), 'motd=changed\n');
    await rm(path.join(dir, 'world', 'region'), { recursive: true });
    await writeFile(path.join(dir, 'griefed.txt'), 'oops');
    assert.notDeepEqual(await tree(dir), original);
    const r = await panel.api(
      owner,
      'POST',
      `/api/servers/${serverId}/backups/${backupId}/restore?wait=true`,
      {
        truncate: true,
      },
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(await tree(dir), original);
    assert.equal(existsSync(path.join(stack!.agentDir, 'backups', serverId, `${backupId}.tar.zst`)), false);
    const list = await panel.api(owner, 'GET', `/api/servers/${serverId}/backups`);
    assert.equal(list.body.total, 1);
    assert.equal(list.body.backups[0].storage, 's3');
    assert.ok(s3.objects().includes(key(backupId)));
  });

  it('a copy an earlier restore left on the node (same sha256) does not block the next restore', async () => {
    const services = panel.app.panel;
    const rec = (await panel.api(owner, 'GET', `/api/servers/${serverId}/backups`)).body.backups[0];
    await importBackup(
      { gateway: services.gateway, transfers: services.transferRelay, store: services.s3! },
      { nodeId: stack!.nodeId, serverId },
      rec,
    );
    const nodeFile = path.join(stack!.agentDir, 'backups', serverId, `${backupId}.tar.zst`);
    assert.ok(existsSync(nodeFile));
    await writeFile(path.join(dir, 'server.properties'), 'motd=changed again\n');
    const r = await panel.api(
      owner,
      'POST',
      `/api/servers/${serverId}/backups/${backupId}/restore?wait=true`,
      {
        truncate: true,
      },
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(await tree(dir), original);
    assert.equal(existsSync(nodeFile), false);
  });

  it('a locked one is kept; unlocked, its delete removes the object', async () => {
    const lock = await panel.api(owner, 'POST', `/api/servers/${serverId}/backups/${backupId}/lock`, {
      locked: true,
    });
    assert.equal(lock.status, 200, JSON.stringify(lock.body));
    assert.equal(lock.body.locked, true);
    const refused = await panel.api(owner, 'DELETE', `/api/servers/${serverId}/backups/${backupId}`);
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.equal(refused.body.code, 'INVALID_STATE');
    assert.ok(s3.objects().includes(key(backupId)));
    await panel.api(owner, 'POST', `/api/servers/${serverId}/backups/${backupId}/lock`, { locked: false });
    const del = await panel.api(owner, 'DELETE', `/api/servers/${serverId}/backups/${backupId}`);
    assert.equal(del.status, 204, JSON.stringify(del.body));
    assert.ok(!s3.objects().includes(key(backupId)));
    assert.equal((await panel.api(owner, 'GET', `/api/servers/${serverId}/backups`)).body.total, 0);
  });

  it('retain N keeps the newest N unlocked backups across the bucket (locked ones kept)', async () => {
    const made: string[] = [];
    for (const [i, locked] of [false, true, false, false].entries()) {
      const b = await panel.api(owner, 'POST', `/api/servers/${serverId}/backups?wait=true`, {
        name: `retain ${i}`,
        locked,
        retain: 2,
      });
      assert.equal(b.status, 200, JSON.stringify(b.body));
      assert.equal(b.body.storage, 's3');
      made.push(b.body.backupId);
    }
    const list = await panel.api(owner, 'GET', `/api/servers/${serverId}/backups`);
    const ids = (list.body.backups as Json[]).map((b) => b.backupId).sort();
    // the first unlocked one went (two newer unlocked ones exist); the locked one stays
    assert.deepEqual(ids, [made[1], made[2], made[3]].sort());
    assert.ok(!s3.objects().includes(key(made[0] as string)), 'the pruned object is gone from the bucket');
    for (const id of [made[1], made[2], made[3]]) assert.ok(s3.objects().includes(key(id as string)));
    await panel.api(owner, 'POST', `/api/servers/${serverId}/backups/${made[1]}/lock`, { locked: false });
  });

  it("a deleted server's objects go from the bucket", async () => {
    const b = await panel.api(owner, 'POST', `/api/servers/${serverId}/backups?wait=true`, {
      format: 'tar.gz',
    });
    assert.equal(b.status, 200, JSON.stringify(b.body));
    assert.equal(b.body.storage, 's3');
    assert.ok(s3.objects().includes(key(b.body.backupId, 'tar.gz')));
    const del = await panel.api(owner, 'DELETE', `/api/servers/${serverId}`);
    assert.equal(del.status, 204, JSON.stringify(del.body));
    assert.deepEqual(
      s3.objects().filter((k) => k.startsWith(`backups/${serverId}/`)),
      [],
    );
  });
});

describe('Panel + Agent + S3: PANEL_S3_DOWNLOADS=relay streams the object through the Panel', () => {
  let s3: TestS3;
  let stack: Stack | undefined;

  before(async () => {
    s3 = await startTestS3();
    stack = await startStack('backups-s3-relay', { panelEnv: s3.env({ PANEL_S3_DOWNLOADS: 'relay' }) });
  });
  after(async () => {
    await stack?.stop();
    await s3?.stop();
  });

  it('the link is the Panel’s, single use, with the recorded bytes and x-checksum-sha256', async () => {
    const { panel, owner } = stack!;
    const { serverId } = await withServer(stack!, 'backups-s3-relay');
    const b = await panel.api(owner, 'POST', `/api/servers/${serverId}/backups?wait=true`, {});
    assert.equal(b.status, 200, JSON.stringify(b.body));
    assert.equal(b.body.storage, 's3');
    const link = await panel.api(
      owner,
      'POST',
      `/api/servers/${serverId}/backups/${b.body.backupId}/download`,
    );
    assert.equal(link.status, 201, JSON.stringify(link.body));
    assert.match(link.body.url, /^\/api\/transfers\/[A-Za-z0-9_-]{43}$/);
    const res = await fetch(`${panel.url}${link.body.url}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-checksum-sha256'), b.body.sha256);
    const bytes = Buffer.from(await res.arrayBuffer());
    assert.equal(sha256(bytes), b.body.sha256);
    const again = await fetch(`${panel.url}${link.body.url}`);
    assert.equal(again.status, 404);
    await again.arrayBuffer();
  });
});

describe('Panel + Agent + S3: a move the store refuses is retried; an S3 restore reports its import', () => {
  let s3: TestS3;
  let stack: Stack | undefined;
  let serverId = '';
  let dir = '';
  const list = async () =>
    (await stack!.panel.api(stack!.owner, 'GET', `/api/servers/${serverId}/backups`)).body.backups as Json[];
  const one = async (id: string) => (await list()).find((b) => b.backupId === id);
  const nodeFile = (id: string) => path.join(stack!.agentDir, 'backups', serverId, `${id}.tar.zst`);

  before(async () => {
    s3 = await startTestS3();
    stack = await startStack('backups-s3-retry', {
      panelEnv: s3.env({ PANEL_S3_UPLOAD_ATTEMPTS: '3', PANEL_S3_UPLOAD_RETRY_MS: '300' }),
    });
    ({ serverId, dir } = await withServer(stack, 'backups-s3-retry'));
  });
  after(async () => {
    s3.failWrites = false;
    await stack?.stop();
    await s3?.stop();
  });

  it('a refused move stays on the node as upload pending, and is retried until the store takes it', async () => {
    const { panel, owner } = stack!;
    s3.failWrites = true;
    const r = await panel.api(owner, 'POST', `/api/servers/${serverId}/backups?wait=true`, {});
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.state, 'completed');
    assert.equal(r.body.storage, 'node');
    assert.equal(r.body.upload?.state, 'pending', JSON.stringify(r.body.upload));
    assert.equal(r.body.upload.attempts, 1);
    assert.equal(r.body.upload.error?.code, 'STORAGE_ERROR');
    assert.equal(typeof r.body.upload.nextAttemptAt, 'string');
    const id = r.body.backupId as string;
    assert.ok(existsSync(nodeFile(id)));
    // a second attempt is refused too, then the store comes back
    await until(async () => (await one(id))?.upload?.attempts >= 2, 30_000);
    assert.ok(s3.refusedWrites > 0);
    s3.failWrites = false;
    await until(async () => (await one(id))?.storage === 's3', 30_000);
    const b = await one(id);
    assert.equal(b.upload, null);
    assert.ok(s3.objects().includes(`backups/${serverId}/${id}.tar.zst`));
    // the node copy goes right after the row became s3
    await until(() => !existsSync(nodeFile(id)), 10_000);
    assert.deepEqual(s3.pendingUploads(), []);
  });

  it('after the attempts it is upload failed (the node copy kept); the node reconnecting resumes the move', async () => {
    const { panel, owner } = stack!;
    s3.failWrites = true;
    const r = await panel.api(owner, 'POST', `/api/servers/${serverId}/backups?wait=true`, {});
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const id = r.body.backupId as string;
    await until(async () => (await one(id))?.upload?.state === 'failed', 60_000);
    const failed = await one(id);
    assert.equal(failed.upload.attempts, 3);
    assert.equal(failed.storage, 'node');
    assert.equal(failed.upload.nextAttemptAt, null);
    assert.ok(existsSync(nodeFile(id)));
    // no further attempt on its own
    const refused = s3.refusedWrites;
    await new Promise((res) => setTimeout(res, 1500));
    assert.equal(s3.refusedWrites, refused);
    s3.failWrites = false;
    stack!.agent.dropPanelConnection();
    await until(async () => (await one(id))?.storage === 's3', 30_000);
    assert.equal((await one(id)).upload, null);
    await until(() => !existsSync(nodeFile(id)), 10_000);
  });

  it('a restore from S3 is one operation whose import reports bytes of the total', async () => {
    const { panel, owner } = stack!;
    const b = (await list()).find((x) => x.storage === 's3');
    assert.ok(b);
    const before = await tree(dir);
    await writeFile(path.join(dir, 'server.properties'), 'motd=changed\n');
    const ws = await panel.clientSocket(owner);
    try {
      ws.send({ type: 'subscribe', serverId });
      await ws.next((m) => m.type === 'subscribed' && m.serverId === serverId);
      const r = await panel.api(owner, 'POST', `/api/servers/${serverId}/backups/${b.backupId}/restore`, {
        truncate: true,
      });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      const opId = r.body.operationId as string;
      const total = `${(b.size / 1024 / 1024).toFixed(1)} MB`;
      const importing = await ws.next(
        (m) =>
          m.type === 'operation' &&
          m.operationId === opId &&
          m.stage === 'importing' &&
          m.message === `${total} of ${total}`,
        30_000,
      );
      assert.equal(importing.kind, 'restore');
      const end = await ws.next(
        (m) => m.type === 'operation' && m.operationId === opId && m.stage === 'completed',
        60_000,
      );
      assert.equal(end.success, true, JSON.stringify(end));
      // the same operation went on through the Agent's stages
      const stages = ws.messages.filter((m) => m.operationId === opId).map((m) => m.stage);
      assert.ok(stages.includes('extracting'), JSON.stringify(stages));
      assert.deepEqual(await tree(dir), before);
      assert.equal(existsSync(nodeFile(b.backupId)), false);
    } finally {
      ws.close();
    }
  });
});
