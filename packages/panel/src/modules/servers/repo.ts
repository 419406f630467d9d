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
  /**
   * Stores `value` as the server's last update only while `operationId` is still open and the
   * stored one is still `expected` (compare-and-set): an end recorded meanwhile, here or on another
   * replica, is never replaced by the waiter's `pending`. False when nothing was stored.
   */
  async setLastUpdateWhileOpen(
    id: string,
    operationId: string,
    expected: string | null,
    value: string,
  ): Promise<boolean> {
    const r = await this.#db
      .updateTable('servers')
      .set({ last_update: value })
      .where('id', '=', id)
      .where((eb) => (expected === null ? eb('last_update', 'is', null) : eb('last_update', '=', expected)))
      .where((eb) =>
        eb.exists(
          eb
            .selectFrom('operations')
            .select('operations.id')
            .where('operations.id', '=', operationId)
            .where('operations.finished_at', 'is', null),
        ),
      )
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }
  async delete(id: string): Promise<void> {
    await this.#db.deleteFrom('servers').where('id', '=', id).execute();
  }
}
