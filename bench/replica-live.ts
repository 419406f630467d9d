/**
 * Live state across replicas (issue 15 item 1), figures only:
 * - history on a cold replica: `NatsLiveSync.ready` for servers whose holder has a full console
 *   ring (150 lines, ~256 KiB), over a private nats-server on loopback, N servers (default 50);
 * - a shared socket count: `PgSocketLimits.acquire` + `release` on PostgreSQL (TEST_DATABASE_URL,
 *   default the lead's 55432), N rounds;
 * - the expiry after a replica stops beating: the time until another takes its share.
 * Prints ms (p50 / p95 / max) and the load average.
 *   node bench/replica-live.ts [N]
 */
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { connect } from '@nats-io/transport-node';
import { NatsBus } from '../packages/panel/src/bus/nats-bus.ts';
import { type Db, openDatabase } from '../packages/panel/src/db/index.ts';
import { ReplicaRegistry } from '../packages/panel/src/lib/replicas.ts';
import { attachLiveRelay } from '../packages/panel/src/relay/live-relay.ts';
import { LiveState } from '../packages/panel/src/relay/live-state.ts';
import { NatsLiveSync } from '../packages/panel/src/relay/nats-live.ts';
import { PgSocketLimits } from '../packages/panel/src/relay/socket-limits.ts';
import { freePort, scratchDatabase, until } from '../packages/panel/test/helpers.ts';

const N = Number(process.argv[2] ?? 50);
const quiet = { error: () => undefined, warn: () => undefined };

function stats(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
  return `p50 ${q(0.5).toFixed(1)}  p95 ${q(0.95).toFixed(1)}  max ${(s.at(-1) ?? 0).toFixed(1)}`;
}

// --- history on a cold replica -----------------------------------------------------------------
const port = await freePort();
const broker = spawn('/usr/sbin/nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
await until(async () => {
  try {
    await (await connect({ servers: `127.0.0.1:${port}` })).close();
    return true;
  } catch {
    return false;
  }
}, 10_000);
const prefix = `bench-live-${process.pid}`;
const replica = async (holds: boolean) => {
  const bus = await NatsBus.connect(`nats://127.0.0.1:${port}`, quiet, { prefix });
  const live = new LiveState();
  attachLiveRelay(bus, live);
  const sync = new NatsLiveSync({
    nc: bus.connection,
    prefix,
    live,
    holds: () => holds,
    online: () => true,
    serves: () => holds,
    log: quiet,
  });
  sync.start();
  return { bus, live, sync };
};
const holder = await replica(true);
const line = 'x'.repeat(1700);
for (let s = 0; s < N; s++)
  for (let i = 0; i < 150; i++)
    holder.bus.publish({ kind: 'server.console', serverId: `s${s}`, lines: [`${i} ${line}`] });
await holder.bus.flush();
const cold = await replica(false);
const took: number[] = [];
for (let s = 0; s < N; s++) {
  const t0 = performance.now();
  await cold.sync.ready(`s${s}`, 'n1');
  took.push(performance.now() - t0);
  if (cold.live.history(`s${s}`).length !== 150) throw new Error('ring not complete');
}
console.log(`history on a cold replica (150 lines, ~256 KiB), ${N} servers: ${stats(took)} ms`);
cold.sync.close();
holder.sync.close();
await cold.bus.close();
await holder.bus.close();
broker.kill('SIGTERM');

// --- shared socket counts ----------------------------------------------------------------------
const scratch = await scratchDatabase('postgres', 'cap_bench_live');
const dbs: Db[] = [];
try {
  const open = async () => {
    const db = await openDatabase({ dataDir: '/nonexistent', databaseUrl: scratch.env['DATABASE_URL'] });
    dbs.push(db);
    return db;
  };
  const hb = 500;
  const ttlMs = Math.max(3000, 5 * hb);
  const r1 = new ReplicaRegistry({ db: await open(), id: 'bench-r1', heartbeatMs: hb, ttlMs, log: quiet });
  const r2 = new ReplicaRegistry({ db: await open(), id: 'bench-r2', heartbeatMs: hb, ttlMs, log: quiet });
  await r1.start();
  await r2.start();
  const l1 = new PgSocketLimits({ db: dbs[0] as Db, replicas: r1, log: quiet });
  const l2 = new PgSocketLimits({ db: dbs[1] as Db, replicas: r2, log: quiet });
  const rounds: number[] = [];
  for (let i = 0; i < N; i++) {
    const t0 = performance.now();
    if (!(await l1.acquire('user:bench', 10))) throw new Error('refused');
    rounds.push(performance.now() - t0);
    l1.release('user:bench');
  }
  console.log(`PgSocketLimits.acquire (PostgreSQL on loopback), ${N} rounds: ${stats(rounds)} ms`);
  for (let i = 0; i < 10; i++) await l2.acquire('user:bench', 10);
  r2.halt();
  const stopped = performance.now();
  await until(async () => {
    if (!(await l1.acquire('user:bench', 10))) return false;
    return true;
  }, 30_000);
  console.log(
    `a replica stopped beating (heartbeat ${hb} ms, TTL ${ttlMs} ms): its share free after ${(performance.now() - stopped).toFixed(0)} ms`,
  );
  await r1.close();
} finally {
  for (const db of dbs) await db.destroy();
  await scratch.drop();
}
console.log(
  `load average: ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
