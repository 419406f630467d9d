/**
 * /ws/client flooding (Wings CVE-2025-69199 class): ≤ 30 sockets per server even when they all
 * subscribe at once, a per-socket message rate, 32 KiB frames, and a per-user socket cap.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CLIENT_MAX_FRAME_BYTES, CLIENT_MAX_SOCKETS_PER_SERVER } from '@cap/protocol';
import type { FakeAgent } from '../fake-agent.ts';
import {
  type ClientSocket,
  createServer,
  fakeAgentNode,
  type Session,
  startTestPanel,
  type TestPanel,
  until,
} from '../helpers.ts';

const PER_USER = 40;

describe('/ws/client flood limits', () => {
  let panel: TestPanel;
  let owner: Session;
  let agent: FakeAgent;
  let serverId: string;
  const closed = (s: ClientSocket, timeoutMs = 5000) =>
    new Promise<[number, string]>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('the socket stayed open')), timeoutMs);
      s.ws.once('close', (c, why) => {
        clearTimeout(t);
        resolve([c, why.toString()]);
      });
    });

  before(async () => {
    panel = await startTestPanel({ PANEL_CLIENT_SOCKETS_PER_USER: String(PER_USER) });
    owner = await panel.login();
    const node = await fakeAgentNode(panel, owner);
    agent = node.agent;
    serverId = await createServer(panel, owner, node.id, 'flood');
  });
  after(async () => {
    await agent.close();
    await panel.stop();
  });

  test(`${CLIENT_MAX_SOCKETS_PER_SERVER + 8} sockets subscribing at the same instant: exactly ${CLIENT_MAX_SOCKETS_PER_SERVER} get in`, async () => {
    const users = [await panel.userWithRole('spectator'), await panel.userWithRole('spectator')];
    const sockets = await Promise.all(
      Array.from({ length: CLIENT_MAX_SOCKETS_PER_SERVER + 8 }, (_, i) =>
        panel.clientSocket(users[i % 2] as Session),
      ),
    );
    for (const s of sockets) s.send({ type: 'subscribe', serverId });
    const answers = await Promise.all(
      sockets.map((s) =>
        s.next((m) => m.type === 'subscribed' || (m.type === 'error' && m.requestType === 'subscribe')),
      ),
    );
    assert.equal(answers.filter((m) => m.type === 'subscribed').length, CLIENT_MAX_SOCKETS_PER_SERVER);
    assert.ok(answers.filter((m) => m.type === 'error').every((m) => m.code === 'RATE_LIMITED'));
    assert.equal(panel.app.panel.live.subscriberCount(serverId), CLIENT_MAX_SOCKETS_PER_SERVER);
    await Promise.all(
      sockets.map(async (s) => {
        const c = closed(s);
        s.close();
        await c;
      }),
    );
    await until(() => panel.app.panel.live.subscriberCount(serverId) === 0);
  });

  test('a message burst is answered RATE_LIMITED, and a socket that keeps going is closed (1008)', async () => {
    const s = await panel.clientSocket(owner);
    // a message within the budget is served (awaited: each reply follows an async session check,
    // so in a burst the close can overtake the replies of the first, allowed messages)
    s.send({ type: 'ping' });
    await s.next((m) => m.type === 'pong');
    const end = closed(s);
    for (let i = 0; i < 100; i++) s.send({ type: 'ping' });
    const [code, reason] = await end;
    assert.equal(code, 1008);
    assert.match(reason, /RATE_LIMITED/);
    const pongs = s.messages.filter((m) => m.type === 'pong').length;
    assert.ok(pongs <= 10, `${pongs} pongs answered: more than the budget of 10 per 200 ms`);
    assert.ok(s.messages.some((m) => m.type === 'error' && m.code === 'RATE_LIMITED'));
  });

  test('a frame of exactly 32 KiB is read; one byte more closes the socket with 1009', async () => {
    const s = await panel.clientSocket(owner);
    const pad = (n: number) => {
      const base = JSON.stringify({ type: 'ping', pad: '' });
      return JSON.stringify({ type: 'ping', pad: 'x'.repeat(n - base.length) });
    };
    assert.equal(Buffer.byteLength(pad(CLIENT_MAX_FRAME_BYTES)), CLIENT_MAX_FRAME_BYTES);
    s.send(pad(CLIENT_MAX_FRAME_BYTES));
    await s.next((m) => m.type === 'error' || m.type === 'pong');
    const end = closed(s);
    s.send(pad(CLIENT_MAX_FRAME_BYTES + 1));
    assert.equal((await end)[0], 1009);
  });

  test('a frame announcing 1 MiB closes the socket with 1009 from its header, before it is buffered', async () => {
    const s = await panel.clientSocket(owner);
    const end = closed(s, 3000);
    // a masked text frame header saying 1 MiB follows, then only 1 KiB of it: a Panel that
    // buffers up to the announced length would wait for the rest and never answer
    const len = 1024 * 1024;
    const header = Buffer.alloc(14);
    header[0] = 0x81; // FIN + text
    header[1] = 0x80 | 127; // masked, 64-bit length
    header.writeBigUInt64BE(BigInt(len), 2);
    header.writeUInt32BE(0x01020304, 10); // mask key
    const socket = (s.ws as unknown as { _socket: import('node:net').Socket })._socket;
    socket.write(Buffer.concat([header, Buffer.alloc(1024, 0x41)]));
    assert.equal((await end)[0], 1009);
    // the Panel is up and serves others
    const other = await panel.clientSocket(owner);
    other.send({ type: 'ping' });
    await other.next((m) => m.type === 'pong');
    other.close();
  });

  test(`one user cannot hold more than ${PER_USER} sockets; others are unaffected; closing frees a slot`, async () => {
    const flooder = await panel.userWithRole('spectator');
    const held = await Promise.all(Array.from({ length: PER_USER }, () => panel.clientSocket(flooder)));
    for (const s of held) {
      s.send({ type: 'ping' });
      await s.next((m) => m.type === 'pong');
    }
    const extra = await panel.clientSocket(flooder);
    const [code, reason] = await closed(extra);
    assert.equal(code, 1008);
    assert.match(reason, /^RATE_LIMITED/);
    const bystander = await panel.clientSocket(owner);
    bystander.send({ type: 'ping' });
    await bystander.next((m) => m.type === 'pong');
    bystander.close();
    const first = held[0] as ClientSocket;
    const gone = closed(first);
    first.close();
    await gone;
    let again: ClientSocket | undefined;
    await until(async () => {
      const s = await panel.clientSocket(flooder);
      s.send({ type: 'ping' });
      const ok = await s
        .next((m) => m.type === 'pong', 300)
        .then(
          () => true,
          () => false,
        );
      if (ok) again = s;
      else s.close();
      return ok;
    });
    again?.close();
    for (const s of held.slice(1)) s.close();
  });
});
