/**
 * The load generator the Panel benches share (bench/panel-fanout.ts, bench/panel-scale.ts): a
 * Panel in a child process of its own, the simulated Agents in another (so neither's load delays
 * the measuring process), and the small helpers around them. The child side is
 * bench/lib/panel-load-child.ts.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { SeededNode } from './seed.ts';

const CHILD = new URL('./panel-load-child.ts', import.meta.url).pathname;
export const BENCH_OWNER = { email: 'bench@example.test', password: 'bench-password' };

export interface Scenario {
  agents: number;
  servers: number;
  subscribers: number;
  perSubscriber: number;
}

export function arg(name: string, dflt?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}
export const flag = (name: string): boolean => process.argv.includes(`--${name}`);

/** The p-th percentile of sorted numbers (NaN for none). */
export const pct = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;

/** `fn` over `items`, at most `concurrency` at a time. */
export async function pool<T>(items: T[], concurrency: number, fn: (t: T, i: number) => Promise<void>) {
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

/** CPU seconds of a process from /proc (utime + stime). */
export function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}
/** CPU seconds of a PostgreSQL cluster: its postmaster and every backend (children) now alive. */
export function pgCpuSeconds(dataDir: string): number {
  const pm = Number(readFileSync(`${dataDir}/postmaster.pid`, 'utf8').split('\n')[0]);
  let total = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // f[1] is the parent's pid; utime + stime + the reaped children's (cutime + cstime)
      if (Number(d) === pm || Number(f[1]) === pm)
        total += (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
    } catch {} // gone meanwhile
  }
  return total;
}
export function procRssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

export interface LoopFigures {
  loopDelayP50Ms: number;
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  loopUtilisation: number;
  /** a console line's `t=` → its Agent message handled by the projection (generator, kernel, this loop's queue) */
  lineToProjectionP50Ms: number;
  lineToProjectionP99Ms: number;
  /** a console line's `t=` → published on this replica's bus (the projection and the console mark's write too) */
  lineToBusP50Ms: number;
  lineToBusP99Ms: number;
  linesPublished: number;
  /** lineToBusP99Ms of each second of the window */
  lineToBusP99BySecond: (number | null)[];
}

export interface PanelChild {
  url: string;
  pid: number;
  /** start measuring the Panel's event loop (delay, utilisation) */
  loopStart(): void;
  /** the figures since loopStart */
  loopStop(): Promise<LoopFigures>;
  stop(): Promise<void>;
}

/** A Panel (`startPanel`) in a child process with `env` (PORT, DATA_DIR, … are the caller's). */
export async function startPanelChild(
  env: Record<string, string>,
  opts: { profDir?: string | undefined } = {},
): Promise<PanelChild> {
  const child = fork(CHILD, [], {
    env: {
      ...process.env,
      ...(opts.profDir ? { CAP_BENCH_PROF_DIR: opts.profDir } : {}),
      CAP_BENCH_ROLE: 'panel',
      ADMIN_EMAIL: BENCH_OWNER.email,
      ADMIN_PASSWORD: BENCH_OWNER.password,
      LOG_LEVEL: 'warn',
      PANEL_LOGIN_RATE_PER_MIN: '10000',
      ...env,
    },
    execArgv: process.execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('message', (m) => resolve((m as { ready: string }).ready));
    child.once('exit', (c) => reject(new Error(`panel exited ${c}`)));
  });
  return {
    url,
    pid: child.pid ?? 0,
    loopStart: () => child.send({ cmd: 'loop-start' }),
    loopStop: () =>
      new Promise<LoopFigures>((resolve) => {
        child.once('message', (m) => resolve(m as LoopFigures));
        child.send({ cmd: 'loop-stop' });
      }),
    async stop() {
      if (child.exitCode !== null) return;
      child.send({ cmd: 'stop' });
      await new Promise<void>((r) => {
        const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
        child.once('exit', () => {
          clearTimeout(kill);
          r();
        });
      });
    },
  };
}

/** Log in as the bench's owner: the session cookie and its CSRF token. */
export async function login(url: string): Promise<{ cookie: string; csrfToken: string }> {
  const r = await fetch(`${url}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(BENCH_OWNER),
  });
  if (r.status !== 200) throw new Error(`login ${url}: ${r.status}`);
  const cookie = (r.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  return { cookie, csrfToken: ((await r.json()) as { csrfToken: string }).csrfToken };
}

export interface LoadResult {
  sent: number;
  /** how late the simulated Agents' 1 Hz ticks fired (ms) */
  lagP50: number;
  lagP99: number;
  lagMax: number;
  /** the generator's own CPU over the load (% of a core) */
  cpuPercent: number;
  /** the steady traffic went through the fast path (pre-built frames, one socket write per tick) */
  fast: boolean;
  /** the generator's own event-loop delay p99 (ms) */
  loopDelayP99Ms: number;
  /** console lines numbered (seq/epoch, as a real Agent) */
  numbered: boolean;
  /** pings the Agents got, consoleAcks in them, numbered lines those acks covered */
  pings: number;
  acks: number;
  linesAcked: number;
  /** numbered lines sent and not acked yet at the end (the Panel acks on its next ping) */
  linesUnacked: number;
}

export interface Generator {
  /**
   * REST setup: `sc.agents` nodes made through `url`, each registered through urls[i % n] (the
   * replica it then links to), `sc.servers` servers each created through that replica
   */
  setupRest(o: {
    url: string;
    urls?: string[];
    cookie: string;
    csrfToken: string;
    sc: Scenario;
  }): Promise<string[]>;
  /** Seeded nodes (bench/lib/seed.ts): each registers through urls[i % n] and links */
  connectSeeded(o: { urls: string[]; nodes: SeededNode[]; servers: number }): Promise<string[]>;
  /** every server reported running by its Agent (server_status_changed offline → running) */
  markRunning(): Promise<{ sent: number }>;
  /**
   * every Agent, once a second for `seconds`: a resource_update and a console line per server
   * (numbered as a real Agent numbers them unless `numbered` is false); `fast` (the default):
   * pre-built masked frames, one socket write per Agent and tick; false: ws.send per message
   */
  load(seconds: number, numbered?: boolean, fast?: boolean): Promise<LoadResult>;
  kill(): void;
}

/** The simulated Agents' process. */
export function startGenerator(): Generator {
  const g: ChildProcess = fork(CHILD, [], {
    env: { ...process.env, CAP_BENCH_ROLE: 'agents' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ask = <T>(msg: unknown): Promise<T> =>
    new Promise((resolve, reject) => {
      const onExit = (c: number | null) => reject(new Error(`generator exited ${c}`));
      g.once('exit', onExit);
      g.once('message', (m) => {
        g.off('exit', onExit);
        const err = (m as { error?: string }).error;
        if (err) reject(new Error(err));
        else resolve(m as T);
      });
      g.send(msg as never);
    });
  return {
    setupRest: async (o) => (await ask<{ all: string[] }>({ cmd: 'setup', ...o })).all,
    connectSeeded: async (o) => (await ask<{ all: string[] }>({ cmd: 'connect', ...o })).all,
    markRunning: () => ask<{ sent: number }>({ cmd: 'running' }),
    load: (seconds, numbered = true, fast = true) =>
      ask<LoadResult>({ cmd: 'load', seconds, numbered, fast }),
    kill: () => g.kill('SIGKILL'),
  };
}
