/**
 * Automatic placement (issue 16 item 1): a create without `nodeId` goes to the node with the most
 * headroom among those that are online, match the asked tags and location, fit the server's
 * limits (capacity.ts), have a free allocation when the server takes one, and have its image
 * (the Agent is asked for its system_info, which lists the images it holds; an Agent that does
 * not list them counts as having it: it may pull). Headroom = the smallest share of a checked
 * resource left free once the server is there; a node with nothing checked has 1 (all of it).
 */
import { CodedError, SystemInfo } from '@cap/protocol';
import { z } from 'zod';
import type { NodesTable } from '../../db/schema.ts';
import type { AgentGateway } from '../../relay/agent-gateway.ts';
import type { AllocationsService } from '../allocations/service.ts';
import {
  describeShortages,
  headroomAfter,
  type NodeCapacity,
  shortages,
  type Usage,
} from '../nodes/capacity.ts';
import type { NodesRepo } from '../nodes/repo.ts';
import { NodeLocation, NodeTags } from '../nodes/service.ts';

/** (not mapping.ts's: that imports schemas.ts, which imports this) */
function parseJson<T>(s: string | null, fallback: T): T {
  if (s === null) return fallback;
  try {
    return JSON.parse(s) as T;
  } catch {
    return fallback;
  }
}

/** What narrows automatic placement: nodes carrying every tag, at that location. */
export const PlacementRequest = z
  .object({ tags: NodeTags.optional(), location: NodeLocation.optional() })
  .strict();
export type PlacementRequest = z.infer<typeof PlacementRequest>;

export const PlacementCandidate = z.object({
  nodeId: z.string(),
  name: z.string(),
  /** whether the server could go there */
  eligible: z.boolean(),
  /** the smallest share of a checked resource left free with the server there (eligible ones) */
  headroom: z.number().nullable(),
  /** why it was left out, or what it offers */
  reason: z.string(),
});
export const Placement = z.object({
  nodeId: z.string(),
  reason: z.string(),
  candidates: z.array(PlacementCandidate),
});
export type Placement = z.infer<typeof Placement>;
type Candidate = z.infer<typeof PlacementCandidate>;

/** What the server needs of a node. */
export interface PlacementNeed {
  /** its limits on that node (what they leave out comes from the node's defaults) */
  usage: (node: NodesTable) => Usage;
  image: string;
  /** it takes a pool allocation (a template server without `port`) */
  poolAllocation: boolean;
  /** host ports it binds that must be free there (`port` and raw ports) */
  ports: number[];
  narrow: PlacementRequest;
}

/** `ctrl-alt-play/busybox` and `docker.io/library/busybox:latest` as the engine lists them. */
export function normalizeImage(ref: string): string {
  let r = ref.trim();
  if (r.startsWith('docker.io/')) r = r.slice('docker.io/'.length);
  if (r.startsWith('library/')) r = r.slice('library/'.length);
  if (r.includes('@')) return r;
  const last = r.slice(r.lastIndexOf('/') + 1);
  return last.includes(':') ? r : `${r}:latest`;
}

const pct = (h: number) => `${Math.round(h * 100)}%`;

export async function place(
  deps: {
    nodes: NodesRepo;
    gateway: AgentGateway;
    allocations: AllocationsService;
    capacity: (node: NodesTable) => Promise<NodeCapacity>;
  },
  need: PlacementNeed,
): Promise<{ node: NodesTable; placement: Placement }> {
  const wantTags = (need.narrow.tags ?? []).map((t) => t.toLowerCase());
  const wantLocation = need.narrow.location?.toLowerCase();
  const image = normalizeImage(need.image);
  const candidates: Candidate[] = [];
  const rows = new Map<string, NodesTable>();
  for (const stored of await deps.nodes.list()) {
    const out = (eligible: boolean, reason: string, headroom: number | null = null) =>
      candidates.push({ nodeId: stored.id, name: stored.name, eligible, headroom, reason });
    const ownTags = NodeTags.safeParse(parseJson<unknown>(stored.tags ?? null, []));
    const tags = new Set(ownTags.success ? ownTags.data : []);
    const missingTags = wantTags.filter((t) => !tags.has(t));
    if (missingTags.length > 0) {
      out(false, `not tagged ${missingTags.join(', ')}`);
      continue;
    }
    if (wantLocation !== undefined && (stored.location ?? '').toLowerCase() !== wantLocation) {
      out(false, stored.location ? `at ${stored.location}, not ${need.narrow.location}` : 'no location set');
      continue;
    }
    if (!deps.gateway.isOnline(stored.id)) {
      out(false, 'offline');
      continue;
    }
    // what the node has now (capacity and images): asked, else what it said last
    let node = stored;
    const asked = SystemInfo.safeParse(
      await deps.gateway.request(stored.id, 'system_info', {}, { timeoutMs: 5000 }).catch(() => null),
    );
    if (asked.success) {
      node = { ...stored, system_info: JSON.stringify(asked.data) };
      await deps.nodes.update(stored.id, { system_info: node.system_info });
    }
    const info = SystemInfo.safeParse(parseJson(node.system_info, null));
    const usage = need.usage(node);
    const cap = await deps.capacity(node);
    const short = shortages(cap, usage);
    if (Object.keys(short).length > 0) {
      out(false, `does not fit: ${describeShortages(short)}`);
      continue;
    }
    const images = info.success ? info.data.images : undefined;
    if (images !== undefined && !images.some((i) => normalizeImage(i) === image)) {
      out(false, `does not have the image ${need.image}`);
      continue;
    }
    if (need.poolAllocation && !(await deps.allocations.hasFree(stored.id))) {
      out(false, 'no free allocation');
      continue;
    }
    const taken: number[] = [];
    for (const p of need.ports) if (!(await deps.allocations.portFree(stored.id, p))) taken.push(p);
    if (taken.length > 0) {
      out(false, `port ${taken.join(', ')} taken`);
      continue;
    }
    const headroom = headroomAfter(cap, usage);
    rows.set(stored.id, node);
    out(
      true,
      `${pct(headroom)} headroom with the server${images === undefined ? ' (its images are not reported)' : ''}`,
      headroom,
    );
  }
  const eligible = candidates.filter((c) => c.eligible);
  if (eligible.length === 0)
    throw new CodedError(
      'INSUFFICIENT_RESOURCES',
      candidates.length === 0
        ? 'no node to place the server on'
        : `no node can take the server: ${candidates.map((c) => `${c.name}: ${c.reason}`).join('; ')}`,
      { details: { candidates }, location: 'nodeId' },
    );
  // the most headroom; a tie goes to the older node (the list's order)
  const best = eligible.reduce((a, b) => ((b.headroom ?? 0) > (a.headroom ?? 0) ? b : a));
  const others = eligible.filter((c) => c !== best);
  const reason =
    others.length === 0
      ? `the only node that can take it (${best.reason})`
      : `the most headroom: ${pct(best.headroom ?? 0)} (next: ${others
          .map((c) => `${c.name} ${pct(c.headroom ?? 0)}`)
          .join(', ')})`;
  const node = rows.get(best.nodeId);
  if (!node) throw new CodedError('INTERNAL_ERROR', 'placement lost its node');
  return { node, placement: { nodeId: best.nodeId, reason, candidates } };
}
