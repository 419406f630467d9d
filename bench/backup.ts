/**
 * The Agent's archiver against the command-line tools on the same tree, in the same run: our
 * tar.zst next to `tar -cf - . | zstd -3`, our tar.gz next to `tar czf -` (gzip -6), and our
 * extract of our tar.zst next to `zstd -dc | tar -xf -`. Goal (issue 10): each of ours ≤ 1.2× the tool.
 *
 * The tree is ~500 MB of mixed files, generated once into $CAP_BENCH_DIR (default
 * /var/tmp/cap-bench-backup) and kept for later runs: 20,000 small text files (config- and
 * log-like, ~80 MB), 8 × 25 MB incompressible (random: region files, already-compressed
 * assets), 4 × 55 MB compressible (repetitive world data). Each side runs `--runs` times
 * (default 3), tool and ours interleaved so that the shared machine's load falls on both alike,
 * after one warm-up read so that both read from the page cache; min and median are printed, and
 * the ratio of each. The extract unpacks the same tar.zst (made by the tools) both ways.
 *
 *   node bench/backup.ts [--runs 3] [--only create|zstd|gzip|extract]
 *
 * Besides wall time, each row has the median CPU seconds (user + system): the tool's processes
 * (sh's `times`), or this whole process with all its threads. On a machine shared with other work
 * the wall times move by 2× or more between runs; the CPU seconds move much less.
 *
 * Measured on the 2-core development VM shared with other work (load average 7–12, so the
 * figures move by 2× between runs), best of 2, 463 MB as tar; ours / tool seconds:
 *   11:42 UTC  tar.zst 2.75 / 1.71 (1.61×), tar.gz 17.1 / 12.9 (1.32×), extract 9.5 / 3.6 (2.64×)
 *   12:08 UTC  tar.zst 4.27 / 1.40 (3.05×), tar.gz 25.5 / 22.7 (1.12×), extract 11.0 / 5.6 (1.95×)
 * Ratios equal the tools' (0.434 zstd, 0.451 gzip). Not yet at the 1.2× goal for zstd and
 * extract: the remaining cost is per-entry work on the main thread (node-tar headers, GC of
 * 1 MiB buffers) next to single-threaded zstd in the pool; gzip is at the goal on a quiet run.
 *
 * Later session (before its extract changes), best of 3, load average 2–4, 13:35 UTC:
 *   tar.zst 1.66 / 1.52 (1.09×), tar.gz 10.49 / 12.53 (0.84×), extract 4.47 / 3.78 (1.18×)
 * Profile (--cpu-prof): create is readSync of small files 1.2 s, GC 0.8 s, zlib 0.3 s of 5.7 s;
 * extract is openSync(O_CREAT|O_EXCL) — ~0.5 ms an open on this disk, the tools' too (strace -c:
 * tar's openat 452 µs a call) — run on the main thread while zstd in the pool waits for its next
 * read: the two were serialised where `zstd | tar` overlaps them. Extract now reads up to 8 MiB
 * ahead of the parser, yields to the loop every 1 ms (each yield feeds zstd) and creates files
 * with their final mode when the umask allows (no fchmod a file). Same bench after them,
 * interleaved min / median, 14:41 UTC with load average 12–21 (I/O saturated by other work; the
 * tool's own extract took 11–62 s across runs, so these say little):
 *   tar.zst 5.08 / 1.82 (2.79×, median 2.62×), tar.gz 26.9 / 19.9 (1.35×, median 0.96×),
 *   extract 17.3 / 11.0 (1.57×, median 2.48×)
 *
 * Wave 5 (the machine shared by 8 helpers; load average in brackets, 1-min before → after):
 * create reuses its compressor input buffers (a pool of 4 × 1 MiB, see TarSink) and fills them
 * end to end (headers, small and large files), Headers are encoded in place. `--only zstd`, 3 runs,
 * ours / tool, ratio min, median, CPU:
 *   old code 17:28 (20.8 → 23.4): 12.56 / 1.93 min, 18.90 / 3.43 median; CPU 3.66 / 1.67: 6.50×, 5.51×, 2.19×
 *   new code 17:31 (22.5 → 19.6):  7.99 / 3.23 min,  8.57 / 3.54 median; CPU 2.69 / 1.94: 2.47×, 2.42×, 1.39×
 *   new code 17:25 (16.5 → 21.7), `--only create`: tar.zst 1.30×, 1.40×, CPU 1.04×; tar.gz 1.29×, 1.02×, CPU 0.85×
 *   new code 18:12 (17.9 → 17.9), `--only zstd`: 5.08 / 1.73 min, 7.14 / 3.51 median; CPU 2.23 / 1.78: 2.94×, 2.03×, 1.25×
 * Extract (`--only extract`), old code 18:02 (15.9 → 17.6): 16.34 / 4.73 min, 19.93 / 7.81 median;
 * CPU 5.32 / 2.75: 3.45×, 2.55×, 1.93×; new code (tar entries read through their events) 18:06
 * (16.8 → 18.0): 27.06 / 18.57 min, 80.95 / 23.74 median; CPU 22.63 / 8.44: 1.46×, 3.41×, 2.68×.
 * The extract figures are the disk's, not ours: the kernel (system) time of the same unpack moved
 * 8–27 s between runs for us and 3–20 s for the tool, while our user time stayed 3.6–5.2 s for
 * old and new code alike (one run each, interleaved, 18:13–18:17): no gain could be measured.
 * Wall-time ratios at a load of 15–20 on 2 cores say little (the tool's two processes and our two
 * threads are each scheduled by the load, and each of our 1 MiB hand-overs waits for a slot);
 * the CPU ratio is the steadier figure.
 *
 * Wave 6 (same machine, 8 helpers). `perf record` of an extract: 20 % of all samples in ext4's
 * recently_deleted() (inode allocation skipping inodes freed seconds before: this bench removed the
 * previous run's tree right before each unpack), so extract runs now unpack into new directories,
 * removed at the end; archive files are read in 1 MiB pieces (archiveFileStream). Full bench
 * `--runs 3`, ours / tool, ratio min, median, CPU (user + system):
 *   before 19:50 (load 1.7 → 12.6): tar.zst 1.41 / 1.05 min, 1.64 / 1.23 median, CPU 2.16 / 1.72: 1.34×, 1.33×, 1.26×;
 *     tar.gz 11.05 / 12.20, 13.81 / 13.35, CPU 10.76 / 13.21: 0.91×, 1.03×, 0.81×;
 *     extract 6.84 / 2.85, 12.18 / 3.47, CPU 11.46 / 3.09: 2.40×, 3.51×, 3.71×
 *   after 20:38 (load 14.1 → 17.3): tar.zst 4.79 / 2.63, 5.56 / 2.77, CPU 2.22 / 1.78: 1.82×, 2.01×, 1.25×;
 *     tar.gz 40.49 / 29.17, 43.91 / 43.63, CPU 10.99 / 13.88: 1.39×, 1.01×, 0.79×;
 *     extract 13.54 / 6.77, 14.34 / 6.87, CPU 3.86 / 2.36: 2.00×, 2.09×, 1.64×
 * Most of the extract CPU change is the measurement (kernel time of the inode scan, not ours); the
 * code's own share, old (64 KiB reads) and new (1 MiB) interleaved into new directories, 3 runs each
 * at load 14–15, min: user 2.90 → 2.35 s, system 1.83 → 1.62 s, user + system 4.73 → 4.04 s; wall
 * 12.90 → 13.41 s (noise). Create code unchanged: its rows only re-measure (the wall times at load 15
 * say little). What is left of our extract CPU (--cpu-prof, --trace-gc): 26–38 mark-compacts
 * forced by the external memory of node:zlib's fresh 1 MiB output buffers (~1.1 s of the main
 * thread), node:zlib's zstd itself (0.3–1.1 s user to decompress the archive alone vs 0.16 s for
 * `zstd -dc`), node-tar's per-entry events; open(O_CREAT|O_EXCL) is the disk's, the tool's too.
 *
 * Wave 7 (2 December 2026, 7 helpers; load average 1-min before → after). extract and verify read
 * tar with a loop of their own (packages/agent/src/archive/tar-reader.ts) instead of node-tar's
 * Parser; create unchanged. `--runs 3`, ours / tool, ratio min, median, CPU (user + system):
 *   before, full bench 23:08–23:18 UTC (1.5 → 16.7): tar.zst 3.21 / 1.91, 3.62 / 2.26, CPU 3.03 / 1.94: 1.68×, 1.60×, 1.56×;
 *     tar.gz 62.25 / 35.59, 64.43 / 53.00, CPU 16.52 / 20.53: 1.75×, 1.22×, 0.80×;
 *     extract 15.63 / 6.75, 21.76 / 7.37, CPU 5.95 / 2.85: 2.32×, 2.95×, 2.09×
 *   after, `--only extract` 00:01–00:04 UTC (19.0 → 22.6): 15.98 / 5.25, 16.97 / 5.35, CPU 4.57 / 2.50: 3.04×, 3.17×, 1.83×
 *   after, `--only extract` 00:15–00:17 UTC (14.0 → 15.0): 10.81 / 4.53, 14.46 / 6.03, CPU 4.63 / 2.43: 2.39×, 2.40×, 1.91×
 * The same unpack one process at a time, old code / new code / tool interleaved (23:24–23:27,
 * load 17–20, 3 runs): user CPU 3.65–4.63 s old, 3.04–3.32 s new, 0.52–0.70 s tool; system
 * 3.0–6.5 s old, 2.3 s new, 2.5–7.1 s tool. What is left (--cpu-prof, --trace-gc): 25
 * mark-compacts forced by the external memory of node:zlib's fresh 1 MiB output buffers and the
 * file stream's (the heap itself is 16 MB), zstd in node:zlib ~0.6 s user vs 0.35 s for
 * `zstd -dc`, and the per-file fs calls (open, write, futimes, close: the syscalls are the
 * tool's too, the JS around them is not). Wall times at a load of 20 on 2 cores mostly measure
 * the scheduler: our one main thread against the tool's two processes.
 *
 * Wave 8 (2 December 2026, 6 helpers; load average 1-min before → after). Create writes its ustar
 * headers itself (tar-header.ts: node-tar's Header.encode was 178 ms of main-thread CPU for the
 * 20k headers, same bytes now) and the walk allocates less; extract and verify feed the
 * decompressor from the archive file through 4 reused 1 MiB buffers (ArchiveFileStream.feed).
 * Full bench `--runs 3`, ours / tool, ratio min, median, CPU (user + system):
 *   before 04:17–04:20 UTC (1.0 → 8.3): tar.zst 0.97 / 0.74, 0.99 / 0.78, CPU 1.25 / 0.93: 1.31×, 1.28×, 1.35×;
 *     tar.gz 6.19 / 9.09, 6.47 / 9.45, CPU 6.86 / 9.16: 0.68×, 0.68×, 0.75×;
 *     extract 7.05 / 2.00, 8.98 / 6.97, CPU 4.37 / 4.83: 3.51×, 1.29×, 0.90×
 *   headers only, 04:35–04:37 (10.2 → 10.1): tar.zst 1.39×, 1.62×, CPU 1.22×; tar.gz 1.14×, 1.55×, 0.81×;
 *     extract (code unchanged) 1.15×, 1.11×, 1.10×
 *   headers only, 04:39–04:42 (6.2 → 8.4): tar.zst 0.67 / 0.64, 0.74 / 0.67, CPU 0.85 / 0.82: 1.06×, 1.11×, 1.04×;
 *     tar.gz 0.84×, 1.11×, 0.75×; extract (code unchanged) 0.56×, 0.88×, 1.00×
 *   all of it, 05:07–05:09 (4.0 → 8.5): tar.zst 1.13 / 0.89, 1.30 / 0.94, CPU 0.79 / 0.71: 1.28×, 1.39×, 1.12×;
 *     tar.gz 6.16 / 7.97, 8.27 / 10.71, CPU 5.74 / 6.97: 0.77×, 0.77×, 0.82×;
 *     extract 3.63 / 2.51, 4.45 / 3.83, CPU 2.71 / 2.47: 1.45×, 1.16×, 1.10×
 *   all of it, 05:10–05:12 (8.2 → 8.4): tar.zst 1.26 / 0.77, 1.35 / 0.87, CPU 0.86 / 0.71: 1.63×, 1.56×, 1.21×;
 *     tar.gz 8.95 / 7.69, 10.52 / 11.29, CPU 5.40 / 7.07: 1.16×, 0.93×, 0.76×;
 *     extract 4.74 / 6.87, 9.30 / 7.49, CPU 5.86 / 5.15: 0.69×, 1.24×, 1.14×
 * So CPU is at the goal (tar.zst 1.12–1.21×, tar.gz 0.76–0.82×, extract 1.10–1.14×), and so are
 * extract's and tar.gz's wall times at these loads; tar.zst's wall time is not (1.3–1.6× at a load of 4–10).
 * Old and new code one process at a time, interleaved (user CPU medians, the steadier figure here):
 * create tar.zst 0.62 → 0.55 s (5 runs each, load 14.8 → 13.6); verify user + system 0.95 → 0.81 s
 * (5 runs, load 7.7 → 7.2); extract user 1.28 → 1.08 s (3 runs, load 6.9 → 7.6; its system time,
 * 1.9–19 s either way, is the disk's). Measured and not kept: 16 instead of 4 pool buffers,
 * 4 MiB instead of 1 MiB chunks, UV_THREADPOOL_SIZE 1, 4 or 8 (one compressor stream is one job at
 * a time), 1 MiB instead of 8 MiB extract read-ahead: no change past the noise.
 * What is left. Create: the per-file calls on our one main thread (open through
 * /proc/self/fd/N/name, which the no-symlink-following walk needs, fstat, read, close: 0.19–0.22 s
 * for the 20k small files alone, measured bare; opening by absolute path instead halves the
 * open's system time, but would follow a directory swapped for a link), while `tar | zstd` runs
 * its two processes side by side (`tar -cf -` alone: 0.05 s user, 0.4 s system): most of the
 * wall-time gap under load. Extract and verify:
 * mark-compacts forced by the external memory of node:zlib's fresh 1 MiB output buffers (verify:
 * 330 ms of GC in --cpu-prof for 0.58 s of user CPU; a bare `zstd -dc` in node:zlib has little,
 * its heap is small). Next step: the decompressor in a worker thread (its small heap makes those
 * collections cheap) writing into a shared ring of reused buffers.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { archiveFileStream, createArchive, extractArchive } from '../packages/agent/src/archive/archive.ts';

const DIR = process.env.CAP_BENCH_DIR ?? '/var/tmp/cap-bench-backup';
const TREE = path.join(DIR, 'tree');
const MARK = path.join(DIR, 'complete-v1');
if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log('node bench/backup.ts [--runs 3] [--only create|zstd|gzip|extract]   (tree in $CAP_BENCH_DIR)');
  process.exit(0);
}
const i = process.argv.indexOf('--runs');
const RUNS = i > 0 ? Number(process.argv[i + 1]) : 3;
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 50) throw new Error('--runs: 1..50');
const o = process.argv.indexOf('--only');
const ONLY = o > 0 ? process.argv[o + 1] : 'all';
if (!['all', 'create', 'zstd', 'gzip', 'extract'].includes(ONLY ?? ''))
  throw new Error('--only: create (tar.zst and tar.gz), zstd, gzip, extract');
const MB = 1024 * 1024;

async function generate(): Promise<void> {
  if (existsSync(MARK)) return;
  await rm(TREE, { recursive: true, force: true });
  const words =
    'server world player chunk region level spawn motd difficulty gamemode true false port max view distance entity tick'.split(
      ' ',
    );
  let seed = 1;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  for (let d = 0; d < 100; d++) {
    const dir = path.join(TREE, 'config', `d${d}`);
    await mkdir(dir, { recursive: true });
    for (let f = 0; f < 200; f++) {
      const lines: string[] = [];
      const n = 20 + (rnd() % 120);
      for (let l = 0; l < n; l++)
        lines.push(`${words[rnd() % words.length]}-${words[rnd() % words.length]}=${rnd() % 100000}`);
      await writeFile(path.join(dir, `f${f}.properties`), `${lines.join('\n')}\n`);
    }
  }
  await mkdir(path.join(TREE, 'world', 'region'), { recursive: true });
  for (let k = 0; k < 8; k++)
    await writeFile(path.join(TREE, 'world', 'region', `r.${k}.0.mca`), randomBytes(25 * MB));
  await mkdir(path.join(TREE, 'world', 'data'), { recursive: true });
  for (let k = 0; k < 4; k++) {
    // repetitive blocks with some variation: compresses well, but not to nothing
    const buf = Buffer.alloc(55 * MB);
    const block = randomBytes(4096);
    for (let o = 0; o < buf.length; o += 4096) {
      block.copy(buf, o);
      buf.writeUInt32LE(rnd(), o + (rnd() % 4092));
    }
    await writeFile(path.join(TREE, 'world', 'data', `map${k}.dat`), buf);
  }
  await writeFile(MARK, new Date().toISOString());
}

interface Run {
  seconds: number;
  /** user + system CPU seconds: the tool's processes (sh's `times`), or this whole process (all its threads) */
  cpu: number;
  out: number;
}

/** `m` and `s` of sh's `times` line for the children: "0m0.660000s 0m1.100000s" */
const timesSeconds = (line: string) =>
  line
    .trim()
    .split(/\s+/)
    .map((t) => /^(\d+)m([\d.]+)s$/.exec(t))
    .reduce((sum, m) => sum + (m ? Number(m[1]) * 60 + Number(m[2]) : Number.NaN), 0);

function sh(cmd: string, cwd: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const p = spawn('sh', ['-c', `${cmd} | wc -c; times`], { cwd, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (c) => {
      out += c;
    });
    p.on('error', reject);
    p.on('exit', (code) => {
      const lines = out.trim().split('\n');
      if (code !== 0) reject(new Error(`${cmd}: exit ${code}`));
      else
        resolve({
          seconds: Number(process.hrtime.bigint() - t0) / 1e9,
          cpu: timesSeconds(lines[lines.length - 1] ?? ''),
          out: Number(lines[0]),
        });
    });
  });
}

const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

async function ours(format: 'tar.zst' | 'tar.gz'): Promise<Run & { bytes: number }> {
  const t0 = process.hrtime.bigint();
  const c0 = cpuNow();
  const { stream, done } = createArchive(TREE, { format });
  let out = 0;
  for await (const c of stream as AsyncIterable<Buffer>) out += c.length;
  const stats = await done;
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, cpu: cpuNow() - c0, out, bytes: stats.bytes };
}

/** min and median of each side, the runs interleaved (tool, ours, tool, ours…) so that the shared
 * machine's load falls on both alike; the ratio is taken of the minima and of the medians */
async function pair<T extends Run, U extends Run>(
  tool: () => Promise<T>,
  mine: () => Promise<U>,
): Promise<{ tool: Stat<T>; ours: Stat<U> }> {
  const a: T[] = [];
  const b: U[] = [];
  for (let r = 0; r < RUNS; r++) {
    a.push(await tool());
    b.push(await mine());
  }
  return { tool: stat(a), ours: stat(b) };
}
interface Stat<T> {
  min: number;
  median: number;
  /** median CPU seconds */
  cpu: number;
  last: T;
}
function median(xs: number[]): number {
  const s = [...xs].sort((p, q) => p - q);
  return s.length % 2
    ? (s[(s.length - 1) / 2] as number)
    : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
}
function stat<T extends Run>(xs: T[]): Stat<T> {
  const s = xs.map((x) => x.seconds);
  return {
    min: Math.min(...s),
    median: median(s),
    cpu: median(xs.map((x) => x.cpu)),
    last: xs[xs.length - 1] as T,
  };
}

const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
await generate();
// a tree written just now is still being flushed: the first runs would pay for its writeback
await sh('sync', TREE);
await sh('tar -cf - .', TREE); // warm the page cache
const size = (await sh('tar -cf - .', TREE)).out;
const loadBefore = load();
const rows: string[][] = [
  ['what', 'min s', 'median s', 'MB/s', 'ratio', 'cpu s', 'vs tool (min, median, cpu)'],
];
const row = (what: string, r: Stat<Run>, ref?: Stat<Run>) =>
  rows.push([
    what,
    r.min.toFixed(2),
    r.median.toFixed(2),
    (size / MB / r.min).toFixed(0),
    (r.last.out / size).toFixed(3),
    r.cpu.toFixed(2),
    ref === undefined
      ? ''
      : `${(r.min / ref.min).toFixed(2)}×, ${(r.median / ref.median).toFixed(2)}×, ${(r.cpu / ref.cpu).toFixed(2)}×`,
  ]);
let zstdBytes = 0;
if (ONLY === 'all' || ONLY === 'create' || ONLY === 'zstd') {
  const z = await pair(
    () => sh('tar -cf - . | zstd -3 -q -c', TREE),
    () => ours('tar.zst'),
  );
  zstdBytes = z.ours.last.bytes;
  row('tar -cf - . | zstd -3', z.tool);
  row('ours tar.zst (zstd 3)', z.ours, z.tool);
}
if (ONLY === 'all' || ONLY === 'create' || ONLY === 'gzip') {
  const g = await pair(
    () => sh('tar czf - .', TREE),
    () => ours('tar.gz'),
  );
  row('tar czf - . (gzip -6)', g.tool);
  row('ours tar.gz (gzip 6)', g.ours, g.tool);
}

// extract: the same tar.zst (made by the tools), both ways
const work = ONLY === 'all' || ONLY === 'extract' ? await mkdtemp(path.join(DIR, 'x-')) : null;
if (work)
  try {
    const file = path.join(work, 'b.tar.zst');
    await sh(`tar -cf - . | zstd -3 -q -c > ${file}`, TREE);
    // each run into a new directory, all removed at the end: ext4 skips inodes freed in the last
    // seconds when it allocates (recently_deleted(), found by `perf record`: 20 % of the samples),
    // so a tree removed just before an unpack made that unpack's file creation 5–10× dearer in
    // system time, whichever side came after the removal
    let n = 0;
    const fresh = async () => {
      const d = path.join(work, `x${n++}`);
      await mkdir(d);
      return d;
    };
    const x = await pair(
      async () => sh(`zstd -dc ${file} | tar -xf - -C ${await fresh()} && true`, work),
      async () => {
        const dest = await fresh();
        const t0 = process.hrtime.bigint();
        const c0 = cpuNow();
        await extractArchive(archiveFileStream(file), dest, { format: 'tar.zst' });
        return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, cpu: cpuNow() - c0, out: 0 };
      },
    );
    row('zstd -dc | tar -xf -', { ...x.tool, last: { ...x.tool.last, out: 0 } });
    row('ours extract tar.zst', x.ours, x.tool);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
console.log(
  `tree: ${(size / MB).toFixed(0)} MB as tar${zstdBytes ? ` (${zstdBytes} bytes of file data)` : ''}, ${RUNS} runs each, interleaved; load average (1, 5, 15 min) ${loadBefore} before, ${load()} after; ${cpus().length} CPUs`,
);
for (const r of rows)
  console.log(r.map((c, k) => (k === 0 ? c.padEnd(26) : c.padStart(k === 6 ? 30 : 10))).join(''));
