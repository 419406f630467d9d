/**
 * Seeding a bench's scratch database straight through Kysely (issue 15 item 4: 20,000 servers
 * through REST took too long): the rows the REST creates would leave, in batch inserts.
 *
 * - the owner, as ADMIN_EMAIL/ADMIN_PASSWORD makes it on a first boot (UsersService.create);
 * - per node, what `POST /api/nodes` stores (NodesService.create: a fresh `cas_` secret, its
 *   SHA-256 stored) — the secrets are returned so the simulated Agents register with them;
 * - per node a pool of `servers` allocations on 127.0.0.1 (what `POST /api/nodes/:id/allocations`
 *   stores);
 * - per server what `POST /api/servers {name, nodeId, image, port}` leaves once its create ended:
 *   the row (limits from the Panel's defaults, as withDefaultLimits fills them in; status
 *   offline, owned by the actor), its primary allocation claimed, and its `create` operation
 *   completed.
 *
 * Not seeded: the activity log's `node.create` / `server.create` entries (a trace of the requests,
 * nothing reads them on the measured paths).
 */

import { loadPanelConfig, openDatabase, openPanelAdmin } from '@cap/panel';
import { newMessageId } from '@cap/protocol';
import { nowIso } from '../../packages/panel/src/db/index.ts';
import type {
  AllocationsTable,
  NodesTable,
  OperationsTable,
  ServersTable,
} from '../../packages/panel/src/db/schema.ts';
import { shortId } from '../../packages/panel/src/lib/crypto.ts';
import { newNodeRow, withDefaultLimits } from '../../packages/panel/src/modules/nodes/service.ts';

export interface SeededNode {
  id: string;
  name: string;
  agentSecret: string;
  servers: string[];
}

/** Rows per INSERT: under SQLite's bound-parameter limit for the widest table (servers, 20 columns). */
const BATCH = 200;

/**
 * Migrates the database `env` names (DATABASE_URL, else DATA_DIR/panel.sqlite), makes the owner
 * and `agents` nodes × `servers` servers. Run it before the Panels start (they load every server
 * at boot, as after a restart in production).
 */
export async function seedPanel(
  env: Record<string, string | undefined>,
  o: { owner: { email: string; password: string }; agents: number; servers: number; firstPort?: number },
): Promise<{ nodes: SeededNode[]; ownerId: string; seconds: number }> {
  const t0 = performance.now();
  const config = loadPanelConfig(env);
  const admin = await openPanelAdmin(config);
  const owner = await admin
    .createUser({ email: o.owner.email, password: o.owner.password, role: 'owner' })
    .finally(() => admin.close());
  const db = await openDatabase(config);
  const firstPort = o.firstPort ?? 30_000;
  const nodes: SeededNode[] = [];
  try {
    const now = nowIso();
    const nodeRows: NodesTable[] = [];
    const allocRows: AllocationsTable[] = [];
    const serverRows: ServersTable[] = [];
    const opRows: OperationsTable[] = [];
    for (let i = 0; i < o.agents; i++) {
      const { row, agentSecret } = newNodeRow(`bench-${i}`);
      const id = row.id;
      nodeRows.push({ ...row, created_at: now });
      const node: SeededNode = { id, name: `bench-${i}`, agentSecret, servers: [] };
      for (let j = 0; j < o.servers; j++) {
        const serverId = shortId('s');
        const alloc: AllocationsTable = {
          id: shortId('a'),
          node_id: id,
          ip: '127.0.0.1',
          port: firstPort + j,
          server_id: serverId,
          pooled: 1,
          created_at: now,
        };
        allocRows.push(alloc);
        serverRows.push({
          id: serverId,
          name: `s${j}`,
          node_id: id,
          image: 'bench',
          startup: '',
          environment: '{}',
          ports: '{}',
          // a node without default_limits: the Panel's (effectiveDefaults)
          limits: JSON.stringify(withDefaultLimits({}, config.defaultLimits)),
          done: null,
          stop: null,
          status: 'offline',
          desired_state: 'offline',
          last_update: null,
          created_at: now,
          updated_at: now,
          template_id: null,
          allocation_id: alloc.id,
          stop_timeout: null,
          owner_id: owner.id,
          backup_limit: null,
        });
        opRows.push({
          id: newMessageId('op'),
          kind: 'create',
          server_id: serverId,
          node_id: id,
          actor_user_id: owner.id,
          stage: 'completed',
          created_at: now,
          updated_at: now,
          finished_at: now,
          success: 1,
          error_code: null,
          error_message: null,
        });
        node.servers.push(serverId);
      }
      nodes.push(node);
    }
    await db.transaction().execute(async (tx) => {
      for (let i = 0; i < nodeRows.length; i += BATCH)
        await tx
          .insertInto('nodes')
          .values(nodeRows.slice(i, i + BATCH))
          .execute();
      for (let i = 0; i < serverRows.length; i += BATCH)
        await tx
          .insertInto('servers')
          .values(serverRows.slice(i, i + BATCH))
          .execute();
      for (let i = 0; i < allocRows.length; i += BATCH)
        await tx
          .insertInto('allocations')
          .values(allocRows.slice(i, i + BATCH))
          .execute();
      for (let i = 0; i < opRows.length; i += BATCH)
        await tx
          .insertInto('operations')
          .values(opRows.slice(i, i + BATCH))
          .execute();
    });
  } finally {
    await db.destroy();
  }
  return { nodes, ownerId: owner.id, seconds: (performance.now() - t0) / 1000 };
}
