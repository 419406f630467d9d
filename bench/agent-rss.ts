/**
 * The Agent's resident memory as a user runs it, in its own process, connected to a real Panel:
 * idle (no server), then with N running busybox servers (default 50), for each way it is run:
 * from source (type stripping, `ctrl-alt-play agent`), from its bundle (`node dist/agent.cjs`)
 * and as the single executable (dist/bin/ctrl-alt-play-agent-linux-<arch>). Builds dist/ first
 * (cached). Prints VmRSS and RssAnon (the median of five samples a second apart, after settling)
 * side by side.
 *   node bench/agent-rss.ts [N] [--only source,bundle,executable] [--runs R] [--lever '<flags>']...
 * --only measures just those ways (the N servers are then made through the first of them);
 * --runs R measures each R times (a fresh Agent each time) and prints every run;
 * --lever '<flags>' (repeatable) adds the single executable built with those flags instead of
 * its own (scripts/build-dist.ts --exec-argv, into .cache/agent-levers/; `--lever ''` is none);
 * --exe <path> (repeatable) adds an executable as it is (e.g. one built from another commit);
 * --env '<K=V ...>' (repeatable) adds the single executable run with those environment variables
 * (e.g. glibc's MALLOC_ARENA_MAX).
 * Besides memory it prints the Agent's CPU time over the sampling window (% of one core).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { startTestPanel, until } from '../packages/panel/test/helpers.ts';
import { IMAGE, removeNodeContainers } from '../test/harness.ts';
import { agentEnv, dropFromPageCache, parseEnvList, takeOption } from './lib/agent-run.ts';

const argv = process.argv.slice(2);
if (argv.includes('--help')) {
  console.log(readFileSync(import.meta.filename, 'utf8').split('*/')[0]);
  process.exit(0);
}
const flag = (name: string) => takeOption(argv, name);
const only = flag('--only')?.split(',');
const levers: string[] = [];
for (let l = flag('--lever'); l !== undefined; l = flag('--lever')) levers.push(l);
const exes: string[] = [];
for (let e = flag('--exe'); e !== undefined; e = flag('--exe')) exes.push(path.resolve(e));
const envs: string[] = [];
for (let e = flag('--env'); e !== undefined; e = flag('--env')) envs.push(e);
const RUNS = Number(flag('--runs') ?? 1);
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 20) throw new Error('--runs: 1..20');
const N = Number(argv[0] ?? 50);
if (!Number.isInteger(N) || N < 0 || N > 500) throw new Error('N: 0..500');
const root = path.resolve(import.meta.dirname, '..');
execFileSync(process.execPath, [path.join(root, 'scripts/build-dist.ts'), 'bin', '--arch', process.arch], {
  stdio: 'inherit',
});

const allVariants: {
  key: string;
  name: string;
  cmd: string;
  args: string[];
  env?: Record<string, string>;
}[] = [
  {
    key: 'source',
    name: 'source (type stripping)',
    cmd: process.execPath,
    args: [path.join(root, 'packages/cli/bin/ctrl-alt-play.js'), 'agent'],
  },
  {
    key: 'bundle',
    name: 'bundle (node dist/agent.cjs)',
    cmd: process.execPath,
    // the flags the executable has built in (scripts/build-dist.ts, AGENT_EXEC_ARGV)
    args: [
      ...(JSON.parse(
        readFileSync(path.join(root, 'packages/cli/src/entry/agent-exec-argv.json'), 'utf8'),
      ) as string[]),
      path.join(root, 'dist/agent.cjs'),
    ],
  },
  {
    key: 'executable',
    name: 'single executable',
    cmd: path.join(root, `dist/bin/ctrl-alt-play-agent-linux-${process.arch}`),
    args: [],
  },
];
for (const flags of levers) {
  const dir = path.join(root, '.cache/agent-levers', flags.replace(/[^\w=.-]+/g, '_') || 'none');
  execFileSync(
    process.execPath,
    [
      path.join(root, 'scripts/build-dist.ts'),
      'bin',
      '--arch',
      process.arch,
      '--exec-argv',
      flags,
      '--out',
      dir,
    ],
    { stdio: 'inherit' },
  );
  allVariants.push({
    key: `lever:${flags}`,
    name: `executable ${flags || '(no flags)'}`,
    cmd: path.join(dir, `ctrl-alt-play-agent-linux-${process.arch}`),
    args: [],
  });
}
for (const cmd of exes) allVariants.push({ key: `lever:${cmd}`, name: cmd, cmd, args: [] });
for (const e of envs) {
  const env = parseEnvList(e);
  allVariants.push({
    key: `lever:env ${e}`,
    name: `executable ${e}`,
    cmd: path.join(root, `dist/bin/ctrl-alt-play-agent-linux-${process.arch}`),
    args: [],
    env,
  });
}
for (const k of only ?? [])
  if (!allVariants.some((v) => v.key === k))
    throw new Error(`--only: unknown ${k} (source, bundle, executable)`);
const variants = allVariants.filter((v) => !only || only.includes(v.key) || v.key.startsWith('lever:'));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;

interface Rss {
  /** VmRSS: what `ps` and the issue's figures show */
  rss: number;
  /** RssAnon: the process's own memory (RssFile, the executable's pages, is shared and reclaimable) */
  anon: number;
  /** CPU time (user + system) over the sampling window, in % of one core */
  cpu: number;
}

/** utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/<pid>/stat) */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}
/** clock ticks a second (USER_HZ; 100 on Linux) */
const HZ = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

function rssKiB(pid: number): Omit<Rss, 'cpu'> {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rss: field('VmRSS'), anon: field('RssAnon') };
}

async function settledRss(pid: number, settleMs: number): Promise<Rss> {
  await sleep(settleMs);
  const samples: Omit<Rss, 'cpu'>[] = [];
  const ticks = cpuTicks(pid);
  const started = performance.now();
  for (let i = 0; i < 5; i++) {
    samples.push(rssKiB(pid));
    await sleep(1000);
  }
  const cpu = (((cpuTicks(pid) - ticks) / HZ) * 100_000) / (performance.now() - started);
  return { ...(samples.sort((a, b) => a.rss - b.rss)[2] ?? { rss: 0, anon: 0 }), cpu };
}

const panel = await startTestPanel({ PANEL_AGENT_PING_MS: '5000' });
const owner = await panel.login();
const node = await panel.createNode(owner, 'rss-bench');
const agentDir = mkdtempSync(path.join(tmpdir(), 'cap-bench-rss-'));
let child: ChildProcess | undefined;

async function startVariant(v: (typeof variants)[number]): Promise<ChildProcess> {
  dropFromPageCache(v.cmd);
  const c = spawn(v.cmd, v.args, {
    cwd: tmpdir(),
    stdio: 'ignore',
    env: { ...agentEnv(panel.url, node, agentDir), ...v.env },
  });
  child = c;
  const connections = async () =>
    (await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body?.online === true;
  await until(connections, 30_000);
  return c;
}

async function stopVariant(c: ChildProcess): Promise<void> {
  const exited = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  await exited;
  // the Panel sees the link go before the next Agent dials
  await until(
    async () => (await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body?.online === false,
    30_000,
  );
}

const idle = new Map<string, Rss[]>();
const loaded = new Map<string, Rss[]>();
const record = (m: Map<string, Rss[]>, name: string, r: Rss) => m.set(name, [...(m.get(name) ?? []), r]);
try {
  for (const v of variants)
    for (let run = 0; run < RUNS; run++) {
      const c = await startVariant(v);
      record(idle, v.name, await settledRss(c.pid ?? 0, 5000));
      await stopVariant(c);
    }
  // N servers made and started through the first variant; the others re-attach to them
  const first = variants[0];
  if (!first) throw new Error('no variant');
  let c: ChildProcess | undefined = await startVariant(first);
  // a create is an operation (202): all made first, then each started once its create has ended
  const created: { id: string; op: string }[] = [];
  for (let i = 0; i < N; i++) {
    const r = await panel.api(owner, 'POST', '/api/servers', {
      name: `rss ${i}`,
      nodeId: node.id,
      image: IMAGE,
      startup: 'echo up; while read l; do echo "$l"; done',
      limits: { memory: '16m', cpu: '0.1' },
      stop: '^C',
    });
    if (r.status !== 202) throw new Error(`create: ${r.status} ${JSON.stringify(r.body)}`);
    created.push({ id: r.body.server.id as string, op: r.body.operationId as string });
  }
  const ids: string[] = [];
  for (const { id, op } of created) {
    let done: { finishedAt?: string; success?: boolean } | undefined;
    await until(async () => {
      done = (await panel.api(owner, 'GET', `/api/operations/${op}`)).body;
      return Boolean(done?.finishedAt);
    }, 120_000);
    if (!done?.success) throw new Error(`create ${id}: ${JSON.stringify(done)}`);
    ids.push(id);
    const p = await panel.api(owner, 'POST', `/api/servers/${id}/power`, { action: 'start' });
    if (p.status !== 202) throw new Error(`start: ${p.status}`);
  }
  const allRunning = async () => {
    for (const id of ids)
      if ((await panel.api(owner, 'GET', `/api/servers/${id}`)).body?.status !== 'running') return false;
    return true;
  };
  await until(allRunning, 120_000);
  // the Agent that made them is not measured: it holds what the creates left (wave 10: 78.2 and
  // 78.4 MiB where later runs re-attaching showed 73–75); every run is a fresh Agent re-attaching
  await stopVariant(c);
  c = undefined;
  for (const v of variants)
    for (let run = 0; run < RUNS; run++) {
      if (!c) {
        c = await startVariant(v);
        await until(allRunning, 60_000);
      }
      record(loaded, v.name, await settledRss(c.pid ?? 0, 10_000));
      await stopVariant(c);
      c = undefined;
    }
} finally {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  await removeNodeContainers(node.id);
  await panel.stop();
  rmSync(agentDir, { recursive: true, force: true });
}

const show = (rs: Rss[] | undefined, run: number) => {
  const r = rs?.[run];
  return r ? `${mib(r.rss)} (${mib(r.anon)}) ${r.cpu.toFixed(1)}%` : '-';
};
console.log(
  `\nAgent memory: VmRSS (RssAnon), median of 5 samples, and CPU (% of a core over those 5 s); node ${process.version} ${process.platform}-${process.arch}; load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}\n`,
);
const W = Math.max(30, ...variants.map((v) => v.name.length + 5));
console.log(`${'run as'.padEnd(W)}${'idle'.padStart(30)}${`${N} running`.padStart(32)}`);
for (const v of variants)
  for (let run = 0; run < RUNS; run++)
    console.log(
      `${(RUNS > 1 ? `${v.name} #${run + 1}` : v.name).padEnd(W)}${show(idle.get(v.name), run).padStart(30)}${show(loaded.get(v.name), run).padStart(32)}`,
    );
