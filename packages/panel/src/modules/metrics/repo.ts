import { BucketRepo } from '../../db/bucket-repo.ts';
import type { Db } from '../../db/index.ts';

/** `metric_buckets`: upsert, a server's range, prune (the shared bucketed-series repo). */
export class MetricsRepo extends BucketRepo<'metric_buckets'> {
  constructor(db: Db) {
    super(db, 'metric_buckets', ['samples', 'cpu', 'memory_bytes', 'rx_bytes', 'tx_bytes', 'disk_bytes']);
  }
}
