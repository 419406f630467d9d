/**
 * Cross-node IDOR (Pelican GHSA-v97c-v3vw-p5ff): an Agent authenticated as node A that sends
 * events or responses about node B's servers must change nothing and reach no one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { errorResponse, okResponse, type ResourceSnapshot } from '@cap/protocol';
import { FakeAgent, NO_REPLY } from '../fake-agent.ts';
import { type ClientSocket, type Session, startTestPanel, type TestPanel, until } from '../helpers.ts';

const stats = (serverId: string, cpu: number): ResourceSnapshot & { serverId: string } => ({
  serverId,
  cpu,
  memory: { used: '1m', percentage: 1, usedBytes: 1024 * 1024, limitBytes: 0 },
  network: { rx: 0, tx: 0 },
  disk: { used: '1m', percentage: 0, usedBytes: 1024 * 1024, limitBytes: 0 },
  uptime: 1,
});

describe('an Agent acting on another node’s servers', () => {
  let panel: TestPanel;
  let owner: Session;
  let a: FakeAgent;
  let b: FakeAgent;
  let serverA: string;
  let serverB: string;
  let opB: string;
  let ws: ClientSocket;

  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
    const nodeA = await panel.createNode(owner);
    const nodeB = await panel.createNode(owner);
    a = await FakeAgent.start({ panelUrl: panel.url, agentSecret: nodeA.agentSecret });
    b = await FakeAgent.start({
      panelUrl: panel.url,
      agentSecret: nodeB.agentSecret,
      handlers: { send_command: () => NO_REPLY },
    });
    await until(() => panel.app.panel.hub.isOnline(nodeA.id) && panel.app.panel.hub.isOnline(nodeB.id));
    const mk = async (nodeId: string, name: string) => {
      const r = await panel.api(owner, 'POST', '/api/servers?wait=true', { name, nodeId, image: 'img' });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body.id as string;
    };
    serverA = await mk(nodeA.id, 'on-a');
    serverB = await mk(nodeB.id, 'on-b');
    const started = await panel.api(owner, 'POST', `/api/servers/${serverB}/power`, { action: 'start' });
    opB = started.body.operationId;
    await until(
      async () => (await panel.api(owner, 'GET', `/api/servers/${serverB}`)).body.status === 'running',
    );
    // and its operation has ended (its end is not part of what the tests below look at)
    await until(
      async () => (await panel.api(owner, 'GET', `/api/operations/${opB}`)).body.finishedAt !== null,
    );
    ws = await panel.clientSocket(owner);
    for (const id of [serverA, serverB]) {
      ws.send({ type: 'subscribe', serverId: id });
      await ws.next((m) => m.type === 'subscribed' && m.serverId === id);
    }
  });
  after(async () => {
    ws.close();
    await a.close();
    await b.close();
    await panel.stop();
  });

  test('every per-server event from the wrong node is dropped', async () => {
    ws.messages.length = 0;
    a.emit('server_status_changed', {
      serverId: serverB,
      previousStatus: 'running',
      currentStatus: 'offline',
    });
    a.emit('server_log', { serverId: serverB, message: 'forged <line>' });
    a.emit('server_log_dropped', { serverId: serverB, count: 5, reason: 'throttled' });
    a.emit('resource_update', stats(serverB, 99));
    a.emit('server_crashed', { serverId: serverB, exitCode: 137, oomKilled: true, restarting: false });
    a.emit('server_update_progress', { serverId: serverB, stage: 'failed' });
    a.emit('players_update', { serverId: serverB, online: 64, max: 64, list: [{ name: 'mallory' }] });
    a.emit('install_output', { serverId: serverB, message: 'forged install' });
    a.emit('install_completed', { serverId: serverB, success: false, exitCode: 1 });
    a.emit('operation_progress', { operationId: opB, serverId: serverB, stage: 'forged' });
    a.emit('operation_completed', {
      operationId: opB,
      serverId: serverB,
      action: 'start_server',
      success: false,
      error: { code: 'DOCKER_ERROR', message: 'forged' },
    });
    // Events of one node are handled in order: once A's own line arrives, all of the above were handled.
    a.emit('server_log', { serverId: serverA, message: 'barrier' });
    await ws.next((m) => m.type === 'console' && m.serverId === serverA && m.lines.includes('barrier'));
    await new Promise((r) => setTimeout(r, 100)); // one console batch period and then some
    const aboutB = ws.messages.filter((m) => m.serverId === serverB);
    assert.deepEqual(aboutB, [], JSON.stringify(aboutB));

    const tele = (await panel.api(owner, 'GET', `/api/servers/${serverB}/telemetry`)).body;
    assert.equal(tele.status, 'running');
    assert.equal(tele.console.includes('forged <line>'), false);
    assert.notEqual(tele.stats?.cpu, 99);
    const op = (await panel.api(owner, 'GET', `/api/operations/${opB}`)).body;
    assert.equal(op.success, true);
    assert.equal(op.stage, 'completed');
    const dash = (await panel.api(owner, 'GET', '/api/dashboard')).body;
    assert.equal(dash.players.online, 0);
    // and the same events from the right node do land (the filter is not a blanket drop)
    b.emit('resource_update', stats(serverB, 42));
    await ws.next((m) => m.type === 'stats' && m.serverId === serverB && m.stats.cpu === 42);
  });

  test("a hello listing another node's server does not change it", async () => {
    a.emit('agent_hello', {
      protocolVersion: 1,
      agentVersion: 'evil',
      servers: [{ serverId: serverB, status: 'offline', containerId: null }],
    });
    a.emit('server_log', { serverId: serverA, message: 'barrier-2' });
    await ws.next((m) => m.type === 'console' && m.lines.includes('barrier-2'));
    assert.equal((await panel.api(owner, 'GET', `/api/servers/${serverB}`)).body.status, 'running');
  });

  test("a response to another node's command is ignored; the real Agent's answer decides", async () => {
    const before = b.commands.length;
    const pending = panel.api(owner, 'POST', `/api/servers/${serverB}/command`, { command: 'say hi' });
    const cmd = await b.waitForCommand(
      (c, i = b.commands.indexOf(c)) => i >= before && c.action === 'send_command',
    );
    // A learns (or guesses) the id and answers first
    a.send(okResponse(cmd.id, { serverId: serverB }));
    a.emit('server_log', { serverId: serverA, message: 'barrier-3' });
    await ws.next((m) => m.type === 'console' && m.lines.includes('barrier-3'));
    b.send(errorResponse(cmd.id, 'NOT_RUNNING', 'not running'));
    const r = await pending;
    assert.equal(r.status, 409, JSON.stringify(r.body));
    assert.equal(r.body.code, 'NOT_RUNNING');
  });
});
