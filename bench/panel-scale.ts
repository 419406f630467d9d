/**
 * Panel at scale (issue 15 item 4): N simulated Agents × M servers at 1 Hz stats and one console
 * line a second each, K `/ws/client` subscribers, against one Panel replica or two (PostgreSQL +
 * NATS, the bus as it is; agents and subscribers split between the replicas, so half the events
 * cross the broker). Reports the replicas' CPU (summed), RSS, API p99 (a paced probe of
 * GET /api/servers/:id, /api/nodes/:id and /api/servers/:id/operations) and event p99 (the
 * timestamp in a console line → its receipt at a subscriber). Goals: ≤ 1 core in total, API p99
 * ≤ 50 ms, event p99 ≤ 100 ms. The Panel children and the Agent generator are bench/lib/panel-load.ts
 * (shared with panel-fanout.ts; processes of their own, so their load does not delay the measuring
 * one). The nodes, servers, allocations and create operations are seeded straight into the
 * database before the replicas start (bench/lib/seed.ts; --rest-setup makes them through REST,
 * which takes long at 20,000 servers); the Agents then register and link through REST/WebSocket.
 * The replicas run on a private PostgreSQL (as production does; fsync off) unless --sqlite (one
 * replica); two share it and a private NATS. The simulated Agents number their console lines
 * (seq/epoch, as panel-link/relay.ts does) and forget what the pings' consoleAcks cover, so the
 * Panel stores each server's console mark before it publishes (console-marks.ts); --unnumbered
 * sends them as an older Agent did (no marks). Printed next to the Panel's figures: the load
 * average, the generator's own tick lag and loop delay (the machine), PostgreSQL's CPU, and where
 * a line's time went (line → the projection, → the bus, per replica; the measuring loop).
 *
 *   node bench/panel-scale.ts                                  # 1000×20, 200 subscribers, 1 replica
 *   node bench/panel-scale.ts --replicas 2                     # two replicas (private PostgreSQL + NATS)
 *   node bench/panel-scale.ts --unnumbered                     # console lines without seq/epoch (no marks)
 *   node bench/panel-scale.ts --sqlite                         # one replica on SQLite
 *   node bench/panel-scale.ts --stopped                        # the servers stay offline (not started)
 *   node bench/panel-scale.ts --ws-send                        # the steady traffic through ws.send (the old generator)
 *   node bench/panel-scale.ts --warmup 0                       # measure from the first line (default: 5 s of traffic first)
 *   node bench/panel-scale.ts --agents 100 --servers 10 --subscribers 50 --seconds 10 --cpu-prof
 *
 * The figures are printed next to the raw baseline of the issue (one process at 1,000 × 20:
 * 66 % of a core, event p99 162 ms). --cpu-prof writes each replica's profile of the measured
 * window (the inspector, started and stopped with it) and prints where its CPU went (self time by
 * module and by function, and who called the top native ones).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import WebSocket from 'ws';
import { freePort } from '../packages/panel/test/helpers.ts';
import { privateNats, privatePostgres } from '../test/faults/lib.ts';
import { summariseProfile } from './lib/cpuprofile.ts';
import {
  arg,
  BENCH_OWNER,
  flag,
  type Generator,
  login,
  type PanelChild,
  pct,
  pgCpuSeconds,
  pool,
  procCpuSeconds,
  procRssMiB,
  startGenerator,
  startPanelChild,
} from './lib/panel-load.ts';
import { seedPanel } from './lib/seed.ts';

const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

const BASELINE = { panelCpuPercent: 66, eventP99Ms: 162, note: 'issue 15: one process at 1000×20' };

interface Replica extends PanelChild {
  dataDir: string;
}

/** A replica's data dir and port, made before the seeding (which writes its SQLite file without DATABASE_URL). */
async function replicaEnv(shared: Record<string, string>) {
  const dataDir = mkdtempSync(join(tmpdir(), 'cap-scale-'));
  const port = await freePort();
  const env: Record<string, string> = {
    DATA_DIR: dataDir,
    PORT: String(port),
    HOST: '127.0.0.1',
    PANEL_URL: `http://127.0.0.1:${port}`,
    ...shared,
  };
  return { dataDir, env };
}

async function main() {
  const agents = Number(arg('agents', '1000'));
  const servers = Number(arg('servers', '20'));
  const subscribers = Number(arg('subscribers', '200'));
  const perSubscriber = Number(arg('per-subscriber', '10'));
  const seconds = Number(arg('seconds', '20'));
  // the traffic runs this long before the measured window: every server's first lines (a read of
  // its stored console mark, its first intent written) are a Panel start's, not the steady state
  const warmup = Number(arg('warmup', '5'));
  const replicasN = Number(arg('replicas', '1'));
  if (replicasN !== 1 && replicasN !== 2) throw new Error('--replicas is 1 or 2');
  const profDir = flag('cpu-prof') ? mkdtempSync(join(tmpdir(), 'cap-scale-prof-')) : undefined;

  const restSetup = flag('rest-setup');
  // PostgreSQL as production runs it (a private cluster; fsync off, see test/faults/lib.ts);
  // --sqlite: one replica on SQLite (two replicas always share PostgreSQL)
  if (replicasN === 2 && flag('sqlite')) throw new Error('--sqlite is for one replica');
  const usePg = !flag('sqlite');
  const numbered = !flag('unnumbered');
  const pg = usePg ? await privatePostgres('cap-scale-pg') : undefined;
  const nats = replicasN === 2 ? await privateNats() : undefined;
  const shared: Record<string, string> = {
    ...(pg ? { DATABASE_URL: pg.url } : {}),
    ...(nats ? { PANEL_NATS_URL: nats.url } : {}),
  };
  const replicas: Replica[] = [];
  const sockets: WebSocket[] = [];
  let gen: Generator | undefined;
  let seedSeconds = 0;
  try {
    const envs = await Promise.all(Array.from({ length: replicasN }, () => replicaEnv(shared)));
    const sc = { agents, servers, subscribers, perSubscriber };
    const setupStart = performance.now();
    // the rows straight into the database before any replica starts (they load every server at
    // boot, as after a restart); --rest-setup makes them through the REST API instead (slow)
    const seeded = restSetup
      ? undefined
      : await seedPanel(envs[0]?.env ?? {}, { owner: BENCH_OWNER, agents, servers });
    seedSeconds = seeded?.seconds ?? 0;
    // one after the other: the first runs the migrations (when not seeded)
    for (const e of envs)
      replicas.push({ ...(await startPanelChild(e.env, { profDir })), dataDir: e.dataDir });
    const sessions = await Promise.all(replicas.map((r) => login(r.url)));
    const first = replicas[0] as Replica;
    const s0 = sessions[0] as { cookie: string; csrfToken: string };

    gen = startGenerator();
    const urls = replicas.map((r) => r.url);
    const all = seeded
      ? await gen.connectSeeded({ urls, nodes: seeded.nodes, servers })
      : await gen.setupRest({ url: first.url, urls, cookie: s0.cookie, csrfToken: s0.csrfToken, sc });
    // the games run (their Agent said so), unless --stopped: stopped servers' console lines go
    // through the template-feature check too
    if (!flag('stopped')) {
      await gen.markRunning();
      const status = async (r: Replica, i: number, id: string | undefined) =>
        (
          (await (
            await fetch(`${r.url}/api/servers/${id}`, {
              headers: { cookie: (sessions[i] as { cookie: string }).cookie },
            })
          ).json()) as { status?: string }
        ).status;
      for (let tries = 0; ; tries++) {
        const states = await Promise.all(replicas.map((r, i) => status(r, i, all.at(-1))));
        if (states.every((x) => x === 'running')) break;
        if (tries > 600) throw new Error(`servers not running: ${states.join(',')}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const setupSeconds = (performance.now() - setupStart) / 1000;

    // subscribers, split between the replicas (k % n): with two, half of what they watch is
    // linked to the other replica and crosses the broker
    const latencies: number[] = [];
    let measuring = false;
    let received = 0;
    await pool(
      Array.from({ length: subscribers }, (_, i) => i),
      16,
      async (k) => {
        const r = replicas[k % replicas.length] as Replica;
        const sess = sessions[k % replicas.length] as { cookie: string };
        const ws = new WebSocket(`${r.url.replace('http', 'ws')}/ws/client`, {
          headers: { cookie: sess.cookie },
          perMessageDeflate: false,
        });
        await new Promise<void>((resolve, reject) => {
          ws.once('open', () => resolve());
          ws.once('error', reject);
        });
        let subscribed = 0;
        ws.on('message', (d) => {
          const m = JSON.parse(d.toString()) as { type: string; lines?: string[] };
          if (m.type === 'subscribed') subscribed += 1;
          if (m.type !== 'console' || !m.lines || !measuring) return;
          const now = Date.now();
          for (const line of m.lines) {
            const t = Number(line.slice(line.lastIndexOf('=') + 1));
            if (t) {
              latencies.push(now - t);
              received += 1;
            }
          }
        });
        for (let j = 0; j < perSubscriber; j++) {
          ws.send(JSON.stringify({ type: 'subscribe', serverId: all[(k * perSubscriber + j) % all.length] }));
          if (j % 5 === 4) await new Promise((res) => setTimeout(res, 220)); // the message rate limit
        }
        for (let i = 0; i < 100 && subscribed < perSubscriber; i++)
          await new Promise((res) => setTimeout(res, 20));
        sockets.push(ws);
      },
    );

    // the API probe: paced (10 a second, round robin over the replicas), never more than one at a time
    const api: number[] = [];
    /** the probe's times per route (which one makes the p99) */
    const apiByPath = new Map<string, number[]>();
    let apiErrors = 0;
    let probing = true;
    const nodes = (await (
      await fetch(`${first.url}/api/nodes`, { headers: { cookie: s0.cookie } })
    ).json()) as { id: string }[] | { nodes: { id: string }[] };
    const nodeIds = (Array.isArray(nodes) ? nodes : nodes.nodes).map((n) => n.id);
    const probe = (async () => {
      for (let i = 0; probing; i++) {
        const r = replicas[i % replicas.length] as Replica;
        const sess = sessions[i % replicas.length] as { cookie: string };
        const sid = all[(i * 7919) % all.length];
        const path = [
          `/api/servers/${sid}`,
          `/api/nodes/${nodeIds[i % Math.max(1, nodeIds.length)]}`,
          `/api/servers/${sid}/operations`,
        ][i % 3];
        const t0 = performance.now();
        const res = await fetch(`${r.url}${path}`, { headers: { cookie: sess.cookie } }).catch(() => null);
        await res?.arrayBuffer();
        if (measuring) {
          if (res?.status === 200) {
            const ms = performance.now() - t0;
            api.push(ms);
            const kind = (path as string).replace(/\/api\/(servers|nodes)\/[^/]+/, '/api/$1/:id');
            const list = apiByPath.get(kind);
            if (list) list.push(ms);
            else apiByPath.set(kind, [ms]);
          } else apiErrors += 1;
        }
        await new Promise((res2) => setTimeout(res2, 100));
      }
    })();

    if (warmup > 0) await gen.load(warmup, numbered, !flag('ws-send'));
    const cpu0 = replicas.map((r) => procCpuSeconds(r.pid));
    const pgCpu0 = pg ? pgCpuSeconds(pg.dataDir) : 0;
    const load0 = loadAverage();
    // this (measuring) process's own loop: a subscriber's receipt is late by as much
    const ownLoop = monitorEventLoopDelay({ resolution: 10 });
    ownLoop.enable();
    const rssMax = replicas.map(() => 0);
    const rssTimer = setInterval(() => {
      replicas.forEach((r, i) => {
        rssMax[i] = Math.max(rssMax[i] as number, procRssMiB(r.pid));
      });
    }, 500);
    const t0 = performance.now();
    measuring = true;
    for (const r of replicas) r.loopStart();
    const genResult = await gen.load(seconds, numbered, !flag('ws-send'));
    const { sent } = genResult;
    const loops = await Promise.all(replicas.map((r) => r.loopStop()));
    const wall = (performance.now() - t0) / 1000;
    const cpu = replicas.map((r, i) => ((procCpuSeconds(r.pid) - (cpu0[i] as number)) / wall) * 100);
    const pgCpu = pg ? ((pgCpuSeconds(pg.dataDir) - pgCpu0) / wall) * 100 : undefined;
    clearInterval(rssTimer);
    await new Promise((r) => setTimeout(r, 300)); // in-flight lines land
    measuring = false;
    probing = false;
    await probe;
    ownLoop.disable();
    latencies.sort((a, b) => a - b);
    api.sort((a, b) => a - b);
    const totalCpu = cpu.reduce((a, b) => a + b, 0);
    const result = {
      scenario: `${agents}×${servers}`,
      replicas: replicasN,
      bus: replicasN === 2 ? 'nats (main today; the NATS agent gateway of W15A lands later)' : 'in-process',
      servers: all.length,
      subscribers,
      watchedPerSubscriber: perSubscriber,
      seconds,
      warmupSeconds: warmup,
      setup: restSetup ? 'REST' : 'seeded (bench/lib/seed.ts) + Agents registered through REST',
      database: pg ? 'postgresql (private cluster, fsync off)' : 'sqlite',
      consoleNumbered: numbered,
      serversState: flag('stopped') ? 'offline' : 'running',
      seedSeconds: +seedSeconds.toFixed(1),
      setupSeconds: +setupSeconds.toFixed(1),
      agentMessagesPerSecond: Math.round(sent / wall),
      // how late the simulated Agents' ticks fired: above ~100 ms the generator (or the machine)
      // is saturated, and the event latency measures that too
      generator: {
        tickLagP50Ms: genResult.lagP50,
        tickLagP99Ms: genResult.lagP99,
        tickLagMaxMs: genResult.lagMax,
        cpuPercent: genResult.cpuPercent,
        fastPath: genResult.fast,
        loopDelayP99Ms: genResult.loopDelayP99Ms,
        pings: genResult.pings,
        consoleAcks: genResult.acks,
        linesAcked: genResult.linesAcked,
        linesUnackedAtEnd: genResult.linesUnacked,
      },
      loadAverageBefore: load0,
      loadAverageAfter: loadAverage(),
      panelCpuPercentTotal: +totalCpu.toFixed(1),
      panelCpuPercentPerReplica: cpu.map((c) => +c.toFixed(1)),
      panelEventLoopPerReplica: loops,
      panelRssMiBPerReplica: rssMax.map((m) => Math.round(m)),
      ...(pgCpu === undefined ? {} : { postgresCpuPercent: +pgCpu.toFixed(1) }),
      measuringLoopDelayP99Ms: +(ownLoop.percentile(99) / 1e6).toFixed(1),
      apiRequests: api.length,
      apiErrors,
      apiP50Ms: +pct(api, 50).toFixed(1),
      apiP99Ms: +pct(api, 99).toFixed(1),
      apiByRoute: Object.fromEntries(
        [...apiByPath].map(([k, v]) => {
          v.sort((a, b) => a - b);
          return [
            k,
            {
              n: v.length,
              p50Ms: +pct(v, 50).toFixed(1),
              p99Ms: +pct(v, 99).toFixed(1),
              maxMs: +(v.at(-1) ?? 0).toFixed(1),
            },
          ];
        }),
      ),
      eventsReceived: received,
      eventsExpectedApprox: subscribers * perSubscriber * seconds,
      eventP50Ms: pct(latencies, 50),
      eventP99Ms: pct(latencies, 99),
      eventMaxMs: latencies[latencies.length - 1] ?? Number.NaN,
      goals: { cpuPercentTotal: 100, apiP99Ms: 50, eventP99Ms: 100 },
      baseline: BASELINE,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    // the figures a reader compares, one line: the machine (load, generator) next to the Panel
    const l = loops.map(
      (x) =>
        `to projection ${x.lineToProjectionP50Ms}/${x.lineToProjectionP99Ms} ms, to bus ${x.lineToBusP50Ms}/${x.lineToBusP99Ms} ms`,
    );
    process.stdout.write(
      `[scale] ${result.scenario} ×${replicasN} ${result.database.split(' ')[0]} ${numbered ? 'numbered' : 'unnumbered'} warm-up ${warmup} s | load ${load0} → ${result.loadAverageAfter}` +
        ` | generator ${genResult.fast ? 'fast' : 'ws.send'} CPU ${genResult.cpuPercent} %, tick lag p50/p99 ${genResult.lagP50}/${genResult.lagP99} ms, loop p99 ${genResult.loopDelayP99Ms} ms, ${result.agentMessagesPerSecond} msg/s` +
        ` | Panel CPU ${result.panelCpuPercentTotal} %${pgCpu === undefined ? '' : ` + PostgreSQL ${result.postgresCpuPercent} %`}, RSS ${result.panelRssMiBPerReplica.join(' + ')} MiB` +
        ` | API p50/p99 ${result.apiP50Ms}/${result.apiP99Ms} ms | event p50/p99 ${result.eventP50Ms}/${result.eventP99Ms} ms (line → ${l.join('; ')}; measuring loop p99 ${result.measuringLoopDelayP99Ms} ms)` +
        ` | acks ${genResult.linesAcked} lines\n`,
    );
  } finally {
    for (const ws of sockets) ws.terminate();
    gen?.kill();
    for (const r of replicas) {
      await r.stop();
      rmSync(r.dataDir, { recursive: true, force: true });
    }
    await nats?.stop();
    await pg?.close();
  }
  if (profDir) {
    for (const f of readdirSync(profDir).filter((x) => x.endsWith('.cpuprofile'))) {
      const s = summariseProfile(join(profDir, f));
      process.stdout.write(`\n[cpu-prof] ${join(profDir, f)}: ${s.totalMs} ms busy (the measured window)\n`);
      process.stdout.write('  by module (self):\n');
      for (const m of s.modules)
        process.stdout.write(`    ${m.pct.toFixed(1).padStart(5)} %  ${m.ms} ms  ${m.name}\n`);
      process.stdout.write('  by function (self):\n');
      for (const m of s.functions)
        process.stdout.write(`    ${m.pct.toFixed(1).padStart(5)} %  ${m.ms} ms  ${m.name}\n`);
      process.stdout.write('  native, by its nearest caller:\n');
      for (const m of s.nativeCallers.slice(0, 8))
        process.stdout.write(`    ${m.pct.toFixed(1).padStart(5)} %  ${m.ms} ms  ${m.name}\n`);
    }
  }
}

await main();
