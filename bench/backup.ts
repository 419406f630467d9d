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
 *   node bench/backup.ts [--runs 3]
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
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { createArchive, extractArchive } from '../packages/agent/src/archive/archive.ts';

const DIR = process.env.CAP_BENCH_DIR ?? '/var/tmp/cap-bench-backup';
const TREE = path.join(DIR, 'tree');
const MARK = path.join(DIR, 'complete-v1');
const i = process.argv.indexOf('--runs');
const RUNS = i > 0 ? Number(process.argv[i + 1]) : 3;
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 50) throw new Error('--runs: 1..50');
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

function sh(cmd: string, cwd: string): Promise<{ seconds: number; out: number }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const p = spawn('sh', ['-c', `${cmd} | wc -c`], { cwd, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (c) => {
      out += c;
    });
    p.on('error', reject);
    p.on('exit', (code) => {
      if (code !== 0) reject(new Error(`${cmd}: exit ${code}`));
      else resolve({ seconds: Number(process.hrtime.bigint() - t0) / 1e9, out: Number(out.trim()) });
    });
  });
}

async function ours(format: 'tar.zst' | 'tar.gz'): Promise<{ seconds: number; out: number; bytes: number }> {
  const t0 = process.hrtime.bigint();
  const { stream, done } = createArchive(TREE, { format });
  let out = 0;
  for await (const c of stream as AsyncIterable<Buffer>) out += c.length;
  const stats = await done;
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, out, bytes: stats.bytes };
}

/** min and median of each side, the runs interleaved (tool, ours, tool, ours…) so that the shared
 * machine's load falls on both alike; the ratio is taken of the minima and of the medians */
async function pair<T extends { seconds: number }, U extends { seconds: number }>(
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
  last: T;
}
function stat<T extends { seconds: number }>(xs: T[]): Stat<T> {
  const s = xs.map((x) => x.seconds).sort((p, q) => p - q);
  const m =
    s.length % 2
      ? (s[(s.length - 1) / 2] as number)
      : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
  return { min: s[0] as number, median: m, last: xs[xs.length - 1] as T };
}

await generate();
await sh('tar -cf - .', TREE); // warm the page cache
const size = (await sh('tar -cf - .', TREE)).out;
const rows: string[][] = [['what', 'min s', 'median s', 'MB/s', 'ratio', 'vs tool (min, median)']];
const row = (what: string, r: Stat<{ seconds: number; out: number }>, ref?: Stat<unknown>) =>
  rows.push([
    what,
    r.min.toFixed(2),
    r.median.toFixed(2),
    (size / MB / r.min).toFixed(0),
    (r.last.out / size).toFixed(3),
    ref === undefined ? '' : `${(r.min / ref.min).toFixed(2)}×, ${(r.median / ref.median).toFixed(2)}×`,
  ]);
const z = await pair(
  () => sh('tar -cf - . | zstd -3 -q -c', TREE),
  () => ours('tar.zst'),
);
row('tar -cf - . | zstd -3', z.tool);
row('ours tar.zst (zstd 3)', z.ours, z.tool);
const g = await pair(
  () => sh('tar czf - .', TREE),
  () => ours('tar.gz'),
);
row('tar czf - . (gzip -6)', g.tool);
row('ours tar.gz (gzip 6)', g.ours, g.tool);

// extract: the same tar.zst (made by the tools), both ways
const work = await mkdtemp(path.join(DIR, 'x-'));
try {
  const file = path.join(work, 'b.tar.zst');
  await sh(`tar -cf - . | zstd -3 -q -c > ${file}`, TREE);
  const x = await pair(
    async () => {
      await rm(path.join(work, 't'), { recursive: true, force: true });
      await mkdir(path.join(work, 't'));
      return sh(`zstd -dc ${file} | tar -xf - -C ${path.join(work, 't')} && true`, work);
    },
    async () => {
      await rm(path.join(work, 'o'), { recursive: true, force: true });
      await mkdir(path.join(work, 'o'));
      const t0 = process.hrtime.bigint();
      await extractArchive(createReadStream(file) as Readable, path.join(work, 'o'), { format: 'tar.zst' });
      return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, out: 0 };
    },
  );
  row('zstd -dc | tar -xf -', { ...x.tool, last: { ...x.tool.last, out: 0 } });
  row('ours extract tar.zst', x.ours, x.tool);
} finally {
  await rm(work, { recursive: true, force: true });
}
console.log(
  `tree: ${(size / MB).toFixed(0)} MB as tar (${z.ours.last.bytes} bytes of file data), ${RUNS} runs each, interleaved; load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);
for (const r of rows)
  console.log(r.map((c, k) => (k === 0 ? c.padEnd(26) : c.padStart(k === 5 ? 24 : 10))).join(''));
