/**
 * Servers: what should exist (DB) and what runs (Agent events). Power and commands go to the
 * node's Agent; status, stats and console come back as events and are relayed to subscribers.
 */
import {
  CodedError,
  DonePattern,
  type EggConfig,
  Environment,
  type EventMessage,
  GetFileData,
  Limits,
  ListFilesData,
  Ports,
  type PowerAction,
  ResourceSnapshot,
  ServerStatus,
  type UpdateStage,
} from '@cap/protocol';
import type { Logger } from 'pino';
import { z } from 'zod';
import { nowIso } from '../../db/index.ts';
import type { ServersTable } from '../../db/schema.ts';
import { shortId } from '../../lib/crypto.ts';
import type { AgentHub } from '../../relay/agent-hub.ts';
import type { LiveState } from '../../relay/live-state.ts';
import type { MetricsService } from '../metrics/service.ts';
import type { NodesRepo } from '../nodes/repo.ts';
import type { ServersRepo } from './repo.ts';

export const DesiredState = z.enum(['running', 'offline']);
export const UpdateResult = z.object({
  operationId: z.string(),
  ok: z.boolean(),
  stage: z.string(),
  message: z.string().optional(),
  code: z.string().optional(),
  at: z.string(),
});
export const Server = z.object({
  id: z.string(),
  name: z.string(),
  nodeId: z.string(),
  status: ServerStatus,
  desiredState: DesiredState,
  image: z.string(),
  startup: z.string(),
  environment: Environment,
  ports: Ports,
  limits: Limits,
  done: DonePattern.nullable(),
  stop: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
  stats: ResourceSnapshot.nullable(),
  lastUpdate: UpdateResult.nullable(),
});
export type Server = z.infer<typeof Server>;

export const CreateServer = z.object({
  name: z.string().min(1).max(191),
  nodeId: z.string().min(1).max(64),
  image: z.string().min(1).max(512),
  startup: z
    .string()
    .max(16 * 1024)
    .default(''),
  environment: Environment.default({}),
  ports: Ports.default({}),
  limits: Limits.default({}),
  done: DonePattern.optional(),
  stop: z.string().max(1024).optional(),
});
export type CreateServer = z.infer<typeof CreateServer>;
export const PatchServer = CreateServer.omit({ nodeId: true })
  .partial()
  .extend({
    done: DonePattern.nullable().optional(),
    stop: z.string().max(1024).nullable().optional(),
  });
export type PatchServer = z.infer<typeof PatchServer>;
export const ConfigUpdate = z.object({ environment: Environment.optional(), limits: Limits.optional() });
export type ConfigUpdate = z.infer<typeof ConfigUpdate>;

const powerActions = {
  start: 'start_server',
  stop: 'stop_server',
  restart: 'restart_server',
  kill: 'kill_server',
} as const;

function parseJson<T>(s: string | null, fallback: T): T {
  if (s === null) return fallback;
  try {
    return JSON.parse(s) as T;
  } catch {
    return fallback;
  }
}

export class ServersService {
  readonly #repo: ServersRepo;
  readonly #nodes: NodesRepo;
  readonly #hub: () => AgentHub;
  readonly #live: LiveState;
  readonly #metrics: MetricsService;
  readonly #log: Logger;
  readonly #updateTimeoutMs: number;
  /** serverId → nodeId, so an Agent can only report on its own servers */
  readonly #nodeOf = new Map<string, string>();

  constructor(deps: {
    repo: ServersRepo;
    nodes: NodesRepo;
    hub: () => AgentHub;
    live: LiveState;
    metrics: MetricsService;
    log: Logger;
    updateTimeoutMs: number;
  }) {
    this.#repo = deps.repo;
    this.#nodes = deps.nodes;
    this.#hub = deps.hub;
    this.#live = deps.live;
    this.#metrics = deps.metrics;
    this.#log = deps.log;
    this.#updateTimeoutMs = deps.updateTimeoutMs;
  }

  async init(): Promise<void> {
    for (const s of await this.#repo.list()) {
      this.#nodeOf.set(s.id, s.node_id);
      this.#live.setStatus(s.id, ServerStatus.parse(s.status));
    }
  }

  #toServer(s: ServersTable): Server {
    return {
      id: s.id,
      name: s.name,
      nodeId: s.node_id,
      status: this.#live.status(s.id) ?? ServerStatus.parse(s.status),
      desiredState: DesiredState.parse(s.desired_state),
      image: s.image,
      startup: s.startup,
      environment: parseJson(s.environment, {}),
      ports: parseJson(s.ports, {}),
      limits: parseJson(s.limits, {}),
      done: parseJson(s.done, null),
      stop: s.stop,
      createdAt: s.created_at,
      updatedAt: s.updated_at,
      stats: this.#live.stats(s.id),
      lastUpdate: parseJson(s.last_update, null),
    };
  }

  #egg(s: Server): EggConfig {
    return {
      name: s.name,
      image: s.image,
      startup: s.startup,
      environment: s.environment,
      ports: s.ports,
      limits: s.limits,
      ...(s.done === null ? {} : { done: s.done }),
      ...(s.stop === null ? {} : { stop: s.stop }),
    };
  }

  async #row(id: string): Promise<ServersTable> {
    const s = await this.#repo.findById(id);
    if (!s) throw new CodedError('SERVER_NOT_FOUND', 'no such server');
    return s;
  }

  async list(): Promise<Server[]> {
    return (await this.#repo.list()).map((s) => this.#toServer(s));
  }

  async get(id: string): Promise<Server> {
    return this.#toServer(await this.#row(id));
  }

  /** Creating needs the node online: nothing is stored when the Agent cannot create it. */
  async create(input: CreateServer): Promise<Server> {
    const node = await this.#nodes.findById(input.nodeId);
    if (!node) throw new CodedError('NOT_FOUND', 'no such node', { location: 'nodeId' });
    if (!this.#hub().isOnline(node.id)) throw new CodedError('AGENT_OFFLINE', 'the node is offline');
    const now = nowIso();
    const row: ServersTable = {
      id: shortId('s'),
      name: input.name,
      node_id: node.id,
      image: input.image,
      startup: input.startup,
      environment: JSON.stringify(input.environment),
      ports: JSON.stringify(input.ports),
      limits: JSON.stringify(input.limits),
      done: input.done === undefined ? null : JSON.stringify(input.done),
      stop: input.stop ?? null,
      status: 'offline',
      desired_state: 'offline',
      last_update: null,
      created_at: now,
      updated_at: now,
    };
    await this.#repo.insert(row);
    this.#nodeOf.set(row.id, node.id);
    this.#live.setStatus(row.id, 'offline');
    const server = this.#toServer(row);
    try {
      await this.#hub().request(node.id, 'create_server', { serverId: row.id, eggConfig: this.#egg(server) });
    } catch (e) {
      await this.#repo.delete(row.id);
      this.#nodeOf.delete(row.id);
      this.#live.forget(row.id);
      throw e;
    }
    this.#log.info({ serverId: row.id, nodeId: node.id, action: 'create_server' }, 'server created');
    return this.get(row.id);
  }

  async patch(id: string, input: PatchServer): Promise<Server> {
    const row = await this.#row(id);
    const set: Partial<ServersTable> = { updated_at: nowIso() };
    if (input.name !== undefined) set.name = input.name;
    if (input.image !== undefined) set.image = input.image;
    if (input.startup !== undefined) set.startup = input.startup;
    if (input.environment !== undefined) set.environment = JSON.stringify(input.environment);
    if (input.ports !== undefined) set.ports = JSON.stringify(input.ports);
    if (input.limits !== undefined) set.limits = JSON.stringify(input.limits);
    if (input.done !== undefined) set.done = input.done === null ? null : JSON.stringify(input.done);
    if (input.stop !== undefined) set.stop = input.stop;
    const runtime = ['image', 'startup', 'environment', 'ports', 'limits', 'done', 'stop'].some(
      (k) => input[k as keyof PatchServer] !== undefined,
    );
    if (runtime) {
      const next = this.#toServer({ ...row, ...set });
      const { name: _name, ...egg } = this.#egg(next);
      await this.#hub().request(row.node_id, 'update_server', egg, {
        serverId: id,
        timeoutMs: this.#updateTimeoutMs,
      });
    }
    await this.#repo.update(id, set);
    return this.get(id);
  }

  async delete(id: string, force = false): Promise<void> {
    const row = await this.#row(id);
    try {
      await this.#hub().request(
        row.node_id,
        'delete_server',
        {},
        { serverId: id, timeoutMs: this.#updateTimeoutMs },
      );
    } catch (e) {
      const gone =
        e instanceof CodedError && (e.code === 'SERVER_NOT_FOUND' || e.code === 'CONTAINER_NOT_FOUND');
      if (!gone && !force) throw e;
    }
    await this.#repo.delete(id);
    this.#nodeOf.delete(id);
    this.#metrics.forget(id);
    this.#live.publish(id, { type: 'unsubscribed', serverId: id });
    this.#live.forget(id);
    this.#log.info({ serverId: id, action: 'delete_server' }, 'server deleted');
  }

  /** Sends the power action; its outcome arrives as status events (202 semantics). */
  async power(id: string, action: PowerAction): Promise<void> {
    const row = await this.#row(id);
    const hub = this.#hub();
    if (!hub.isOnline(row.node_id)) throw new CodedError('AGENT_OFFLINE', 'the node is offline');
    const desired = action === 'start' || action === 'restart' ? 'running' : 'offline';
    await this.#repo.update(id, { desired_state: desired, updated_at: nowIso() });
    hub.request(row.node_id, powerActions[action], {}, { serverId: id }).catch((e: unknown) => {
      const code = e instanceof CodedError ? e.code : 'INTERNAL_ERROR';
      this.#log.warn({ serverId: id, action, code }, 'power action failed');
      this.#live.publish(id, {
        type: 'error',
        code,
        message: (e as Error).message,
        serverId: id,
        requestType: 'power',
      });
    });
  }

  async command(id: string, cmd: string): Promise<void> {
    const row = await this.#row(id);
    await this.#hub().request(row.node_id, 'send_command', { command: cmd }, { serverId: id });
  }

  /**
   * New environment/limits → stored → `update_server` (the Agent recreates and waits for ready);
   * progress is relayed as `update_progress`, the final result stored on the server.
   */
  async updateConfig(
    id: string,
    input: ConfigUpdate,
    operationId: string,
  ): Promise<{ done: Promise<{ ok: boolean; status: Server['status'] }> }> {
    const row = await this.#row(id);
    if (!this.#hub().isOnline(row.node_id)) throw new CodedError('AGENT_OFFLINE', 'the node is offline');
    const set: Partial<ServersTable> = { updated_at: nowIso() };
    if (input.environment !== undefined) set.environment = JSON.stringify(input.environment);
    if (input.limits !== undefined) set.limits = JSON.stringify(input.limits);
    await this.#repo.update(id, set);
    const payload = {
      ...(input.environment === undefined ? {} : { environment: input.environment }),
      ...(input.limits === undefined ? {} : { limits: input.limits }),
    };
    const record = async (ok: boolean, stage: string, message?: string, code?: string) => {
      const result = {
        operationId,
        ok,
        stage,
        at: nowIso(),
        ...(message ? { message } : {}),
        ...(code ? { code } : {}),
      };
      await this.#repo.update(id, { last_update: JSON.stringify(result) }).catch(() => undefined);
    };
    const done = this.#hub()
      .request(row.node_id, 'update_server', payload, {
        serverId: id,
        id: operationId,
        timeoutMs: this.#updateTimeoutMs,
      })
      .then(async () => {
        await record(true, 'done');
        return { ok: true, status: this.#live.status(id) ?? 'offline' };
      })
      .catch(async (e: unknown) => {
        const code = e instanceof CodedError ? e.code : 'INTERNAL_ERROR';
        await record(false, 'failed', (e as Error).message, code);
        this.#live.publish(id, { type: 'update_progress', serverId: id, stage: 'failed', message: code });
        throw e;
      });
    return { done };
  }

  async telemetry(id: string, metrics: MetricsService) {
    const server = await this.get(id);
    return {
      server,
      status: server.status,
      stats: server.stats,
      console: this.#live.history(id),
      metrics: await metrics.range(id, '1h'),
    };
  }

  async files(id: string, path: string): Promise<z.infer<typeof ListFilesData>> {
    const row = await this.#row(id);
    const data = await this.#hub().request(row.node_id, 'list_files', { path }, { serverId: id });
    return ListFilesData.parse(data);
  }

  async fileContent(id: string, path: string): Promise<z.infer<typeof GetFileData>> {
    const row = await this.#row(id);
    const data = await this.#hub().request(row.node_id, 'get_file', { path }, { serverId: id });
    return GetFileData.parse(data);
  }

  // --- Agent → Panel ----------------------------------------------------------------------

  /** True when the server exists and belongs to the reporting node. */
  owns(nodeId: string, serverId: string): boolean {
    return this.#nodeOf.get(serverId) === nodeId;
  }

  async #setStatus(serverId: string, status: ServerStatus, previous?: ServerStatus): Promise<void> {
    const prev = this.#live.setStatus(serverId, status);
    if (prev === status) return;
    this.#live.publish(serverId, {
      type: 'status',
      serverId,
      status,
      ...((previous ?? prev) ? { previousStatus: previous ?? prev } : {}),
    });
    await this.#repo.update(serverId, { status });
  }

  /** On (re)connect the Agent lists what runs; servers it does not know are offline. */
  async reconcile(nodeId: string, reported: { serverId: string; status: ServerStatus }[]): Promise<void> {
    const byId = new Map(reported.map((r) => [r.serverId, r.status]));
    for (const s of await this.#repo.listByNode(nodeId)) {
      await this.#setStatus(s.id, byId.get(s.id) ?? 'offline');
    }
    for (const r of reported) {
      if (!this.owns(nodeId, r.serverId)) {
        this.#log.warn({ nodeId, serverId: r.serverId }, 'agent reports a server the Panel does not know');
      }
    }
  }

  async handleEvent(nodeId: string, msg: EventMessage): Promise<void> {
    if (msg.event === 'agent_hello') {
      const d = msg.data as EventMessage<'agent_hello'>['data'];
      await this.reconcile(nodeId, d.servers);
      return;
    }
    const serverId = (msg.data as { serverId: string }).serverId;
    if (!this.owns(nodeId, serverId)) {
      this.#log.warn({ nodeId, serverId, event: msg.event }, 'event for a server not on this node; ignored');
      return;
    }
    switch (msg.event) {
      case 'server_status_changed': {
        const d = msg.data as EventMessage<'server_status_changed'>['data'];
        await this.#setStatus(serverId, d.currentStatus, d.previousStatus);
        break;
      }
      case 'server_log': {
        const d = msg.data as EventMessage<'server_log'>['data'];
        this.#live.appendConsole(
          serverId,
          d.message.split(/\r?\n/).filter((l, i, a) => l || i < a.length - 1),
        );
        break;
      }
      case 'server_log_dropped': {
        const d = msg.data as EventMessage<'server_log_dropped'>['data'];
        this.#live.publish(serverId, { type: 'console_dropped', serverId, count: d.count, reason: d.reason });
        break;
      }
      case 'resource_update': {
        const d = msg.data as EventMessage<'resource_update'>['data'];
        this.#live.setStats(serverId, d);
        this.#metrics.record(serverId, d);
        break;
      }
      case 'server_crashed': {
        const d = msg.data as EventMessage<'server_crashed'>['data'];
        this.#live.publish(serverId, {
          type: 'crashed',
          serverId,
          exitCode: d.exitCode,
          restarting: d.restarting,
        });
        break;
      }
      case 'server_update_progress': {
        const d = msg.data as EventMessage<'server_update_progress'>['data'];
        this.#live.publish(serverId, {
          type: 'update_progress',
          serverId,
          stage: d.stage as UpdateStage,
          ...(d.message ? { message: d.message } : {}),
        });
        break;
      }
      case 'players_update': {
        const d = msg.data as EventMessage<'players_update'>['data'];
        this.#live.setPlayers(serverId, { online: d.online, max: d.max, list: d.list });
        break;
      }
      case 'install_output': {
        const d = msg.data as EventMessage<'install_output'>['data'];
        this.#live.publish(serverId, { type: 'install_output', serverId, lines: d.message.split(/\r?\n/) });
        break;
      }
      case 'install_completed':
        break;
    }
  }
}
