/**
 * NatsSecretsSync over a real nats-server (relay/secrets-sync.ts): a hold resolves only once
 * every other replica has the values (they redact them from then on); a release there goes
 * through the replica's own `onRelease` (it re-reads the row first); a replica that does not
 * answer delays the hold by the timeout, counted; what arrives malformed is dropped, never
 * applied. And LiveState's holds: the union with the stored values, capped per server.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { LiveState, MAX_HELD_SECRETS } from '../src/relay/live-state.ts';
import { NatsSecretsSync } from '../src/relay/secrets-sync.ts';
import { freePort, until } from './helpers.ts';

const NATS = '/usr/sbin/nats-server';
const quiet = { warn: () => undefined };

describe('LiveState holds', () => {
  it('secrets() is the stored values and the held ones; a release or a forget drops them', () => {
    const live = new LiveState();
    live.setSecrets('s1', ['stored-value']);
    live.holdSecrets('s1', 'k1', ['held-value-longer', 'stored-value']);
    assert.deepEqual(live.secrets('s1'), ['held-value-longer', 'stored-value']);
    // a new stored set keeps the hold
    live.setSecrets('s1', ['other-stored']);
    assert.deepEqual([...live.secrets('s1')].sort(), ['held-value-longer', 'other-stored', 'stored-value']);
    live.releaseSecrets('s1', 'k1');
    assert.deepEqual(live.secrets('s1'), ['other-stored']);
    // short values are not redacted (as the stored ones)
    live.holdSecrets('s1', 'k2', ['abc']);
    assert.deepEqual(live.secrets('s1'), ['other-stored']);
    live.forget('s1');
    assert.deepEqual(live.secrets('s1'), []);
  });

  it('past MAX_HELD_SECRETS holds per server the oldest goes', () => {
    const live = new LiveState();
    for (let i = 0; i <= MAX_HELD_SECRETS; i++) live.holdSecrets('s1', `k${i}`, [`value-number-${i}`]);
    const now = live.secrets('s1');
    assert.equal(now.length, MAX_HELD_SECRETS);
    assert.ok(!now.includes('value-number-0'));
    assert.ok(now.includes(`value-number-${MAX_HELD_SECRETS}`));
  });
});

describe('NatsSecretsSync against a real nats-server', () => {
  let port = 0;
  let broker: ChildProcess | undefined;
  const prefix = `secrets-test-${process.pid}`;
  const closers: (() => unknown)[] = [];

  before(async () => {
    assert.ok(existsSync(NATS), `${NATS} is missing: apt-get install nats-server`);
    port = await freePort();
    broker = spawn(NATS, ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    await until(async () => {
      try {
        await (await connect({ servers: `127.0.0.1:${port}` })).close();
        return true;
      } catch {
        return false;
      }
    }, 10_000);
  });

  after(async () => {
    for (const c of closers.reverse()) await c();
    if (broker && broker.exitCode === null) {
      const exited = new Promise((r) => broker?.once('exit', r));
      broker.kill('SIGTERM');
      await exited;
    }
  });

  /** A replica on its test's own subjects (`test`: the replicas of other tests do not answer). */
  async function replica(test: string, peers: () => number, timeoutMs = 1000) {
    const nc: NatsConnection = await connect({ servers: `127.0.0.1:${port}`, noEcho: true });
    const live = new LiveState();
    const sync = new NatsSecretsSync({ nc, prefix: `${prefix}-${test}`, live, peers, log: quiet, timeoutMs });
    sync.start();
    await nc.flush();
    closers.push(async () => {
      sync.close();
      await nc.close();
    });
    return { nc, live, sync };
  }

  it('a hold resolves once the others hold the values; a release goes through onRelease there', async () => {
    const a = await replica('t1', () => 2);
    const b = await replica('t1', () => 2);
    const c = await replica('t1', () => 2);
    const released: string[] = [];
    b.sync.onRelease((serverId, key) => {
      released.push(`${serverId}/${key}`);
      b.live.releaseSecrets(serverId, key);
    });
    await a.sync.hold('srv1', 'hold1', ['Sync-Secret-New', 'Sync-Secret-Old']);
    // resolved: both others have it already (no waiting after the fact)
    for (const r of [a, b, c])
      assert.deepEqual(r.live.secrets('srv1'), ['Sync-Secret-New', 'Sync-Secret-Old']);
    assert.equal(a.sync.stats.late, 0);
    a.sync.release('srv1', 'hold1');
    assert.deepEqual(a.live.secrets('srv1'), []);
    await until(() => released.length === 1 && c.live.secrets('srv1').length === 0);
    assert.deepEqual(released, ['srv1/hold1']);
    assert.deepEqual(b.live.secrets('srv1'), []);
  });

  it('a replica that does not answer: the hold waits the timeout, counted, and goes on', async () => {
    // two peers said alive, only one answers
    const a = await replica('t2', () => 3, 300);
    const t = performance.now();
    await a.sync.hold('srv2', 'hold2', ['Sync-Secret-Late']);
    assert.ok(performance.now() - t >= 250, 'waited for the missing answer');
    assert.equal(a.sync.stats.late, 1);
    assert.deepEqual(a.live.secrets('srv2'), ['Sync-Secret-Late']);
  });

  it('malformed messages are dropped, never applied', async () => {
    const b = await replica('t3', () => 0);
    const raw = await connect({ servers: `127.0.0.1:${port}` });
    closers.push(() => raw.close());
    const enc = new TextEncoder();
    const bad: unknown[] = [
      'not json',
      [],
      null,
      { op: 'hold', serverId: 'srv3', key: 'k', values: 'Sync-Not-An-Array' },
      { op: 'hold', serverId: 'srv3', key: 'k', values: [1234567] },
      { op: 'hold', serverId: '../srv3', key: 'k', values: ['Sync-Bad-Server-Id'] },
      { op: 'hold', serverId: 'srv3', key: 'k k', values: ['Sync-Bad-Key'] },
      { op: 'hold', serverId: 'srv3', key: 'k', values: Array.from({ length: 65 }, (_, i) => `v-${i}-xxxx`) },
      { op: 'hold', serverId: 'srv3', key: 'k', values: ['x'.repeat(5000)] },
      { op: 'grant', serverId: 'srv3', key: 'k', values: ['Sync-Bad-Op'] },
      JSON.parse('{"__proto__":{"op":"hold"},"serverId":"srv3","key":"k","values":["Sync-Proto"]}'),
    ];
    for (const m of bad)
      raw.publish(`${prefix}-t3.live.secrets`, enc.encode(typeof m === 'string' ? m : JSON.stringify(m)));
    raw.publish(`${prefix}-t3.live.secrets`, enc.encode('x'.repeat(70 * 1024)));
    // a good one after them: once it is applied, all before it were handled
    raw.publish(
      `${prefix}-t3.live.secrets`,
      enc.encode(JSON.stringify({ op: 'hold', serverId: 'srv4', key: 'k', values: ['Sync-Good-Value'] })),
    );
    await until(() => b.live.secrets('srv4').length === 1);
    assert.deepEqual(b.live.secrets('srv3'), []);
    assert.equal(b.sync.stats.dropped, bad.length + 1);
  });
});
