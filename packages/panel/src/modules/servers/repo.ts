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
  /**
   * All servers with, in the same query, whether the last image check found a newer digest for
   * the tag (a check that failed does not count).
   */
  async listWithImageUpdates(): Promise<{ row: ServersTable; updateAvailable: boolean }[]> {
    const rows = await this.#db
      .selectFrom('servers')
      .leftJoin('server_image_state as image', 'image.server_id', 'servers.id')
      .selectAll('servers')
      .select([
        'image.local_digest as image_local_digest',
        'image.remote_digest as image_remote_digest',
        'image.error as image_error',
      ])
      .orderBy('servers.created_at')
      .execute();
    return rows.map(({ image_local_digest, image_remote_digest, image_error, ...row }) => ({
      row,
      updateAvailable: Boolean(
        image_remote_digest && image_error === null && image_remote_digest !== image_local_digest,
      ),
    }));
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
