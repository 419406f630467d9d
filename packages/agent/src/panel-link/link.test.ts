import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type EventMessage, event } from '@cap/protocol';
import { EventBus } from '../server/events.ts';
import { BACKOFF_CAP_MS, backoffDelay, panelHttpBase, websocketUrlFor } from './link.ts';
import { Outbox } from './outbox.ts';
import { relayEvents } from './relay.ts';

test('backoff doubles with jitter and is capped at 4 s', () => {
  assert.equal(
    backoffDelay(0, () => 0),
    250,
  );
  assert.equal(
    backoffDelay(0, () => 1),
    500,
  );
  assert.equal(
    backoffDelay(3, () => 1),
    4000,
  );
  for (let a = 0; a < 40; a++) assert.ok(backoffDelay(a) <= BACKOFF_CAP_MS);
  assert.equal(
    backoffDelay(30, () => 1),
    4_000,
  );
  assert.equal(
    backoffDelay(30, () => 0),
    2_000,
  );
});

test('PANEL_URL may be ws:// or http://; websocketUrl may be relative', () => {
  assert.equal(panelHttpBase('ws://panel:8080'), 'http://panel:8080');
  assert.equal(panelHttpBase('wss://panel.example'), 'https://panel.example');
  assert.equal(panelHttpBase('http://panel:8080'), 'http://panel:8080');
  assert.equal(websocketUrlFor('http://panel:8080', '/ws/agents'), 'ws://panel:8080/ws/agents');
  assert.equal(websocketUrlFor('https://p.example', '/ws/agents'), 'wss://p.example/ws/agents');
  assert.equal(websocketUrlFor('ws://a:1', 'wss://b.example/ws/agents'), 'wss://b.example/ws/agents');
});

const status = (serverId: string, to: 'running' | 'offline') =>
  event('server_status_changed', { serverId, previousStatus: 'starting', currentStatus: to });
const log = (serverId: string) => event('server_log', { serverId, message: 'x' });
const dropped = (serverId: string, count: number) =>
  event('server_log_dropped', { serverId, count, reason: 'disconnected' });

test('outbox keeps status changes, crashes and log lines in order, drops stale gauges', () => {
  const box = new Outbox(10);
  box.hold(status('a', 'running'));
  box.hold(log('a'));
  box.hold(log('a'));
  box.hold(log('b'));
  box.hold(event('server_crashed', { serverId: 'a', exitCode: 1, oomKilled: false, restarting: true }));
  box.hold(
    event('resource_update', {
      serverId: 'a',
      cpu: 0,
      memory: { used: '0m', percentage: 0, usedBytes: 0, limitBytes: 0 },
      network: { rx: 0, tx: 0 },
      disk: { used: '0m', percentage: 0, usedBytes: 0, limitBytes: 0 },
      uptime: 0,
    }),
  );
  assert.equal(box.size, 5);
  const out = box.drain(dropped) as EventMessage[];
  assert.deepEqual(
    out.map((m) => m.event),
    ['server_status_changed', 'server_log', 'server_log', 'server_log', 'server_crashed'],
  );
  assert.equal(box.drain(dropped).length, 0);
});

test('outbox: lines over the budget give way oldest first and are counted (first, with the last number)', () => {
  const box = new Outbox(10, { lines: 5 });
  const line = (serverId: string, seq: number, message = `l${seq}`) =>
    event('server_log', { serverId, message, seq, epoch: 'ep' });
  box.hold(line('a', 1));
  box.hold(status('a', 'running'));
  box.hold(line('a', 3, 'l2\nl3'));
  box.hold(line('b', 1));
  box.hold(line('a', 4));
  box.hold(line('a', 5)); // 6 lines: a's first gives way
  box.hold(line('b', 3, 'b2\nb3')); // 7: a's 2-3 give way
  const out = box.drain((serverId, count, seq) =>
    event('server_log_dropped', { serverId, count, reason: 'disconnected', ...seq }),
  ) as EventMessage[];
  assert.deepEqual(
    out.map((m) => [
      m.event,
      (m.data as { message?: string }).message ?? (m.data as { count?: number }).count,
    ]),
    [
      ['server_log_dropped', 3],
      ['server_status_changed', undefined],
      ['server_log', 'l1'],
      ['server_log', 'l4'],
      ['server_log', 'l5'],
      ['server_log', 'b2\nb3'],
    ],
  );
  assert.deepEqual((out[0] as EventMessage<'server_log_dropped'>).data, {
    serverId: 'a',
    count: 3,
    reason: 'disconnected',
    seq: 3,
    epoch: 'ep',
  });
  // lines sent on a link that died unanswered go first again
  box.hold(line('a', 7));
  box.requeue([line('a', 6) as EventMessage<'server_log'>]);
  assert.deepEqual(
    (box.drain(dropped) as EventMessage<'server_log'>[]).map((m) => m.data.message),
    ['l6', 'l7'],
  );
});

test('a full outbox never loses the latest status of a server', () => {
  const box = new Outbox(3);
  box.hold(status('a', 'running'));
  box.hold(status('b', 'running'));
  box.hold(status('a', 'offline'));
  box.hold(status('c', 'running'));
  box.hold(status('b', 'offline'));
  const out = box.drain(dropped) as EventMessage<'server_status_changed'>[];
  const latest = new Map(out.map((m) => [m.data.serverId, m.data.currentStatus]));
  assert.deepEqual(Object.fromEntries(latest), { a: 'offline', b: 'offline', c: 'running' });
  assert.equal(out.length, 3);
});

test('console lines are numbered per server on their way out', () => {
  const bus = new EventBus();
  const sent: { name: string; data: Record<string, unknown> }[] = [];
  const off = relayEvents(
    bus,
    (name, data) => sent.push({ name, data: data as Record<string, unknown> }),
    'ep',
  );
  bus.publish('console', { serverId: 'a', message: 'one', stream: 'stdout' });
  bus.publish('console', { serverId: 'a', message: 'two', stream: 'stdout' });
  bus.publish('console', { serverId: 'b', message: 'b1', stream: 'stdout' });
  // another event sends the lines before it (coalesced: a's two lines in one message)
  bus.publish('status', { serverId: 'a', previousStatus: 'starting', currentStatus: 'running' });
  bus.publish('console', { serverId: 'a', message: 'three', stream: 'stdout' });
  bus.publish('status', { serverId: 'a', previousStatus: 'running', currentStatus: 'running' });
  off();
  const logs = sent.filter((m) => m.name === 'server_log').map((m) => m.data);
  assert.deepEqual(
    logs.map((d) => [d.serverId, d.message, d.seq, d.epoch]),
    [
      ['a', 'one\ntwo', 2, 'ep'],
      ['b', 'b1', 1, 'ep'],
      ['a', 'three', 3, 'ep'],
    ],
  );
});
