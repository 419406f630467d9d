/**
 * NatsLiveSync over a real nats-server: a replica that connects after a server printed lines
 * gets the holder's ring while the holder keeps printing, and what it then hears follows that
 * ring exactly (no line lost, none twice, in order); its ring ends equal to the holder's. An
 * ask nobody answers (a server the holder does not serve) ends after the timeout, counted; a
 * forged answer is dropped. The answer carries the hidden values the holder holds.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { NatsBus } from '../src/bus/nats-bus.ts';
import { attachLiveRelay } from '../src/relay/live-relay.ts';
import { CONSOLE_HISTORY_LINES, LiveState } from '../src/relay/live-state.ts';
import { NatsLiveSync } from '../src/relay/nats-live.ts';
import { freePort, until } from './helpers.ts';

const NATS = '/usr/sbin/nats-server';
const quiet = { error: () => undefined, warn: () => undefined };

describe('NatsLiveSync against a real nats-server', () => {
  let port = 0;
  let broker: ChildProcess | undefined;
  const prefix = `live-test-${process.pid}`;
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

  /** A replica: its bus, live state and sync; `holds` says whether it holds node n1's link. */
  async function replica(name: string, holds: boolean, servers: string[], timeoutMs = 1000) {
    const bus = await NatsBus.connect(`nats://127.0.0.1:${port}`, quiet, { prefix, name });
    const live = new LiveState();
    const off = attachLiveRelay(bus, live);
    const sync = new NatsLiveSync({
      nc: bus.connection,
      prefix,
      live,
      holds: () => holds,
      online: () => true,
      serves: (_nodeId, serverId) => holds && servers.includes(serverId),
      beforeAnswer: () => bus.ship(),
      log: quiet,
      timeoutMs,
    });
    sync.start();
    await bus.flush();
    closers.push(async () => {
      sync.close();
      off();
      live.close();
      await bus.close();
    });
    return { bus, live, sync };
  }

  let first: { holder: Awaited<ReturnType<typeof replica>>; late: Awaited<ReturnType<typeof replica>> };

  it('a late replica gets the ring during a flood, then every next line once, in order', async () => {
    const holder = await replica('holder', true, ['s1']);
    let n = 0;
    const print = (count: number) => {
      for (let i = 0; i < count; i++)
        holder.bus.publish({ kind: 'server.console', serverId: 's1', lines: [`n=${++n}`] });
    };
    print(500);
    // the flood goes on, one line a turn, while the late replica connects and asks
    let flooding = true;
    const flood = (async () => {
      while (flooding && n < 20_000) {
        print(1);
        await new Promise((r) => setImmediate(r));
      }
    })();
    const late = await replica('late', false, [], 10_000);
    // lines up to here reached the holder before the late replica heard the bus: only the ring has them
    const heardFrom = n;
    await late.sync.ready('s1', 'n1');
    const readyAt = n;
    assert.deepEqual(late.sync.stats, { synced: 1, failed: 0, dropped: 0, served: 0 });
    // as the client relay does: the socket subscribes in the same turn as the history is read
    const heard: string[] = [];
    late.live.subscribe('s1', (m) => {
      if (m.type === 'console') heard.push(...m.lines);
    });
    const history = late.live.history('s1');
    await until(() => heard.length >= 1000, 30_000);
    flooding = false;
    await flood;
    await holder.bus.flush();
    await until(() => late.live.history('s1').at(-1) === `n=${n}`, 10_000);
    await until(() => heard.at(-1) === `n=${n}`, 10_000);
    const all = [...history, ...heard].map((l) => Number(l.slice(2)));
    assert.ok(history.length > 0, 'the ring came');
    // unless the flood outran the ring (150 lines) before the answer (a loaded machine), the ring
    // holds lines the late replica could only have from the holder
    if (readyAt - heardFrom < CONSOLE_HISTORY_LINES)
      assert.ok((all[0] as number) <= heardFrom, `the ring came: ${all[0]} after ${heardFrom}`);
    const gaps = all.flatMap((v, i) =>
      i > 0 && v !== (all[i - 1] as number) + 1 ? [`${all[i - 1]}→${v}`] : [],
    );
    assert.deepEqual(gaps, [], 'history then the lines heard: contiguous');
    assert.deepEqual(late.live.history('s1'), holder.live.history('s1'), 'the rings are equal');
    // asked once: a second page of the same server asks nobody
    await late.sync.ready('s1', 'n1');
    assert.equal(holder.sync.stats.served, 1, 'asked once');
    first = { holder, late };
  });

  it("the answer carries the holder's held hidden values: the late replica redacts the ring's lines", async () => {
    const holder = await replica('holder-held', true, ['s5']);
    // a failed update's attempted value, kept held (relay/secrets-sync.ts), printed into the ring
    holder.live.holdSecrets('s5', 'hold1', ['Held-Attempted-Value']);
    holder.bus.publish({ kind: 'server.console', serverId: 's5', lines: ['pw Held-Attempted-Value'] });
    await holder.bus.flush();
    const late = await replica('late-held', false, []);
    await late.sync.ready('s5', 'n1');
    assert.deepEqual(late.live.history('s5'), ['pw Held-Attempted-Value']);
    assert.deepEqual(late.live.secrets('s5'), ['Held-Attempted-Value']);
  });

  it('an ask nobody answers ends after the timeout; a forged answer is dropped', async () => {
    await replica('holder2', true, ['s2']);
    const asker = await replica('asker', false, []);
    // s3 is not the holder's: no answer, the page gets what the asker has
    await asker.sync.ready('s3', 'n1');
    assert.equal(asker.sync.stats.failed, 1);
    assert.equal(asker.sync.stats.synced, 0);
    // someone answers every inbox with a ring of another server, then with garbage
    const forger: NatsConnection = await connect({ servers: `127.0.0.1:${port}` });
    closers.push(() => forger.close());
    forger.subscribe(`${prefix}.live.snapshot.*`, {
      callback: (_e, m) => {
        m.respond(new TextEncoder().encode(JSON.stringify({ serverId: 'other', history: ['x'] })));
        m.respond(new TextEncoder().encode('{"serverId":"s9","history":[1]}'));
      },
    });
    await forger.flush();
    await asker.sync.ready('s9', 'n1');
    assert.equal(asker.sync.stats.dropped, 2);
    assert.deepEqual(asker.live.history('s9'), []);
    assert.equal(asker.sync.stats.failed, 2);
  });

  it('after its broker link dropped a replica asks again (it may have missed lines)', async () => {
    const { holder, late } = first;
    const exited = new Promise((r) => broker?.once('exit', r));
    broker?.kill('SIGTERM');
    await exited;
    broker = spawn(NATS, ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    await until(async () => {
      try {
        await late.bus.flush();
        await holder.bus.flush();
        return true;
      } catch {
        return false;
      }
    }, 20_000);
    // the holder prints while the asker is not yet sure to hear it; the asker asks again
    holder.bus.publish({ kind: 'server.console', serverId: 's1', lines: ['after the restart'] });
    await holder.bus.flush();
    await until(async () => {
      await late.sync.ready('s1', 'n1');
      return late.sync.stats.synced === 2;
    }, 20_000);
    assert.deepEqual(late.live.history('s1'), holder.live.history('s1'));
  });
});
