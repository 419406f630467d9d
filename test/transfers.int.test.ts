/**
 * Server transfers between nodes (issue 16 item 2) with the real Panel, two real Agents (two
 * nodes, two data dirs) and the real Docker Engine: a running busybox server with files moves to
 * the other node (running there, every file byte-identical, the source's container and folder
 * gone, its allocation moved; power actions refused meanwhile); a transfer whose target Agent is
 * stopped mid-stream fails with the step, the server stays whole and running on the source, and
 * the target holds nothing once its Agent is back. A backup made on the source before the move
 * stays listed and downloadable (same bytes) after it, from the target.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, type Json, until } from '../packages/panel/test/helpers.ts';
import { IMAGE, type NodeAgent, type Stack, startSecondAgent, startStack } from './harness.ts';
import { exists, treeHashes } from './tree.ts';

describe('Panel + two Agents: server transfers between nodes', () => {
  let stack: Stack;
  let b: NodeAgent;
  const api = (method: string, url: string, body?: unknown) =>
    stack.panel.api(stack.owner, method, url, body);

  const pool = async (nodeId: string) => {
    const port = await freePort();
    const r = await api('POST', `/api/nodes/${nodeId}/allocations`, { ip: '0.0.0.0', ports: [String(port)] });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body[0] as Json;
  };
  const make = async (name: string) => {
    const alloc = await pool(stack.nodeId);
    const r = await api('POST', '/api/servers?wait=true', {
      name,
      nodeId: stack.nodeId,
      image: IMAGE,
      startup: 'sleep 3600',
      allocationId: alloc.id,
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const id = r.body.id as string;
    const start = await api('POST', `/api/servers/${id}/power`, { action: 'start' });
    assert.equal(start.status, 202, JSON.stringify(start.body));
    await until(async () => (await api('GET', `/api/servers/${id}`)).body.status === 'running', 30_000);
    return { id, alloc, dir: path.join(stack.agentDir, 'servers', id) };
  };
  const running = async (agentNodeId: string, serverId: string) =>
    (
      await (
        await import('./harness.ts')
      ).docker.listContainers({
        filters: { label: [`ctrl-alt-play.server=${serverId}`, `ctrl-alt-play.node=${agentNodeId}`] },
      })
    ).length === 1;

  before(async () => {
    stack = await startStack('transfer');
    b = await startSecondAgent(stack, { name: 'transfer-b' });
  });
  after(async () => {
    await stack?.stop();
  });

  it('a running server with files moves to the other node: running there, byte-identical, source gone, allocation moved', {
    timeout: 180_000,
  }, async () => {
    const s = await make('moving');
    await mkdir(path.join(s.dir, 'world', 'region'), { recursive: true });
    await writeFile(path.join(s.dir, 'world', 'region', 'r.0.0.mca'), randomBytes(3 * 1024 * 1024 + 5));
    await writeFile(path.join(s.dir, 'server.properties'), 'motd=moved\n');
    await writeFile(path.join(s.dir, 'empty.txt'), '');
    const before = await treeHashes(s.dir);
    assert.ok(before.size >= 3);
    const backup = await api('POST', `/api/servers/${s.id}/backups?wait=true`, { name: 'before the move' });
    assert.equal(backup.status, 200, JSON.stringify(backup.body));
    assert.equal(backup.body.state, 'completed');
    const target = await pool(b.nodeId);

    const r = await api('POST', `/api/servers/${s.id}/transfer`, {
      nodeId: b.nodeId,
      allocationId: target.id,
    });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const opId = r.body.transfer.operationId as string;
    // power actions wait for the transfer
    const power = await api('POST', `/api/servers/${s.id}/power`, { action: 'stop' });
    assert.equal(power.status, 409, JSON.stringify(power.body));
    assert.equal(power.body.code, 'SERVER_TRANSFERRING');
    const again = await api('POST', `/api/servers/${s.id}/transfer`, { nodeId: b.nodeId });
    assert.equal(again.body.code, 'SERVER_TRANSFERRING');

    const stages = new Set<string>();
    await until(async () => {
      const op = (await api('GET', `/api/operations/${opId}`)).body;
      stages.add(op.stage);
      return op.finishedAt !== null;
    }, 150_000);
    const op = (await api('GET', `/api/operations/${opId}`)).body;
    assert.equal(op.success, true, JSON.stringify(op));
    // polled every 10 ms: the long steps are seen (a short one may pass between two polls)
    for (const st of ['archiving', 'creating', 'restoring'])
      assert.ok(stages.has(st), `stage ${st} seen (${[...stages]})`);

    const server = (await api('GET', `/api/servers/${s.id}`)).body;
    assert.equal(server.nodeId, b.nodeId);
    assert.equal(server.allocation.id, target.id);
    assert.ok(await running(b.nodeId, s.id), 'running on the target');
    await until(async () => (await api('GET', `/api/servers/${s.id}`)).body.status === 'running', 20_000);
    const moved = await treeHashes(path.join(b.agentDir, 'servers', s.id));
    assert.deepEqual(moved, before);
    assert.equal(
      (await stack.containers(s.id)).filter((c) => c.Labels['ctrl-alt-play.node'] === stack.nodeId).length,
      0,
    );
    assert.equal(await exists(s.dir), false, 'the source folder is gone');
    const srcAllocs = (await api('GET', `/api/nodes/${stack.nodeId}/allocations`)).body as Json[];
    assert.equal(srcAllocs.find((a) => a.id === s.alloc.id)?.serverId ?? null, null, 'old allocation free');
    const list = (await api('GET', `/api/servers/${s.id}/transfers`)).body.transfers as Json[];
    assert.equal(list[0]?.state, 'completed');

    // the backup made on the source is still the server's, and downloads from the target
    const backups = (await api('GET', `/api/servers/${s.id}/backups`)).body.backups as Json[];
    const kept = backups.find((x) => x.backupId === backup.body.backupId);
    assert.ok(kept, JSON.stringify(backups));
    assert.equal(kept.sha256, backup.body.sha256);
    const link = await api('POST', `/api/servers/${s.id}/backups/${backup.body.backupId}/download`);
    assert.equal(link.status, 201, JSON.stringify(link.body));
    const res = await fetch(`${stack.panel.url}${link.body.url}`);
    assert.equal(res.status, 200);
    const bytes = Buffer.from(await res.arrayBuffer());
    assert.equal(bytes.length, backup.body.size);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), backup.body.sha256);
  });

  it('refused at once: its own node (VALIDATION_FAILED), past the target capacity (INSUFFICIENT_RESOURCES), nothing changed', {
    timeout: 60_000,
  }, async () => {
    const r = await api('POST', '/api/servers?wait=true', {
      name: 'too-big',
      nodeId: stack.nodeId,
      image: IMAGE,
      startup: 'sleep 3600',
      limits: { memory: '1g' },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const id = r.body.id as string;
    const own = await api('POST', `/api/servers/${id}/transfer`, { nodeId: stack.nodeId });
    assert.equal(own.status, 400, JSON.stringify(own.body));
    assert.equal(own.body.code, 'VALIDATION_FAILED');
    const cap = await api('PATCH', `/api/nodes/${b.nodeId}`, { capacity: { memory: '512m' } });
    assert.equal(cap.status, 200, JSON.stringify(cap.body));
    try {
      const big = await api('POST', `/api/servers/${id}/transfer`, { nodeId: b.nodeId });
      assert.equal(big.status, 409, JSON.stringify(big.body));
      assert.equal(big.body.code, 'INSUFFICIENT_RESOURCES');
      assert.equal((await api('GET', `/api/servers/${id}`)).body.nodeId, stack.nodeId);
      assert.deepEqual((await api('GET', `/api/servers/${id}/transfers`)).body.transfers, []);
    } finally {
      await api('PATCH', `/api/nodes/${b.nodeId}`, { capacity: { memory: null } });
    }
  });

  it('the target Agent stopped mid-stream: failed with the step, whole and running on the source, nothing on the target after it is back', {
    timeout: 240_000,
  }, async () => {
    const s = await make('interrupted');
    // large and incompressible, so the stream lasts long enough to be cut
    const big = path.join(s.dir, 'big.bin');
    const chunk = randomBytes(16 * 1024 * 1024);
    await writeFile(big, chunk);
    for (let i = 0; i < 15; i++) await writeFile(big, chunk, { flag: 'a' });
    await writeFile(path.join(s.dir, 'keep.txt'), 'keep me\n');
    const before = await treeHashes(s.dir);
    await pool(b.nodeId);

    const r = await api('POST', `/api/servers/${s.id}/transfer`, { nodeId: b.nodeId });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const opId = r.body.transfer.operationId as string;
    await until(
      async () => (await api('GET', `/api/operations/${opId}`)).body.stage === 'streaming',
      120_000,
    );
    await b.stopAgent();

    await until(async () => (await api('GET', `/api/operations/${opId}`)).body.finishedAt !== null, 120_000);
    const op = (await api('GET', `/api/operations/${opId}`)).body;
    assert.equal(op.success, false);
    assert.match(op.errorMessage, /^streaming: /);
    const server = (await api('GET', `/api/servers/${s.id}`)).body;
    assert.equal(server.nodeId, stack.nodeId);
    await until(async () => running(stack.nodeId, s.id), 30_000);
    assert.deepEqual(await treeHashes(s.dir), before, 'the source is whole');

    await b.restart();
    const targetDir = path.join(b.agentDir, 'servers', s.id);
    await until(async () => !(await exists(targetDir)), 30_000);
    await until(async () => (await b.containers(s.id)).length === 0, 30_000);
    const list = (await api('GET', `/api/servers/${s.id}/transfers`)).body.transfers as Json[];
    assert.equal(list[0]?.state, 'failed');
    assert.equal(list[0]?.step, 'streaming');
  });
});
