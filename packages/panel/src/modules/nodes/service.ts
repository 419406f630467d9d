/** Nodes: created by an admin, each with an AGENT_SECRET shown once and stored hashed. */
import { CodedError, SystemInfo } from '@cap/protocol';
import { z } from 'zod';
import { nowIso } from '../../db/index.ts';
import type { NodesTable } from '../../db/schema.ts';
import { randomToken, sha256, shortId } from '../../lib/crypto.ts';
import type { NodesRepo } from './repo.ts';

export const Load = z.object({ cpu: z.number(), memory: z.number(), disk: z.number() });
export const Node = z.object({
  id: z.string(),
  name: z.string(),
  online: z.boolean(),
  lastHeartbeatAt: z.string().nullable(),
  protocolVersion: z.number().nullable(),
  systemInfo: SystemInfo.nullable(),
  load: Load.nullable(),
  serverCount: z.number(),
  hostname: z.string().nullable(),
  capabilities: z.unknown().nullable(),
  createdAt: z.string(),
});
export type Node = z.infer<typeof Node>;

/** What the service needs to know about live connections. */
export interface NodePresence {
  isOnline(nodeId: string): boolean;
  disconnect(nodeId: string, reason: string): void;
}

function json<T>(s: string | null): T | null {
  if (s === null) return null;
  try {
    return JSON.parse(s) as T;
  } catch {
    return null;
  }
}

export class NodesService {
  readonly #repo: NodesRepo;
  readonly #presence: () => NodePresence;
  readonly #publicUrl: () => string;
  constructor(repo: NodesRepo, presence: () => NodePresence, publicUrl: () => string) {
    this.#repo = repo;
    this.#presence = presence;
    this.#publicUrl = publicUrl;
  }

  #toNode(n: NodesTable, serverCount: number): Node {
    return {
      id: n.id,
      name: n.name,
      online: this.#presence().isOnline(n.id),
      lastHeartbeatAt: n.last_heartbeat_at,
      protocolVersion: n.protocol_version,
      systemInfo: json<SystemInfo>(n.system_info),
      load: json<z.infer<typeof Load>>(n.load),
      serverCount,
      hostname: n.hostname,
      capabilities: json<unknown>(n.capabilities),
      createdAt: n.created_at,
    };
  }

  /** The one-liner an admin runs on the node's host. */
  #agentCommand(id: string, agentSecret: string): string {
    return `PANEL_URL=${this.#publicUrl()} NODE_ID=${id} AGENT_SECRET=${agentSecret} npx ctrl-alt-play agent`;
  }

  async list(): Promise<Node[]> {
    const [rows, counts] = await Promise.all([this.#repo.list(), this.#repo.serverCounts()]);
    return rows.map((n) => this.#toNode(n, counts.get(n.id) ?? 0));
  }

  async get(id: string): Promise<Node> {
    const n = await this.#repo.findById(id);
    if (!n) throw new CodedError('NOT_FOUND', 'no such node');
    const counts = await this.#repo.serverCounts();
    return this.#toNode(n, counts.get(n.id) ?? 0);
  }

  async create(name: string): Promise<{ node: Node; agentSecret: string; command: string }> {
    if (await this.#repo.findByName(name)) throw new CodedError('CONFLICT', 'a node with that name exists');
    const id = shortId('n');
    const agentSecret = `cas_${randomToken(32)}`;
    const row: NodesTable = {
      id,
      name,
      secret_hash: sha256(agentSecret),
      hostname: null,
      capabilities: null,
      system_info: null,
      load: null,
      protocol_version: null,
      last_heartbeat_at: null,
      created_at: nowIso(),
      token_version: 0,
    };
    await this.#repo.insert(row);
    const command = this.#agentCommand(id, agentSecret);
    return { node: this.#toNode(row, 0), agentSecret, command };
  }

  /** A new AGENT_SECRET for an existing node (the old one stops working). */
  async rotateSecret(id: string): Promise<{ node: Node; agentSecret: string; command: string }> {
    const node = await this.get(id);
    const agentSecret = `cas_${randomToken(32)}`;
    await this.#repo.update(id, { secret_hash: sha256(agentSecret) });
    const command = this.#agentCommand(id, agentSecret);
    return { node, agentSecret, command };
  }

  async findByName(name: string): Promise<Node | undefined> {
    const n = await this.#repo.findByName(name);
    return n ? this.get(n.id) : undefined;
  }

  /** An Agent connected: note the time and protocol version. */
  async connected(nodeId: string, protocolVersion: number): Promise<void> {
    await this.#repo.update(nodeId, { last_heartbeat_at: nowIso(), protocol_version: protocolVersion });
  }

  async heartbeat(nodeId: string, load: z.infer<typeof Load>): Promise<void> {
    await this.#repo.update(nodeId, { last_heartbeat_at: nowIso(), load: JSON.stringify(load) });
  }

  async storeSystemInfo(nodeId: string, info: unknown): Promise<void> {
    const parsed = SystemInfo.safeParse(info);
    if (!parsed.success)
      throw new CodedError('INVALID_MESSAGE', 'system_info answer does not match the protocol');
    await this.#repo.update(nodeId, { system_info: JSON.stringify(parsed.data) });
  }

  async exists(nodeId: string): Promise<boolean> {
    return (await this.#repo.findById(nodeId)) !== undefined;
  }

  async delete(id: string): Promise<void> {
    const node = await this.get(id);
    if (node.serverCount > 0)
      throw new CodedError('CONFLICT', 'the node still has servers; delete them first');
    this.#presence().disconnect(id, 'node deleted');
    await this.#repo.delete(id);
  }
}
