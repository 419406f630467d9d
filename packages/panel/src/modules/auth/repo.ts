import type { Db } from '../../db/index.ts';
import type { LoginTicketsTable, SessionsTable, UsersTable } from '../../db/schema.ts';

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
        'sessions.last_seen_at',
        'users.id',
        'users.email',
        'users.username',
        'users.password_hash',
        'users.role',
        'users.created_at',
        'users.updated_at',
        'users.totp_secret',
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
        last_seen_at: row.last_seen_at ?? null,
      },
      user: {
        id: row.id,
        email: row.email,
        username: row.username,
        password_hash: row.password_hash,
        role: row.role,
        created_at: row.created_at,
        updated_at: row.updated_at,
        totp_secret: row.totp_secret ?? null,
      },
    };
  }
  listByUser(userId: string, now: string): Promise<SessionsTable[]> {
    return this.#db
      .selectFrom('sessions')
      .selectAll()
      .where('user_id', '=', userId)
      .where('expires_at', '>', now)
      .orderBy('created_at')
      .execute();
  }
  async touch(id: string, at: string, ip?: string): Promise<void> {
    await this.#db
      .updateTable('sessions')
      .set({ last_seen_at: at, ...(ip === undefined ? {} : { ip }) })
      .where('id', '=', id)
      .execute();
  }
  // --- the ticket between the password and the second factor ---
  async insertTicket(row: LoginTicketsTable): Promise<void> {
    await this.#db.insertInto('login_tickets').values(row).execute();
  }
  findTicket(id: string, now: string): Promise<LoginTicketsTable | undefined> {
    return this.#db
      .selectFrom('login_tickets')
      .selectAll()
      .where('id', '=', id)
      .where('expires_at', '>', now)
      .executeTakeFirst();
  }
  /** Counts one attempt while fewer than `max` were made; false when the ticket is used up. */
  async countTicketAttempt(id: string, max: number): Promise<boolean> {
    const r = await this.#db
      .updateTable('login_tickets')
      .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
      .where('id', '=', id)
      .where('attempts', '<', max)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }
  /** True for the one caller that deleted it. */
  async deleteTicket(id: string): Promise<boolean> {
    const r = await this.#db.deleteFrom('login_tickets').where('id', '=', id).executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
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
    await this.#db.deleteFrom('login_tickets').where('expires_at', '<=', now).execute();
  }
}
