/**
 * Time-bucketed series (metrics, player counts): samples are averaged into a 1-minute bucket per
 * server, finished buckets are written in batches and kept 7 days, and longer ranges are
 * downsampled on read. This holds what both series share; each says what its bucket carries.
 */
import { z } from 'zod';

export const BUCKET_MS = 60_000;
export const RETENTION_MS = 7 * 24 * 3600 * 1000;

export const SeriesRange = z.enum(['1h', '24h', '7d']);
export type SeriesRange = z.infer<typeof SeriesRange>;
/** how far back each range reaches and the width of the buckets it answers with */
export const SERIES_RANGES: Record<SeriesRange, { span: number; step: number }> = {
  '1h': { span: 3600_000, step: BUCKET_MS },
  '24h': { span: 24 * 3600_000, step: 5 * BUCKET_MS },
  '7d': { span: RETENTION_MS, step: 30 * BUCKET_MS },
};

export interface BucketRow {
  server_id: string;
  /** bucket start, epoch ms */
  t: number;
  samples: number;
}

/**
 * The bucket `now` falls in: `open` while its minute lasts; otherwise `open` (if any) is pushed
 * onto `done` and `fresh(t)` starts the new one (the caller keeps it as its open bucket).
 */
export function bucketAt<B extends BucketRow>(
  open: B | null | undefined,
  now: number,
  done: B[],
  fresh: (t: number) => B,
): B {
  const t = Math.floor(now / BUCKET_MS) * BUCKET_MS;
  if (open && open.t === t) return open;
  if (open) done.push(open);
  return fresh(t);
}

/**
 * The buckets of one range read back: stored rows with the not yet written ones (a pending bucket
 * replaces a stored one of the same start), in time order, merged `step`-wide by `start`/`add`
 * and answered through `emit`.
 */
export function downsample<B extends BucketRow, A extends { t: number }, O>(
  stored: readonly B[],
  pending: readonly B[],
  q: { serverId: string; from: number; step: number },
  fold: { start: (t: number, first: B) => A; add: (acc: A, row: B) => void; emit: (acc: A) => O },
): O[] {
  const byT = new Map<number, B>();
  for (const r of stored) byT.set(r.t, r);
  for (const r of pending) if (r.server_id === q.serverId && r.t >= q.from) byT.set(r.t, r);
  const all = [...byT.values()].sort((a, b) => a.t - b.t);
  const out: O[] = [];
  let acc: A | undefined;
  for (const r of all) {
    const t = Math.floor(r.t / q.step) * q.step;
    if (!acc || acc.t !== t) {
      if (acc) out.push(fold.emit(acc));
      acc = fold.start(t, r);
    }
    fold.add(acc, r);
  }
  if (acc) out.push(fold.emit(acc));
  return out;
}
