import type { Db } from '../../db/index.ts';
import type { TemplatesTable } from '../../db/schema.ts';

export class TemplatesRepo {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async insert(row: TemplatesTable): Promise<void> {
    await this.#db.insertInto('templates').values(row).execute();
  }
  list(): Promise<TemplatesTable[]> {
    return this.#db.selectFrom('templates').selectAll().orderBy('name').orderBy('created_at').execute();
  }
  findById(id: string): Promise<TemplatesTable | undefined> {
    return this.#db.selectFrom('templates').selectAll().where('id', '=', id).executeTakeFirst();
  }
  findByUuid(uuid: string): Promise<TemplatesTable | undefined> {
    return this.#db.selectFrom('templates').selectAll().where('uuid', '=', uuid).executeTakeFirst();
  }
  findByNameAuthor(name: string, author: string): Promise<TemplatesTable | undefined> {
    return this.#db
      .selectFrom('templates')
      .selectAll()
      .where('name', '=', name)
      .where('author', '=', author)
      .executeTakeFirst();
  }
  async update(id: string, patch: Partial<Omit<TemplatesTable, 'id' | 'created_at'>>): Promise<void> {
    await this.#db.updateTable('templates').set(patch).where('id', '=', id).execute();
  }
  async delete(id: string): Promise<void> {
    await this.#db.deleteFrom('templates').where('id', '=', id).execute();
  }
  async serverCount(id: string): Promise<number> {
    const r = await this.#db
      .selectFrom('servers')
      .select((eb) => eb.fn.countAll<string | number>().as('n'))
      .where('template_id', '=', id)
      .executeTakeFirst();
    return Number(r?.n ?? 0);
  }
  /** the servers made from a template, with what a template update must keep */
  serversOf(id: string): Promise<{ id: string; name: string; image: string; environment: string }[]> {
    return this.#db
      .selectFrom('servers')
      .select(['id', 'name', 'image', 'environment'])
      .where('template_id', '=', id)
      .orderBy('name')
      .execute();
  }
}
