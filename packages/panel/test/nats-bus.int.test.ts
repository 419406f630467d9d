/**
 * The event bus over a real NATS broker (Debian's nats-server on a free loopback port), as two
 * Panel replicas use it: events published on one reach the other in order and reach the
 * publisher's own subscribers exactly once; hostile messages on the subject are dropped and
 * counted; the broker restarting loses nothing published while it was away.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { connect } from '@nats-io/transport-node';
import type { DomainEvent } from '../src/bus/index.ts';
import { EVENT_KINDS, NatsBus } from '../src/bus/nats-bus.ts';
import { freePort, until } from './helpers.ts';

const NATS = '/usr/sbin/nats-server';
const quiet = { error: () => undefined };

function startNats(port: number): ChildProcess {
  return spawn(NATS, ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
}

async function stopNats(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await exited;
}

async function reachable(port: number): Promise<boolean> {
  try {
    const nc = await connect({ servers: `127.0.0.1:${port}` });
    await nc.close();
    return true;
  } catch {
    return false;
  }
}

const status = (serverId: string, n: number): DomainEvent => ({
  kind: 'server.console',
  serverId,
  lines: [`line ${n}`],
});

describe('NatsBus against a real nats-server', () => {
  let port = 0;
  let broker: ChildProcess | undefined;
  let a: NatsBus;
  let b: NatsBus;
  const prefix = `cap-test-${process.pid}`;

  before(async () => {
    assert.ok(
      existsSync(NATS),
      `${NATS} is missing: apt-get install nats-server (scripts/setup-host.sh does)`,
    );
    port = await freePort();
    broker = startNats(port);
    await until(() => reachable(port), 10_000);
    a = await NatsBus.connect(`nats://127.0.0.1:${port}`, quiet, { prefix, name: 'replica-a' });
    b = await NatsBus.connect(`nats://127.0.0.1:${port}`, quiet, { prefix, name: 'replica-b' });
    await a.flush();
    await b.flush();
  });

  after(async () => {
    await a?.close();
    await b?.close();
    await stopNats(broker);
  });

  it('lists every event kind at run time', () => {
    assert.equal(new Set(EVENT_KINDS).size, EVENT_KINDS.length);
  });

  it('delivers across replicas in order, and once to the publisher', async () => {
    const onA: string[] = [];
    const onB: string[] = [];
    const offA = a.subscribe('server.console', (e) => void onA.push(e.lines[0] ?? ''));
    const offB = b.subscribe(
      '*',
      (e) => {
        if (e.kind === 'server.console' && e.serverId === 's-order') onB.push(e.lines[0] ?? '');
      },
      'everywhere',
    );
    for (let i = 0; i < 2000; i++) a.publish(status('s-order', i));
    await a.flush();
    await until(() => onB.length === 2000, 10_000);
    const want = Array.from({ length: 2000 }, (_, i) => `line ${i}`);
    assert.deepEqual(onB, want, 'replica B in publish order');
    assert.deepEqual(onA, want, 'replica A once each (noEcho: no second copy)');
    offA();
    offB();
  });

  it('drops hostile messages, counts them, and goes on', async () => {
    const raw = await connect({ servers: `127.0.0.1:${port}` });
    const got: DomainEvent[] = [];
    const off = b.subscribe('*', (e) => void got.push(e), 'everywhere');
    const before = b.stats.dropped;
    const enc = new TextEncoder();
    const hostile = [
      'not json',
      '[1,2,3]',
      'null',
      '{"kind":"constructor"}',
      '{"kind":"__proto__","serverId":"x"}',
      '{"serverId":"x"}',
      JSON.stringify({ kind: 'server.console', serverId: 'x', lines: ['x'.repeat(600 * 1024)] }),
    ];
    for (const h of hostile) raw.publish(`${prefix}.events.server.console`, enc.encode(h));
    raw.publish(`${prefix}.events.server.console`, new Uint8Array([0xff, 0xfe, 0x00]));
    raw.publish(
      `${prefix}.events.node.online`,
      enc.encode(JSON.stringify({ kind: 'node.online', nodeId: 'n1' })),
    );
    await raw.flush();
    await until(() => got.length === 1, 5000);
    assert.deepEqual(got, [{ kind: 'node.online', nodeId: 'n1' }]);
    assert.equal(b.stats.dropped - before, hostile.length + 1);
    await raw.close();
    off();
  });

  it('an event too large for the broker is delivered here and counted as unsent', () => {
    const got: DomainEvent[] = [];
    const off = a.subscribe('server.console', (e) => void got.push(e));
    const before = a.stats.unsent;
    a.publish({ kind: 'server.console', serverId: 'big', lines: ['y'.repeat(600 * 1024)] });
    assert.equal(got.length, 1);
    assert.equal(a.stats.unsent - before, 1);
    off();
  });

  it('after the broker restarts, both replicas reconnect on their own and events flow again', async () => {
    const onB: string[] = [];
    const off = b.subscribe(
      'server.console',
      (e) => {
        if (e.serverId === 's-restart') onB.push(e.lines[0] ?? '');
      },
      'everywhere',
    );
    await stopNats(broker);
    // published while the broker is away: delivered here at once, sent when A reconnects
    const local: string[] = [];
    const offA = a.subscribe('server.console', (e) => {
      if (e.serverId === 's-restart') local.push(e.lines[0] ?? '');
    });
    a.publish(status('s-restart', -1));
    assert.deepEqual(local, ['line -1']);
    broker = startNats(port);
    await until(() => reachable(port), 10_000);
    let n = 0;
    await until(() => {
      a.publish(status('s-restart', n++));
      return onB.some((l) => l !== 'line -1');
    }, 15_000);
    // once B hears A again, nothing more is lost and the order holds
    const from = n;
    for (let i = from; i < from + 100; i++) a.publish(status('s-restart', i));
    await a.flush();
    await until(() => onB.includes(`line ${from + 99}`), 10_000);
    const tail = onB.slice(onB.indexOf(`line ${from}`));
    assert.deepEqual(
      tail,
      Array.from({ length: 100 }, (_, i) => `line ${from + i}`),
    );
    off();
    offA();
  });
});

describe('NatsBus scopes: effects once, live state everywhere', () => {
  let port = 0;
  let broker: ChildProcess | undefined;
  let a: NatsBus;
  let b: NatsBus;
  const prefix = `cap-scope-${process.pid}`;

  before(async () => {
    port = await freePort();
    broker = startNats(port);
    await until(() => reachable(port), 10_000);
    a = await NatsBus.connect(`nats://127.0.0.1:${port}`, quiet, { prefix });
    b = await NatsBus.connect(`nats://127.0.0.1:${port}`, quiet, { prefix });
    // the subscriptions reach the broker before anything is published (a round trip each)
    await a.flush();
    await b.flush();
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await stopNats(broker);
  });

  it("an origin subscriber hears its own replica's events only; an everywhere one hears all; an others one the other replicas' only", async () => {
    const originB: string[] = [];
    const everywhereB: string[] = [];
    const othersB: string[] = [];
    b.subscribe('operation', (e) => void originB.push(e.operationId));
    b.subscribe('operation', (e) => void everywhereB.push(e.operationId), 'everywhere');
    b.subscribe('operation', (e) => void othersB.push(e.operationId), 'others');
    const op = (id: string): DomainEvent => ({
      kind: 'operation',
      serverId: 's1',
      operationId: id,
      operationKind: 'backup',
      stage: 'completed',
      success: true,
    });
    a.publish(op('from-a'));
    b.publish(op('from-b'));
    await a.flush();
    await until(() => everywhereB.length === 2, 5000);
    assert.deepEqual(everywhereB.sort(), ['from-a', 'from-b']);
    assert.deepEqual(originB, ['from-b'], "replica A's operation is not written a second time by B");
    assert.deepEqual(othersB, ['from-a'], "B's own operation is not heard again as another replica's");
  });
});
