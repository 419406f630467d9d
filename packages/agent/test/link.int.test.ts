/** The Panel link and the HTTP API: registration, heartbeats, reconnects, outbox, refresh, re-attach. */
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { type EventMessage, type PongMessage, PROTOCOL_VERSION } from '@cap/protocol';
import { docker, egg, fixture, sleep, uid } from './helpers.ts';

const API_KEY = 'test-api-key-0123456789abcdef';

test('registers with the secret, stores credentials 0600, connects with headers, says hello first', async (t) => {
  const f = await fixture({ env: { AGENT_NAME: 'node-under-test' } });
  t.after(() => f.cleanup());
  await f.panel.waitConnected();
  const reg = f.panel.registrations[0]!;
  assert.equal(reg.headers.authorization, `Bearer ${f.panel.secret}`);
  const body = reg.body as {
    name: string;
    hostname: string;
    port: number;
    capabilities: {
      maxMemory: string;
      maxCpuCores: number;
      dockerVersion: string;
      supportedArchitectures: string[];
    };
    protocolVersion: number;
  };
  assert.equal(body.name, 'node-under-test');
  assert.equal(body.port, f.agent.httpPort);
  assert.match(body.capabilities.maxMemory, /^\d+(\.\d)?[mg]$/);
  assert.ok(body.capabilities.maxCpuCores >= 1);
  assert.match(body.capabilities.dockerVersion, /^\d+\./);
  assert.ok(body.capabilities.supportedArchitectures.length > 0);
  assert.equal(body.protocolVersion, PROTOCOL_VERSION);
  const file = path.join(f.dataDir, 'credentials.json');
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  const stored = JSON.parse(await readFile(file, 'utf8')) as { agent: Record<string, string> };
  for (const k of ['id', 'token', 'refreshToken', 'websocketUrl']) assert.ok(stored.agent[k], k);
  const hdr = f.panel.connections[0]!;
  assert.equal(hdr.authorization, `Bearer ${stored.agent.token}`);
  assert.equal(hdr['x-agent-id'], f.panel.agentId);
  assert.equal(hdr['x-protocol-version'], String(PROTOCOL_VERSION));
  const hello = await f.panel.waitFor((m) => m.type === 'event');
  assert.equal((hello as EventMessage).event, 'agent_hello');
  // pings are answered with pongs carrying the seed's fields
  const pong = (await f.panel.waitFor((m) => m.type === 'pong')) as PongMessage;
  assert.equal(pong.data.agentStatus, 'healthy');
  assert.equal(pong.data.activeServers, 0);
  assert.equal(typeof pong.data.systemLoad.cpu, 'number');
  // a restarted Agent reuses its stored credentials instead of registering again
  await f.restartAgent();
  // the second connection proves the new Agent is through its start (registration comes before it)
  const t0 = Date.now();
  while (f.panel.connections.length < 2 || !f.panel.connected) {
    if (Date.now() - t0 > 10_000) assert.fail('the restarted Agent did not connect');
    await sleep(20);
  }
  assert.equal(f.panel.registrations.length, 1);
  assert.deepEqual(f.panel.invalid, []);
});

test('status changes and console lines made while the Panel is away arrive after hello, numbered', async (t) => {
  const f = await fixture({ env: { AGENT_API_KEY: API_KEY } });
  t.after(() => f.cleanup());
  await f.panel.waitConnected();
  f.panel.refuseUpgrades = true;
  f.panel.dropAgent();
  await sleep(100);
  assert.equal(f.agent.panelConnected, false);
  // drive the Agent over its HTTP API meanwhile
  const id = uid('away-');
  const base = `http://127.0.0.1:${f.agent.httpPort}`;
  const post = (p: string, body: unknown) =>
    fetch(`${base}${p}`, {
      method: 'POST',
      headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const created = await post('/api/command', {
    id: 'c1',
    type: 'command',
    timestamp: new Date().toISOString(),
    action: 'create_server',
    payload: { serverId: id, eggConfig: egg('echo one; echo two; echo three; sleep 1000') },
  });
  assert.equal(created.status, 200);
  const started = await post(`/api/servers/${id}/start`, {});
  assert.equal(started.status, 200);
  await sleep(500);
  const mark = f.panel.received.length;
  f.panel.refuseUpgrades = false;
  await f.panel.waitConnected();
  await f.panel.waitEvent('server_log', (d) => d.serverId === id && d.message.includes('three'), {
    since: mark,
  });
  const after = f.panel.received.slice(mark);
  // the lines waited in the outbox (within its budget: none counted as dropped), numbered 1…3
  const logs = after.filter(
    (m): m is EventMessage<'server_log'> =>
      m.type === 'event' && m.event === 'server_log' && (m.data as { serverId?: string }).serverId === id,
  );
  assert.deepEqual(
    logs.flatMap((m) => m.data.message.split('\n')),
    ['one', 'two', 'three'],
  );
  assert.equal(logs.at(-1)?.data.seq, 3);
  assert.ok(!after.some((m) => m.type === 'event' && m.event === 'server_log_dropped'));
  assert.equal(after[0]?.type === 'event' && after[0].event, 'agent_hello');
  const statuses = after
    .filter(
      (m): m is EventMessage<'server_status_changed'> =>
        m.type === 'event' && m.event === 'server_status_changed',
    )
    .map((m) => `${m.data.previousStatus}>${m.data.currentStatus}`);
  assert.deepEqual(statuses, ['offline>starting', 'starting>running']);
  const hello = after[0] as EventMessage<'agent_hello'>;
  assert.deepEqual(
    hello.data.servers.map((s) => [s.serverId, s.status]),
    [[id, 'running']],
  );
});

test('three missed heartbeats: the link is declared dead and re-established', async (t) => {
  const f = await fixture();
  t.after(() => f.cleanup());
  await f.panel.waitConnected();
  const before = f.panel.connections.length;
  f.panel.silent = true; // connection stays open, but nothing arrives
  const t0 = Date.now();
  while (f.panel.connections.length === before) {
    if (Date.now() - t0 > 10_000) assert.fail('agent did not reconnect');
    await sleep(50);
  }
  const took = Date.now() - t0;
  assert.ok(took >= 1400, `declared dead after ${took} ms (3 × 500 ms heartbeat)`);
  f.panel.silent = false;
});

test('tokens are refreshed before they expire; a refused refresh leads to a new registration', async (t) => {
  const f = await fixture({ panel: { tokenTtlMs: 1500 } });
  t.after(() => f.cleanup());
  await f.panel.waitConnected();
  const t0 = Date.now();
  while (f.panel.refreshes.length === 0) {
    if (Date.now() - t0 > 5000) assert.fail('no refresh');
    await sleep(50);
  }
  const r = f.panel.refreshes[0]!;
  assert.equal(r.headers['x-agent-id'], f.panel.agentId);
  assert.ok((r.body as { refreshToken: string }).refreshToken.startsWith('ref_'));
  f.panel.refuseRefresh = true;
  const regs = f.panel.registrations.length;
  while (f.panel.registrations.length === regs) {
    if (Date.now() - t0 > 10_000) assert.fail('no re-registration after a refused refresh');
    await sleep(50);
  }
  assert.equal(f.panel.registrations.at(-1)!.headers.authorization, `Bearer ${f.panel.secret}`);
});

test('an upgrade refused with 401 makes the Agent refresh, then connect again', async (t) => {
  const f = await fixture();
  t.after(() => f.cleanup());
  await f.panel.waitConnected();
  f.panel.validTokens.clear();
  f.panel.dropAgent();
  const t0 = Date.now();
  while (f.panel.refreshes.length === 0 || !f.panel.connected) {
    if (Date.now() - t0 > 10_000) assert.fail('did not recover from a 401 upgrade');
    await sleep(50);
  }
  assert.equal(f.panel.connections.length, 2);
});

test('a PROTOCOL_INCOMPATIBLE close backs off instead of hammering the Panel', async (t) => {
  const f = await fixture();
  t.after(() => f.cleanup());
  await f.panel.waitConnected();
  f.panel.closeWith = { code: 4406, reason: 'PROTOCOL_INCOMPATIBLE: panel speaks 2' };
  f.panel.dropAgent();
  const t0 = Date.now();
  while (f.panel.connections.length < 2) {
    if (Date.now() - t0 > 5000) assert.fail('no reconnect attempt');
    await sleep(20);
  }
  await sleep(2000);
  // after the incompatible close the next attempt waits ≥ 15 s (the cap is 30 s)
  assert.equal(f.panel.connections.length, 2);
});

test('registration refused with PROTOCOL_INCOMPATIBLE (a Panel of another release): a long backoff, not a retry loop', async (t) => {
  const f = await fixture({
    panel: {
      registerAnswer: {
        status: 400,
        body: {
          code: 'PROTOCOL_INCOMPATIBLE',
          message: 'panel supports [2], agent sent 1: an older Agent, upgrade it',
          requestId: 'r1',
        },
      },
    },
  });
  t.after(() => f.cleanup());
  const t0 = Date.now();
  while (f.panel.registrations.length < 1) {
    if (Date.now() - t0 > 5000) assert.fail('no registration attempt');
    await sleep(20);
  }
  await sleep(2500);
  // a plain failure retries within 0.5 s, then 1 s, 2 s…; an incompatible Panel waits ≥ 15 s
  assert.equal(f.panel.registrations.length, 1);
  assert.equal(f.agent.panelConnected, false);
});

test('HTTP: /health without auth, commands with X-API-Key (not the Panel token), CORS on /transfers from config', async (t) => {
  const f = await fixture({ env: { AGENT_API_KEY: API_KEY, AGENT_CORS_ORIGINS: 'http://ui.example' } });
  t.after(() => f.cleanup());
  await f.panel.waitConnected();
  const base = `http://127.0.0.1:${f.agent.httpPort}`;
  const health = (await (await fetch(`${base}/health`)).json()) as {
    status: string;
    protocolVersion: number;
    docker: { reachable: boolean };
    panel: { connected: boolean };
  };
  assert.equal(health.status, 'ok');
  assert.equal(health.protocolVersion, PROTOCOL_VERSION);
  assert.equal(health.docker.reachable, true);
  assert.equal(health.panel.connected, true);
  const cmd = {
    id: 'h1',
    type: 'command',
    timestamp: new Date().toISOString(),
    action: 'list_servers',
    payload: {},
  };
  const call = (headers: Record<string, string>) =>
    fetch(`${base}/api/command`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(cmd),
    });
  assert.equal((await call({})).status, 401);
  assert.equal((await call({ 'x-api-key': 'wrong-key-wrong-key' })).status, 401);
  assert.equal((await call({ 'x-api-key': API_KEY })).status, 200);
  assert.equal((await call({ authorization: `Bearer ${API_KEY}` })).status, 200);
  const stored = JSON.parse(await readFile(path.join(f.dataDir, 'credentials.json'), 'utf8'));
  // the Panel's token is for the link only (issue 8, item 23)
  assert.equal((await call({ authorization: `Bearer ${stored.agent.token}` })).status, 401);
  const notFound = await fetch(`${base}/api/servers/nope/start`, {
    method: 'POST',
    headers: { 'x-api-key': API_KEY },
  });
  assert.equal(notFound.status, 404);
  assert.equal(((await notFound.json()) as { error: { code: string } }).error.code, 'SERVER_NOT_FOUND');
  // CORS is for /transfers/* only: the allowed origin gets a preflight answer there, nowhere else
  const ticket = 'A'.repeat(43);
  const cors = await fetch(`${base}/transfers/${ticket}`, {
    method: 'OPTIONS',
    headers: { origin: 'http://ui.example', 'access-control-request-method': 'PUT' },
  });
  assert.equal(cors.status, 204);
  assert.equal(cors.headers.get('access-control-allow-origin'), 'http://ui.example');
  const noCors = await fetch(`${base}/transfers/${ticket}`, {
    method: 'OPTIONS',
    headers: { origin: 'http://evil.example', 'access-control-request-method': 'PUT' },
  });
  assert.equal(noCors.status, 403);
  assert.equal(noCors.headers.get('access-control-allow-origin'), null);
  const healthCors = await fetch(`${base}/health`, { headers: { origin: 'http://ui.example' } });
  assert.equal(healthCors.headers.get('access-control-allow-origin'), null);
});

test('an Agent restart re-attaches to its running container without restarting it', async (t) => {
  const f = await fixture();
  t.after(() => f.cleanup());
  await f.panel.waitConnected();
  const id = uid('keep-');
  await f.panel.command('create_server', {
    serverId: id,
    eggConfig: egg('echo ready; while read l; do echo "got:$l"; done', { done: 'ready' }),
  });
  await f.panel.command('start_server', {}, { serverId: id });
  await f.panel.waitEvent('server_status_changed', (d) => d.serverId === id && d.currentStatus === 'running');
  const before = await docker.getContainer(`cap-${id}`).inspect();
  await f.agent.stop();
  assert.equal(
    (await docker.getContainer(`cap-${id}`).inspect()).State.Running,
    true,
    'stop() leaves it running',
  );
  const mark = f.panel.received.length;
  await f.restartAgent();
  const hello = await f.panel.waitEvent('agent_hello', () => true, { since: mark });
  assert.deepEqual(
    hello.data.servers.map((s) => [s.serverId, s.status, s.containerId]),
    [[id, 'running', before.Id]],
  );
  const after = await docker.getContainer(`cap-${id}`).inspect();
  assert.equal(after.State.StartedAt, before.State.StartedAt);
  assert.equal(after.State.Pid, before.State.Pid);
  // console and stats are re-attached
  const res = await f.panel.command('send_command', { command: 'still here' }, { serverId: id });
  assert.equal(res.success, true);
  await f.panel.waitEvent('server_log', (d) => d.serverId === id && d.message === 'got:still here', {
    since: mark,
  });
  await f.panel.waitEvent('resource_update', (d) => d.serverId === id, { since: mark });
  // and its exit is still watched: a kill is not a crash
  await f.panel.command('kill_server', {}, { serverId: id });
  await f.panel.waitEvent(
    'server_status_changed',
    (d) => d.serverId === id && d.currentStatus === 'offline',
    {
      since: mark,
    },
  );
  assert.equal(f.panel.events('server_crashed').length, 0);
});

test('with Docker unreachable the Agent still boots: /health degraded, commands answer DOCKER_ERROR', async (t) => {
  const f = await fixture({
    env: { DOCKER_HOST: 'unix:///tmp/cap-no-such-docker.sock', AGENT_API_KEY: API_KEY },
  });
  t.after(() => f.cleanup());
  await f.panel.waitConnected();
  const health = (await (await fetch(`http://127.0.0.1:${f.agent.httpPort}/health`)).json()) as {
    status: string;
    docker: { reachable: boolean };
  };
  assert.equal(health.status, 'degraded');
  assert.equal(health.docker.reachable, false);
  const res = await f.panel.command('create_server', { serverId: uid('nd-'), eggConfig: egg('true') });
  assert.equal(res.error?.code, 'DOCKER_ERROR');
  const pong = (await f.panel.waitFor((m) => m.type === 'pong')) as PongMessage;
  assert.equal(pong.data.agentStatus, 'degraded');
});
