/** `/ws/client`: every request type × role, plus frame, rate and fan-out limits. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CLIENT_MAX_SOCKETS_PER_SERVER, ClientRequest } from '@cap/protocol';
import WebSocket from 'ws';
import { FakeAgent } from '../../test/fake-agent.ts';
import { type Session, startTestPanel, type TestPanel, until } from '../../test/helpers.ts';

describe('/ws/client', () => {
  let panel: TestPanel;
  let agent: FakeAgent;
  let serverId: string;
  const who: Record<'spectator' | 'admin' | 'owner', Session> = {} as never;

  before(async () => {
    panel = await startTestPanel();
    who.owner = await panel.userWithRole('owner');
    who.admin = await panel.userWithRole('admin');
    who.spectator = await panel.userWithRole('spectator');
    const node = await panel.createNode(who.owner);
    agent = await FakeAgent.start({ panelUrl: panel.url, agentSecret: node.agentSecret });
    await until(() => panel.app.panel.hub.isOnline(node.id));
    const s = await panel.api(who.owner, 'POST', '/api/servers?wait=true', {
      name: 'relay',
      nodeId: node.id,
      image: 'img',
    });
    serverId = s.body.id;
    await panel.api(who.owner, 'POST', `/api/servers/${serverId}/power`, { action: 'start' });
    // a loop that gave up silently would let the tests below run against a stopped server
    await until(
      async () => (await panel.api(who.owner, 'GET', `/api/servers/${serverId}`)).body.status === 'running',
    );
  });
  after(async () => {
    await agent.close();
    await panel.stop();
  });

  test('anonymous and a foreign Origin are refused before the upgrade', async () => {
    const status = (ws: WebSocket) =>
      new Promise<number>((resolve) => {
        ws.once('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0));
        ws.once('open', () => resolve(101));
      });
    const url = `${panel.url.replace('http', 'ws')}/ws/client`;
    assert.equal(await status(new WebSocket(url)), 401);
    assert.equal(await status(new WebSocket(url, { headers: { cookie: 'cap_session=forged' } })), 401);
    assert.equal(
      await status(
        new WebSocket(url, { headers: { cookie: who.owner.cookie, origin: 'https://evil.example' } }),
      ),
      403,
    );
  });

  test('the per-role walk below covers every ClientRequest type', () => {
    const types = ClientRequest.options.map((o) => o.shape.type.value).sort();
    assert.deepEqual(types, ['ping', 'power', 'send_command', 'subscribe', 'unsubscribe']);
  });

  for (const role of ['spectator', 'admin', 'owner'] as const) {
    test(`every request type as ${role}`, async () => {
      const ws = await panel.clientSocket(who[role]);
      ws.send({ type: 'ping' });
      await ws.next((m) => m.type === 'pong');
      ws.send({ type: 'subscribe', serverId });
      const sub = await ws.next((m) => m.type === 'subscribed');
      assert.equal(sub.status, 'running');
      assert.ok(Array.isArray(sub.history));
      ws.send({ type: 'send_command', serverId, command: `echo from-${role}` });
      ws.send({ type: 'power', serverId, action: 'restart' });
      if (role === 'spectator') {
        const e1 = await ws.next((m) => m.type === 'error' && m.requestType === 'send_command');
        const e2 = await ws.next((m) => m.type === 'error' && m.requestType === 'power');
        assert.equal(e1.code, 'FORBIDDEN');
        assert.equal(e2.code, 'FORBIDDEN');
        assert.equal(
          agent.commands.some(
            (c) => c.action === 'send_command' && JSON.stringify(c.payload).includes('from-spectator'),
          ),
          false,
        );
      } else {
        await ws.next((m) => m.type === 'ack' && m.requestType === 'send_command');
        await ws.next((m) => m.type === 'console' && m.lines.includes(`from-${role}`));
        await ws.next((m) => m.type === 'ack' && m.requestType === 'power');
        await ws.next((m) => m.type === 'status' && m.status === 'running');
      }
      ws.send({ type: 'unsubscribe', serverId });
      await ws.next((m) => m.type === 'unsubscribed');
      ws.send({ type: 'subscribe', serverId: 'nope-missing' });
      assert.equal((await ws.next((m) => m.type === 'error')).code, 'SERVER_NOT_FOUND');
      ws.send({ type: 'bogus' });
      assert.equal((await ws.next((m) => m.type === 'error')).code, 'VALIDATION_FAILED');
      ws.close();
    });
  }

  test('a logged-out session loses the socket at once (4401), without sending anything', async () => {
    const s = await panel.login();
    const ws = await panel.clientSocket(s);
    const closed = new Promise<number>((r) => ws.ws.once('close', (c) => r(c)));
    await panel.api(s, 'POST', '/api/auth/logout');
    assert.equal(await closed, 4401);
  });

  test('frames over 32 KiB close the socket with 1009', async () => {
    const ws = await panel.clientSocket(who.owner);
    const closed = new Promise<number>((r) => ws.ws.once('close', (c) => r(c)));
    ws.send({ type: 'send_command', serverId, command: 'x'.repeat(40 * 1024) });
    assert.equal(await closed, 1009);
  });

  test('message rate limit answers RATE_LIMITED', async () => {
    const ws = await panel.clientSocket(who.owner);
    for (let i = 0; i < 15; i++) ws.send({ type: 'ping' });
    const err = await ws.next((m) => m.type === 'error');
    assert.equal(err.code, 'RATE_LIMITED');
    ws.close();
  });

  test(`at most ${CLIENT_MAX_SOCKETS_PER_SERVER} sockets per server`, async () => {
    const sockets = [];
    for (let i = 0; i < CLIENT_MAX_SOCKETS_PER_SERVER; i++) {
      const ws = await panel.clientSocket(who.spectator);
      ws.send({ type: 'subscribe', serverId });
      await ws.next((m) => m.type === 'subscribed');
      sockets.push(ws);
    }
    const extra = await panel.clientSocket(who.spectator);
    extra.send({ type: 'subscribe', serverId });
    assert.equal((await extra.next((m) => m.type === 'error')).code, 'RATE_LIMITED');
    const first = sockets[0];
    assert.ok(first);
    const gone = new Promise((r) => first.ws.once('close', r));
    first.close();
    await gone;
    await until(() => panel.app.panel.live.subscriberCount(serverId) < CLIENT_MAX_SOCKETS_PER_SERVER);
    extra.send({ type: 'subscribe', serverId });
    await extra.next((m) => m.type === 'subscribed');
    for (const s of [...sockets, extra]) s.close();
  });

  test('console lines are batched per server into one message', async () => {
    const ws = await panel.clientSocket(who.owner);
    ws.send({ type: 'subscribe', serverId });
    await ws.next((m) => m.type === 'subscribed');
    for (let i = 0; i < 20; i++) agent.emit('server_log', { serverId, message: `batch-${i}` });
    const m = await ws.next((x) => x.type === 'console' && x.lines.includes('batch-0'));
    assert.ok(m.lines.length > 1, `one message carried ${m.lines.length} lines`);
    ws.close();
  });

  test('a multi-line server_log arrives line for line, empty lines included', async () => {
    const ws = await panel.clientSocket(who.owner);
    ws.send({ type: 'subscribe', serverId });
    await ws.next((m) => m.type === 'subscribed');
    agent.emit('server_log', { serverId, message: 'ml-start\n\nml-mid\n' });
    agent.emit('server_log', { serverId, message: '' });
    agent.emit('server_log', { serverId, message: 'ml-end' });
    const lines: string[] = [];
    while (!lines.includes('ml-end')) lines.push(...(await ws.next((x) => x.type === 'console')).lines);
    assert.deepEqual(lines.slice(lines.indexOf('ml-start')), ['ml-start', '', 'ml-mid', '', '', 'ml-end']);
    ws.close();
  });

  test('a page subscribing after the install gets its output (admins only)', async () => {
    const owner = await panel.clientSocket(who.owner);
    owner.send({ type: 'subscribe', serverId });
    await owner.next((m) => m.type === 'subscribed');
    agent.emit('install_output', { serverId, message: 'fetching with tok-secret\nunpacked' });
    agent.emit('install_completed', { serverId, success: false, exitCode: 3 });
    await owner.next((m) => m.type === 'install_completed');
    owner.close();

    const admin = await panel.clientSocket(who.admin);
    admin.send({ type: 'subscribe', serverId });
    const sub = await admin.next((m) => m.type === 'subscribed');
    assert.deepEqual(sub.install, {
      lines: ['fetching with tok-secret', 'unpacked'],
      success: false,
      exitCode: 3,
    });
    admin.close();
    const spectator = await panel.clientSocket(who.spectator);
    spectator.send({ type: 'subscribe', serverId });
    const sub2 = await spectator.next((m) => m.type === 'subscribed');
    assert.equal(sub2.install, undefined);
    spectator.close();

    // output after a finished install starts a new record, running until its completion
    const again = await panel.clientSocket(who.owner);
    again.send({ type: 'subscribe', serverId });
    await again.next((m) => m.type === 'subscribed');
    agent.emit('install_output', { serverId, message: 'second run' });
    // once relayed live, the Panel has recorded it
    await again.next((m) => m.type === 'install_output');
    again.send({ type: 'subscribe', serverId });
    const sub3 = await again.next((m) => m.type === 'subscribed');
    assert.deepEqual(sub3.install, { lines: ['second run'] });
    again.close();
  });
});
