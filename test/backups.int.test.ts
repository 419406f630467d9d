/**
 * Backups through the Panel (issue 10 item 4) with the real Panel, a real Agent and the real
 * Docker Engine: a backup made while the server runs (?wait), listed with who made it; its
 * download through the Panel's relay (a short-lived single-use link) byte-identical to the
 * Agent's archive and to the sha256 in the list and the `x-checksum-sha256` header; files
 * changed, then a restore (an operation whose stages arrive on /ws/client) brings the tree back
 * byte for byte; the limit refuses a create; a locked backup cannot be deleted, an unlocked one
 * goes from the node; a deleted server's backups go from the node and the table.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Json, Session, TestPanel } from '../packages/panel/test/helpers.ts';
import { until } from '../packages/panel/test/helpers.ts';
import { IMAGE, type Stack, startStack } from './harness.ts';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Every regular file under dir, relative path → sha256. */
async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = path.join(e.parentPath, e.name);
    out[path.relative(dir, p)] = sha256(await readFile(p));
  }
  return out;
}

describe('Panel + Agent + Docker: backups', () => {
  let stack: Stack | undefined;
  let panel: TestPanel;
  let owner: Session;
  let serverId = '';
  let dir = '';
  let backupId = '';
  let original: Record<string, string> = {};

  before(async () => {
    stack = await startStack('backups');
    ({ panel, owner } = stack);
    const r = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'backups',
      nodeId: stack.nodeId,
      image: IMAGE,
      startup: 'sleep 3600',
      // sleep ignores SIGTERM: the restore's stop kills it after 1 s
      stopTimeout: 1,
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    serverId = r.body.id as string;
    dir = path.join(stack.agentDir, 'servers', serverId);
    await writeFile(path.join(dir, 'server.properties'), 'motd=hello\nmax-players=8\n');
    await mkdir(path.join(dir, 'world', 'region'), { recursive: true });
    await writeFile(path.join(dir, 'world', 'region', 'r.0.0.mca'), randomBytes(3 * 1024 * 1024));
    await writeFile(path.join(dir, 'world', 'level.dat'), randomBytes(4096));
    original = await tree(dir);
    const start = await panel.api(owner, 'POST', `/api/servers/${serverId}/power`, { action: 'start' });
    assert.equal(start.status, 202, JSON.stringify(start.body));
    await until(
      async () => (await panel.api(owner, 'GET', `/api/servers/${serverId}`)).body.status === 'running',
      20_000,
    );
  });

  after(async () => {
    await stack?.stop();
  });

  it('creates a backup while it runs (?wait); the list shows it completed with its creator', async () => {
    const r = await panel.api(owner, 'POST', `/api/servers/${serverId}/backups?wait=true`, {
      name: 'before the change',
      format: 'tar.gz',
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.state, 'completed');
    backupId = r.body.backupId;
    const me = (await panel.api(owner, 'GET', '/api/auth/me')).body.user;
    const list = await panel.api(owner, 'GET', `/api/servers/${serverId}/backups`);
    assert.equal(list.status, 200, JSON.stringify(list.body));
    const b = list.body.backups.find((x: Json) => x.backupId === backupId);
    assert.ok(b, JSON.stringify(list.body));
    assert.deepEqual(b.createdBy, { id: me.id, username: me.username });
    assert.equal(b.storage, 'node');
    assert.equal(b.format, 'tar.gz');
    assert.equal(b.entries >= 3, true);
    // the Agent's archive is the one recorded
    const file = path.join(stack!.agentDir, 'backups', serverId, `${backupId}.tar.gz`);
    const bytes = await readFile(file);
    assert.equal(b.size, bytes.length);
    assert.equal(b.sha256, sha256(bytes));
  });

  it('downloads through the relay: byte-identical, x-checksum-sha256; the link works once', async () => {
    const link = await panel.api(owner, 'POST', `/api/servers/${serverId}/backups/${backupId}/download`);
    assert.equal(link.status, 201, JSON.stringify(link.body));
    const res = await fetch(`${panel.url}${link.body.url}`);
    assert.equal(res.status, 200);
    const body = Buffer.from(await res.arrayBuffer());
    const onNode = await readFile(path.join(stack!.agentDir, 'backups', serverId, `${backupId}.tar.gz`));
    assert.equal(body.length, onNode.length);
    assert.equal(sha256(body), sha256(onNode));
    assert.equal(res.headers.get('x-checksum-sha256'), link.body.sha256);
    assert.equal(link.body.sha256, sha256(onNode));
    assert.match(res.headers.get('content-disposition') ?? '', /\.tar\.gz/);
    const again = await fetch(`${panel.url}${link.body.url}`);
    assert.equal(again.status, 404);
    await again.arrayBuffer();
  });

  it('restores as an operation with its stages: the changed tree is back byte for byte', async () => {
    await writeFile(path.join(dir, 'server.properties'), 'motd=changed\n');
    await rm(path.join(dir, 'world', 'region'), { recursive: true });
    await writeFile(path.join(dir, 'griefed.txt'), 'oops');
    assert.notDeepEqual(await tree(dir), original);
    const ws = await panel.clientSocket(owner);
    ws.send({ type: 'subscribe', serverId });
    await ws.next((m) => m.type === 'subscribed');
    const r = await panel.api(owner, 'POST', `/api/servers/${serverId}/backups/${backupId}/restore`, {
      truncate: true,
    });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const end = await ws.next(
      (m) => m.type === 'operation' && m.operationId === r.body.operationId && m.success !== undefined,
      60_000,
    );
    assert.equal(end.success, true, JSON.stringify(end));
    ws.close();
    const stages = ws.messages
      .concat([end])
      .filter((m: Json) => m.type === 'operation' && m.operationId === r.body.operationId)
      .map((m: Json) => m.stage);
    const op = await panel.api(owner, 'GET', `/api/operations/${r.body.operationId}`);
    assert.equal(op.body.kind, 'restore');
    assert.equal(op.body.success, true);
    assert.deepEqual(await tree(dir), original);
    assert.equal(existsSync(path.join(dir, 'griefed.txt')), false);
    await until(
      async () => (await panel.api(owner, 'GET', `/api/servers/${serverId}`)).body.status === 'running',
      20_000,
    );
    // the stages shown live: stop → delete → extract → start again
    for (const st of ['verifying', 'stopping', 'deleting', 'extracting', 'starting', 'completed'])
      assert.ok(stages.includes(st), `${st} in ${JSON.stringify(stages)}`);
  });

  it('the limit refuses a create; a locked backup cannot be deleted, unlocked it goes from the node', async () => {
    const limit = await panel.api(owner, 'PATCH', `/api/servers/${serverId}`, { backupLimit: 1 });
    assert.equal(limit.status, 200, JSON.stringify(limit.body));
    const over = await panel.api(owner, 'POST', `/api/servers/${serverId}/backups?wait=true`, {});
    assert.equal(over.status, 409, JSON.stringify(over.body));
    assert.equal(over.body.code, 'BACKUP_LIMIT_REACHED');
    const lock = await panel.api(owner, 'POST', `/api/servers/${serverId}/backups/${backupId}/lock`, {
      locked: true,
    });
    assert.equal(lock.status, 200, JSON.stringify(lock.body));
    assert.equal(lock.body.locked, true);
    const file = path.join(stack!.agentDir, 'backups', serverId, `${backupId}.tar.gz`);
    const refused = await panel.api(owner, 'DELETE', `/api/servers/${serverId}/backups/${backupId}`);
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.equal(refused.body.code, 'INVALID_STATE');
    assert.equal(existsSync(file), true);
    await panel.api(owner, 'POST', `/api/servers/${serverId}/backups/${backupId}/lock`, { locked: false });
    const del = await panel.api(owner, 'DELETE', `/api/servers/${serverId}/backups/${backupId}`);
    assert.equal(del.status, 204, JSON.stringify(del.body));
    assert.equal(existsSync(file), false);
    assert.equal((await panel.api(owner, 'GET', `/api/servers/${serverId}/backups`)).body.total, 0);
  });

  it("a deleted server's backups go from the node and the table", async () => {
    await panel.api(owner, 'PATCH', `/api/servers/${serverId}`, { backupLimit: null });
    const b = await panel.api(owner, 'POST', `/api/servers/${serverId}/backups?wait=true`, { locked: true });
    assert.equal(b.status, 200, JSON.stringify(b.body));
    const folder = path.join(stack!.agentDir, 'backups', serverId);
    assert.equal(existsSync(path.join(folder, `${b.body.backupId}.tar.zst`)), true);
    const del = await panel.api(owner, 'DELETE', `/api/servers/${serverId}`);
    assert.equal(del.status, 204, JSON.stringify(del.body));
    assert.equal(existsSync(folder), false);
    const rows = await panel.app.panel.db.selectFrom('backups').selectAll().execute();
    assert.deepEqual(rows, []);
  });
});
