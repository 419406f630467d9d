/**
 * Which Panel replicas are alive (issue 15), in the shared PostgreSQL (`panel_replicas`, migration
 * 031): each replica writes its row every `heartbeatMs`, with the database's clock (replicas on
 * hosts whose clocks differ agree). A replica whose row is older than `ttlMs` is dead: a
 * `kill -9`, a power loss, or a replica that could not reach the database that long. Every beat
 * also removes the dead replicas' rows and their socket counts (`live_counts`).
 *
 * A replica that finds its own row gone (the others took it for dead while it could not write)
 * writes it again and tells `onRejoin` (its socket counts are written again).
 */
import { sql } from 'kysely';
import type { Db } from '../db/index.ts';

export interface ReplicaLogger {
  warn(obj: object, msg: string): void;
}

/** The database's clock in ms (PostgreSQL). */
export const dbNowMs = sql<string>`(extract(epoch from clock_timestamp()) * 1000)::bigint`;

export class ReplicaRegistry {
  readonly id: string;
  readonly ttlMs: number;
  readonly #db: Db;
  readonly #heartbeatMs: number;
  readonly #log: ReplicaLogger;
  readonly #rejoin: (() => Promise<void>)[] = [];
  #timer: NodeJS.Timeout | undefined;
  #beating: Promise<void> | undefined;
  #closed = false;

  constructor(opts: { db: Db; id: string; heartbeatMs: number; ttlMs: number; log: ReplicaLogger }) {
    this.#db = opts.db;
    this.id = opts.id;
    this.#heartbeatMs = opts.heartbeatMs;
    this.ttlMs = opts.ttlMs;
    this.#log = opts.log;
  }

  /** Runs after this replica's row had to be written again (it was taken for dead). */
  onRejoin(fn: () => Promise<void>): void {
    this.#rejoin.push(fn);
  }

  /** Writes this replica's row, then beats every `heartbeatMs`. */
  async start(): Promise<void> {
    await this.beat();
    this.#timer = setInterval(() => {
      this.#beating ??= this.beat()
        .catch((err: Error) => this.#log.warn({ err: err.message }, 'replica heartbeat failed'))
        .finally(() => {
          this.#beating = undefined;
        });
    }, this.#heartbeatMs);
    this.#timer.unref();
  }

  /** One beat: this replica's row refreshed (written again if gone); the dead ones' rows removed. */
  async beat(): Promise<void> {
    if (this.#closed) return;
    const updated = await this.#db
      .updateTable('panel_replicas')
      .set({ heartbeat_at: dbNowMs })
      .where('id', '=', this.id)
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 0) {
      await this.#db
        .insertInto('panel_replicas')
        .values({ id: this.id, heartbeat_at: dbNowMs })
        .onConflict((oc) => oc.column('id').doUpdateSet({ heartbeat_at: dbNowMs }))
        .execute();
      for (const fn of this.#rejoin) await fn();
    }
    const cutoff = sql<string>`${dbNowMs} - ${this.ttlMs}`;
    await this.#db.deleteFrom('panel_replicas').where('heartbeat_at', '<', cutoff).execute();
    await this.#db
      .deleteFrom('live_counts')
      .where('replica_id', 'not in', this.#db.selectFrom('panel_replicas').select('id'))
      .execute();
  }

  /** Of `ids`, those alive now (a row younger than the TTL). */
  async alive(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.#db
      .selectFrom('panel_replicas')
      .select('id')
      .where('id', 'in', [...new Set(ids)])
      .where('heartbeat_at', '>=', sql<string>`${dbNowMs} - ${this.ttlMs}`)
      .execute();
    return new Set(rows.map((r) => r.id));
  }

  /** Stops beating and leaves the rows, as a killed replica would (tests). */
  halt(): void {
    this.#closed = true;
    clearInterval(this.#timer);
  }

  /** Stops beating and removes this replica's row and counts (the others need not wait the TTL). */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#beating;
    await this.#db.deleteFrom('live_counts').where('replica_id', '=', this.id).execute();
    await this.#db.deleteFrom('panel_replicas').where('id', '=', this.id).execute();
  }
}
