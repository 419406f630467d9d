import type { Db } from '../../db/index.ts';
import type { ApiKeysTable, UsersTable } from '../../db/schema.ts';

export class ApiKeysRepo {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async insert(row: ApiKeysTable): Promise<void> {
    await this.#db.insertInto('api_keys').values(row).execute();
  }
  listByUser(userId: string): Promise<ApiKeysTable[]> {
    return this.#db
      .selectFrom('api_keys')
      .selectAll()
      .where('user_id', '=', userId)
      .orderBy('created_at')
      .execute();
  }
  async deleteOwned(userId: string, id: string): Promise<boolean> {
    const r = await this.#db
      .deleteFrom('api_keys')
      .where('id', '=', id)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }
  /** Revokes every key of the user (a password change). */
  async deleteByUser(userId: string): Promise<void> {
    await this.#db.deleteFrom('api_keys').where('user_id', '=', userId).execute();
  }
  async findUserByHash(hash: string): Promise<
    | {
        keyId: string;
        expiresAt: string | null;
        scope: string;
        serverIds: string | null;
        user: UsersTable;
      }
    | undefined
  > {
    const row = await this.#db
      .selectFrom('api_keys')
      .innerJoin('users', 'users.id', 'api_keys.user_id')
      .select(['api_keys.id as key_id', 'api_keys.expires_at as key_expires_at'])
      .select(['api_keys.scope as key_scope', 'api_keys.server_ids as key_server_ids'])
      .select(['users.id', 'users.email', 'users.username', 'users.password_hash', 'users.role'])
      .select(['users.created_at', 'users.updated_at', 'users.totp_secret'])
      .where('api_keys.key_hash', '=', hash)
      .executeTakeFirst();
    if (!row) return undefined;
    const { key_id, key_expires_at, key_scope, key_server_ids, ...user } = row;
    return {
      keyId: key_id,
      expiresAt: key_expires_at,
      scope: key_scope ?? 'full',
      serverIds: key_server_ids ?? null,
      user,
    };
  }
  async touch(id: string, at: string): Promise<void> {
    await this.#db.updateTable('api_keys').set({ last_used_at: at }).where('id', '=', id).execute();
  }
}
