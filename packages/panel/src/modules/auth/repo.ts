import type { Db } from '../../db/index.ts';
import type { SessionsTable, UsersTable } from '../../db/schema.ts';

export class SessionsRepo {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async insert(row: SessionsTable): Promise<void> {
    await this.#db.insertInto('sessions').values(row).execute();
  }
  /** The session and its user, when not expired. */
  async findValid(
    id: string,
    now: string,
  ): Promise<{ session: SessionsTable; user: UsersTable } | undefined> {
    const row = await this.#db
      .selectFrom('sessions')
      .innerJoin('users', 'users.id', 'sessions.user_id')
      .select([
        'sessions.id as sid',
        'sessions.user_id',
        'sessions.csrf_token',
        'sessions.created_at as s_created',
        'sessions.expires_at',
        'users.id',
        'users.email',
        'users.password_hash',
        'users.role',
        'users.created_at',
        'users.updated_at',
      ])
      .where('sessions.id', '=', id)
      .where('sessions.expires_at', '>', now)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      session: {
        id: row.sid,
        user_id: row.user_id,
        csrf_token: row.csrf_token,
        created_at: row.s_created,
        expires_at: row.expires_at,
      },
      user: {
        id: row.id,
        email: row.email,
        password_hash: row.password_hash,
        role: row.role,
        created_at: row.created_at,
        updated_at: row.updated_at,
      },
    };
  }
  async delete(id: string): Promise<void> {
    await this.#db.deleteFrom('sessions').where('id', '=', id).execute();
  }
  async deleteByUser(userId: string, exceptId?: string): Promise<void> {
    let q = this.#db.deleteFrom('sessions').where('user_id', '=', userId);
    if (exceptId !== undefined) q = q.where('id', '!=', exceptId);
    await q.execute();
  }
  async deleteExpired(now: string): Promise<void> {
    await this.#db.deleteFrom('sessions').where('expires_at', '<=', now).execute();
  }
}
