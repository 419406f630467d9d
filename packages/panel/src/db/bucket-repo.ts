import type { Db } from './index.ts';
import type { Database } from './schema.ts';

/** The tables of time-bucketed series: one row per server and bucket start `t`. */
export type BucketTable = 'metric_buckets' | 'player_buckets';

/** rows a statement at the most (SQLite caps bound parameters) */
const BATCH = 200;

/**
 * Reads and writes of a bucketed series table: upsert (a bucket written again replaces its
 * `values`), a server's buckets from a time on, and the prune of buckets older than a time.
 */
export class BucketRepo<T extends BucketTable> {
  readonly #db: Db;
  readonly #table: T;
  readonly #values: readonly (keyof Database[T] & string)[];
  constructor(db: Db, table: T, values: readonly (keyof Database[T] & string)[]) {
    this.#db = db;
    this.#table = table;
    this.#values = values;
  }
  async upsert(rows: readonly Database[T][]): Promise<void> {
    for (let i = 0; i < rows.length; i += BATCH) {
      // Kysely cannot follow a generic table name; the rows and columns are that table's own
      await this.#db
        .insertInto(this.#table as BucketTable)
        .values(rows.slice(i, i + BATCH) as never)
        .onConflict((oc) =>
          oc
            .columns(['server_id', 't'])
            .doUpdateSet((eb) =>
              Object.fromEntries(this.#values.map((c) => [c, eb.ref(`excluded.${c}` as never)])),
            ),
        )
        .execute();
    }
  }
  range(serverId: string, from: number): Promise<Database[T][]> {
    return this.#db
      .selectFrom(this.#table as BucketTable)
      .selectAll()
      .where('server_id', '=', serverId)
      .where('t', '>=', from)
      .orderBy('t')
      .execute() as Promise<Database[T][]>;
  }
  async pruneBefore(t: number): Promise<void> {
    await this.#db
      .deleteFrom(this.#table as BucketTable)
      .where('t', '<', t)
      .execute();
  }
}
