/**
 * Panel at scale (issue 15 item 4): N simulated Agents × M servers at 1 Hz stats and one console
 * line a second each, K `/ws/client` subscribers, against one Panel replica or two (PostgreSQL +
 * NATS, the bus as it is; agents and subscribers split between the replicas, so half the events
 * cross the broker). Reports the replicas' CPU (summed), RSS, API p99 (a paced probe of
 * GET /api/servers/:id, /api/nodes/:id and /api/servers/:id/operations) and event p99 (the
 * timestamp in a console line → its receipt at a subscriber). Goals: ≤ 1 core in total, API p99
 * ≤ 50 ms, event p99 ≤ 100 ms. Builds on bench/panel-fanout.ts: its Panel child and its agent
 * generator (a process of their own, so their load does not delay the measuring one).
 *
 *   node bench/panel-scale.ts                                  # 1000×20, 200 subscribers, 1 replica
 *   node bench/panel-scale.ts --replicas 2                     # two replicas (private PostgreSQL + NATS)
 *   node bench/panel-scale.ts --agents 100 --servers 10 --subscribers 50 --seconds 10 --cpu-prof
 *
 * The figures are printed next to the raw baseline of the issue (one process at 1,000 × 20:
 * 66 % of a core, event p99 162 ms). --cpu-prof writes each replica's profile and prints where
 * its CPU went (self time by module and by function).
 */
import { fork } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { freePort } from '../packages/panel/test/helpers.ts';
import { privateNats, privatePostgres } from '../test/faults/lib.ts';
import { summariseProfile } from './lib/cpuprofile.ts';

const FANOUT = new URL('./panel-fanout.ts', import.meta.url).pathname;
const BASELINE = { panelCpuPercent: 66, eventP99Ms: 162, note: 'issue 15: one process at 1000×20' };

function arg(name: string, dflt?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;

function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}
function procRssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

async function pool<T>(items: T[], concurrency: number, fn: (t: T, i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i] as T, i);
      }
    }),
  );
}

interface Replica {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

async function startReplica(env: Record<string, string>, profDir: string | undefined): Promise<Replica> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cap-scale-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = fork(FANOUT, [], {
    env: {
      ...process.env,
      CAP_BENCH_CHILD: '1',
      DATA_DIR: dataDir,
      PORT: String(port),
      HOST: '127.0.0.1',
      PANEL_URL: url,
      ADMIN_EMAIL: 'bench@example.test',
      ADMIN_PASSWORD: 'bench-password',
      LOG_LEVEL: 'warn',
      PANEL_LOGIN_RATE_PER_MIN: '10000',
      ...env,
    },
    execArgv: [...process.execArgv, ...(profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [])],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (c) => reject(new Error(`panel exited ${c}`)));
  });
  return {
    url,
    pid: child.pid ?? 0,
    async stop() {
      child.send({ cmd: 'stop' });
      await new Promise<void>((r) => {
        const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
        child.once('exit', () => {
          clearTimeout(kill);
          r();
        });
      });
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function login(url: string): Promise<{ cookie: string; csrfToken: string }> {
  const r = await fetch(`${url}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'bench@example.test', password: 'bench-password' }),
  });
  if (r.status !== 200) throw new Error(`login ${url}: ${r.status}`);
  const cookie = (r.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  return { cookie, csrfToken: ((await r.json()) as { csrfToken: string }).csrfToken };
}

async function main() {
  const agents = Number(arg('agents', '1000'));
  const servers = Number(arg('servers', '20'));
  const subscribers = Number(arg('subscribers', '200'));
  const perSubscriber = Number(arg('per-subscriber', '10'));
  const seconds = Number(arg('seconds', '20'));
  const replicasN = Number(arg('replicas', '1'));
  if (replicasN !== 1 && replicasN !== 2) throw new Error('--replicas is 1 or 2');
  const profDir = flag('cpu-prof') ? mkdtempSync(join(tmpdir(), 'cap-scale-prof-')) : undefined;

  const pg = replicasN === 2 ? await privatePostgres('cap-scale-pg') : undefined;
  const nats = replicasN === 2 ? await privateNats() : undefined;
  const shared: Record<string, string> = pg && nats ? { DATABASE_URL: pg.url, PANEL_NATS_URL: nats.url } : {};
  const replicas: Replica[] = [];
  const sockets: WebSocket[] = [];
  let gen: ReturnType<typeof fork> | undefined;
  try {
    // one after the other: the first runs the migrations
    for (let i = 0; i < replicasN; i++) replicas.push(await startReplica(shared, profDir));
    const sessions = await Promise.all(replicas.map((r) => login(r.url)));
    const first = replicas[0] as Replica;
    const s0 = sessions[0] as { cookie: string; csrfToken: string };

    const setupStart = performance.now();
    const g = fork(FANOUT, [], {
      env: { ...process.env, CAP_BENCH_ROLE: 'agents' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    gen = g;
    const ask = <T>(msg: unknown): Promise<T> =>
      new Promise((resolve, reject) => {
        g.once('message', (m) => resolve(m as T));
        g.once('exit', (c) => reject(new Error(`generator exited ${c}`)));
        g.send(msg as never);
      });
    const sc = { agents, servers, subscribers, perSubscriber };
    const { all } = await ask<{ all: string[] }>({
      cmd: 'setup',
      url: first.url,
      urls: replicas.map((r) => r.url),
      cookie: s0.cookie,
      csrfToken: s0.csrfToken,
      sc,
    });
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
          if (res?.status === 200) api.push(performance.now() - t0);
          else apiErrors += 1;
        }
        await new Promise((res2) => setTimeout(res2, 100));
      }
    })();

    const cpu0 = replicas.map((r) => procCpuSeconds(r.pid));
    const rssMax = replicas.map(() => 0);
    const rssTimer = setInterval(() => {
      replicas.forEach((r, i) => {
        rssMax[i] = Math.max(rssMax[i] as number, procRssMiB(r.pid));
      });
    }, 500);
    const t0 = performance.now();
    measuring = true;
    const { sent, lagP99 } = await ask<{ sent: number; lagP50: number; lagP99: number }>({
      cmd: 'load',
      seconds,
    });
    const wall = (performance.now() - t0) / 1000;
    const cpu = replicas.map((r, i) => ((procCpuSeconds(r.pid) - (cpu0[i] as number)) / wall) * 100);
    clearInterval(rssTimer);
    await new Promise((r) => setTimeout(r, 300)); // in-flight lines land
    measuring = false;
    probing = false;
    await probe;
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
      setupSeconds: +setupSeconds.toFixed(1),
      agentMessagesPerSecond: Math.round(sent / wall),
      generatorTickLagP99Ms: lagP99,
      panelCpuPercentTotal: +totalCpu.toFixed(1),
      panelCpuPercentPerReplica: cpu.map((c) => +c.toFixed(1)),
      panelRssMiBPerReplica: rssMax.map((m) => Math.round(m)),
      apiRequests: api.length,
      apiErrors,
      apiP50Ms: +pct(api, 50).toFixed(1),
      apiP99Ms: +pct(api, 99).toFixed(1),
      eventsReceived: received,
      eventsExpectedApprox: subscribers * perSubscriber * seconds,
      eventP50Ms: pct(latencies, 50),
      eventP99Ms: pct(latencies, 99),
      eventMaxMs: latencies[latencies.length - 1] ?? Number.NaN,
      goals: { cpuPercentTotal: 100, apiP99Ms: 50, eventP99Ms: 100 },
      baseline: BASELINE,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    for (const ws of sockets) ws.terminate();
    gen?.kill('SIGKILL');
    for (const r of replicas) await r.stop();
    await nats?.stop();
    await pg?.close();
  }
  if (profDir) {
    for (const f of readdirSync(profDir).filter((x) => x.endsWith('.cpuprofile'))) {
      const s = summariseProfile(join(profDir, f));
      process.stdout.write(
        `\n[cpu-prof] ${join(profDir, f)}: ${s.totalMs} ms busy (whole run, setup included)\n`,
      );
      process.stdout.write('  by module (self):\n');
      for (const m of s.modules)
        process.stdout.write(`    ${m.pct.toFixed(1).padStart(5)} %  ${m.ms} ms  ${m.name}\n`);
      process.stdout.write('  by function (self):\n');
      for (const m of s.functions)
        process.stdout.write(`    ${m.pct.toFixed(1).padStart(5)} %  ${m.ms} ms  ${m.name}\n`);
    }
  }
}

await main();
