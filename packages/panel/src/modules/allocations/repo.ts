import type { Db } from '../../db/index.ts';
import type { AllocationsTable } from '../../db/schema.ts';

export class AllocationsRepo {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  /** all or nothing: one duplicate ip:port rolls the whole batch back */
  async insertMany(rows: AllocationsTable[]): Promise<void> {
    if (rows.length === 0) return;
    await this.#db.transaction().execute(async (tx) => {
      // chunks keep under SQLite's bound-parameter limit
      for (let i = 0; i < rows.length; i += 100) {
        await tx
          .insertInto('allocations')
          .values(rows.slice(i, i + 100))
          .execute();
      }
    });
  }
  async insert(row: AllocationsTable): Promise<void> {
    await this.#db.insertInto('allocations').values(row).execute();
  }
  listByNode(nodeId: string): Promise<AllocationsTable[]> {
    return this.#db
      .selectFrom('allocations')
      .selectAll()
      .where('node_id', '=', nodeId)
      .orderBy('ip')
      .orderBy('port')
      .execute();
  }
  findById(id: string): Promise<AllocationsTable | undefined> {
    return this.#db.selectFrom('allocations').selectAll().where('id', '=', id).executeTakeFirst();
  }
  /** Many by id in few queries (chunks stay under SQLite's bound-parameter limit). */
  async findByIds(ids: readonly string[]): Promise<AllocationsTable[]> {
    const out: AllocationsTable[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      out.push(
        ...(await this.#db
          .selectFrom('allocations')
          .selectAll()
          .where('id', 'in', ids.slice(i, i + 500))
          .execute()),
      );
    }
    return out;
  }
  findByPort(nodeId: string, port: number): Promise<AllocationsTable[]> {
    return this.#db
      .selectFrom('allocations')
      .selectAll()
      .where('node_id', '=', nodeId)
      .where('port', '=', port)
      .execute();
  }
  listByServer(serverId: string): Promise<AllocationsTable[]> {
    return this.#db.selectFrom('allocations').selectAll().where('server_id', '=', serverId).execute();
  }
  firstFree(nodeId: string, skip: readonly string[] = []): Promise<AllocationsTable | undefined> {
    let q = this.#db
      .selectFrom('allocations')
      .selectAll()
      .where('node_id', '=', nodeId)
      .where('server_id', 'is', null)
      .where('pooled', '=', 1);
    if (skip.length > 0) q = q.where('id', 'not in', skip);
    return q.orderBy('ip').orderBy('port').limit(1).executeTakeFirst();
  }
  async countByNode(nodeId: string): Promise<number> {
    const r = await this.#db
      .selectFrom('allocations')
      .select((eb) => eb.fn.countAll<string | number>().as('n'))
      .where('node_id', '=', nodeId)
      .where('pooled', '=', 1)
      .executeTakeFirst();
    return Number(r?.n ?? 0);
  }
  /** Atomic claim: true only for the one caller that found it free. */
  async claim(id: string, serverId: string): Promise<boolean> {
    const r = await this.#db
      .updateTable('allocations')
      .set({ server_id: serverId })
      .where('id', '=', id)
      .where('server_id', 'is', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }
  /** Pool entries go back to the pool; the ones made for raw ports go away. */
  async releaseServer(serverId: string, only: { onNode?: string; notOnNode?: string } = {}): Promise<void> {
    await this.#db.transaction().execute(async (tx) => {
      let del = tx.deleteFrom('allocations').where('server_id', '=', serverId).where('pooled', '=', 0);
      let upd = tx.updateTable('allocations').set({ server_id: null }).where('server_id', '=', serverId);
      if (only.onNode !== undefined) {
        del = del.where('node_id', '=', only.onNode);
        upd = upd.where('node_id', '=', only.onNode);
      }
      if (only.notOnNode !== undefined) {
        del = del.where('node_id', '!=', only.notOnNode);
        upd = upd.where('node_id', '!=', only.notOnNode);
      }
      await del.execute();
      await upd.execute();
    });
  }
  /** Drops the server's non-pooled ports that are not in `keep` (after its `ports` changed). */
  async releaseUnpooled(serverId: string, keep: readonly number[]): Promise<void> {
    let q = this.#db.deleteFrom('allocations').where('server_id', '=', serverId).where('pooled', '=', 0);
    if (keep.length > 0) q = q.where('port', 'not in', keep);
    await q.execute();
  }
  /** Deletes only while unassigned; false otherwise. */
  async deleteFree(id: string): Promise<boolean> {
    const r = await this.#db
      .deleteFrom('allocations')
      .where('id', '=', id)
      .where('server_id', 'is', null)
      .executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
  }
}
