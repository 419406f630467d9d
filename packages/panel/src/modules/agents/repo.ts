import type { Db } from '../../db/index.ts';
import type { AgentRefreshTokensTable } from '../../db/schema.ts';

export class RefreshTokensRepo {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async insert(row: AgentRefreshTokensTable): Promise<void> {
    await this.#db.insertInto('agent_refresh_tokens').values(row).execute();
  }
  find(id: string): Promise<AgentRefreshTokensTable | undefined> {
    return this.#db.selectFrom('agent_refresh_tokens').selectAll().where('id', '=', id).executeTakeFirst();
  }
  /** Marks the token used; false when it was already used (a replay). */
  async markUsed(id: string, at: string): Promise<boolean> {
    const r = await this.#db
      .updateTable('agent_refresh_tokens')
      .set({ used_at: at })
      .where('id', '=', id)
      .where('used_at', 'is', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }
  async revokeAll(nodeId: string): Promise<void> {
    await this.#db.deleteFrom('agent_refresh_tokens').where('node_id', '=', nodeId).execute();
  }
}
