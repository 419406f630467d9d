/**
 * The login rate limit shared by Panel replicas (issue 15 item 1): the same fixed window as
 * `WindowLimiter`, counted in the shared database (`rate_limits`, migration 030) with one atomic
 * upsert per attempt, so N replicas behind a load balancer give an attacker the budget of one.
 * Keys are stored as sha256 (no addresses or emails in the table); the hourly prune deletes
 * windows long over. PostgreSQL was chosen over NATS KV: the Panel already depends on it with
 * replicas, the upsert is atomic, and no JetStream client is needed.
 */
import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../../db/index.ts';
import type { Limiter } from './service.ts';

export class DbWindowLimiter implements Limiter {
  readonly #db: Db;
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #scope: string;

  constructor(db: Db, limit: number, windowMs: number, scope: string) {
    this.#db = db;
    this.#limit = limit;
    this.#windowMs = windowMs;
    // two limiters with different budgets count apart
    this.#scope = `${scope}:${limit}:${windowMs}`;
  }

  async hit(key: string, now = Date.now()): Promise<boolean> {
    const id = createHash('sha256').update(`${this.#scope}|${key}`).digest('hex');
    const stale = now - this.#windowMs;
    const row = await this.#db
      .insertInto('rate_limits')
      .values({ key: id, window_start: now, n: 1 })
      .onConflict((oc) =>
        oc.column('key').doUpdateSet({
          n: sql<number>`CASE WHEN rate_limits.window_start <= ${stale} THEN 1 ELSE rate_limits.n + 1 END`,
          window_start: sql<number>`CASE WHEN rate_limits.window_start <= ${stale} THEN ${now} ELSE rate_limits.window_start END`,
        }),
      )
      .returning('n')
      .executeTakeFirst();
    return Number(row?.n ?? 1) <= this.#limit;
  }

  /** Windows over for an hour and more. */
  static async prune(db: Db, now = Date.now()): Promise<void> {
    await db
      .deleteFrom('rate_limits')
      .where('window_start', '<', now - 3600_000)
      .execute();
  }
}
