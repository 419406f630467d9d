/**
 * Port allocations per node: the admin's pool of ip:port, and the claims servers make on it.
 * Claims are race-safe without locks: a conditional UPDATE (`server_id IS NULL`) for pool entries
 * and the unique index (node_id, ip, port) for ports claimed outside the pool.
 */
import { CodedError, type Ports } from '@cap/protocol';
import { z } from 'zod';
import { nowIso } from '../../db/index.ts';
import type { AllocationsTable } from '../../db/schema.ts';
import { shortId } from '../../lib/crypto.ts';
import { isUniqueViolation } from '../../lib/db-errors.ts';
import type { NodesRepo } from '../nodes/repo.ts';
import type { AllocationsRepo } from './repo.ts';

export const MAX_PORTS_PER_REQUEST = 1000;
const ANY_IP = '0.0.0.0';

export const Allocation = z.object({
  id: z.string(),
  nodeId: z.string(),
  ip: z.string(),
  port: z.number().int(),
  serverId: z.string().nullable(),
  /** false for a port claimed by a raw `ports` binding (removed with its server) */
  pooled: z.boolean(),
});
export type Allocation = z.infer<typeof Allocation>;

export const PortSpec = z
  .string()
  .regex(/^\d{1,5}(-\d{1,5})?$/, 'a port ("25565") or a range ("27000-27010")');
export const AddAllocations = z.object({
  ip: z.union([z.ipv4(), z.ipv6()]),
  ports: z.array(PortSpec).min(1).max(100),
});
export type AddAllocations = z.infer<typeof AddAllocations>;

/** "25565" / "27000-27010" → the ports, checked and de-duplicated. */
export function expandPorts(specs: readonly string[]): number[] {
  const out = new Set<number>();
  specs.forEach((spec, i) => {
    const [a, b = a] = spec.split('-').map(Number) as [number, number?];
    if (!(a >= 1 && a <= 65535 && b >= 1 && b <= 65535) || b < a)
      throw new CodedError('VALIDATION_FAILED', `ports[${i}]: ${spec} is not a port range in 1-65535`, {
        location: `ports[${i}]`,
      });
    if (out.size + (b - a + 1) > MAX_PORTS_PER_REQUEST)
      throw new CodedError('VALIDATION_FAILED', `at most ${MAX_PORTS_PER_REQUEST} ports per request`, {
        location: `ports[${i}]`,
      });
    for (let p = a; p <= b; p++) out.add(p);
  });
  return [...out];
}

export function toAllocation(r: AllocationsTable): Allocation {
  return {
    id: r.id,
    nodeId: r.node_id,
    ip: r.ip,
    port: Number(r.port),
    serverId: r.server_id,
    pooled: r.pooled === 1,
  };
}

function conflict(port: number): CodedError {
  return new CodedError('PORT_CONFLICT', `port ${port} is already in use on this node`, {
    location: 'port',
  });
}

export class AllocationsService {
  readonly #repo: AllocationsRepo;
  readonly #nodes: NodesRepo;
  constructor(repo: AllocationsRepo, nodes: NodesRepo) {
    this.#repo = repo;
    this.#nodes = nodes;
  }

  async #node(nodeId: string): Promise<void> {
    if (!(await this.#nodes.findById(nodeId))) throw new CodedError('NOT_FOUND', 'no such node');
  }

  async list(nodeId: string): Promise<Allocation[]> {
    await this.#node(nodeId);
    return (await this.#repo.listByNode(nodeId)).map(toAllocation);
  }

  /** Adds ip:port entries to the pool; any one already present refuses them all (PORT_CONFLICT). */
  async add(nodeId: string, input: AddAllocations): Promise<Allocation[]> {
    await this.#node(nodeId);
    const ports = expandPorts(input.ports);
    const now = nowIso();
    const rows: AllocationsTable[] = ports.map((port) => ({
      id: shortId('a'),
      node_id: nodeId,
      ip: input.ip,
      port,
      server_id: null,
      pooled: 1,
      created_at: now,
    }));
    try {
      await this.#repo.insertMany(rows);
    } catch (e) {
      if (isUniqueViolation(e))
        throw new CodedError('PORT_CONFLICT', 'one of these ports is already allocated on this ip', {
          location: 'ports',
        });
      throw e;
    }
    return rows.map(toAllocation);
  }

  async remove(nodeId: string, allocId: string): Promise<void> {
    const a = await this.#repo.findById(allocId);
    if (!a || a.node_id !== nodeId) throw new CodedError('NOT_FOUND', 'no such allocation');
    if (!(await this.#repo.deleteFree(allocId)))
      throw new CodedError('CONFLICT', 'the allocation is assigned to a server');
  }

  async get(id: string): Promise<Allocation | undefined> {
    const r = await this.#repo.findById(id);
    return r ? toAllocation(r) : undefined;
  }

  /** Several allocations by id, in one query per 500 ids (the server list). */
  async getMany(ids: readonly string[]): Promise<Map<string, Allocation>> {
    const rows = ids.length === 0 ? [] : await this.#repo.findByIds([...new Set(ids)]);
    return new Map(rows.map((r) => [r.id, toAllocation(r)]));
  }

  /**
   * The primary allocation of a new server: the one asked for (id or port), else the first free
   * one of the node's pool; undefined when nothing was asked and the node has no pool.
   */
  async claimPrimary(
    nodeId: string,
    serverId: string,
    want: { allocationId?: string | undefined; port?: number | undefined },
  ): Promise<Allocation | undefined> {
    if (want.allocationId !== undefined) {
      const a = await this.#repo.findById(want.allocationId);
      if (!a || a.node_id !== nodeId)
        throw new CodedError('NOT_FOUND', 'no such allocation on this node', { location: 'allocationId' });
      if (!(await this.#repo.claim(a.id, serverId))) throw conflict(Number(a.port));
      return toAllocation({ ...a, server_id: serverId });
    }
    if (want.port !== undefined) return this.claimPort(nodeId, serverId, want.port, ANY_IP);
    if ((await this.#repo.countByNode(nodeId)) === 0) return undefined;
    const tried: string[] = [];
    // a parallel create may take the one we picked; try the next few
    for (let i = 0; i < 20; i++) {
      const a = await this.#repo.firstFree(nodeId, tried);
      if (!a) break;
      if (await this.#repo.claim(a.id, serverId)) return toAllocation({ ...a, server_id: serverId });
      tried.push(a.id);
    }
    throw new CodedError('PORT_CONFLICT', 'no free allocation left on this node', {
      location: 'allocationId',
    });
  }

  /**
   * One port for a server: a free pool entry with that port, or a new non-pooled entry. Taken on
   * any IP of the node → PORT_CONFLICT (a 0.0.0.0 binding covers every address).
   */
  async claimPort(nodeId: string, serverId: string, port: number, ip: string): Promise<Allocation> {
    const existing = await this.#repo.findByPort(nodeId, port);
    if (existing.some((a) => a.server_id !== null && a.server_id !== serverId)) throw conflict(port);
    const mine = existing.find((a) => a.server_id === serverId);
    if (mine) return toAllocation(mine);
    const free = existing.find((a) => a.ip === ip) ?? existing[0];
    if (free) {
      if (!(await this.#repo.claim(free.id, serverId))) throw conflict(port);
      return toAllocation({ ...free, server_id: serverId });
    }
    const row: AllocationsTable = {
      id: shortId('a'),
      node_id: nodeId,
      ip,
      port,
      server_id: serverId,
      pooled: 0,
      created_at: nowIso(),
    };
    try {
      await this.#repo.insert(row);
    } catch (e) {
      if (isUniqueViolation(e)) throw conflict(port);
      throw e;
    }
    return toAllocation(row);
  }

  /** Every host port of a raw `ports` map, claimed for the server. */
  async claimRawPorts(nodeId: string, serverId: string, ports: Ports): Promise<void> {
    const seen = new Set<number>();
    for (const binding of Object.values(ports)) {
      const port = typeof binding === 'number' ? binding : binding.hostPort;
      const ip = typeof binding === 'number' ? ANY_IP : (binding.hostIp ?? ANY_IP);
      if (seen.has(port)) continue;
      seen.add(port);
      await this.claimPort(nodeId, serverId, port, ip);
    }
  }

  /** Whether the node's pool has an allocation no server holds (automatic placement). */
  async hasFree(nodeId: string): Promise<boolean> {
    return (await this.#repo.firstFree(nodeId)) !== undefined;
  }

  /** Whether no server holds that port on any IP of the node (automatic placement). */
  async portFree(nodeId: string, port: number): Promise<boolean> {
    return (await this.#repo.findByPort(nodeId, port)).every((a) => a.server_id === null);
  }

  listByServer(serverId: string): Promise<Allocation[]> {
    return this.#repo.listByServer(serverId).then((rows) => rows.map(toAllocation));
  }

  releaseRawPorts(serverId: string, keep: ReadonlySet<number>): Promise<void> {
    return this.#repo.releaseUnpooled(serverId, [...keep]);
  }

  releaseServer(serverId: string): Promise<void> {
    return this.#repo.releaseServer(serverId);
  }

  /** The server's allocations on nodes other than `nodeId` let go (failover moved it there). */
  releaseElsewhere(serverId: string, nodeId: string): Promise<void> {
    return this.#repo.releaseServer(serverId, { notOnNode: nodeId });
  }

  /** The server's allocations on `nodeId` let go (a failover there that did not happen). */
  releaseOnNode(serverId: string, nodeId: string): Promise<void> {
    return this.#repo.releaseServer(serverId, { onNode: nodeId });
  }
}
