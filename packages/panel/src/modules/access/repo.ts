/** Server owners and subusers (server_subusers). */
import type { Db } from '../../db/index.ts';
import type { ServerSubusersTable } from '../../db/schema.ts';

export class AccessRepo {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  /** The server's owner: undefined = no such server, null = it has none. */
  async ownerOf(serverId: string): Promise<string | null | undefined> {
    const row = await this.#db
      .selectFrom('servers')
      .select(['owner_id'])
      .where('id', '=', serverId)
      .executeTakeFirst();
    return row ? (row.owner_id ?? null) : undefined;
  }
  /** serverId → owner (null: none) of every server. */
  async owners(): Promise<Map<string, string | null>> {
    const rows = await this.#db.selectFrom('servers').select(['id', 'owner_id']).execute();
    return new Map(rows.map((r) => [r.id, r.owner_id ?? null]));
  }
  async setOwner(serverId: string, ownerId: string | null): Promise<void> {
    await this.#db.updateTable('servers').set({ owner_id: ownerId }).where('id', '=', serverId).execute();
  }
  /** Ids of the servers the user owns. */
  async ownedBy(userId: string): Promise<string[]> {
    const rows = await this.#db.selectFrom('servers').select(['id']).where('owner_id', '=', userId).execute();
    return rows.map((r) => r.id);
  }
  subuser(serverId: string, userId: string): Promise<ServerSubusersTable | undefined> {
    return this.#db
      .selectFrom('server_subusers')
      .selectAll()
      .where('server_id', '=', serverId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
  }
  /** The user's subuser rows, one per server. */
  subuserOf(userId: string): Promise<ServerSubusersTable[]> {
    return this.#db.selectFrom('server_subusers').selectAll().where('user_id', '=', userId).execute();
  }
  listSubusers(serverId: string): Promise<(ServerSubusersTable & { email: string })[]> {
    return this.#db
      .selectFrom('server_subusers')
      .innerJoin('users', 'users.id', 'server_subusers.user_id')
      .selectAll('server_subusers')
      .select(['users.email'])
      .where('server_subusers.server_id', '=', serverId)
      .orderBy('server_subusers.created_at')
      .execute();
  }
  async insertSubuser(row: ServerSubusersTable): Promise<void> {
    await this.#db.insertInto('server_subusers').values(row).execute();
  }
  async updateSubuser(serverId: string, userId: string, permissions: string, at: string): Promise<void> {
    await this.#db
      .updateTable('server_subusers')
      .set({ permissions, updated_at: at })
      .where('server_id', '=', serverId)
      .where('user_id', '=', userId)
      .execute();
  }
  async deleteSubuser(serverId: string, userId: string): Promise<boolean> {
    const r = await this.#db
      .deleteFrom('server_subusers')
      .where('server_id', '=', serverId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }
  /** Every subuser row of the server (before it is deleted: whose sockets to tell). */
  async subuserIds(serverId: string): Promise<string[]> {
    const rows = await this.#db
      .selectFrom('server_subusers')
      .select(['user_id'])
      .where('server_id', '=', serverId)
      .execute();
    return rows.map((r) => r.user_id);
  }
}
