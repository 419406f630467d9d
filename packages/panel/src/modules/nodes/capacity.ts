/**
 * Node capacity (issue 16 item 1), as Pterodactyl's node limits: each node has a memory, disk and
 * CPU capacity (what its Agent's system_info reports, or an admin's override) and an
 * over-allocation percentage per resource. A resource may hold up to
 * `capacity × (1 + overallocate / 100)`; `overallocate = -1` means that resource is not checked
 * (Pterodactyl's "unlimited"). What is allocated is the sum of the node's servers' limits; a
 * server's 0 (unlimited) counts as 0, as in Pterodactyl. A capacity nobody knows (no system_info
 * yet, no override) is not checked either. CPU is not checked by default (-1: Pterodactyl has no
 * node CPU limit and game servers share cores); an admin turns it on with `overallocate.cpu ≥ 0`.
 */
import { type Limits, type SystemInfo, sizeToBytes } from '@cap/protocol';
import { z } from 'zod';
import type { NodesTable } from '../../db/schema.ts';

export const RESOURCES = ['memory', 'disk', 'cpu'] as const;
export type Resource = (typeof RESOURCES)[number];

/** memory and disk in bytes, cpu in cores */
export type Usage = Record<Resource, number>;

/** Over-allocation in percent: -1 (not checked) to 10000 (a hundredfold). */
export const Overallocate = z.number().int().min(-1).max(10_000);

export const ResourceCapacity = z.object({
  /** bytes (memory, disk) or cores (cpu); null = unknown (no system_info yet and no override) */
  total: z.number().nullable(),
  /** where `total` comes from */
  source: z.enum(['agent', 'override']).nullable(),
  /** percent over `total` servers may hold; -1 = not checked */
  overallocate: z.number().int(),
  /** the most servers may hold: total × (1 + overallocate/100); null = not checked */
  limit: z.number().nullable(),
  /** the sum of the node's servers' limits (an unlimited one counts 0) */
  allocated: z.number(),
  /** limit − allocated (negative when over); null = not checked */
  free: z.number().nullable(),
});
export type ResourceCapacity = z.infer<typeof ResourceCapacity>;
export const NodeCapacity = z.object({
  memory: ResourceCapacity,
  disk: ResourceCapacity,
  cpu: ResourceCapacity,
});
export type NodeCapacity = z.infer<typeof NodeCapacity>;

/** One resource a server does not fit by: what it needs and what is free on the node. */
export const Shortage = z.object({ needed: z.number(), free: z.number() });
export type Shortage = z.infer<typeof Shortage>;

/** What a server's limits take of a node (an absent or 0 limit: 0). */
export function usageOf(limits: Limits): Usage {
  const size = (v: Limits['memory']) => {
    if (v === undefined) return 0;
    try {
      const b = sizeToBytes(v);
      return Number.isFinite(b) && b > 0 ? b : 0;
    } catch {
      return 0;
    }
  };
  const cpu = limits.cpu === undefined ? 0 : Number(limits.cpu);
  return { memory: size(limits.memory), disk: size(limits.disk), cpu: Number.isFinite(cpu) ? cpu : 0 };
}

export function addUsage(a: Usage, b: Usage): Usage {
  return { memory: a.memory + b.memory, disk: a.disk + b.disk, cpu: a.cpu + b.cpu };
}

/** The larger of each resource (a resize in flight counts at its larger size). */
export function maxUsage(a: Usage, b: Usage): Usage {
  return {
    memory: Math.max(a.memory, b.memory),
    disk: Math.max(a.disk, b.disk),
    cpu: Math.max(a.cpu, b.cpu),
  };
}

export const ZERO_USAGE: Usage = { memory: 0, disk: 0, cpu: 0 };

type CapacityRow = Pick<
  NodesTable,
  | 'capacity_memory'
  | 'capacity_disk'
  | 'capacity_cpu'
  | 'overallocate_memory'
  | 'overallocate_disk'
  | 'overallocate_cpu'
>;

function finiteOrNull(v: number | string | null | undefined): number | null {
  if (v === null || v === undefined) return null;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : null;
}

/** The node's capacity with `allocated` (its servers' sum) against it. */
export function capacityOf(row: CapacityRow, info: SystemInfo | null, allocated: Usage): NodeCapacity {
  const reported: Usage | null = info
    ? { memory: info.memory.total, disk: info.disk.total, cpu: info.cpus }
    : null;
  const override: Record<Resource, number | null> = {
    memory: finiteOrNull(row.capacity_memory),
    disk: finiteOrNull(row.capacity_disk),
    cpu: finiteOrNull(row.capacity_cpu),
  };
  const over: Usage = {
    memory: Number(row.overallocate_memory ?? 0),
    disk: Number(row.overallocate_disk ?? 0),
    cpu: Number(row.overallocate_cpu ?? -1),
  };
  const one = (r: Resource): ResourceCapacity => {
    const own = override[r];
    const fromAgent = reported && reported[r] > 0 ? reported[r] : null;
    const total = own ?? fromAgent;
    const source = own !== null ? 'override' : fromAgent !== null ? 'agent' : null;
    const limit = total === null || over[r] < 0 ? null : total * (1 + over[r] / 100);
    return {
      total,
      source,
      overallocate: over[r],
      limit,
      allocated: allocated[r],
      free: limit === null ? null : limit - allocated[r],
    };
  };
  return { memory: one('memory'), disk: one('disk'), cpu: one('cpu') };
}

/**
 * What a server needing `needed` is short of on a node with this capacity (empty: it fits). A
 * resource it does not ask for (0) never refuses it, even on a node already over.
 */
export function shortages(cap: NodeCapacity, needed: Usage): Partial<Record<Resource, Shortage>> {
  const out: Partial<Record<Resource, Shortage>> = {};
  for (const r of RESOURCES) {
    const free = cap[r].free;
    if (free === null || needed[r] <= 0) continue;
    // a little slack for the floating point of cores and percentages
    if (needed[r] > free + 1e-9) out[r] = { needed: needed[r], free: Math.max(0, free) };
  }
  return out;
}

/** The smallest share left free over the checked resources after placing `needed` (1 = all free). */
export function headroomAfter(cap: NodeCapacity, needed: Usage): number {
  let h = 1;
  for (const r of RESOURCES) {
    const { limit, free } = cap[r];
    if (limit === null || free === null || limit <= 0) continue;
    h = Math.min(h, (free - needed[r]) / limit);
  }
  return h;
}

/** "memory: needs 2 GiB, 1 GiB free" for a message. */
export function describeShortages(s: Partial<Record<Resource, Shortage>>): string {
  const fmt = (r: Resource, v: number) =>
    r === 'cpu' ? `${Math.round(v * 100) / 100} cores` : `${Math.round(v / 1024 ** 2)} MiB`;
  return RESOURCES.flatMap((r) => {
    const x = s[r];
    return x ? [`${r}: needs ${fmt(r, x.needed)}, ${fmt(r, x.free)} free`] : [];
  }).join('; ');
}
