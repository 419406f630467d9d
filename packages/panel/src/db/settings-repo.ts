import type { Db } from './index.ts';

/** Key/value settings (signing keys, setup token hash). */
export class SettingsRepo {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async get(key: string): Promise<string | undefined> {
    const row = await this.#db
      .selectFrom('settings')
      .select('value')
      .where('key', '=', key)
      .executeTakeFirst();
    return row?.value;
  }
  async set(key: string, value: string): Promise<void> {
    await this.#db
      .insertInto('settings')
      .values({ key, value })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
      .execute();
  }
  /** Deletes the key only while it holds `value`; true for the one caller that did. */
  async take(key: string, value: string): Promise<boolean> {
    const r = await this.#db
      .deleteFrom('settings')
      .where('key', '=', key)
      .where('value', '=', value)
      .executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
  }
  async delete(key: string): Promise<void> {
    await this.#db.deleteFrom('settings').where('key', '=', key).execute();
  }
}
