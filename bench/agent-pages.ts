/**
 * Where the idle Agent's resident memory is, as a user runs it (the single executable, connected
 * to a real Panel), next to a bare `node -e` of the Node binary the executable is made from (the
 * same build: postject only adds the SEA blob as a note, .text and .rodata are at the same file
 * offsets). For each: the executable's resident pages (pagemap) by ELF section and by the part of
 * Node they hold (V8's embedded builtins, its snapshot, TurboFan, ICU's data, OpenSSL, …), its
 * anonymous memory by kind of mapping (smaps), V8's heap spaces (a diagnostic report, asked for by
 * signal after the memory was read) and its threads.
 *   node bench/agent-pages.ts [--exe <executable>] [--env 'K=V ...'] [--settle <s>] [--top N]
 * Runs as root (pagemap of another process). Builds dist/ first (cached).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { startTestPanel, until } from '../packages/panel/test/helpers.ts';
import { agentEnv, dropFromPageCache, parseEnvList, takeOption } from './lib/agent-run.ts';
import { anonByKind, attributeExe, readElf } from './lib/pages.ts';

const argv = process.argv.slice(2);
if (argv.includes('--help')) {
  console.log(readFileSync(import.meta.filename, 'utf8').split('*/')[0]);
  process.exit(0);
}
const flag = (name: string) => takeOption(argv, name);
const root = path.resolve(import.meta.dirname, '..');
const exeOption = flag('--exe');
const envOption = flag('--env') ?? '';
const SETTLE = Number(flag('--settle') ?? 5);
const TOP = Number(flag('--top') ?? 25);
if (!(SETTLE >= 0 && SETTLE <= 600)) throw new Error('--settle: 0..600 s');
if (!(Number.isInteger(TOP) && TOP >= 0 && TOP <= 1000)) throw new Error('--top: 0..1000');
if (!exeOption)
  execFileSync(process.execPath, [path.join(root, 'scripts/build-dist.ts'), 'bin', '--arch', process.arch], {
    stdio: 'inherit',
  });
const exe = path.resolve(exeOption ?? path.join(root, `dist/bin/ctrl-alt-play-agent-linux-${process.arch}`));
const extraEnv = parseEnvList(envOption);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MiB = (kib: number) => (kib / 1024).toFixed(2).padStart(7);
const reportDir = mkdtempSync(path.join(tmpdir(), 'cap-bench-pages-'));
// V8's heap spaces come from a diagnostic report, written on SIGUSR2 once the memory was read
const REPORT_OPTIONS = `--report-on-signal --report-signal=SIGUSR2 --report-directory=${reportDir}`;

interface Figures {
  name: string;
  status: Record<string, number>;
  exe: ReturnType<typeof attributeExe>;
  anon: ReturnType<typeof anonByKind>;
  heap?: { spaces: { name: string; committed: number; used: number }[]; total: number };
}

function status(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of readFileSync(`/proc/${pid}/status`, 'utf8').matchAll(/^(\w+):\s+(\d+) kB$/gm))
    out[m[1] as string] = Number(m[2]);
  return out;
}

async function measure(name: string, c: ChildProcess, file: string): Promise<Figures> {
  const pid = c.pid ?? 0;
  await sleep(SETTLE * 1000);
  const f: Figures = {
    name,
    status: status(pid),
    exe: attributeExe(pid, readElf(file)),
    anon: anonByKind(pid),
  };
  const before = new Set(readdirSync(reportDir));
  process.kill(pid, 'SIGUSR2');
  let report: string | undefined;
  await until(() => {
    report = readdirSync(reportDir).find((r) => !before.has(r) && r.endsWith('.json'));
    return report !== undefined;
  }, 10_000).catch(() => undefined);
  if (report) {
    await sleep(200);
    const j = JSON.parse(readFileSync(path.join(reportDir, report), 'utf8')) as {
      javascriptHeap: {
        totalMemory: number;
        heapSpaces: Record<string, { memorySize: number; committedMemory?: number; used: number }>;
      };
    };
    f.heap = {
      total: j.javascriptHeap.totalMemory / 1024,
      spaces: Object.entries(j.javascriptHeap.heapSpaces).map(([n, s]) => ({
        name: n,
        committed: (s.committedMemory ?? s.memorySize) / 1024,
        used: s.used / 1024,
      })),
    };
  }
  return f;
}

async function stop(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  await exited;
}

const panel = await startTestPanel({ PANEL_AGENT_PING_MS: '5000' });
const owner = await panel.login();
const node = await panel.createNode(owner, 'pages-bench');
const agentDir = mkdtempSync(path.join(tmpdir(), 'cap-bench-pages-agent-'));
const results: Figures[] = [];
let child: ChildProcess | undefined;
try {
  dropFromPageCache(exe);
  child = spawn(exe, [], {
    cwd: tmpdir(),
    stdio: 'ignore',
    env: {
      ...agentEnv(panel.url, node, agentDir),
      ...extraEnv,
      NODE_OPTIONS: `${extraEnv['NODE_OPTIONS'] ?? ''} ${REPORT_OPTIONS}`.trim(),
    },
  });
  await until(
    async () => (await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body?.online === true,
    30_000,
  );
  results.push(await measure('Agent (executable)', child, exe));
  await stop(child);
  // the same Node build, bare (x64: the one the build used; another arch: the cached download)
  const bareNode = process.execPath;
  dropFromPageCache(bareNode);
  child = spawn(bareNode, ['-e', 'setInterval(() => {}, 1e9)'], {
    stdio: 'ignore',
    env: {
      PATH: process.env['PATH'] ?? '',
      ...extraEnv,
      NODE_OPTIONS: `${extraEnv['NODE_OPTIONS'] ?? ''} ${REPORT_OPTIONS}`.trim(),
    },
  });
  results.push(await measure(`bare node -e (${process.version})`, child, bareNode));
  await stop(child);
} finally {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  await panel.stop();
  rmSync(agentDir, { recursive: true, force: true });
  rmSync(reportDir, { recursive: true, force: true });
}

const [agent, bare] = results as [Figures, Figures];
const load = loadavg()
  .map((l) => l.toFixed(2))
  .join(' ');
console.log(
  `\nResident memory, MiB (idle ${SETTLE} s after connecting; ${path.relative(root, exe)}${envOption ? `, ${envOption}` : ''}); load ${load}\n`,
);
const col = (s: string) => s.padStart(12);
const table = (title: string, rows: [string, number, number][]) => {
  console.log(`${title.padEnd(76)}${col('Agent')}${col('bare node')}${col('difference')}`);
  for (const [k, a, b] of rows.sort((x, y) => y[1] - x[1]))
    if (a >= 10 || b >= 10) console.log(`  ${k.padEnd(74)}${col(MiB(a))}${col(MiB(b))}${col(MiB(a - b))}`);
  const ta = rows.reduce((s, r) => s + r[1], 0);
  const tb = rows.reduce((s, r) => s + r[2], 0);
  console.log(`  ${'total'.padEnd(74)}${col(MiB(ta))}${col(MiB(tb))}${col(MiB(ta - tb))}\n`);
};
const rowsOf = (a: Map<string, number>, b: Map<string, number>): [string, number, number][] =>
  [...new Set([...a.keys(), ...b.keys()])].map((k) => [k, a.get(k) ?? 0, b.get(k) ?? 0]);
const st = (k: string) => [k, agent.status[k] ?? 0, bare.status[k] ?? 0] as [string, number, number];
console.log(`${'/proc/<pid>/status'.padEnd(76)}${col('Agent')}${col('bare node')}${col('difference')}`);
for (const [k, a, b] of ['VmRSS', 'RssAnon', 'RssFile', 'RssShmem', 'VmHWM'].map(st))
  console.log(`  ${k.padEnd(74)}${col(MiB(a))}${col(MiB(b))}${col(MiB(a - b))}`);
console.log();
table("executable's file pages (pagemap) by part", rowsOf(agent.exe.file, bare.exe.file));
table("executable's copy-on-write pages (anonymous)", rowsOf(agent.exe.anon, bare.exe.anon));
table('anonymous memory (smaps) by mapping', rowsOf(agent.anon.kib, bare.anon.kib));
if (agent.heap && bare.heap) {
  const rows = (f: Figures) => new Map(f.heap?.spaces.map((s) => [`${s.name} (committed)`, s.committed]));
  const used = (f: Figures) => new Map(f.heap?.spaces.map((s) => [`${s.name} (used)`, s.used]));
  table("V8's heap spaces (diagnostic report), committed", rowsOf(rows(agent), rows(bare)));
  table("V8's heap spaces, used (live and not yet collected)", rowsOf(used(agent), used(bare)));
}
console.log(`${'threads'.padEnd(76)}${col('Agent')}${col('bare node')}`);
for (const k of new Set([...agent.anon.threads.keys(), ...bare.anon.threads.keys()]))
  console.log(
    `  ${k.padEnd(74)}${col(String(agent.anon.threads.get(k) ?? 0))}${col(String(bare.anon.threads.get(k) ?? 0))}`,
  );
if (TOP > 0) {
  console.log(`\nthe Agent's ${TOP} symbols with the most resident file pages (KiB; bare node's alongside)`);
  for (const [s, kib] of [...agent.exe.bySym].sort((x, y) => y[1] - x[1]).slice(0, TOP))
    console.log(
      `  ${kib.toFixed(0).padStart(6)} ${(bare.exe.bySym.get(s) ?? 0).toFixed(0).padStart(6)}  ${s.slice(0, 100)}`,
    );
  console.log('\nrodata without a symbol, resident KiB by 64 KiB block (file offset; Agent, bare)');
  for (const [o, kib] of [...agent.exe.gaps].sort((x, y) => y[1] - x[1]).slice(0, 10))
    console.log(
      `  0x${o.toString(16).padStart(8, '0')} ${kib.toFixed(0).padStart(6)} ${(bare.exe.gaps.get(o) ?? 0).toFixed(0).padStart(6)}`,
    );
}
