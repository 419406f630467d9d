/**
 * Transfers Agent to Agent (issue 16 item 2, "Agent to Agent where they reach each other,
 * through the Panel otherwise") and the capacity a transfer holds on its target (item 3), with
 * the real Panel, two real Agents (both with their HTTP API on loopback: AGENT_API_KEY) and the
 * real Docker Engine. One server with an incompressible 48 MiB file and a small tree goes
 *
 *   A → B with B's transferUrl set: `path: direct`, the Panel's relay carried 0 bytes;
 *   B → A with A's transferUrl null: `path: relay`, the relay carried at least the archive;
 *   A → B with B's transferUrl a closed port: the push fails to connect, `path: relay` (fallback);
 *
 * every file byte-identical after each. Then, while a transfer to B is in flight, B's capacity
 * counts the moving server (a create that would fit without it is INSUFFICIENT_RESOURCES), and
 * once that transfer failed (B's Agent stopped mid-way) the room is free again.
 * Figures (stream time direct vs relayed, same archive) are printed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, type Json, until } from '../packages/panel/test/helpers.ts';
import { IMAGE, type NodeAgent, type Stack, startSecondAgent, startStack } from './harness.ts';
import { treeHashes } from './tree.ts';

const API_KEY = 'transfer-direct-api-key-0123456789';

describe('Panel + two Agents: transfers straight Agent to Agent, relayed otherwise; capacity held meanwhile', () => {
  let stack: Stack;
  let b: NodeAgent;
  const api = (method: string, url: string, body?: unknown) =>
    stack.panel.api(stack.owner, method, url, body);
  const relayed = () => stack.panel.app.panel.transferRelay.uploadedBytes;
  const figures: string[] = [];

  const pool = async (nodeId: string) => {
    const port = await freePort();
    const r = await api('POST', `/api/nodes/${nodeId}/allocations`, { ip: '0.0.0.0', ports: [String(port)] });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body[0] as Json;
  };
  const setTransferUrl = async (nodeId: string, transferUrl: string | null) => {
    const r = await api('PATCH', `/api/nodes/${nodeId}`, { transferUrl });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  };
  const dirOn = (agentDir: string, id: string) => path.join(agentDir, 'servers', id);

  /** Transfers the server and waits for the end: the transfer row, and the streaming stage's time. */
  const transfer = async (serverId: string, nodeId: string) => {
    await pool(nodeId);
    const started = Date.now();
    const r = await api('POST', `/api/servers/${serverId}/transfer`, { nodeId });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal(r.body.transfer.path, null, 'not streamed yet');
    const opId = r.body.transfer.operationId as string;
    let streamFrom = 0;
    let streamTo = 0;
    // the operation's progress messages, as /ws/client gets them (from the Panel's bus)
    const messages: string[] = [];
    const off = stack.panel.app.panel.bus.subscribe('operation', (e) => {
      if (e.operationId === opId && e.stage === 'streaming' && e.message) messages.push(e.message);
    });
    await until(async () => {
      const op = (await api('GET', `/api/operations/${opId}`)).body;
      if (op.stage === 'streaming') {
        if (!streamFrom) streamFrom = Date.now();
      } else if (streamFrom && !streamTo) streamTo = Date.now();
      return op.finishedAt !== null;
    }, 180_000).finally(off);
    const op = (await api('GET', `/api/operations/${opId}`)).body;
    assert.equal(op.success, true, JSON.stringify(op));
    const list = (await api('GET', `/api/servers/${serverId}/transfers`)).body.transfers as Json[];
    const t = list[0] as Json;
    assert.equal(t.state, 'completed');
    return { t, totalMs: Date.now() - started, streamMs: (streamTo || Date.now()) - streamFrom, messages };
  };

  before(async () => {
    stack = await startStack('xfer-direct', { agentEnv: { AGENT_API_KEY: API_KEY } });
    b = await startSecondAgent(stack, { name: 'xfer-direct-b', agentEnv: { AGENT_API_KEY: API_KEY } });
  });
  after(async () => {
    if (figures.length)
      console.log(`transfer figures (48 MiB incompressible archive):\n  ${figures.join('\n  ')}`);
    await stack?.stop();
  });

  it('direct when the target has a transferUrl (relay carries 0 bytes), relayed without one, relayed after a direct push to a closed port; byte-identical each time', {
    timeout: 600_000,
  }, async () => {
    const alloc = await pool(stack.nodeId);
    const created = await api('POST', '/api/servers?wait=true', {
      name: 'direct-mover',
      nodeId: stack.nodeId,
      image: IMAGE,
      startup: 'sleep 3600',
      allocationId: alloc.id,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    const srcDir = dirOn(stack.agentDir, id);
    await mkdir(path.join(srcDir, 'world', 'region'), { recursive: true });
    await writeFile(path.join(srcDir, 'world', 'region', 'r.0.0.mca'), randomBytes(48 * 1024 * 1024));
    await writeFile(path.join(srcDir, 'server.properties'), 'motd=direct\n');
    await writeFile(path.join(srcDir, 'empty.txt'), '');
    const original = await treeHashes(srcDir);
    const start = await api('POST', `/api/servers/${id}/power`, { action: 'start' });
    assert.equal(start.status, 202, JSON.stringify(start.body));
    await until(async () => (await api('GET', `/api/servers/${id}`)).body.status === 'running', 30_000);

    // 1. A → B, B's Agent HTTP API reachable at its transferUrl: straight, nothing through the Panel
    await setTransferUrl(b.nodeId, b.httpUrl);
    await setTransferUrl(stack.nodeId, null);
    const before1 = relayed();
    const direct = await transfer(id, b.nodeId);
    assert.equal(direct.t.path, 'direct', JSON.stringify(direct.t));
    assert.equal(relayed() - before1, 0, 'the Panel relay carried no byte of the direct transfer');
    assert.ok(
      direct.messages.some((m) => /directly Agent to Agent/.test(m)),
      `the progress says direct: ${direct.messages.join(' | ')}`,
    );
    assert.equal((await api('GET', `/api/servers/${id}`)).body.nodeId, b.nodeId);
    assert.deepEqual(await treeHashes(dirOn(b.agentDir, id)), original, 'byte-identical on B (direct)');
    await until(async () => (await api('GET', `/api/servers/${id}`)).body.status === 'running', 30_000);
    figures.push(
      `direct A→B: streaming stage ${direct.streamMs} ms, whole transfer ${direct.totalMs} ms; Panel: ${direct.messages.at(-1)}`,
    );

    // 2. B → A, A without a transferUrl: through the Panel's relay
    const before2 = relayed();
    const relay = await transfer(id, stack.nodeId);
    assert.equal(relay.t.path, 'relay', JSON.stringify(relay.t));
    assert.ok(
      relayed() - before2 >= 48 * 1024 * 1024,
      `the relay carried the archive (${relayed() - before2} B)`,
    );
    assert.equal((await api('GET', `/api/servers/${id}`)).body.nodeId, stack.nodeId);
    assert.deepEqual(await treeHashes(srcDir), original, 'byte-identical on A (relayed)');
    figures.push(
      `relayed B→A: streaming stage ${relay.streamMs} ms, whole transfer ${relay.totalMs} ms; Panel: ${relay.messages.at(-1)}`,
    );

    // 3. A → B, B's transferUrl a closed port: the push cannot connect, the relay takes over
    const closed = await freePort();
    await setTransferUrl(b.nodeId, `http://127.0.0.1:${closed}`);
    const before3 = relayed();
    const fallback = await transfer(id, b.nodeId);
    assert.equal(fallback.t.path, 'relay', JSON.stringify(fallback.t));
    assert.ok(relayed() - before3 >= 48 * 1024 * 1024, 'the fallback went through the relay');
    assert.ok(
      fallback.messages.some((m) => /direct push failed/.test(m)),
      `the progress says why: ${fallback.messages.join(' | ')}`,
    );
    assert.deepEqual(await treeHashes(dirOn(b.agentDir, id)), original, 'byte-identical on B (fallback)');
    figures.push(
      `fallback A→B (closed port, then relay): streaming ${fallback.streamMs} ms, whole ${fallback.totalMs} ms`,
    );
    await setTransferUrl(b.nodeId, null);
  });

  it("the target's capacity counts the moving server while the transfer runs, and is free again once it failed", {
    timeout: 300_000,
  }, async () => {
    const { db, servers } = stack.panel.app.panel;
    const allocatedOnB = async () => {
      const row = await db
        .selectFrom('nodes')
        .selectAll()
        .where('id', '=', b.nodeId)
        .executeTakeFirstOrThrow();
      return (await servers.capacity(row)).memory.allocated;
    };
    const baseline = await allocatedOnB();
    const created = await api('POST', '/api/servers?wait=true', {
      name: 'reserving',
      nodeId: stack.nodeId,
      image: IMAGE,
      startup: 'sleep 3600',
      limits: { memory: '512m' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    // large and incompressible: the transfer lasts long enough to be cut
    const big = path.join(dirOn(stack.agentDir, id), 'big.bin');
    const chunk = randomBytes(16 * 1024 * 1024);
    await writeFile(big, chunk);
    for (let i = 0; i < 15; i++) await writeFile(big, chunk, { flag: 'a' });
    // room on B for one 512 MiB server above what it holds
    const cap = await api('PATCH', `/api/nodes/${b.nodeId}`, {
      capacity: { memory: String(Math.floor(baseline / 1024 / 1024) + 768) + 'm' },
    });
    assert.equal(cap.status, 200, JSON.stringify(cap.body));
    try {
      const fits = {
        name: 'would-fit',
        nodeId: b.nodeId,
        image: IMAGE,
        startup: 'sleep 3600',
        limits: { memory: '512m' },
      };
      const r = await api('POST', `/api/servers/${id}/transfer`, { nodeId: b.nodeId });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      const opId = r.body.transfer.operationId as string;
      assert.equal(await allocatedOnB(), baseline + 512 * 1024 * 1024, 'the moving server counts on B');
      const second = await api('POST', '/api/servers', fits);
      assert.equal(second.status, 409, JSON.stringify(second.body));
      assert.equal(second.body.code, 'INSUFFICIENT_RESOURCES');
      // cut: B's Agent goes away mid-transfer
      await until(async () => {
        const st = (await api('GET', `/api/operations/${opId}`)).body.stage;
        return st === 'streaming' || st === 'restoring' || st === 'creating';
      }, 120_000);
      await b.stopAgent();
      // a stopped Agent closes gracefully: a push already streaming may finish before the restore
      // step finds B gone (a loaded CI took longer than 120 s here)
      await until(
        async () => (await api('GET', `/api/operations/${opId}`)).body.finishedAt !== null,
        240_000,
      );
      assert.equal((await api('GET', `/api/operations/${opId}`)).body.success, false);
      assert.equal(await allocatedOnB(), baseline, 'released once the transfer failed');
      await b.restart();
      const now = await api('POST', '/api/servers?wait=true', fits);
      assert.equal(now.status, 201, JSON.stringify(now.body));
      await api('DELETE', `/api/servers/${now.body.id}`);
    } finally {
      await api('PATCH', `/api/nodes/${b.nodeId}`, { capacity: { memory: null } });
    }
  });
});
