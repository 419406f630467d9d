/** Time series for the server charts: REST buckets first, then live `stats` appended. */
import type { Bucket, ResourceSnapshot } from '../api/types.ts';

export interface Point {
  /** ms epoch */
  t: number;
  cpu: number;
  memoryBytes: number;
  diskBytes: number;
  /** bytes/s, derived from the cumulative counters */
  rxRate: number | null;
  txRate: number | null;
  /** the raw cumulative counters, to derive the next rate */
  rx: number;
  tx: number;
}

export const MAX_POINTS = 240;

function rate(prev: Point | undefined, t: number, now: number, then: number | undefined): number | null {
  if (!prev || then === undefined) return null;
  const dt = (t - prev.t) / 1000;
  if (dt <= 0) return null;
  // counters reset when the container restarts: no negative rates
  return Math.max(0, (now - then) / dt);
}

export function pointFromBucket(b: Bucket, prev?: Point): Point {
  const t = Date.parse(b.t);
  return {
    t,
    cpu: b.cpu,
    memoryBytes: b.memoryBytes,
    diskBytes: b.diskBytes,
    rx: b.rxBytes,
    tx: b.txBytes,
    rxRate: rate(prev, t, b.rxBytes, prev?.rx),
    txRate: rate(prev, t, b.txBytes, prev?.tx),
  };
}

export function pointFromStats(s: ResourceSnapshot, t: number, prev?: Point): Point {
  return {
    t,
    cpu: s.cpu,
    memoryBytes: s.memory.usedBytes,
    diskBytes: s.disk.usedBytes,
    rx: s.network.rx,
    tx: s.network.tx,
    rxRate: rate(prev, t, s.network.rx, prev?.rx),
    txRate: rate(prev, t, s.network.tx, prev?.tx),
  };
}

export function seriesFromBuckets(buckets: readonly Bucket[]): Point[] {
  const out: Point[] = [];
  for (const b of [...buckets].sort((a, c) => Date.parse(a.t) - Date.parse(c.t))) {
    if (Number.isNaN(Date.parse(b.t))) continue;
    out.push(pointFromBucket(b, out[out.length - 1]));
  }
  return out.slice(-MAX_POINTS);
}

export function appendStats(series: readonly Point[], s: ResourceSnapshot, t = Date.now()): Point[] {
  const prev = series[series.length - 1];
  if (prev && t <= prev.t) return series as Point[];
  const next = [...series, pointFromStats(s, t, prev)];
  return next.length > MAX_POINTS ? next.slice(next.length - MAX_POINTS) : next;
}

// built from strings so the source holds no raw control characters
const ESC = String.fromCharCode(27);
const BEL = String.fromCharCode(7);
const ANSI = new RegExp(
  `${ESC}\\[[0-?]*[ -/]*[@-~]|${ESC}\\][^${BEL}${ESC}]*(?:${BEL}|${ESC}\\\\)|${ESC}[@-Z\\\\-_]`,
  'g',
);

/** Terminal escape sequences removed, for the plain-text previews (the terminal renders them). */
export function stripAnsi(s: string): string {
  return s.replace(ANSI, '');
}
