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

export const DOCKER_PERMISSIONS = ['docker.read', 'docker.write'] as const;
export type DockerPermission = (typeof DOCKER_PERMISSIONS)[number];

/** Users' node-level Docker permissions (admins and owners hold both without a row). */
export class DockerAccessStore {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async of(nodeId: string, userId: string): Promise<Set<DockerPermission>> {
    const row = await this.#db
      .selectFrom('docker_node_access')
      .select('permissions')
      .where('node_id', '=', nodeId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    const v = row ? (JSON.parse(row.permissions) as unknown) : [];
    return new Set(
      (Array.isArray(v) ? v : []).filter((p): p is DockerPermission => DOCKER_PERMISSIONS.includes(p)),
    );
  }

  /** Every node the user holds a Docker permission on, with them. */
  async ofUser(userId: string): Promise<Map<string, DockerPermission[]>> {
    const rows = await this.#db
      .selectFrom('docker_node_access')
      .select(['node_id', 'permissions'])
      .where('user_id', '=', userId)
      .execute();
    const out = new Map<string, DockerPermission[]>();
    for (const r of rows) {
      const v = JSON.parse(r.permissions) as unknown;
      const perms = (Array.isArray(v) ? v : []).filter((p): p is DockerPermission =>
        DOCKER_PERMISSIONS.includes(p),
      );
      if (perms.length > 0) out.set(r.node_id, perms);
    }
    return out;
  }

  async list(nodeId: string): Promise<{ userId: string; permissions: DockerPermission[] }[]> {
    const rows = await this.#db
      .selectFrom('docker_node_access')
      .select(['user_id', 'permissions'])
      .where('node_id', '=', nodeId)
      .orderBy('user_id')
      .execute();
    return rows.map((r) => ({
      userId: r.user_id,
      permissions: (JSON.parse(r.permissions) as DockerPermission[]).filter((p) =>
        DOCKER_PERMISSIONS.includes(p),
      ),
    }));
  }

  /** false: no such user */
  async set(nodeId: string, userId: string, permissions: DockerPermission[]): Promise<boolean> {
    const user = await this.#db.selectFrom('users').select('id').where('id', '=', userId).executeTakeFirst();
    if (!user) return false;
    await this.#db
      .deleteFrom('docker_node_access')
      .where('node_id', '=', nodeId)
      .where('user_id', '=', userId)
      .execute();
    if (permissions.length > 0)
      await this.#db
        .insertInto('docker_node_access')
        .values({
          node_id: nodeId,
          user_id: userId,
          permissions: JSON.stringify([...new Set(permissions)].sort()),
        })
        .execute();
    return true;
  }
}
