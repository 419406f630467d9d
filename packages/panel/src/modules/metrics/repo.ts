import type { Db } from '../../db/index.ts';
import type { MetricBucketsTable } from '../../db/schema.ts';

export class MetricsRepo {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async upsert(rows: MetricBucketsTable[]): Promise<void> {
    if (!rows.length) return;
    for (let i = 0; i < rows.length; i += 200) {
      await this.#db
        .insertInto('metric_buckets')
        .values(rows.slice(i, i + 200))
        .onConflict((oc) =>
          oc.columns(['server_id', 't']).doUpdateSet((eb) => ({
            samples: eb.ref('excluded.samples'),
            cpu: eb.ref('excluded.cpu'),
            memory_bytes: eb.ref('excluded.memory_bytes'),
            rx_bytes: eb.ref('excluded.rx_bytes'),
            tx_bytes: eb.ref('excluded.tx_bytes'),
            disk_bytes: eb.ref('excluded.disk_bytes'),
          })),
        )
        .execute();
    }
  }
  range(serverId: string, from: number): Promise<MetricBucketsTable[]> {
    return this.#db
      .selectFrom('metric_buckets')
      .selectAll()
      .where('server_id', '=', serverId)
      .where('t', '>=', from)
      .orderBy('t')
      .execute();
  }
  async pruneBefore(t: number): Promise<void> {
    await this.#db.deleteFrom('metric_buckets').where('t', '<', t).execute();
  }
}
