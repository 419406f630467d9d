/** The dashboard in one call: nodes, servers, totals and players. */
import { z } from 'zod';
import type { LiveStore } from '../../relay/live-store.ts';
import { Node, type NodesService } from '../nodes/service.ts';
import { Server, type Viewer } from '../servers/schemas.ts';
import type { ServersService } from '../servers/service.ts';

export const Dashboard = z.object({
  nodes: z.array(Node),
  servers: z.array(Server),
  totals: z.object({
    servers: z.number(),
    running: z.number(),
    nodes: z.number(),
    online: z.number(),
    cpu: z.number(),
    memoryBytes: z.number(),
  }),
  players: z.object({
    online: z.number(),
    max: z.number(),
    byServer: z.array(
      z.object({ serverId: z.string(), online: z.number(), max: z.number(), list: z.array(z.string()) }),
    ),
    tracked: z.boolean(),
  }),
});
export type Dashboard = z.infer<typeof Dashboard>;

export class DashboardService {
  readonly #nodes: NodesService;
  readonly #servers: ServersService;
  readonly #live: LiveStore;
  constructor(nodes: NodesService, servers: ServersService, live: LiveStore) {
    this.#nodes = nodes;
    this.#servers = servers;
    this.#live = live;
  }
  /**
   * `viewer`: how the caller sees each server (undefined: it may not; left out, totals included);
   * with `allNodes` false only the nodes of the servers it sees are listed (a `user` sees no others).
   */
  async get(viewer: (serverId: string) => Viewer | undefined, allNodes: boolean): Promise<Dashboard> {
    const [allNodesList, servers] = await Promise.all([this.#nodes.list(), this.#servers.list(viewer)]);
    const hosting = new Set(servers.map((s) => s.nodeId));
    const nodes = allNodes ? allNodesList : allNodesList.filter((n) => hosting.has(n.id));
    const running = servers.filter((s) => s.status === 'running');
    // players of running servers only (a stopped one has nobody and no open slots)
    const byServer = servers.flatMap((s) => {
      const p = s.status === 'running' ? this.#live.players(s.id) : undefined;
      return p ? [{ serverId: s.id, online: p.online, max: p.max, list: p.list.map((x) => x.name) }] : [];
    });
    return {
      nodes,
      servers,
      totals: {
        servers: servers.length,
        running: running.length,
        nodes: nodes.length,
        online: nodes.filter((n) => n.online).length,
        cpu: running.reduce((a, s) => a + (s.stats?.cpu ?? 0), 0),
        memoryBytes: running.reduce((a, s) => a + (s.stats?.memory.usedBytes ?? 0), 0),
      },
      players: {
        online: byServer.reduce((a, p) => a + p.online, 0),
        max: byServer.reduce((a, p) => a + p.max, 0),
        byServer,
        tracked: byServer.length > 0,
      },
    };
  }
}
