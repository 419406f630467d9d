import { BucketRepo } from '../../db/bucket-repo.ts';
import type { Db } from '../../db/index.ts';
import type { PlayerBucketsTable, PlayerSessionsTable } from '../../db/schema.ts';

export class PlayersRepo {
  readonly #db: Db;
  readonly #buckets: BucketRepo<'player_buckets'>;
  constructor(db: Db) {
    this.#db = db;
    this.#buckets = new BucketRepo(db, 'player_buckets', ['samples', 'online', 'peak', 'capacity']);
  }
  openSessions(): Promise<PlayerSessionsTable[]> {
    return this.#db.selectFrom('player_sessions').selectAll().where('left_at', 'is', null).execute();
  }
  async join(row: PlayerSessionsTable): Promise<void> {
    await this.#db.insertInto('player_sessions').values(row).execute();
  }
  async leave(ids: string[], at: number): Promise<void> {
    for (let i = 0; i < ids.length; i += 200)
      await this.#db
        .updateTable('player_sessions')
        .set({ left_at: at })
        .where('id', 'in', ids.slice(i, i + 200))
        .where('left_at', 'is', null)
        .execute();
  }
  upsertBuckets(rows: PlayerBucketsTable[]): Promise<void> {
    return this.#buckets.upsert(rows);
  }
  buckets(serverId: string, from: number): Promise<PlayerBucketsTable[]> {
    return this.#buckets.range(serverId, from);
  }
  async pruneBefore(t: number): Promise<void> {
    await this.#buckets.pruneBefore(t);
    await this.#db.deleteFrom('player_sessions').where('left_at', '<', t).execute();
  }
}
