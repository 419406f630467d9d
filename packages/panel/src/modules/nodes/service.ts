/** Nodes: created by an admin, each with an AGENT_SECRET shown once and stored hashed. */
import { CodedError, Limits, Size, SystemInfo, sizeToBytes } from '@cap/protocol';
import { z } from 'zod';
import { nowIso } from '../../db/index.ts';
import type { NodesTable } from '../../db/schema.ts';
import { randomToken, sha256, shortId } from '../../lib/crypto.ts';
import { capacityOf, NodeCapacity, Overallocate, type Usage, ZERO_USAGE } from './capacity.ts';
import type { NodesRepo } from './repo.ts';

/** A node's link quality and Docker health (issue 16 item 4; relay/agent-hub.ts LinkHealth). */
export const NodeHealth = z.object({
  /** links made since the Panel started; `reconnects` = connects − 1 */
  connects: z.number().int(),
  reconnects: z.number().int(),
  disconnects: z.number().int(),
  connectedSince: z.string().nullable(),
  lastPongAt: z.string().nullable(),
  /** pings unanswered on the current link beyond the one in flight (3 drop it) */
  missedPongs: z.number().int(),
  /** ms between the last two heartbeats, and the largest gap seen */
  lastGapMs: z.number().nullable(),
  maxGapMs: z.number().nullable(),
  rttMs: z.number().nullable(),
  /** the Agent's clock minus the Panel's, ms (from its pong's timestamp; positive: it is ahead) */
  clockSkewMs: z.number().nullable(),
  /** the Docker Engine as the Agent's last pong reported it (errors: DOCKER_ERROR answers since the Agent started) */
  docker: z
    .object({
      reachable: z.boolean(),
      version: z.string().nullable(),
      errors: z.number().nullable(),
      at: z.string(),
    })
    .nullable(),
});
export type NodeHealth = z.infer<typeof NodeHealth>;

/** A node tag: letters, digits and `_ . : -`, 1–32 characters (compared case-insensitively). */
export const NodeTag = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,31}$/, 'a tag is 1–32 letters, digits or _ . : -');
export const NodeTags = z.array(NodeTag).max(32);
export const NodeLocation = z.string().trim().min(1).max(100);

/** Capacity overrides: sizes for memory and disk, cores for CPU; null = what the Agent reports. */
export const CapacityOverrides = z
  .object({
    memory: Size.nullable().optional(),
    disk: Size.nullable().optional(),
    cpu: z.number().positive().max(100_000).nullable().optional(),
  })
  .strict()
  .refine((c) => c.memory == null || saneSize(c.memory), {
    message: 'memory: at most 1 PiB',
    path: ['memory'],
  })
  .refine((c) => c.disk == null || saneSize(c.disk), { message: 'disk: at most 1 PiB', path: ['disk'] })
  .refine((c) => c.memory == null || sizeToBytes(c.memory) > 0, {
    message: 'memory: more than 0',
    path: ['memory'],
  })
  .refine((c) => c.disk == null || sizeToBytes(c.disk) > 0, { message: 'disk: more than 0', path: ['disk'] });
export type CapacityOverrides = z.infer<typeof CapacityOverrides>;
export const OverallocatePatch = z
  .object({ memory: Overallocate.optional(), disk: Overallocate.optional(), cpu: Overallocate.optional() })
  .strict();
export type OverallocatePatch = z.infer<typeof OverallocatePatch>;

/** 1 PiB: more than any node has; keeps sizes finite and sane */
const MAX_SIZE_BYTES = 1024 ** 5;
/** within bounds; a malformed size is reported by its own schema, not here */
const saneSize = (v: Limits['memory']) => {
  if (v === undefined) return true;
  try {
    return sizeToBytes(v) <= MAX_SIZE_BYTES;
  } catch {
    return true;
  }
};
/** Default limits of a node: what a server created without them gets (0 = unlimited). */
export const DefaultLimits = Limits.pick({ memory: true, cpu: true, disk: true })
  .strict()
  .refine((l) => l.cpu === undefined || Number(l.cpu) <= 4096, {
    message: 'cpu: at most 4096',
    path: ['cpu'],
  })
  .refine((l) => saneSize(l.memory), {
    message: 'memory: at most 1 PiB',
    path: ['memory'],
  })
  .refine((l) => saneSize(l.disk), {
    message: 'disk: at most 1 PiB',
    path: ['disk'],
  });
export type DefaultLimits = z.infer<typeof DefaultLimits>;

/** The node's own defaults, else the Panel's. */
export function effectiveDefaults(
  n: Pick<NodesTable, 'default_limits'>,
  panel: DefaultLimits,
): DefaultLimits {
  const own = json<unknown>(n.default_limits);
  const parsed = own === null ? undefined : DefaultLimits.safeParse(own);
  return parsed?.success ? parsed.data : { ...panel };
}

/** `limits` with each of memory/cpu/disk it leaves out taken from `defaults` (an explicit 0 stays). */
export function withDefaultLimits(limits: Limits, defaults: DefaultLimits): Limits {
  const out: Limits = { ...limits };
  if (out.memory === undefined && defaults.memory !== undefined) out.memory = defaults.memory;
  if (out.cpu === undefined && defaults.cpu !== undefined) out.cpu = defaults.cpu;
  if (out.disk === undefined && defaults.disk !== undefined) out.disk = defaults.disk;
  return out;
}

/** A DNS name or an IP address players can reach, without port or scheme. */
export const PublicAddress = z
  .string()
  .max(253)
  .refine((v) => z.ipv4().safeParse(v).success || z.ipv6().safeParse(v).success || isHostname(v), {
    message: 'a hostname (play.example.com) or an IP address, without port or scheme',
  })
  .refine((v) => v !== '0.0.0.0' && v !== '::', { message: 'an address players can reach, not 0.0.0.0' });

function isHostname(v: string): boolean {
  return /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i.test(
    v,
  );
}

/** Longest transfer URL accepted (characters). */
const MAX_TRANSFER_URL_LENGTH = 2048;

/**
 * A node's transfer URL: the base URL of its Agent's HTTP API as the browser reaches it
 * (`https://node1.example.com:8443`, or a path behind a proxy). http(s) only; no user or password,
 * query or fragment (the ticket is the only credential; `/transfers/<ticket>` is appended).
 * Stored without a trailing slash.
 */
export const TransferUrl = z
  .string()
  .max(MAX_TRANSFER_URL_LENGTH)
  .superRefine((raw, ctx) => {
    const problem = transferUrlProblem(raw);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .transform((raw) => {
    const u = new URL(raw);
    return `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
  });

function transferUrlProblem(raw: string): string | null {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return 'not a URL (e.g. https://node1.example.com:8443)';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'must be an http:// or https:// URL';
  if (u.username || u.password) return 'must not carry a user name or password';
  // a bare `?` or `#` leaves search/hash empty: look at the text itself
  if (raw.includes('?')) return 'must not have a query';
  if (raw.includes('#')) return 'must not have a fragment';
  return null;
}

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
  /** the node's own default limits for new servers; null = the Panel's */
  defaultLimits: DefaultLimits.nullable(),
  /** what a server created on this node without limits gets */
  effectiveDefaultLimits: DefaultLimits,
  /** where players reach this node's servers (shown with their ports); null = not set */
  publicAddress: z.string().nullable(),
  /** why this node's Agent was last refused (e.g. PROTOCOL_INCOMPATIBLE); null once one connects */
  agentRefusal: z
    .object({
      at: z.string(),
      code: z.string(),
      /** the protocol version the Agent spoke; null when it sent none */
      protocolVersion: z.number().nullable(),
      message: z.string(),
    })
    .nullable(),
  /** the browser-reachable base URL of the node's Agent HTTP API (direct transfers); null = relay only */
  transferUrl: z.string().nullable(),
  /** capacity per resource against what its servers' limits take (see capacity.ts for the rule) */
  capacity: NodeCapacity,
  /** automatic placement can be narrowed to nodes with these tags */
  tags: z.array(z.string()),
  /** automatic placement can be narrowed to nodes at this location; null = not set */
  location: z.string().nullable(),
  /** the link and its Docker Engine as this Panel process saw them; null = no link since it started */
  health: NodeHealth.nullable(),
});
export type Node = z.infer<typeof Node>;

/** What the service needs to know about live connections. */
export interface NodePresence {
  isOnline(nodeId: string): boolean;
  disconnect(nodeId: string, reason: string): void;
  health?(nodeId: string): Omit<NodeHealth, 'reconnects'> | null;
}

function refusalOf(s: string | null): Node['agentRefusal'] {
  const parsed = Node.shape.agentRefusal.safeParse(json<unknown>(s));
  return parsed.success ? parsed.data : null;
}

function healthOf(h: Omit<NodeHealth, 'reconnects'> | null): NodeHealth | null {
  return h === null ? null : { ...h, reconnects: Math.max(0, h.connects - 1) };
}

function tagsOf(s: string | null): string[] {
  const parsed = NodeTags.safeParse(json<unknown>(s));
  return parsed.success ? parsed.data : [];
}

function json<T>(s: string | null): T | null {
  if (s === null) return null;
  try {
    return JSON.parse(s) as T;
  } catch {
    return null;
  }
}

/** A new node's row (no Agent linked yet) and its Agent secret, of which only the hash is kept. */
export function newNodeRow(
  name: string,
  transferUrl: string | null = null,
): { row: NodesTable; agentSecret: string } {
  const agentSecret = `cas_${randomToken(32)}`;
  const row: NodesTable = {
    id: shortId('n'),
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
    default_limits: null,
    public_address: null,
    agent_refusal: null,
    transfer_url: transferUrl,
    capacity_memory: null,
    capacity_disk: null,
    capacity_cpu: null,
    overallocate_memory: 0,
    overallocate_disk: 0,
    overallocate_cpu: -1,
    tags: null,
    location: null,
  };
  return { row, agentSecret };
}

export class NodesService {
  readonly #repo: NodesRepo;
  readonly #presence: () => NodePresence;
  readonly #publicUrl: () => string;
  readonly #panelDefaults: DefaultLimits;
  constructor(
    repo: NodesRepo,
    presence: () => NodePresence,
    publicUrl: () => string,
    panelDefaults: DefaultLimits = {},
  ) {
    this.#repo = repo;
    this.#presence = presence;
    this.#publicUrl = publicUrl;
    this.#panelDefaults = panelDefaults;
  }

  #toNode(n: NodesTable, serverCount: number, allocated: Usage = ZERO_USAGE): Node {
    const systemInfo = json<SystemInfo>(n.system_info);
    return {
      id: n.id,
      name: n.name,
      online: this.#presence().isOnline(n.id),
      lastHeartbeatAt: n.last_heartbeat_at,
      protocolVersion: n.protocol_version,
      systemInfo,
      load: json<z.infer<typeof Load>>(n.load),
      serverCount,
      hostname: n.hostname,
      capabilities: json<unknown>(n.capabilities),
      createdAt: n.created_at,
      defaultLimits: n.default_limits === null ? null : effectiveDefaults(n, this.#panelDefaults),
      effectiveDefaultLimits: effectiveDefaults(n, this.#panelDefaults),
      publicAddress: n.public_address ?? null,
      agentRefusal: refusalOf(n.agent_refusal ?? null),
      transferUrl: n.transfer_url ?? null,
      capacity: capacityOf(n, systemInfo, allocated),
      tags: tagsOf(n.tags ?? null),
      location: n.location ?? null,
      health: healthOf(this.#presence().health?.(n.id) ?? null),
    };
  }

  /** The one-liner an admin runs on the node's host. */
  #agentCommand(id: string, agentSecret: string): string {
    return `PANEL_URL=${this.#publicUrl()} NODE_ID=${id} AGENT_SECRET=${agentSecret} npx ctrl-alt-play agent`;
  }

  async list(): Promise<Node[]> {
    const [rows, counts, allocated] = await Promise.all([
      this.#repo.list(),
      this.#repo.serverCounts(),
      this.#repo.allocated(),
    ]);
    return rows.map((n) => this.#toNode(n, counts.get(n.id) ?? 0, allocated.get(n.id)));
  }

  async get(id: string): Promise<Node> {
    const n = await this.#repo.findById(id);
    if (!n) throw new CodedError('NOT_FOUND', 'no such node');
    const [counts, allocated] = await Promise.all([this.#repo.serverCounts(id), this.#repo.allocated(id)]);
    return this.#toNode(n, counts.get(n.id) ?? 0, allocated.get(n.id));
  }

  async create(
    name: string,
    opts: { transferUrl?: string | null } = {},
  ): Promise<{ node: Node; agentSecret: string; command: string }> {
    if (await this.#repo.findByName(name)) throw new CodedError('CONFLICT', 'a node with that name exists');
    const { row, agentSecret } = newNodeRow(name, opts.transferUrl ?? null);
    const id = row.id;
    await this.#repo.insert(row);
    const command = this.#agentCommand(id, agentSecret);
    return { node: this.#toNode(row, 0), agentSecret, command };
  }

  /** Changes what the patch names (undefined: unchanged; null: back to the default). */
  async update(
    id: string,
    patch: {
      defaultLimits?: DefaultLimits | null | undefined;
      transferUrl?: string | null | undefined;
      publicAddress?: string | null | undefined;
      capacity?: CapacityOverrides | undefined;
      overallocate?: OverallocatePatch | undefined;
      tags?: string[] | undefined;
      location?: string | null | undefined;
    },
  ): Promise<Node> {
    await this.get(id);
    const row: Partial<Omit<NodesTable, 'id' | 'created_at'>> = {};
    const cap = patch.capacity;
    if (cap?.memory !== undefined) row.capacity_memory = cap.memory === null ? null : sizeToBytes(cap.memory);
    if (cap?.disk !== undefined) row.capacity_disk = cap.disk === null ? null : sizeToBytes(cap.disk);
    if (cap?.cpu !== undefined) row.capacity_cpu = cap.cpu;
    const over = patch.overallocate;
    if (over?.memory !== undefined) row.overallocate_memory = over.memory;
    if (over?.disk !== undefined) row.overallocate_disk = over.disk;
    if (over?.cpu !== undefined) row.overallocate_cpu = over.cpu;
    if (patch.tags !== undefined)
      row.tags =
        patch.tags.length === 0 ? null : JSON.stringify([...new Set(patch.tags.map((t) => t.toLowerCase()))]);
    if (patch.location !== undefined) row.location = patch.location;
    if (patch.publicAddress !== undefined)
      row.public_address = patch.publicAddress === null ? null : patch.publicAddress.toLowerCase();
    if (patch.defaultLimits !== undefined)
      row.default_limits = patch.defaultLimits === null ? null : JSON.stringify(patch.defaultLimits);
    if (patch.transferUrl !== undefined) row.transfer_url = patch.transferUrl;
    if (Object.keys(row).length > 0) await this.#repo.update(id, row);
    return this.get(id);
  }

  /** Where the browser reaches this node's Agent directly; null: not set (relay only) or no such node. */
  async transferUrlOf(id: string): Promise<string | null> {
    return (await this.#repo.findById(id))?.transfer_url ?? null;
  }

  /**
   * The node's transfer URL when browsers may use it: set, and its Agent reported (system_info
   * `transfers`) that its HTTP API serves transfer tickets; else null (relayed).
   */
  async directTransferUrlOf(id: string): Promise<string | null> {
    const row = await this.#repo.findById(id);
    if (!row?.transfer_url) return null;
    const info = SystemInfo.safeParse(json<SystemInfo>(row.system_info));
    return info.success && info.data.transfers === true ? row.transfer_url : null;
  }

  /** Where players reach the node's servers; null = not set (servers then show no address). */
  async setPublicAddress(id: string, address: string | null): Promise<Node> {
    return this.update(id, { publicAddress: address });
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

  /** An Agent connected: note the time and protocol version; an earlier refusal is over. */
  async connected(nodeId: string, protocolVersion: number): Promise<void> {
    await this.#repo.update(nodeId, {
      last_heartbeat_at: nowIso(),
      protocol_version: protocolVersion,
      agent_refusal: null,
    });
  }

  /** The node's Agent was refused (shown on the node until an Agent connects). */
  async refused(
    nodeId: string,
    r: { code: string; protocolVersion: number | null; message: string },
  ): Promise<void> {
    await this.#repo.update(nodeId, { agent_refusal: JSON.stringify({ at: nowIso(), ...r }) });
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
