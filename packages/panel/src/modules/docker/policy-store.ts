/** Per-node Docker policy settings (migration 018): the bind allow-list. */
import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.ts';

export class DockerPolicyStore {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async bindAllow(nodeId: string): Promise<string[]> {
    const row = await this.#db
      .selectFrom('docker_policies')
      .select('bind_allow')
      .where('node_id', '=', nodeId)
      .executeTakeFirst();
    if (!row) return [];
    const v = JSON.parse(row.bind_allow) as unknown;
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  }

  async setBindAllow(nodeId: string, paths: string[]): Promise<void> {
    const now = new Date().toISOString();
    const bind_allow = JSON.stringify(paths);
    await this.#db
      .insertInto('docker_policies')
      .values({ node_id: nodeId, bind_allow, updated_at: now })
      .onConflict((oc) => oc.column('node_id').doUpdateSet({ bind_allow, updated_at: now }))
      .execute();
  }
}
