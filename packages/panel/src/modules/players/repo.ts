import type { Db } from '../../db/index.ts';
import type { PlayerBucketsTable, PlayerSessionsTable } from '../../db/schema.ts';

export class PlayersRepo {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
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
  async upsertBuckets(rows: PlayerBucketsTable[]): Promise<void> {
    for (let i = 0; i < rows.length; i += 200) {
      await this.#db
        .insertInto('player_buckets')
        .values(rows.slice(i, i + 200))
        .onConflict((oc) =>
          oc.columns(['server_id', 't']).doUpdateSet((eb) => ({
            samples: eb.ref('excluded.samples'),
            online: eb.ref('excluded.online'),
            peak: eb.ref('excluded.peak'),
            capacity: eb.ref('excluded.capacity'),
          })),
        )
        .execute();
    }
  }
  buckets(serverId: string, from: number): Promise<PlayerBucketsTable[]> {
    return this.#db
      .selectFrom('player_buckets')
      .selectAll()
      .where('server_id', '=', serverId)
      .where('t', '>=', from)
      .orderBy('t')
      .execute();
  }
  async pruneBefore(t: number): Promise<void> {
    await this.#db.deleteFrom('player_buckets').where('t', '<', t).execute();
    await this.#db.deleteFrom('player_sessions').where('left_at', '<', t).execute();
  }
}
