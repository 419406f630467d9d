import type { Db } from '../../db/index.ts';
import type { ServersTable } from '../../db/schema.ts';

export class ServersRepo {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async insert(row: ServersTable): Promise<void> {
    await this.#db.insertInto('servers').values(row).execute();
  }
  list(): Promise<ServersTable[]> {
    return this.#db.selectFrom('servers').selectAll().orderBy('created_at').execute();
  }
  listByNode(nodeId: string): Promise<ServersTable[]> {
    return this.#db.selectFrom('servers').selectAll().where('node_id', '=', nodeId).execute();
  }
  findById(id: string): Promise<ServersTable | undefined> {
    return this.#db.selectFrom('servers').selectAll().where('id', '=', id).executeTakeFirst();
  }
  async update(id: string, patch: Partial<Omit<ServersTable, 'id' | 'created_at'>>): Promise<void> {
    await this.#db.updateTable('servers').set(patch).where('id', '=', id).execute();
  }
  async delete(id: string): Promise<void> {
    await this.#db.deleteFrom('servers').where('id', '=', id).execute();
  }
}
