/**
 * Metrics history: each `resource_update` is averaged into a 1-minute bucket per server;
 * finished buckets are written in batches and kept 7 days; longer ranges are downsampled on read.
 */
import type { ResourceSnapshot } from '@cap/protocol';
import { z } from 'zod';
import type { MetricBucketsTable } from '../../db/schema.ts';
import { bucketAt, downsample, RETENTION_MS, SERIES_RANGES, SeriesRange } from '../../lib/bucket-series.ts';
import type { MetricsRepo } from './repo.ts';

export { BUCKET_MS, RETENTION_MS } from '../../lib/bucket-series.ts';

export const Bucket = z.object({
  t: z.string(),
  cpu: z.number(),
  memoryBytes: z.number(),
  rxBytes: z.number(),
  txBytes: z.number(),
  diskBytes: z.number(),
});
export type Bucket = z.infer<typeof Bucket>;
export const MetricsRange = SeriesRange;
export type MetricsRange = SeriesRange;

export class MetricsService {
  readonly #repo: MetricsRepo;
  readonly #open = new Map<string, MetricBucketsTable>();
  #done: MetricBucketsTable[] = [];
  #flushing: Promise<void> = Promise.resolve();

  readonly #onError: (err: unknown, rows: number) => void;

  constructor(repo: MetricsRepo, opts: { onError?: (err: unknown, rows: number) => void } = {}) {
    this.#repo = repo;
    this.#onError = opts.onError ?? (() => undefined);
  }

  record(serverId: string, s: ResourceSnapshot, now = Date.now()): void {
    const open = this.#open.get(serverId);
    const b = bucketAt(open, now, this.#done, (t) => ({
      server_id: serverId,
      t,
      samples: 0,
      cpu: 0,
      memory_bytes: 0,
      rx_bytes: 0,
      tx_bytes: 0,
      disk_bytes: 0,
    }));
    if (b !== open) this.#open.set(serverId, b);
    // the protocol bounds these; a value that is still not finite must not poison the average
    if (![s.cpu, s.memory.usedBytes, s.network.rx, s.network.tx, s.disk.usedBytes].every(Number.isFinite))
      return;
    const n = b.samples + 1;
    b.cpu += (s.cpu - b.cpu) / n;
    b.memory_bytes += (s.memory.usedBytes - b.memory_bytes) / n;
    b.rx_bytes = s.network.rx;
    b.tx_bytes = s.network.tx;
    b.disk_bytes = s.disk.usedBytes;
    b.samples = n;
  }

  /** Write finished buckets (and, with all, the open ones too, e.g. at shutdown). */
  flush(all = false): Promise<void> {
    const rows = this.#done;
    this.#done = [];
    if (all) {
      rows.push(...this.#open.values());
    }
    // a failed write is reported and its rows given up; the chain stays usable for later flushes
    // and reads (a rejected chain once turned every metrics call into a 500 until a restart)
    this.#flushing = this.#flushing
      .then(() => (rows.length ? this.#repo.upsert(rows) : undefined))
      .catch((err: unknown) => this.#onError(err, rows.length));
    return this.#flushing;
  }

  prune(now = Date.now()): Promise<void> {
    return this.#repo.pruneBefore(now - RETENTION_MS);
  }

  forget(serverId: string): void {
    this.#open.delete(serverId);
    this.#done = this.#done.filter((b) => b.server_id !== serverId);
  }

  async range(serverId: string, range: MetricsRange, now = Date.now()): Promise<Bucket[]> {
    const { span, step } = SERIES_RANGES[range];
    const from = now - span;
    await this.#flushing;
    const rows = await this.#repo.range(serverId, from);
    return downsample(
      rows,
      [...this.#done, ...this.#open.values()],
      { serverId, from, step },
      {
        start: (t, first) => ({ t, n: 0, cpu: 0, mem: 0, last: first }),
        add: (acc, r) => {
          acc.n += 1;
          acc.cpu += r.cpu;
          acc.mem += r.memory_bytes;
          acc.last = r;
        },
        emit: (acc): Bucket => ({
          t: new Date(acc.t).toISOString(),
          cpu: acc.cpu / acc.n,
          memoryBytes: acc.mem / acc.n,
          rxBytes: acc.last.rx_bytes,
          txBytes: acc.last.tx_bytes,
          diskBytes: acc.last.disk_bytes,
        }),
      },
    );
  }
}
