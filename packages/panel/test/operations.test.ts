/**
 * Operations in the Panel (issue 9 item 1) with a fake Agent: the row a power action makes, a
 * refusal recorded with its code, a 404 for an unknown id, and the TIMEOUT sweep of an operation
 * whose Agent never reports its end; the create and the PATCH that recreates the container as
 * operations too (202 { operationId }, ?wait=true for the old answer; a failed create removes the
 * server, a failed PATCH stores nothing).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Command, ErrorCode } from '@cap/protocol';
import { type FakeAgent, FakeAgentError } from './fake-agent.ts';
import {
  createServer,
  fakeAgentNode,
  type Json,
  type Session,
  scratchDatabase,
  startTestPanel,
  type TestPanel,
  until,
} from './helpers.ts';

/** On SQLite and on a fresh PostgreSQL database (migration 010_operations on both). */
for (const engine of ['sqlite', 'postgres'] as const)
  describe(`operations (fake Agent, ${engine})`, () => {
    let panel: TestPanel;
    let owner: Session;
    let agent: FakeAgent;
    let serverId: string;

    let db: Awaited<ReturnType<typeof scratchDatabase>> | undefined;
    before(async () => {
      db = await scratchDatabase(engine, 'cap_ops');
      panel = await startTestPanel(db.env);
      owner = await panel.login();
      const node = await fakeAgentNode(panel, owner, {
        // acknowledged, and the end never reported within the test (but the create's)
        operationMs: (cmd) => (cmd.action === 'create_server' ? 40 : 10_000_000),
        handlers: {
          restart_server: () => {
            throw new FakeAgentError('SERVER_BUSY', 'stop_server (operation x) is running on this server');
          },
        },
      });
      agent = node.agent;
      serverId = await createServer(panel, owner, node.id, 'ops');
    });
    after(async () => {
      await agent.close();
      await panel.stop();
      await db?.drop();
    });

    test('a power action is 202 { operationId }; the row is open until the end; TIMEOUT by the sweep', async () => {
      const r = await panel.api(owner, 'POST', `/api/servers/${serverId}/power`, { action: 'stop' });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      assert.deepEqual(Object.keys(r.body), ['operationId']);
      const sent = agent.commands.find((c) => c.action === 'stop_server') as
        | { operationId?: string }
        | undefined;
      assert.equal(sent?.operationId, r.body.operationId, 'the command asks for the acknowledgement');
      const op = (await panel.api(owner, 'GET', `/api/operations/${r.body.operationId}`)).body;
      assert.equal(op.kind, 'stop');
      assert.equal(op.serverId, serverId);
      assert.equal(op.stage, 'accepted');
      assert.equal(op.finishedAt, null);
      assert.equal(op.success, null);
      assert.equal(typeof op.actorUserId, 'string');

      // not yet due: left open
      await panel.app.panel.servers.sweepOperations(Date.now());
      assert.equal((await panel.api(owner, 'GET', `/api/operations/${op.id}`)).body.finishedAt, null);
      await panel.app.panel.servers.sweepOperations(Date.now() + 3 * 60 * 60 * 1000);
      const swept = (await panel.api(owner, 'GET', `/api/operations/${op.id}`)).body;
      assert.equal(swept.success, false);
      assert.equal(swept.stage, 'failed');
      assert.equal(swept.errorCode, 'TIMEOUT');
      assert.ok(swept.finishedAt);
    });

    test("an Agent's refusal is the REST error and a failed operation", async () => {
      const r = await panel.api(owner, 'POST', `/api/servers/${serverId}/power`, { action: 'restart' });
      assert.equal(r.status, 409, JSON.stringify(r.body));
      assert.equal(r.body.code, 'SERVER_BUSY');
      const list = (await panel.api(owner, 'GET', `/api/servers/${serverId}/operations`)).body;
      assert.equal(list[0].kind, 'restart');
      assert.equal(list[0].errorCode, 'SERVER_BUSY');
      assert.equal(list[0].success, false);
      assert.equal(list[1].kind, 'stop', 'newest first');
      // the refused restart did not change the user's intent (the accepted stop did)
      assert.equal((await panel.api(owner, 'GET', `/api/servers/${serverId}`)).body.desiredState, 'offline');
    });

    // (one engine: it waits for the 15 s grace)
    if (engine === 'sqlite')
      test('a hello that does not list an open operation closes it as OPERATION_LOST after the grace', async () => {
        const lost = await panel.api(owner, 'POST', `/api/servers/${serverId}/power`, { action: 'start' });
        const kept = await panel.api(owner, 'POST', `/api/servers/${serverId}/power`, { action: 'kill' });
        assert.equal(lost.status, 202, JSON.stringify(lost.body));
        assert.equal(kept.status, 202, JSON.stringify(kept.body));
        // as after a reconnect: the Agent says hello and lists only the kill as running
        agent.emit('agent_hello', {
          protocolVersion: 1,
          agentVersion: 'fake',
          servers: [],
          operations: [{ operationId: kept.body.operationId, serverId, action: 'kill_server' }],
        });
        const get = async (id: string) => (await panel.api(owner, 'GET', `/api/operations/${id}`)).body;
        // left open during the grace (its end may be on its way, after the hello)
        await new Promise((r) => setTimeout(r, 1000));
        assert.equal((await get(lost.body.operationId)).finishedAt, null);
        await until(async () => (await get(lost.body.operationId)).finishedAt !== null, 25_000);
        const closed = await get(lost.body.operationId);
        assert.equal(closed.errorCode, 'OPERATION_LOST');
        assert.equal(closed.success, false);
        const still = (await panel.api(owner, 'GET', `/api/operations/${kept.body.operationId}`)).body;
        assert.equal(still.finishedAt, null, 'the one the Agent still runs stays open');
      });

    test('unknown ids are 404', async () => {
      const op = await panel.api(owner, 'GET', '/api/operations/op_nope');
      assert.equal(op.status, 404);
      assert.equal(op.body.code, 'NOT_FOUND');
      const list = await panel.api(owner, 'GET', '/api/servers/s_nope/operations');
      assert.equal(list.status, 404);
    });
  });

describe('create and PATCH as operations (fake Agent)', () => {
  let panel: TestPanel;
  let owner: Session;
  let agent: FakeAgent;
  let nodeId: string;
  /** the end the fake Agent reports for the next operations of this action (undefined: success) */
  const failing = new Map<string, { code: ErrorCode; message: string }>();

  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
    const node = await fakeAgentNode(panel, owner, {
      operationMs: 150,
      operationError: (cmd: Command) => failing.get(cmd.action),
    });
    nodeId = node.id;
    agent = node.agent;
  });
  after(async () => {
    await agent.close();
    await panel.stop();
  });

  const op = async (id: string) => (await panel.api(owner, 'GET', `/api/operations/${id}`)).body;
  const ended = async (id: string) => {
    await until(async () => (await op(id)).finishedAt !== null);
    return op(id);
  };
  const heldPorts = async (serverId: string) =>
    ((await panel.api(owner, 'GET', `/api/nodes/${nodeId}/allocations`)).body as Json[])
      .filter((a) => a.serverId === serverId)
      .map((a) => a.port);

  test('a create is 202 { operationId, server } once acknowledged; the operation ends completed', async () => {
    const r = await panel.api(owner, 'POST', '/api/servers', { name: 'async', nodeId, image: 'img' });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.deepEqual(Object.keys(r.body).sort(), ['operationId', 'server']);
    assert.equal(r.body.server.name, 'async');
    const sent = agent.commands.find(
      (c) =>
        c.action === 'create_server' && (c as { operationId?: string }).operationId === r.body.operationId,
    );
    assert.ok(sent, 'create_server asks for the acknowledgement');
    const started = await op(r.body.operationId);
    assert.equal(started.kind, 'create');
    assert.equal(started.serverId, r.body.server.id);
    assert.equal(typeof started.actorUserId, 'string');
    const done = await ended(r.body.operationId);
    assert.equal(done.success, true);
    assert.equal(done.stage, 'completed');
    assert.equal((await panel.api(owner, 'GET', `/api/servers/${r.body.server.id}`)).status, 200);
  });

  test('a create whose operation fails removes the server and frees its ports; ?wait=true answers the code', async () => {
    failing.set('create_server', { code: 'DOCKER_ERROR', message: 'no such image' });
    try {
      const r = await panel.api(owner, 'POST', '/api/servers', {
        name: 'doomed',
        nodeId,
        image: 'img',
        ports: { '7000': 37100 },
      });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      const id = r.body.server.id as string;
      assert.deepEqual(await heldPorts(id), [37100]);
      const done = await ended(r.body.operationId);
      assert.equal(done.success, false);
      assert.equal(done.errorCode, 'DOCKER_ERROR');
      assert.equal((await panel.api(owner, 'GET', `/api/servers/${id}`)).status, 404);
      assert.deepEqual(await heldPorts(id), []);

      const before = (await panel.api(owner, 'GET', '/api/servers')).body.length;
      const waited = await panel.api(owner, 'POST', '/api/servers?wait=true', {
        name: 'doomed too',
        nodeId,
        image: 'img',
        ports: { '7000': 37100 },
      });
      assert.equal(waited.body.code, 'DOCKER_ERROR', JSON.stringify(waited.body));
      assert.equal((await panel.api(owner, 'GET', '/api/servers')).body.length, before, 'nothing stored');
    } finally {
      failing.delete('create_server');
    }
  });

  test('a PATCH that recreates the container is 202 { operationId }; stored once the Agent reports success', async () => {
    const made = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'p',
      nodeId,
      image: 'img',
    });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const id = made.body.id as string;
    // a rename alone is no operation
    const renamed = await panel.api(owner, 'PATCH', `/api/servers/${id}`, { name: 'q' });
    assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
    assert.equal(renamed.body.name, 'q');

    const r = await panel.api(owner, 'PATCH', `/api/servers/${id}`, { startup: 'echo new' });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.deepEqual(Object.keys(r.body), ['operationId']);
    assert.equal((await op(r.body.operationId)).kind, 'update');
    // not stored before the Agent's end
    assert.equal((await panel.api(owner, 'GET', `/api/servers/${id}`)).body.startup, '');
    assert.equal((await ended(r.body.operationId)).success, true);
    await until(
      async () => (await panel.api(owner, 'GET', `/api/servers/${id}`)).body.startup === 'echo new',
    );

    const waited = await panel.api(owner, 'PATCH', `/api/servers/${id}?wait=true`, { startup: 'echo newer' });
    assert.equal(waited.status, 200, JSON.stringify(waited.body));
    assert.equal(waited.body.startup, 'echo newer');
  });

  test('a PATCH whose operation fails stores nothing and lets the new port go', async () => {
    const made = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'pf',
      nodeId,
      image: 'img',
      ports: { '7000': 37200 },
    });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const id = made.body.id as string;
    failing.set('update_server', { code: 'DOCKER_ERROR', message: 'recreate failed' });
    try {
      const r = await panel.api(owner, 'PATCH', `/api/servers/${id}`, { ports: { '7000': 37201 } });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      const done = await ended(r.body.operationId);
      assert.equal(done.errorCode, 'DOCKER_ERROR');
      await until(async () => (await heldPorts(id)).join() === '37200');
      assert.deepEqual((await panel.api(owner, 'GET', `/api/servers/${id}`)).body.ports, { '7000': 37200 });

      const waited = await panel.api(owner, 'PATCH', `/api/servers/${id}?wait=true`, { startup: 'x' });
      assert.equal(waited.body.code, 'DOCKER_ERROR', JSON.stringify(waited.body));
      assert.equal((await panel.api(owner, 'GET', `/api/servers/${id}`)).body.startup, '');
    } finally {
      failing.delete('update_server');
    }
  });
});
