/**
 * The Docker pages' client: each node's Engine API through the Panel at
 * `/api/nodes/:id/docker/<Engine API path>` (same shapes and status codes as the Engine; the
 * Panel's own refusals — permission, policy, node offline — carry its `code`). Streams (logs
 * follow, stats, events, pull progress) are read from the fetch body as it arrives.
 */
import { type QueryClient, useQueries, useQuery, useQueryClient } from '@tanstack/react-query';
import { useRef } from 'react';
import type {
  DockerContainer,
  DockerImage,
  DockerNetwork,
  DockerVolume,
  NodeContainer,
} from '../lib/docker.ts';
import { ApiError, api, csrfHeaders, errorFromBody } from './http.ts';

/** A node whose Docker the caller may use (GET /api/docker/nodes), with its permissions there. */
export interface DockerNode {
  id: string;
  name: string;
  online: boolean;
  permissions: ('docker.read' | 'docker.write')[];
}
type PanelNode = Pick<DockerNode, 'id' | 'name' | 'online'>;

/** The nodes the caller holds docker.read / docker.write on (admins: every node, both). */
export const useDockerNodes = (enabled = true) =>
  useQuery({
    queryKey: ['docker-nodes'],
    queryFn: ({ signal }) => api<DockerNode[]>('/docker/nodes', { signal }),
    enabled,
    staleTime: 15_000,
    refetchInterval: 15_000,
  });

export const dockerUrl = (nodeId: string, path: string): string =>
  `/api/nodes/${encodeURIComponent(nodeId)}/docker${path}`;

/**
 * The Panel's WebSocket for an exec made with `Tty: true` (docs/contracts.md "Docker through the
 * Panel"): `/ws/nodes/:id/docker/exec/:execId`, same origin with the session cookie; binary frames
 * both ways, a text frame `{"type":"resize","cols","rows"}` resizes the TTY.
 */
export function execSocketUrl(nodeId: string, execId: string): string {
  const proto = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${window.location.host}/ws/nodes/${encodeURIComponent(nodeId)}/docker/exec/${encodeURIComponent(execId)}`;
}

export const dockerKeys = {
  all: ['docker'] as const,
  node: (nodeId: string) => ['docker', nodeId] as const,
  containers: (nodeId: string) => ['docker', nodeId, 'containers'] as const,
  container: (nodeId: string, id: string) => ['docker', nodeId, 'container', id] as const,
  images: (nodeId: string) => ['docker', nodeId, 'images'] as const,
  networks: (nodeId: string) => ['docker', nodeId, 'networks'] as const,
  volumes: (nodeId: string) => ['docker', nodeId, 'volumes'] as const,
  info: (nodeId: string) => ['docker', nodeId, 'info'] as const,
  df: (nodeId: string) => ['docker', nodeId, 'df'] as const,
};

/** An Engine error body is `{ message }`; the Panel's is `{ code, message }`. */
export async function dockerError(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (data && typeof data === 'object' && Object.hasOwn(data, 'code')) return errorFromBody(data, res.status);
  const message =
    data &&
    typeof data === 'object' &&
    Object.hasOwn(data, 'message') &&
    typeof (data as { message: unknown }).message === 'string'
      ? (data as { message: string }).message
      : text.slice(0, 300) || `The Docker Engine answered ${res.status}.`;
  return new ApiError(`DOCKER_${res.status}`, message, res.status);
}

export interface DockerRequest {
  method?: string;
  /** JSON-encoded unless a Blob/File (then sent as is, e.g. an image tarball) */
  body?: unknown;
  signal?: AbortSignal;
  headers?: Record<string, string>;
}

/** A request through the Panel's relay; resolves the Response when it is 2xx/304, else throws ApiError. */
export async function dockerFetch(nodeId: string, path: string, o: DockerRequest = {}): Promise<Response> {
  const method = (o.method ?? 'GET').toUpperCase();
  const headers: Record<string, string> = { ...csrfHeaders(method), ...o.headers };
  let body: BodyInit | undefined;
  if (o.body instanceof Blob) body = o.body;
  else if (o.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(o.body);
  }
  let res: Response;
  try {
    res = await fetch(dockerUrl(nodeId, path), {
      method,
      headers,
      credentials: 'same-origin',
      ...(body === undefined ? {} : { body }),
      ...(o.signal ? { signal: o.signal } : {}),
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError('NETWORK_ERROR', 'The Panel could not be reached.', 0);
  }
  if (!res.ok && res.status !== 304) throw await dockerError(res);
  return res;
}

export async function dockerJson<T>(nodeId: string, path: string, o: DockerRequest = {}): Promise<T> {
  const res = await dockerFetch(nodeId, path, o);
  if (res.status === 204 || res.status === 304) return undefined as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

/**
 * Reads a streaming answer chunk by chunk until it ends or `signal` aborts; `onChunk` gets the raw
 * bytes (logs are framed, see LogDemuxer) — callers decode.
 */
export async function dockerStream(
  nodeId: string,
  path: string,
  onChunk: (chunk: Uint8Array) => void,
  o: DockerRequest = {},
): Promise<void> {
  const res = await dockerFetch(nodeId, path, o);
  const reader = res.body?.getReader();
  if (!reader) return;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      if (value?.length) onChunk(value);
    }
  } catch (e) {
    if ((e as Error).name === 'AbortError' || o.signal?.aborted) return;
    throw e;
  } finally {
    reader.releaseLock();
  }
}

const q = (params: Record<string, string | number | boolean | undefined>): string => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) s.set(k, String(v));
  const out = s.toString();
  return out ? `?${out}` : '';
};

export { q as dockerQuery };

/**
 * The node's containers from the Agent's cache (kept current from Docker's events; the Engine's
 * own list takes over a second for a thousand containers): the list's fields, newest first.
 */
export const listContainers = async (nodeId: string, signal?: AbortSignal, limit?: number) =>
  (
    await api<{ containers: DockerContainer[] }>(
      `/nodes/${encodeURIComponent(nodeId)}/docker-cache/containers${limit ? `?limit=${limit}` : ''}`,
      signal ? { signal } : {},
    )
  ).containers;
/** The first rows of a node's list, shown while the whole list is on its way. */
const HEAD_ROWS = 100;

/**
 * Every container of every online node, fetched per node at once and merged (a node that fails
 * is reported apart; the others still show).
 */
export function useAllContainers(nodes: readonly PanelNode[] | undefined, only?: string) {
  const targets = (nodes ?? []).filter((n) => n.online && (!only || n.id === only));
  const results = useQueries({
    queries: targets.map((n) => ({
      queryKey: dockerKeys.containers(n.id),
      queryFn: ({ signal }: { signal: AbortSignal }) => listContainers(n.id, signal),
      refetchInterval: 10_000,
    })),
  });
  // the first rows of each node come first (a small answer), the rest with the whole list
  const heads = useQueries({
    queries: targets.map((n, i) => ({
      queryKey: [...dockerKeys.containers(n.id), 'head'],
      queryFn: ({ signal }: { signal: AbortSignal }) => listContainers(n.id, signal, HEAD_ROWS),
      enabled: results[i]?.data === undefined,
      staleTime: 5_000,
    })),
  });
  // the merged list is made again only when an answer changes (not on every render: a keystroke
  // in the filter would copy every container again)
  const datas = results.map((r, i) => r.data ?? heads[i]?.data);
  const key = targets.map((n) => `${n.id}\u0000${n.name}`).join('\u0001');
  const merged = useRef<{ key: string; datas: unknown[]; list: NodeContainer[] } | null>(null);
  const prev = merged.current;
  let list: NodeContainer[];
  if (
    prev &&
    prev.key === key &&
    prev.datas.length === datas.length &&
    prev.datas.every((d, i) => d === datas[i])
  )
    list = prev.list;
  else {
    list = [];
    datas.forEach((data, i) => {
      const node = targets[i] as PanelNode;
      if (data) for (const c of data) list.push({ ...c, nodeId: node.id, nodeName: node.name });
    });
    merged.current = { key, datas, list };
  }
  const errors: { node: PanelNode; error: unknown }[] = [];
  let pending = false;
  results.forEach((r, i) => {
    const node = targets[i] as PanelNode;
    if (r.isError) errors.push({ node, error: r.error });
    if (r.isPending && !heads[i]?.data) pending = true;
  });
  const offline = (nodes ?? []).filter((n) => !n.online && (!only || n.id === only));
  return { list, errors, pending: pending || nodes === undefined, offline, targets };
}

export const useDockerImages = (nodeId: string) =>
  useQuery({
    queryKey: dockerKeys.images(nodeId),
    queryFn: ({ signal }) => dockerJson<DockerImage[]>(nodeId, '/images/json', { signal }),
    enabled: !!nodeId,
  });
/**
 * A node's first rows, asked for at once (with the node list and the whole list, not after
 * them): the same query the list shows first, so the rows render from the first answer.
 */
export const useContainersHead = (nodeId: string) => {
  const qc = useQueryClient();
  return useQuery({
    queryKey: [...dockerKeys.containers(nodeId), 'head'],
    queryFn: ({ signal }) => listContainers(nodeId, signal, HEAD_ROWS),
    enabled: !!nodeId && qc.getQueryData(dockerKeys.containers(nodeId)) === undefined,
    staleTime: 5_000,
  });
};
/**
 * Opened at a node's container list (or at /docker): the node list, the list's first rows and the
 * whole list are asked for at boot, beside the login check, not once the page has rendered after
 * it (the same queries and keys the page then shows from). A session that is gone answers 401 to
 * these as to the login check.
 */
export function prefetchDockerList(qc: QueryClient, pathname: string): void {
  const m = /^\/docker(?:\/([^/]+)(?:\/containers)?)?\/?$/.exec(pathname);
  if (!m) return;
  void qc.prefetchQuery({
    queryKey: ['docker-nodes'],
    queryFn: ({ signal }) => api<DockerNode[]>('/docker/nodes', { signal }),
    staleTime: 15_000,
  });
  const raw = m[1];
  if (!raw || raw === 'all') return;
  let nodeId: string;
  try {
    nodeId = decodeURIComponent(raw);
  } catch {
    return;
  }
  void qc.prefetchQuery({
    queryKey: [...dockerKeys.containers(nodeId), 'head'],
    queryFn: ({ signal }) => listContainers(nodeId, signal, HEAD_ROWS),
    staleTime: 5_000,
  });
  void qc.prefetchQuery({
    queryKey: dockerKeys.containers(nodeId),
    queryFn: ({ signal }) => listContainers(nodeId, signal),
  });
}
export const useNodeContainers = (nodeId: string) =>
  useQuery({
    queryKey: dockerKeys.containers(nodeId),
    queryFn: ({ signal }) => listContainers(nodeId, signal),
    enabled: !!nodeId,
  });
export const useDockerNetworks = (nodeId: string) =>
  useQuery({
    queryKey: dockerKeys.networks(nodeId),
    queryFn: ({ signal }) => dockerJson<DockerNetwork[]>(nodeId, '/networks', { signal }),
    enabled: !!nodeId,
  });
export const useDockerVolumes = (nodeId: string) =>
  useQuery({
    queryKey: dockerKeys.volumes(nodeId),
    queryFn: async ({ signal }) =>
      (await dockerJson<{ Volumes: DockerVolume[] | null }>(nodeId, '/volumes', { signal })).Volumes ?? [],
    enabled: !!nodeId,
  });
export const useInspect = <T = Record<string, unknown>>(nodeId: string, path: string, enabled = true) =>
  useQuery({
    queryKey: ['docker', nodeId, 'inspect', path],
    queryFn: ({ signal }) => dockerJson<T>(nodeId, path, { signal }),
    enabled: enabled && !!nodeId,
  });

export function invalidateDocker(qc: QueryClient, nodeId: string): Promise<void> {
  return qc.invalidateQueries({ queryKey: dockerKeys.node(nodeId) });
}

/** Bytes the browser saves as a file (a log, an inspect JSON). */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
