import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PROTOCOL_VERSION } from '@cap/protocol';
import WebSocket from 'ws';
import { connectAgentSocket, FakeAgent, NO_REPLY, registerAgent } from '../../test/fake-agent.ts';
import { type Session, startTestPanel, type TestPanel, until } from '../../test/helpers.ts';

describe('agents: registration, socket, heartbeat', () => {
  let panel: TestPanel;
  let owner: Session;
  before(async () => {
    panel = await startTestPanel({ PANEL_AGENT_PING_MS: '100' });
    owner = await panel.login();
  });
  after(async () => panel.stop());

  test('a wrong secret gets 401 AUTH_FAILED; the right one gets seed-003 credentials', async () => {
    const node = await panel.createNode(owner);
    const bad = await registerAgent(panel.url, 'cas_wrong');
    assert.equal(bad.status, 401);
    assert.equal(bad.body.code, 'AUTH_FAILED');
    const good = await registerAgent(panel.url, node.agentSecret);
    assert.equal(good.status, 200);
    assert.equal(good.body.success, true);
    assert.equal(good.body.agent.id, node.id);
    assert.match(good.body.agent.websocketUrl, /^ws:\/\/127\.0\.0\.1:\d+\/ws\/agents$/);
    assert.ok(good.body.agent.token.split('.').length === 3);
    assert.ok(good.body.agent.refreshToken);
  });

  test('refresh tokens rotate and a reused one revokes them all', async () => {
    const node = await panel.createNode(owner);
    const reg = await registerAgent(panel.url, node.agentSecret);
    const refresh = (token: string, agentId = node.id) =>
      fetch(`${panel.url}/api/agents/refresh`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-agent-id': agentId },
        body: JSON.stringify({ refreshToken: token }),
      });
    const r1 = await refresh(reg.body.agent.refreshToken);
    assert.equal(r1.status, 200);
    const b1 = (await r1.json()) as { agent: { refreshToken: string } };
    assert.notEqual(b1.agent.refreshToken, reg.body.agent.refreshToken);
    const replay = await refresh(reg.body.agent.refreshToken);
    assert.equal(replay.status, 401);
    assert.equal(((await replay.json()) as { code: string }).code, 'AUTH_FAILED');
    // the replay revoked the newer token too
    const r2 = await refresh(b1.agent.refreshToken);
    assert.equal(r2.status, 401);
  });

  test('the socket needs a valid token and matching X-Agent-ID (401 before the upgrade)', async () => {
    const node = await panel.createNode(owner);
    const reg = await registerAgent(panel.url, node.agentSecret);
    const status = (ws: WebSocket) =>
      new Promise<number>((resolve) => {
        ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.once('open', () => resolve(101));
      });
    assert.equal(await status(connectAgentSocket(reg.body.agent.websocketUrl, 'nope', node.id)), 401);
    assert.equal(
      await status(connectAgentSocket(reg.body.agent.websocketUrl, reg.body.agent.token, 'other')),
      401,
    );
  });

  test('an incompatible protocol version is refused with a reason', async () => {
    const node = await panel.createNode(owner);
    const reg = await registerAgent(panel.url, node.agentSecret);
    const ws = connectAgentSocket(
      reg.body.agent.websocketUrl,
      reg.body.agent.token,
      node.id,
      PROTOCOL_VERSION + 98,
    );
    const [code, reason] = await new Promise<[number, string]>((resolve) =>
      ws.once('close', (c, r) => resolve([c, r.toString()])),
    );
    assert.equal(code, 4406);
    assert.match(reason, /^PROTOCOL_INCOMPATIBLE/);
  });

  test('online with system info and heartbeat; a second connection replaces the first; silence → offline', async () => {
    const node = await panel.createNode(owner);
    const a1 = await FakeAgent.start({ panelUrl: panel.url, agentSecret: node.agentSecret });
    await until(
      async () => (await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body.systemInfo !== null,
    );
    await until(async () => (await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body.load !== null);
    const n = (await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body;
    assert.equal(n.online, true);
    assert.equal(n.systemInfo.dockerVersion, '20.10.24');
    assert.equal(n.systemInfo.kernel, '6.1.0-fake');
    assert.ok(n.lastHeartbeatAt);
    assert.equal(n.protocolVersion, PROTOCOL_VERSION);

    const closed = new Promise<number>((r) => a1.ws.once('close', (c) => r(c)));
    const a2 = await FakeAgent.start({ panelUrl: panel.url, agentSecret: node.agentSecret, pong: false });
    assert.equal(await closed, 4000);
    assert.equal((await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body.online, true);
    // a2 never answers pings: after 3 missed pongs (ping every 100 ms) the Panel drops it
    await until(
      async () => (await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body.online === false,
      3000,
    );
    assert.ok(a2.pings >= 3);
    await a2.close();
  });

  test('an unanswered command fails with TIMEOUT; an offline node with AGENT_OFFLINE', async () => {
    const slow = await startTestPanel({ PANEL_COMMAND_TIMEOUT_MS: '200' });
    try {
      const o = await slow.login();
      const node = await slow.createNode(o);
      const a = await FakeAgent.start({
        panelUrl: slow.url,
        agentSecret: node.agentSecret,
        handlers: { send_command: () => NO_REPLY },
      });
      await until(() => slow.app.panel.hub.isOnline(node.id));
      const s = await slow.api(o, 'POST', '/api/servers?wait=true', {
        name: 't',
        nodeId: node.id,
        image: 'img',
      });
      const r = await slow.api(o, 'POST', `/api/servers/${s.body.id}/command`, { command: 'hello' });
      assert.equal(r.status, 504);
      assert.equal(r.body.code, 'TIMEOUT');
      await a.close();
      await until(() => !slow.app.panel.hub.isOnline(node.id));
      const p = await slow.api(o, 'POST', `/api/servers/${s.body.id}/power`, { action: 'start' });
      assert.equal(p.status, 503);
      assert.equal(p.body.code, 'AGENT_OFFLINE');
    } finally {
      await slow.stop();
    }
  });

  test('invalid agent frames are counted, never fatal', async () => {
    const node = await panel.createNode(owner);
    const a = await FakeAgent.start({ panelUrl: panel.url, agentSecret: node.agentSecret });
    const before = panel.app.panel.hub.invalidMessages;
    a.send('not json');
    a.send({ type: 'event', event: 'resource_update', data: { nope: 1 } });
    a.send({ type: 'what' });
    await until(() => panel.app.panel.hub.invalidMessages >= before + 3);
    assert.equal(a.ws.readyState, WebSocket.OPEN);
    await a.close();
  });

  test('an Agent frame over the browsers 32 KiB limit is read (its socket has its own limit)', async () => {
    const node = await panel.createNode(owner);
    const a = await FakeAgent.start({ panelUrl: panel.url, agentSecret: node.agentSecret });
    const before = panel.app.panel.hub.invalidMessages;
    a.send({ type: 'event', event: 'resource_update', data: { pad: 'x'.repeat(200 * 1024) } });
    await until(() => panel.app.panel.hub.invalidMessages > before);
    assert.equal(a.ws.readyState, WebSocket.OPEN);
    await a.close();
  });

  test('a console flood from one Agent is cut at the per-second line budget, the socket stays', async () => {
    const small = await startTestPanel({ PANEL_AGENT_LINES_PER_SECOND: '1000' });
    try {
      const o = await small.login();
      const node = await small.createNode(o);
      const a = await FakeAgent.start({ panelUrl: small.url, agentSecret: node.agentSecret });
      for (let i = 0; i < 3000; i++) a.emit('server_log', { serverId: 'not-mine', message: 'x' });
      await until(() => small.app.panel.hub.droppedLines >= 2000, 5000);
      assert.equal(a.ws.readyState, WebSocket.OPEN);
      await a.close();
    } finally {
      await small.stop();
    }
  });
});

describe('servers through a (fake) Agent and the /ws/client relay', () => {
  let panel: TestPanel;
  let owner: Session;
  let agent: FakeAgent;
  let nodeId: string;
  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
    const node = await panel.createNode(owner);
    nodeId = node.id;
    agent = await FakeAgent.start({ panelUrl: panel.url, agentSecret: node.agentSecret });
    await until(async () => (await panel.api(owner, 'GET', `/api/nodes/${nodeId}`)).body.online === true);
  });
  after(async () => {
    await agent.close();
    await panel.stop();
  });

  test('create, start, console, command, config update, stop, delete', async () => {
    const created = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'box',
      nodeId,
      image: 'ctrl-alt-play/busybox:latest',
      startup: 'sh',
      environment: { GREETING: 'hello' },
      ports: { '25565': 25565 },
      limits: { memory: '256m' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    assert.equal(created.body.status, 'offline');
    const createCmd = await agent.waitForCommand((c) => c.action === 'create_server');
    assert.deepEqual((createCmd.payload as { eggConfig: { environment: unknown } }).eggConfig.environment, {
      GREETING: 'hello',
    });

    const ws = await panel.clientSocket(owner);
    ws.send({ type: 'subscribe', serverId: id });
    const sub = await ws.next((m) => m.type === 'subscribed');
    assert.equal(sub.status, 'offline');

    const power = await panel.api(owner, 'POST', `/api/servers/${id}/power`, { action: 'start' });
    assert.equal(power.status, 202);
    await ws.next((m) => m.type === 'status' && m.status === 'running');
    const line = await ws.next((m) => m.type === 'console');
    assert.deepEqual(line.lines, ['started with GREETING=hello']);
    assert.equal((await panel.api(owner, 'GET', `/api/servers/${id}`)).body.status, 'running');

    ws.send({ type: 'send_command', serverId: id, command: 'echo pong-42' });
    await ws.next((m) => m.type === 'ack' && m.requestType === 'send_command');
    await ws.next((m) => m.type === 'console' && m.lines.includes('pong-42'));

    agent.emit('resource_update', {
      serverId: id,
      cpu: 12,
      memory: { used: '10m', percentage: 4, usedBytes: 10 * 1024 * 1024, limitBytes: 256 * 1024 * 1024 },
      network: { rx: 1, tx: 2 },
      disk: { used: '1m', percentage: 0, usedBytes: 1024 * 1024, limitBytes: 0 },
      uptime: 3,
    });
    await ws.next((m) => m.type === 'stats' && m.stats.cpu === 12);
    const tele = await panel.api(owner, 'GET', `/api/servers/${id}/telemetry`);
    assert.equal(tele.status, 200);
    assert.equal(tele.body.status, 'running');
    assert.ok(tele.body.console.includes('pong-42'));
    assert.equal(tele.body.stats.cpu, 12);
    assert.equal(tele.body.metrics.length, 1);
    assert.equal(tele.body.metrics[0].cpu, 12);
    const week = await panel.api(owner, 'GET', `/api/servers/${id}/metrics?range=7d`);
    assert.equal(week.status, 200);
    assert.equal(week.body.length, 1);
    const badRange = await panel.api(owner, 'GET', `/api/servers/${id}/metrics?range=1y`);
    assert.equal(badRange.status, 400);
    assert.equal(badRange.body.code, 'VALIDATION_FAILED');

    const upd = await panel.api(owner, 'PUT', `/api/servers/${id}/config?wait=true`, {
      environment: { GREETING: 'bonjour' },
    });
    assert.equal(upd.status, 200, JSON.stringify(upd.body));
    assert.equal(upd.body.ok, true);
    await ws.next((m) => m.type === 'update_progress' && m.stage === 'done');
    const after1 = await panel.api(owner, 'GET', `/api/servers/${id}`);
    assert.deepEqual(after1.body.environment, { GREETING: 'bonjour' });
    assert.equal(after1.body.lastUpdate.ok, true);
    const async202 = await panel.api(owner, 'PUT', `/api/servers/${id}/config`, {
      environment: { GREETING: 'hi' },
    });
    assert.equal(async202.status, 202);
    assert.ok(async202.body.operationId);

    const renamed = await panel.api(owner, 'PATCH', `/api/servers/${id}`, { name: 'renamed' });
    assert.equal(renamed.status, 200);
    assert.equal(renamed.body.name, 'renamed');
    const updatesBefore = agent.commands.filter((c) => c.action === 'update_server').length;
    const restart = await panel.api(owner, 'PATCH', `/api/servers/${id}?wait=true`, {
      startup: 'sh -c true',
    });
    assert.equal(restart.status, 200);
    assert.equal(restart.body.startup, 'sh -c true');
    const updates = agent.commands.filter((c) => c.action === 'update_server');
    assert.equal(
      updates.length,
      updatesBefore + 1,
      'a rename alone does not recreate; a startup change does',
    );
    assert.equal((updates.at(-1)?.payload as { startup?: string } | undefined)?.startup, 'sh -c true');

    const files = await panel.api(owner, 'GET', `/api/servers/${id}/files?path=/`);
    assert.equal(files.status, 200);
    assert.equal(files.body.entries[0].name, 'server.properties');

    await panel.api(owner, 'POST', `/api/servers/${id}/power`, { action: 'stop' });
    await ws.next((m) => m.type === 'status' && m.status === 'offline');

    const dash = await panel.api(owner, 'GET', '/api/dashboard');
    assert.equal(dash.status, 200);
    assert.equal(dash.body.totals.servers, 1);
    assert.equal(dash.body.totals.online, 1);

    const del = await panel.api(owner, 'DELETE', `/api/servers/${id}`);
    assert.equal(del.status, 204);
    await ws.next((m) => m.type === 'unsubscribed' && m.serverId === id);
    assert.equal((await panel.api(owner, 'GET', `/api/servers/${id}`)).status, 404);
    assert.equal(agent.servers.has(id), false);
    ws.close();
  });

  test('agent errors keep their code; a server on an offline node is refused with nothing stored', async () => {
    const created = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'x',
      nodeId,
      image: 'img',
    });
    const id = created.body.id as string;
    const cmd = await panel.api(owner, 'POST', `/api/servers/${id}/command`, { command: 'say hi' });
    assert.equal(cmd.status, 409);
    assert.equal(cmd.body.code, 'NOT_RUNNING');
    assert.ok(cmd.body.requestId);

    const off = await panel.createNode(owner);
    const before = (await panel.api(owner, 'GET', '/api/servers')).body.length;
    const r = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'y',
      nodeId: off.id,
      image: 'img',
    });
    assert.equal(r.status, 503);
    assert.equal(r.body.code, 'AGENT_OFFLINE');
    assert.equal((await panel.api(owner, 'GET', '/api/servers')).body.length, before);
  });

  test('events for servers of another node are ignored', async () => {
    const created = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'mine',
      nodeId,
      image: 'img',
    });
    const id = created.body.id as string;
    const other = await panel.createNode(owner);
    const intruder = await FakeAgent.start({ panelUrl: panel.url, agentSecret: other.agentSecret });
    intruder.emit('server_status_changed', {
      serverId: id,
      previousStatus: 'offline',
      currentStatus: 'running',
    });
    // A barrier on the intruder's own socket (messages are handled in order): a pong whose load
    // lands only after the event above was handled. A marker from the other Agent would not do:
    // two sockets give no order, and the test would pass before the forged event arrived.
    intruder.send({
      id: 'pong-barrier',
      type: 'pong',
      timestamp: new Date().toISOString(),
      data: { agentStatus: 'healthy', activeServers: 0, systemLoad: { cpu: 77.7, memory: 1, disk: 1 } },
    });
    await until(
      async () => (await panel.api(owner, 'GET', `/api/nodes/${other.id}`)).body.load?.cpu === 77.7,
    );
    assert.equal((await panel.api(owner, 'GET', `/api/servers/${id}`)).body.status, 'offline');
    await intruder.close();
  });

  test('numbered console lines: a jump is reported with its count, lines sent again are skipped', async () => {
    const created = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'numbered',
      nodeId,
      image: 'ctrl-alt-play/busybox:latest',
      startup: 'sh',
      limits: { memory: '64m' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    const ws = await panel.clientSocket(owner);
    try {
      ws.send({ type: 'subscribe', serverId: id });
      await ws.next((m) => m.type === 'subscribed');
      const log = (message: string, seq: number) =>
        agent.emit('server_log', { serverId: id, message, stream: 'stdout', seq, epoch: 'e1' });
      log('l1\nl2', 2);
      log('l5', 5); // 3 and 4 never came (a dead socket)
      log('l4\nl5\nl6', 6); // sent again after a reconnect: 4 was counted already, 5 shown
      log('l7', 7);
      // a new Agent process: its count starts afresh
      agent.emit('server_log', { serverId: id, message: 'n1', stream: 'stdout', seq: 1, epoch: 'e2' });
      const last = await ws.next((m) => m.type === 'console' && m.lines.includes('n1'));
      // (next takes the message it returns out of the list)
      const seen = [...ws.messages, last].flatMap((m) =>
        m.type === 'console'
          ? m.lines
          : m.type === 'console_dropped'
            ? [`dropped ${m.count} ${m.reason}`]
            : [],
      );
      assert.deepEqual(seen, ['l1', 'l2', 'dropped 2 lost_in_transit', 'l5', 'l6', 'l7', 'n1']);
    } finally {
      ws.close();
    }
    assert.equal((await panel.api(owner, 'DELETE', `/api/servers/${id}`)).status, 204);
  });
});
