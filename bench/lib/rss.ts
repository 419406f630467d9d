/**
 * Resident memory of processes for the benchmarks: VmRSS from /proc, and a sampler keeping the
 * peak of each process (every 100 ms by default) while something runs.
 */
import { readFileSync } from 'node:fs';

/** A process's VmRSS in KiB (NaN when /proc does not say). */
export function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? Number.NaN);
}

/** KiB as `12.3 MiB`. */
export const mib = (kib: number): string => `${(kib / 1024).toFixed(1)} MiB`;

/**
 * Samples the VmRSS of each named process from now: `before` is the first reading, `peak` the
 * highest so far; `onSample` runs at each tick too (e.g. to follow process.memoryUsage()).
 * Call `stop()` when the measured work ended.
 */
export function sampleRss<K extends string>(
  pids: Record<K, number>,
  opts: { everyMs?: number; onSample?: () => void } = {},
): { before: Record<K, number>; peak: Record<K, number>; stop: () => void } {
  const names = Object.keys(pids) as K[];
  const before = {} as Record<K, number>;
  for (const k of names) before[k] = rssKiB(pids[k]);
  const peak = { ...before };
  const timer = setInterval(() => {
    for (const k of names) peak[k] = Math.max(peak[k], rssKiB(pids[k]));
    opts.onSample?.();
  }, opts.everyMs ?? 100);
  return { before, peak, stop: () => clearInterval(timer) };
}
