import type { Db } from '../../db/index.ts';
import type { UsersTable } from '../../db/schema.ts';

export class UsersRepo {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  findById(id: string): Promise<UsersTable | undefined> {
    return this.#db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
  }
  findByEmail(email: string): Promise<UsersTable | undefined> {
    return this.#db
      .selectFrom('users')
      .selectAll()
      .where('email', '=', email.toLowerCase())
      .executeTakeFirst();
  }
  findByUsername(username: string): Promise<UsersTable | undefined> {
    return this.#db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst();
  }
  list(): Promise<UsersTable[]> {
    return this.#db.selectFrom('users').selectAll().orderBy('created_at').execute();
  }
  async count(role?: string): Promise<number> {
    let q = this.#db.selectFrom('users').select((eb) => eb.fn.countAll().as('n'));
    if (role) q = q.where('role', '=', role);
    const row = await q.executeTakeFirstOrThrow();
    return Number(row.n);
  }
  async insert(row: UsersTable): Promise<void> {
    await this.#db.insertInto('users').values(row).execute();
  }
  async update(
    id: string,
    patch: Partial<Pick<UsersTable, 'role' | 'password_hash' | 'username' | 'updated_at'>>,
  ) {
    await this.#db.updateTable('users').set(patch).where('id', '=', id).execute();
  }
  async delete(id: string): Promise<void> {
    await this.#db.deleteFrom('users').where('id', '=', id).execute();
  }
}
