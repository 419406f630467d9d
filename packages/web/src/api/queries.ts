import type { ClientMessage } from '@cap/protocol/client.ts';
import { type QueryClient, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from './http.ts';
import type {
  ActivityPage,
  AgentCommands,
  Allocation,
  ApiKeyInfo,
  BackupList,
  Bucket,
  CreateApiKeyInput,
  CreatedApiKey,
  CreatedNode,
  CreateServerInput,
  CurrentPlayers,
  Dashboard,
  FileContent,
  FileList,
  FileSearch,
  MetricsRange,
  Operation,
  PanelNode,
  PermissionGroup,
  PlayersBucket,
  Schedule,
  ScheduleRun,
  Server,
  SessionInfo,
  Subuser,
  Telemetry,
  TemplateDetail,
  TemplateSummary,
  TwoFactorStatus,
  User,
} from './types.ts';

export const keys = {
  me: ['me'] as const,
  setup: ['setup'] as const,
  dashboard: ['dashboard'] as const,
  nodes: ['nodes'] as const,
  node: (id: string) => ['nodes', id] as const,
  servers: ['servers'] as const,
  telemetry: (id: string) => ['servers', id, 'telemetry'] as const,
  operations: (id: string) => ['servers', id, 'operations'] as const,
  metrics: (id: string, range: string) => ['servers', id, 'metrics', range] as const,
  players: (id: string) => ['servers', id, 'players'] as const,
  playersHistory: (id: string) => ['servers', id, 'players', 'history'] as const,
  /** every listing and search of a server's files (invalidate this after a change) */
  filesOf: (id: string) => ['servers', id, 'files'] as const,
  files: (id: string, path: string, offset = 0, sort: FileSort = 'name', order: SortOrder = 'asc') =>
    ['servers', id, 'files', 'list', path, offset, sort, order] as const,
  fileSearch: (id: string, path: string, query: string) =>
    ['servers', id, 'files', 'search', path, query] as const,
  file: (id: string, path: string) => ['servers', id, 'file', path] as const,
  users: ['users'] as const,
  templates: ['templates'] as const,
  template: (id: string) => ['templates', id] as const,
  allocations: (nodeId: string) => ['nodes', nodeId, 'allocations'] as const,
  apiKeys: ['api-keys'] as const,
  twoFactor: ['two-factor'] as const,
  sessions: ['sessions'] as const,
  activity: (serverId: string | null, query: string) => ['activity', serverId, query] as const,
  permissions: ['permissions'] as const,
  subusers: (serverId: string) => ['servers', serverId, 'users'] as const,
  backups: (serverId: string) => ['servers', serverId, 'backups'] as const,
  schedules: (serverId: string) => ['servers', serverId, 'schedules'] as const,
  scheduleRuns: (serverId: string, scheduleId: string) =>
    ['servers', serverId, 'schedules', scheduleId, 'runs'] as const,
};

// live data keeps these fresh; polling is the fallback when the socket is down
const POLL_MS = 15_000;

/**
 * The last status each server's live socket reported, and when. A list or telemetry fetch that
 * began before it answers with what the Panel knew then; applied as it came, that older answer
 * would overwrite the newer live status (a server shown `starting` for ever once it ran: the
 * page refetched on a click while the Agent's `running` came in).
 */
const liveStatus = new Map<string, { status: Server['status']; at: number }>();

/** Fetches `load`, then puts back the live status of every server that changed since it began. */
export async function newerLive<T>(
  load: () => Promise<T>,
  apply: (data: T, fix: (s: Server) => Server) => T,
): Promise<T> {
  const began = performance.now();
  const data = await load();
  const fix = (s: Server): Server => {
    const live = liveStatus.get(s.id);
    return live && live.at >= began && live.status !== s.status ? { ...s, status: live.status } : s;
  };
  return apply(data, fix);
}

export const useDashboard = () =>
  useQuery({
    queryKey: keys.dashboard,
    queryFn: () =>
      newerLive(
        () => api<Dashboard>('/dashboard'),
        (d, fix) => ({ ...d, servers: d.servers.map(fix) }),
      ),
    refetchInterval: POLL_MS,
  });
/** Nodes are for Panel-wide roles (spectator and up); a `user` passes enabled: false. */
export const useNodes = (enabled = true) =>
  useQuery({
    queryKey: keys.nodes,
    enabled,
    queryFn: () => api<PanelNode[]>('/nodes'),
    refetchInterval: POLL_MS,
  });
// polled: the node page shows its link's health (heartbeat gaps, Docker) as it changes
export const useNode = (id: string) =>
  useQuery({
    queryKey: keys.node(id),
    queryFn: () => api<PanelNode>(`/nodes/${encodeURIComponent(id)}`),
    refetchInterval: POLL_MS,
  });
/** The commands that start a node's Agent (admins; the secret is a placeholder). */
export const useAgentCommands = (id: string, enabled: boolean) =>
  useQuery({
    queryKey: [...keys.node(id), 'agent-commands'],
    queryFn: () => api<AgentCommands>(`/nodes/${encodeURIComponent(id)}/agent-commands`),
    enabled,
  });
export const useServers = () =>
  useQuery({
    queryKey: keys.servers,
    queryFn: () =>
      newerLive(
        () => api<Server[]>('/servers'),
        (list, fix) => list.map(fix),
      ),
    refetchInterval: POLL_MS,
  });
export const useTelemetry = (id: string) =>
  useQuery({
    queryKey: keys.telemetry(id),
    queryFn: () =>
      newerLive(
        () => api<Telemetry>(`/servers/${encodeURIComponent(id)}/telemetry`),
        (t, fix) => {
          const server = fix({ ...t.server, status: t.status ?? t.server.status });
          return server.status === (t.status ?? t.server.status) ? t : { ...t, status: server.status };
        },
      ),
  });
/** A server's recent operations, newest first (refreshed on each `operation` message by the page). */
export const useServerOperations = (id: string) =>
  useQuery({
    queryKey: keys.operations(id),
    queryFn: () => api<Operation[]>(`/servers/${encodeURIComponent(id)}/operations?limit=10`),
  });
/**
 * A page of the activity log: Panel-wide (admins) or one server's; `query` is the URL query
 * (filters, offset, limit) as built by the page.
 */
export const useActivity = (serverId: string | null, query: string) =>
  useQuery({
    queryKey: keys.activity(serverId, query),
    queryFn: () =>
      api<ActivityPage>(
        serverId ? `/servers/${encodeURIComponent(serverId)}/activity?${query}` : `/activity?${query}`,
      ),
    refetchInterval: POLL_MS,
  });
export type { MetricsRange };
export const useMetrics = (id: string, range: MetricsRange, enabled: boolean) =>
  useQuery({
    queryKey: keys.metrics(id, range),
    enabled,
    queryFn: () => api<Bucket[]>(`/servers/${encodeURIComponent(id)}/metrics?range=${range}`),
    refetchInterval: 60_000,
  });
/** A server's players now (refetched by the page on each `players` frame, and every 30 s). */
export const usePlayers = (id: string) =>
  useQuery({
    queryKey: keys.players(id),
    queryFn: () => api<CurrentPlayers>(`/servers/${encodeURIComponent(id)}/players`),
    refetchInterval: 30_000,
  });
/** Players online over the last hour, per minute. */
export const usePlayersHistory = (id: string) =>
  useQuery({
    queryKey: keys.playersHistory(id),
    queryFn: () => api<PlayersBucket[]>(`/servers/${encodeURIComponent(id)}/players/history?range=1h`),
    refetchInterval: 30_000,
  });
/** Entries per page of the Files tab. */
export const FILES_PAGE_SIZE = 200;
export type FileSort = 'name' | 'size' | 'modified';
export type SortOrder = 'asc' | 'desc';
export const useFiles = (
  id: string,
  path: string,
  offset = 0,
  sort: FileSort = 'name',
  order: SortOrder = 'asc',
) =>
  useQuery({
    queryKey: keys.files(id, path, offset, sort, order),
    queryFn: () =>
      api<FileList>(
        `/servers/${encodeURIComponent(id)}/files?path=${encodeURIComponent(path)}&offset=${offset}&limit=${FILES_PAGE_SIZE}&sort=${sort}&order=${order}`,
      ),
    // another page or order of the same folder keeps the rows until it arrives; another folder does not
    placeholderData: (prev, prevQuery) => (prevQuery?.queryKey[4] === path ? prev : undefined),
  });
/** Entries under `path` whose name contains `query` (the Agent's search; disabled for an empty query). */
export const useFileSearch = (id: string, path: string, query: string) =>
  useQuery({
    queryKey: keys.fileSearch(id, path, query),
    enabled: query.length > 0,
    queryFn: () =>
      api<FileSearch>(
        `/servers/${encodeURIComponent(id)}/files/search?path=${encodeURIComponent(path)}&query=${encodeURIComponent(query)}&limit=200`,
      ),
  });
export const useFileContent = (id: string, path: string | null) =>
  useQuery({
    queryKey: keys.file(id, path ?? ''),
    enabled: path !== null,
    queryFn: () =>
      api<FileContent>(
        `/servers/${encodeURIComponent(id)}/files/content?path=${encodeURIComponent(path ?? '')}`,
      ),
  });
/** The per-server permission catalog, grouped (it does not change while the Panel runs). */
export const usePermissionCatalog = () =>
  useQuery({
    queryKey: keys.permissions,
    queryFn: () => api<PermissionGroup[]>('/permissions'),
    staleTime: Number.POSITIVE_INFINITY,
  });
export const useSubusers = (serverId: string, enabled: boolean) =>
  useQuery({
    queryKey: keys.subusers(serverId),
    enabled,
    queryFn: () => api<Subuser[]>(`/servers/${encodeURIComponent(serverId)}/users`),
  });
/** The server's backups (newest first) and its backup limit. */
export const useBackups = (serverId: string, enabled: boolean) =>
  useQuery({
    queryKey: keys.backups(serverId),
    enabled,
    queryFn: () => api<BackupList>(`/servers/${encodeURIComponent(serverId)}/backups?limit=100`),
  });
/** The server's schedules with their next slot and last run; refreshed while one runs. */
export const useSchedules = (serverId: string, enabled: boolean) =>
  useQuery({
    queryKey: keys.schedules(serverId),
    enabled,
    queryFn: () =>
      api<{ schedules: Schedule[] }>(`/servers/${encodeURIComponent(serverId)}/schedules`).then(
        (r) => r.schedules,
      ),
    refetchInterval: (q) => (q.state.data?.some((x) => x.running) ? 1000 : POLL_MS),
  });
/** One schedule's runs, newest first (polled while one goes on). */
export const useScheduleRuns = (serverId: string, scheduleId: string | null) =>
  useQuery({
    queryKey: keys.scheduleRuns(serverId, scheduleId ?? ''),
    enabled: scheduleId !== null,
    queryFn: () =>
      api<{ runs: ScheduleRun[] }>(
        `/servers/${encodeURIComponent(serverId)}/schedules/${encodeURIComponent(scheduleId ?? '')}/runs`,
      ).then((r) => r.runs),
    refetchInterval: (q) => (q.state.data?.some((r) => r.state === 'running') ? 1000 : POLL_MS),
  });
export const useUsers = () => useQuery({ queryKey: keys.users, queryFn: () => api<User[]>('/users') });

export const useTemplates = () =>
  useQuery({ queryKey: keys.templates, queryFn: () => api<TemplateSummary[]>('/templates') });
export const useTemplate = (id: string | null) =>
  useQuery({
    queryKey: keys.template(id ?? ''),
    enabled: id !== null && id !== '',
    queryFn: () => api<TemplateDetail>(`/templates/${encodeURIComponent(id ?? '')}`),
  });
export const useAllocations = (nodeId: string | null) =>
  useQuery({
    queryKey: keys.allocations(nodeId ?? ''),
    enabled: nodeId !== null && nodeId !== '',
    queryFn: () => api<Allocation[]>(`/nodes/${encodeURIComponent(nodeId ?? '')}/allocations`),
  });
export const useApiKeys = () =>
  useQuery({ queryKey: keys.apiKeys, queryFn: () => api<ApiKeyInfo[]>('/api-keys') });

export const useTwoFactor = () =>
  useQuery({ queryKey: keys.twoFactor, queryFn: () => api<TwoFactorStatus>('/auth/2fa') });
export const useSessions = () =>
  useQuery({ queryKey: keys.sessions, queryFn: () => api<SessionInfo[]>('/auth/sessions') });

export function useCreateApiKey() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (input: CreateApiKeyInput) =>
      api<CreatedApiKey>('/api-keys', { method: 'POST', body: input }),
    onSuccess: () => qc.invalidateQueries({ queryKey: keys.apiKeys }),
  });
}

export type { CreateServerInput };

export function useCreateServer() {
  const qc = useQueryClient();
  return useMutation({
    // the create is an operation (202 { operationId, server }); the form waits for its end so that
    // a failure (the Agent could not create it: nothing stored) shows on the form, as before
    mutationFn: (input: CreateServerInput) =>
      api<Server>('/servers?wait=true', { method: 'POST', body: input }),
    onSuccess: (server) => {
      void qc.invalidateQueries({ queryKey: keys.servers });
      void qc.invalidateQueries({ queryKey: keys.allocations(server.nodeId) });
    },
    // a PORT_CONFLICT means the list of free allocations was stale
    onError: (_e, input) =>
      qc.invalidateQueries({ queryKey: input.nodeId ? keys.allocations(input.nodeId) : keys.nodes }),
  });
}

export function useCreateNode() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (name: string) => api<CreatedNode>('/nodes', { method: 'POST', body: { name } }),
    onSuccess: () => qc.invalidateQueries({ queryKey: keys.nodes }),
  });
}

/**
 * Patches cached data in place. A live patch must not make an old list look fresh: it keeps the
 * data's age and its "invalidated" mark, so a page still refetches what it has not seen yet
 * (e.g. a server created since the list was loaded).
 */
function patchCached<T>(qc: QueryClient, key: readonly unknown[], fn: (old: T) => T): void {
  const state = qc.getQueryState<T>(key);
  if (!state || state.data === undefined) return;
  qc.setQueryData<T>(key, (old) => (old === undefined ? old : fn(old)), { updatedAt: state.dataUpdatedAt });
  if (state.isInvalidated) void qc.invalidateQueries({ queryKey: key, exact: true, refetchType: 'none' });
}

/** Applies live messages to cached queries so every page updates without refetching. */
export function applyLiveMessage(qc: QueryClient, msg: ClientMessage): void {
  const patchServer = (id: string, patch: Partial<Server>) => {
    const apply = (s: Server) => (s.id === id ? { ...s, ...patch } : s);
    patchCached<Server[]>(qc, keys.servers, (old) => old.map(apply));
    patchCached<Dashboard>(qc, keys.dashboard, (old) => ({ ...old, servers: old.servers.map(apply) }));
    patchCached<Telemetry>(qc, keys.telemetry(id), (old) => ({
      ...old,
      server: { ...old.server, ...patch },
      status: patch.status ?? old.status,
      stats: patch.stats ?? old.stats,
    }));
  };
  /** the servers of a node that went away or came back: their status is the last one it reported */
  const patchNodeServers = (nodeId: string, nodeOnline: boolean) => {
    const apply = (s: Server) => (s.nodeId === nodeId ? { ...s, nodeOnline } : s);
    patchCached<Server[]>(qc, keys.servers, (old) => old.map(apply));
    patchCached<Dashboard>(qc, keys.dashboard, (old) => ({ ...old, servers: old.servers.map(apply) }));
    for (const q of qc.getQueryCache().findAll({ queryKey: keys.servers })) {
      const [, id, kind] = q.queryKey;
      if (kind !== 'telemetry' || typeof id !== 'string') continue;
      patchCached<Telemetry>(qc, keys.telemetry(id), (old) => ({ ...old, server: apply(old.server) }));
    }
  };
  if (msg.type === 'subscribed' || msg.type === 'status')
    liveStatus.set(msg.serverId, { status: msg.status, at: performance.now() });
  switch (msg.type) {
    case 'subscribed':
      patchServer(msg.serverId, { status: msg.status, ...(msg.stats ? { stats: msg.stats } : {}) });
      break;
    case 'status':
      patchServer(msg.serverId, { status: msg.status });
      // totals (running count) come from the Panel
      void qc.invalidateQueries({ queryKey: keys.dashboard });
      break;
    case 'stats':
      patchServer(msg.serverId, { stats: msg.stats });
      break;
    case 'node_status': {
      const apply = (n: PanelNode) => (n.id === msg.nodeId ? { ...n, online: msg.online } : n);
      patchCached<PanelNode[]>(qc, keys.nodes, (old) => old.map(apply));
      patchCached<Dashboard>(qc, keys.dashboard, (old) => ({ ...old, nodes: old.nodes.map(apply) }));
      patchNodeServers(msg.nodeId, msg.online);
      // system info and load arrive with the connection: fetch them
      void qc.invalidateQueries({ queryKey: keys.dashboard });
      void qc.invalidateQueries({ queryKey: keys.nodes });
      break;
    }
    default:
      break;
  }
}
