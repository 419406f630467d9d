import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import type { ClientMessage } from '@cap/protocol/client.ts';
import { WebSocketServer, type WebSocket as WsSocket } from 'ws';
import { backoffDelay, LiveClient, type LiveState, SEND_PER_WINDOW, SEND_WINDOW_MS } from './live-client.ts';

test('backoff doubles from 0.5 s, is capped at 10 s, and jitters by at most 20 %', () => {
  assert.equal(
    backoffDelay(0, () => 0.5),
    500,
  );
  assert.equal(
    backoffDelay(1, () => 0.5),
    1000,
  );
  assert.equal(
    backoffDelay(3, () => 0.5),
    4000,
  );
  assert.equal(
    backoffDelay(50, () => 0.5),
    10_000,
  );
  assert.equal(
    backoffDelay(0, () => 0),
    400,
  );
  assert.equal(
    backoffDelay(0, () => 0.999999),
    600,
  );
});

/** A stand-in relay that records what the client sends and lets the test drop the connection. */
async function relay() {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await once(wss, 'listening');
  const received: unknown[] = [];
  const sockets: WsSocket[] = [];
  wss.on('connection', (ws) => {
    sockets.push(ws);
    ws.on('message', (data) => received.push(JSON.parse(String(data))));
  });
  const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/ws/client`;
  return { wss, received, sockets, url };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('subscriptions are ref-counted, re-sent after a reconnect, and bad frames are dropped', async (t) => {
  const r = await relay();
  t.after(() => r.wss.close());
  const client = new LiveClient(r.url);
  const states: LiveState[] = [];
  client.onState(() => states.push(client.getState()));
  const got: ClientMessage[] = [];
  client.onMessage((m) => got.push(m));
  t.after(() => client.stop());

  const offA = client.subscribe('srv-a'); // before the socket is open: sent on open
  client.start();
  await until(() => client.getState() === 'open');
  await until(() => r.received.length >= 1);
  assert.deepEqual(r.received[0], { type: 'subscribe', serverId: 'srv-a' });
  const offA2 = client.subscribe('srv-a');
  assert.equal(r.received.length, 1, 'a second subscriber does not subscribe again');

  const ws = r.sockets[0]!;
  ws.send('not json');
  ws.send(JSON.stringify({ type: 'console', serverId: 'srv-a', lines: 'not an array' }));
  ws.send(JSON.stringify({ type: 'console', serverId: 'srv-a', lines: ['hello'] }));
  await until(() => got.length >= 1);
  assert.deepEqual(got, [{ type: 'console', serverId: 'srv-a', lines: ['hello'] }]);

  // the Panel goes away: the client reports it and comes back with its subscriptions
  ws.terminate();
  await until(() => client.getState() === 'reconnecting');
  await until(() => r.sockets.length === 2 && client.getState() === 'open', 8000);
  await until(() => r.received.length >= 2);
  assert.deepEqual(r.received[1], { type: 'subscribe', serverId: 'srv-a' });
  assert.ok(states.includes('reconnecting'));

  offA();
  assert.equal(r.received.length, 2, 'still one subscriber left');
  offA2();
  offA2(); // idempotent
  await until(() => r.received.length >= 3);
  assert.deepEqual(r.received[2], { type: 'unsubscribe', serverId: 'srv-a' });
  await new Promise((res) => setTimeout(res, 100));
  assert.equal(r.received.length, 3);

  client.stop();
  assert.equal(client.getState(), 'closed');
});

test('requests are paced under the relay rate limit', async (t) => {
  const r = await relay();
  t.after(() => r.wss.close());
  const client = new LiveClient(r.url);
  t.after(() => client.stop());
  client.start();
  await until(() => client.getState() === 'open');
  const stamps: number[] = [];
  r.sockets[0]!.on('message', () => stamps.push(Date.now()));
  const offs = Array.from({ length: 30 }, (_, i) => client.subscribe(`srv-${i}`));
  await until(() => stamps.length === 30, 5000);
  // the relay's rule: at most 10 in any 200 ms window. Stamps are taken where they arrive, so a
  // loaded machine may bunch a window's frames late; half a window of slack still fails an
  // unpaced client (30 frames within a few ms).
  for (let i = 0; i + 10 < stamps.length; i++)
    assert.ok(
      stamps[i + 10]! - stamps[i]! >= SEND_WINDOW_MS / 2,
      `frames ${i}..${i + 10}: ${stamps[i + 10]! - stamps[i]!} ms`,
    );
  assert.ok(SEND_PER_WINDOW < 10);
  for (const off of offs) off();
});

test('a Panel that is down from the start yields "reconnecting", then "open" once it is up', async (t) => {
  // reserve a port, close it, point the client at it
  const r0 = await relay();
  const port = (r0.wss.address() as AddressInfo).port;
  await new Promise<void>((res) => r0.wss.close(() => res()));
  const client = new LiveClient(`ws://127.0.0.1:${port}/ws/client`);
  t.after(() => client.stop());
  client.start();
  await until(() => client.getState() === 'reconnecting');
  assert.ok(client.nextRetryAt > Date.now() - 1000);
  const wss = new WebSocketServer({ port, host: '127.0.0.1' });
  t.after(() => wss.close());
  await until(() => client.getState() === 'open', 15_000);
});
