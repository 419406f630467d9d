import type { Limits } from '@cap/protocol';
import type { Db } from '../../db/index.ts';
import type { NodesTable } from '../../db/schema.ts';
import { addUsage, type Usage, usageOf, ZERO_USAGE } from './capacity.ts';

export class NodesRepo {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async insert(row: NodesTable): Promise<void> {
    await this.#db.insertInto('nodes').values(row).execute();
  }
  list(): Promise<NodesTable[]> {
    return this.#db.selectFrom('nodes').selectAll().orderBy('created_at').execute();
  }
  findById(id: string): Promise<NodesTable | undefined> {
    return this.#db.selectFrom('nodes').selectAll().where('id', '=', id).executeTakeFirst();
  }
  findByName(name: string): Promise<NodesTable | undefined> {
    return this.#db.selectFrom('nodes').selectAll().where('name', '=', name).executeTakeFirst();
  }
  findBySecretHash(hash: string): Promise<NodesTable | undefined> {
    return this.#db.selectFrom('nodes').selectAll().where('secret_hash', '=', hash).executeTakeFirst();
  }
  async update(id: string, patch: Partial<Omit<NodesTable, 'id' | 'created_at'>>): Promise<void> {
    await this.#db.updateTable('nodes').set(patch).where('id', '=', id).execute();
  }
  /** The next token generation of the node (earlier Agent JWTs stop being accepted). */
  async bumpTokenVersion(id: string): Promise<number> {
    await this.#db
      .updateTable('nodes')
      .set((eb) => ({ token_version: eb('token_version', '+', 1) }))
      .where('id', '=', id)
      .execute();
    const row = await this.findById(id);
    if (!row) throw new Error('node vanished');
    return Number(row.token_version);
  }
  async delete(id: string): Promise<void> {
    await this.#db.deleteFrom('nodes').where('id', '=', id).execute();
  }
  /** How many servers each node holds (only `nodeId`'s with one: a node page needs no count of all 20,000). */
  async serverCounts(nodeId?: string): Promise<Map<string, number>> {
    let q = this.#db.selectFrom('servers').select(['node_id', (eb) => eb.fn.countAll().as('n')]);
    if (nodeId !== undefined) q = q.where('node_id', '=', nodeId);
    const rows = await q.groupBy('node_id').execute();
    return new Map(rows.map((r) => [r.node_id, Number(r.n)]));
  }
  /**
   * What the servers' limits take of each node (one query over the servers' limits; a server in
   * `except` is left out: the one being resized).
   */
  async allocated(nodeId?: string, except?: string): Promise<Map<string, Usage>> {
    let q = this.#db.selectFrom('servers').select(['id', 'node_id', 'limits']);
    if (nodeId !== undefined) q = q.where('node_id', '=', nodeId);
    // a server being transferred counts on its target too, until the transfer ends (issue 16):
    // a create or another transfer cannot take the headroom it is moving into
    let moving = this.#db
      .selectFrom('transfers')
      .innerJoin('servers', 'servers.id', 'transfers.server_id')
      .select(['servers.id as id', 'transfers.target_node_id as node_id', 'servers.limits as limits'])
      .where('transfers.state', '=', 'running')
      .whereRef('servers.node_id', '!=', 'transfers.target_node_id');
    if (nodeId !== undefined) moving = moving.where('transfers.target_node_id', '=', nodeId);
    const out = new Map<string, Usage>();
    for (const r of [...(await q.execute()), ...(await moving.execute())]) {
      if (r.id === except) continue;
      let limits: unknown;
      try {
        limits = JSON.parse(r.limits);
      } catch {
        limits = {};
      }
      const usage = usageOf((limits && typeof limits === 'object' ? limits : {}) as Limits);
      out.set(r.node_id, addUsage(out.get(r.node_id) ?? ZERO_USAGE, usage));
    }
    return out;
  }
}
