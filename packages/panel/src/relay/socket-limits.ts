/**
 * Open-socket limits (`/ws/client` sockets per user, subscriptions per server), counted under a
 * key (`user:<id>`, `server:<id>`). One process counts in memory; several replicas count in the
 * shared PostgreSQL (`live_counts`, migration 031), so a user cannot open the maximum on each
 * replica.
 *
 * Across replicas (PgSocketLimits): each replica keeps its own counts in memory (its truth) and
 * writes each key's count to its row (replica, key). An `acquire` takes a transaction-scoped
 * advisory lock on the key (acquires of one key on all replicas go one at a time), adds the
 * counts of the replicas alive (their `panel_replicas` row younger than the TTL) and writes its
 * own count + 1 when under the maximum. A `release` writes the lower count (per key in order).
 * A killed replica's counts stop counting once its heartbeat is older than the TTL (and are
 * removed on the next beat of any replica), so they never lock a user out for longer than that.
 * When the database cannot be reached, an acquire falls back to this replica's own count (a user
 * keeps the per-replica limit; logged).
 */
import { sql } from 'kysely';
import type { Db } from '../db/index.ts';
import { dbNowMs, type ReplicaRegistry } from '../lib/replicas.ts';

export interface SocketLimits {
  /** Counts one more under `key` unless `max` are open (across replicas); false: nothing counted. */
  acquire(key: string, max: number): Promise<boolean>;
  release(key: string): void;
  /** Open under `key` here (tests, metrics). */
  local(key: string): number;
}

export class LocalSocketLimits implements SocketLimits {
  readonly #counts = new Map<string, number>();
  async acquire(key: string, max: number): Promise<boolean> {
    const n = this.#counts.get(key) ?? 0;
    if (n >= max) return false;
    this.#counts.set(key, n + 1);
    return true;
  }
  release(key: string): void {
    const n = (this.#counts.get(key) ?? 1) - 1;
    if (n > 0) this.#counts.set(key, n);
    else this.#counts.delete(key);
  }
  local(key: string): number {
    return this.#counts.get(key) ?? 0;
  }
}

export interface SocketLimitsLogger {
  warn(obj: object, msg: string): void;
}

export class PgSocketLimits implements SocketLimits {
  readonly #db: Db;
  readonly #replicas: ReplicaRegistry;
  readonly #log: SocketLimitsLogger;
  readonly #counts = new Map<string, number>();
  /** per key: the writes in order (the last one written is the count now) */
  readonly #chains = new Map<string, Promise<unknown>>();

  constructor(opts: { db: Db; replicas: ReplicaRegistry; log: SocketLimitsLogger }) {
    this.#db = opts.db;
    this.#replicas = opts.replicas;
    this.#log = opts.log;
    // taken for dead while alive: the others removed our counts; they are ours again
    this.#replicas.onRejoin(async () => {
      for (const key of this.#counts.keys()) await this.#queue(key, () => this.#write(key));
    });
  }

  local(key: string): number {
    return this.#counts.get(key) ?? 0;
  }

  #queue<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#chains.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.#chains.set(key, tail);
    void tail.then(() => {
      if (this.#chains.get(key) === tail) this.#chains.delete(key);
    });
    return next;
  }

  async #write(key: string, db: Pick<Db, 'insertInto' | 'deleteFrom'> = this.#db): Promise<void> {
    const n = this.#counts.get(key) ?? 0;
    const id = this.#replicas.id;
    if (n === 0) {
      await db.deleteFrom('live_counts').where('replica_id', '=', id).where('key', '=', key).execute();
      return;
    }
    await db
      .insertInto('live_counts')
      .values({ replica_id: id, key, n })
      .onConflict((oc) => oc.columns(['replica_id', 'key']).doUpdateSet({ n }))
      .execute();
  }

  acquire(key: string, max: number): Promise<boolean> {
    return this.#queue(key, async () => {
      const mine = this.#counts.get(key) ?? 0;
      if (mine >= max) return false;
      try {
        const ok = await this.#db.transaction().execute(async (trx) => {
          await sql`SELECT pg_advisory_xact_lock(hashtextextended(${`cap-live:${key}`}, 0))`.execute(trx);
          const row = await trx
            .selectFrom('live_counts')
            .innerJoin('panel_replicas', 'panel_replicas.id', 'live_counts.replica_id')
            .select(sql<string>`coalesce(sum(live_counts.n), 0)`.as('open'))
            .where('live_counts.key', '=', key)
            .where('live_counts.replica_id', '!=', this.#replicas.id)
            .where('panel_replicas.heartbeat_at', '>=', sql<string>`${dbNowMs} - ${this.#replicas.ttlMs}`)
            .executeTakeFirst();
          if (Number(row?.open ?? 0) + mine >= max) return false;
          this.#counts.set(key, mine + 1);
          try {
            await this.#write(key, trx);
          } catch (e) {
            this.#counts.set(key, mine);
            throw e;
          }
          return true;
        });
        return ok;
      } catch (err) {
        // the database is away: this replica's own limit
        this.#log.warn({ key, err: (err as Error).message }, 'shared socket count unavailable');
        this.#counts.set(key, mine + 1);
        return true;
      }
    });
  }

  release(key: string): void {
    const n = (this.#counts.get(key) ?? 1) - 1;
    if (n > 0) this.#counts.set(key, n);
    else this.#counts.delete(key);
    void this.#queue(key, () => this.#write(key)).catch((err: Error) =>
      this.#log.warn({ key, err: err.message }, 'shared socket count not written'),
    );
  }
}
