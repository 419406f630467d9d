/**
 * Servers: what should exist (DB) and what runs (Agent events). Power and commands go to the
 * node's Agent; status, stats and console come back as events and are relayed to subscribers.
 */
import {
  CodedError,
  DonePattern,
  type EggConfig,
  Environment,
  ErrorCode,
  type EventMessage,
  GetFileData,
  imageRefProblem,
  LIST_FILES_DEFAULT_LIMIT,
  Limits,
  ListFilesData,
  newMessageId,
  PortNumber,
  Ports,
  type PowerAction,
  ResourceSnapshot,
  ServerStatus,
  sizeToBytes,
  type UpdateStage,
} from '@cap/protocol';
import {
  applyVariableChanges,
  displayStartup,
  type FeatureName,
  featureOfLine,
  fillStartup,
  knownFeatures,
  systemEnvironment,
  type Template,
  templateToEggConfig,
  visibleVariables,
} from '@cap/protocol/templates/index.ts';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { EventBus } from '../../bus/index.ts';
import { nowIso } from '../../db/index.ts';
import type { ServersTable } from '../../db/schema.ts';
import { shortId } from '../../lib/crypto.ts';
import { redact, secretValues } from '../../lib/redact.ts';
import type { AgentHub } from '../../relay/agent-hub.ts';
import type { LiveState } from '../../relay/live-state.ts';
import type { Allocation, AllocationsService } from '../allocations/service.ts';
import type { MetricsService } from '../metrics/service.ts';
import type { NodesRepo } from '../nodes/repo.ts';
import { type DefaultLimits, effectiveDefaults, withDefaultLimits } from '../nodes/service.ts';
import { type Operation, type OperationKind, type OperationsRepo, toOperation } from '../operations/repo.ts';
import type { TemplatesService } from '../templates/service.ts';
import type { ServersRepo } from './repo.ts';

/** A raw image must be a Docker image reference (a template's were checked at its import). */
function checkImage(image: string): void {
  const problem = imageRefProblem(image);
  if (problem) throw new CodedError('VALIDATION_FAILED', `image reference ${problem}`, { location: 'image' });
}

export const DesiredState = z.enum(['running', 'offline']);
export const UpdateResult = z.object({
  operationId: z.string(),
  ok: z.boolean(),
  stage: z.string(),
  message: z.string().optional(),
  code: z.string().optional(),
  at: z.string(),
});
export const ServerVariable = z.object({
  name: z.string(),
  description: z.string(),
  envVariable: z.string(),
  value: z.string(),
  defaultValue: z.string(),
  rules: z.array(z.string()),
  userViewable: z.boolean(),
  userEditable: z.boolean(),
  fieldType: z.string(),
});
export const Server = z.object({
  id: z.string(),
  name: z.string(),
  nodeId: z.string(),
  /** the last status the node reported; with `nodeOnline: false` it is stale */
  status: ServerStatus,
  /** whether the server's node is connected now (its status is live only while it is) */
  nodeOnline: z.boolean(),
  desiredState: DesiredState,
  image: z.string(),
  startup: z.string(),
  /** the startup line filled in; values a viewer may not see show as [hidden] */
  startupDisplay: z.string(),
  /** for a template server: its variables' values (hidden ones left out for spectators) */
  environment: Environment,
  ports: Ports,
  limits: Limits,
  done: DonePattern.nullable(),
  stop: z.string().nullable(),
  stopTimeout: z.number().int().nullable(),
  templateId: z.string().nullable(),
  /** the template's variables with their values; hidden ones left out for spectators */
  variables: z.array(ServerVariable).nullable(),
  /** the primary allocation (SERVER_IP/SERVER_PORT) */
  allocation: z.object({ id: z.string(), ip: z.string(), port: z.number().int() }).nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
  stats: ResourceSnapshot.nullable(),
  lastUpdate: UpdateResult.nullable(),
});
export type Server = z.infer<typeof Server>;

const ServerName = z.string().min(1).max(191);
const Startup = z.string().max(16 * 1024);
const StopCommand = z.string().max(1024);
const StopTimeout = z.number().int().min(0).max(3600);

export const CreateServer = z.object({
  name: ServerName,
  nodeId: z.string().min(1).max(64),
  /** make it from a template: image, startup, done, stop, config files and install come from it */
  templateId: z.string().min(1).max(64).optional(),
  /** a raw image, or for a template one of its images (label or image; default its first) */
  image: z.string().min(1).max(512).optional(),
  startup: Startup.default(''),
  /** raw: the container environment; template: values for its variables (defaults fill the rest) */
  environment: Environment.default({}),
  ports: Ports.default({}),
  limits: Limits.default({}),
  done: DonePattern.optional(),
  stop: StopCommand.optional(),
  /** seconds from the stop to the kill (default: the Agent's, 30) */
  stopTimeout: StopTimeout.optional(),
  /** the primary port: an allocation of the node, or a port (claimed on the node) */
  allocationId: z.string().min(1).max(64).optional(),
  port: PortNumber.optional(),
});
export type CreateServer = z.infer<typeof CreateServer>;
/**
 * A patch changes only what it names: no defaults here (zod's .partial() on a schema with
 * .default() still fills them in, which reset startup, limits, environment and ports).
 */
export const PatchServer = z.object({
  name: ServerName.optional(),
  image: z.string().min(1).max(512).optional(),
  startup: Startup.optional(),
  environment: Environment.optional(),
  ports: Ports.optional(),
  limits: Limits.optional(),
  done: DonePattern.nullable().optional(),
  stop: StopCommand.nullable().optional(),
  stopTimeout: StopTimeout.nullable().optional(),
});
export type PatchServer = z.infer<typeof PatchServer>;
export const ConfigUpdate = z.object({ environment: Environment.optional(), limits: Limits.optional() });
export type ConfigUpdate = z.infer<typeof ConfigUpdate>;

/** Who looks: only admins (and the owner) see values of variables that are not user_viewable. */
export interface Viewer {
  admin: boolean;
}
export const ADMIN_VIEW: Viewer = { admin: true };

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

function memoryMiB(limits: Limits): number {
  return limits.memory === undefined ? 0 : Math.round(sizeToBytes(limits.memory) / 1024 ** 2);
}

/** SERVER_MEMORY / SERVER_IP / SERVER_PORT inputs, the same for the display and the Agent. */
function systemOf(limits: Limits, a: Allocation | undefined) {
  return { memoryMiB: memoryMiB(limits), ip: a?.ip ?? '0.0.0.0', ...(a ? { port: a.port } : {}) };
}

/** The allocation as a port binding: key without protocol = tcp and udp, as Wings publishes. */
function allocationPorts(ports: Ports, a: Allocation | undefined): Ports {
  if (!a) return ports;
  return { ...ports, [String(a.port)]: a.ip === '0.0.0.0' ? a.port : { hostPort: a.port, hostIp: a.ip } };
}

const FEATURES_CACHE_MS = 60_000;
/** An operation still open this long (the Agent never reported its end) is closed as TIMEOUT. */
export const OPERATION_TIMEOUT_MS = 2 * 60 * 60 * 1000;
/** After an Agent's hello, open operations it does not list get this long for their end to arrive. */
const RECONCILE_GRACE_MS = 15_000;
type OperationResult = { success: boolean; code?: string; message?: string };

type Loaded = { row: ServersTable; template: Template | undefined; allocation: Allocation | undefined };

export class ServersService {
  readonly #repo: ServersRepo;
  readonly #nodes: NodesRepo;
  readonly #templates: TemplatesService;
  readonly #allocations: AllocationsService;
  readonly #hub: () => AgentHub;
  readonly #live: LiveState;
  readonly #metrics: MetricsService;
  readonly #bus: EventBus;
  readonly #log: Logger;
  readonly #updateTimeoutMs: number;
  /** the Panel-wide defaults, for nodes without their own */
  readonly #defaultLimits: DefaultLimits;
  /** serverId → nodeId, so an Agent can only report on its own servers */
  readonly #nodeOf = new Map<string, string>();
  /** nodeId → the tail of its event chain */
  readonly #eventQueues = new Map<string, Promise<void>>();
  /** serverId → its template's features (loaded on a console line, kept a minute: a re-import may change them) */
  readonly #featuresOf = new Map<string, { features: FeatureName[]; at: number }>();
  /** serverId → the feature its console last called for, until it runs or the user acted */
  readonly #pendingFeature = new Map<string, { feature: FeatureName; line: string }>();
  readonly #ops: OperationsRepo;
  readonly #operationTimeoutMs: number;
  /** operationId → who waits for its end in this process (PUT /config?wait=true) */
  readonly #opWaiters = new Map<string, (r: OperationResult) => void>();
  #sweepTimer: NodeJS.Timeout | undefined;

  constructor(deps: {
    repo: ServersRepo;
    nodes: NodesRepo;
    templates: TemplatesService;
    allocations: AllocationsService;
    hub: () => AgentHub;
    live: LiveState;
    metrics: MetricsService;
    /** where what the Agents report is published once (metrics and the activity log subscribe) */
    bus: EventBus;
    log: Logger;
    updateTimeoutMs: number;
    defaultLimits?: DefaultLimits;
    operations: OperationsRepo;
    operationTimeoutMs?: number;
  }) {
    this.#ops = deps.operations;
    this.#operationTimeoutMs = deps.operationTimeoutMs ?? OPERATION_TIMEOUT_MS;
    this.#defaultLimits = deps.defaultLimits ?? {};
    this.#repo = deps.repo;
    this.#nodes = deps.nodes;
    this.#templates = deps.templates;
    this.#allocations = deps.allocations;
    this.#hub = deps.hub;
    this.#live = deps.live;
    this.#metrics = deps.metrics;
    this.#bus = deps.bus;
    this.#log = deps.log;
    this.#updateTimeoutMs = deps.updateTimeoutMs;
  }

  async init(): Promise<void> {
    const templates = new Map<string, Template>();
    for (const s of await this.#repo.list()) {
      this.#nodeOf.set(s.id, s.node_id);
      this.#live.setStatus(s.id, ServerStatus.parse(s.status));
      const template = await this.#template(s, templates).catch(() => undefined);
      this.#refreshSecrets({ row: s, template, allocation: undefined });
    }
    // operations left open by an earlier Panel stay open until their Agent reports (agent_hello)
    this.#sweepTimer = setInterval(
      () => void this.sweepOperations().catch((e) => this.#log.warn({ err: e }, 'operation sweep failed')),
      Math.min(60_000, Math.max(1000, Math.floor(this.#operationTimeoutMs / 4))),
    );
    this.#sweepTimer.unref();
  }

  close(): void {
    clearInterval(this.#sweepTimer);
  }

  // --- operations ---------------------------------------------------------------------------

  async operation(id: string): Promise<Operation> {
    const row = await this.#ops.findById(id);
    if (!row) throw new CodedError('NOT_FOUND', 'no such operation');
    return toOperation(row);
  }

  /** A server's recent operations, newest first. */
  async operations(serverId: string, limit = 20): Promise<Operation[]> {
    await this.#row(serverId);
    return (await this.#ops.listByServer(serverId, limit)).map(toOperation);
  }

  #publishOperation(
    serverId: string,
    op: { id: string; kind: string; stage: string },
    result?: OperationResult,
    message?: string,
    extra: { actor?: string | null; nodeId?: string } = {},
  ): void {
    const text = result?.message ?? message;
    this.#bus.publish({
      kind: 'operation',
      serverId,
      operationId: op.id,
      operationKind: op.kind,
      stage: op.stage,
      ...(result ? { success: result.success } : {}),
      ...(result?.code ? { errorCode: result.code } : {}),
      ...(text ? { message: text } : {}),
      ...extra,
    });
    this.#live.publish(serverId, {
      type: 'operation',
      serverId,
      operationId: op.id,
      kind: op.kind,
      stage: op.stage,
      ...(result ? { success: result.success } : {}),
      ...(result?.code ? { errorCode: result.code as never } : {}),
      ...(text ? { message: text } : {}),
    });
  }

  /** Closes an open operation once; tells subscribers and whoever waits for it. */
  async #finishOperation(id: string, result: OperationResult): Promise<void> {
    if (!(await this.#ops.finish(id, result, nowIso()))) return;
    const row = await this.#ops.findById(id);
    if (row)
      this.#publishOperation(row.server_id, row, result, undefined, {
        actor: row.actor_user_id,
        nodeId: row.node_id,
      });
    this.#opWaiters.get(id)?.(result);
    this.#opWaiters.delete(id);
    this.#log.info(
      {
        serverId: row?.server_id,
        operationId: id,
        kind: row?.kind,
        success: result.success,
        code: result.code,
      },
      'operation finished',
    );
  }

  /**
   * Records the operation, sends the command asking for the acknowledgement, and returns its id
   * once the Agent accepted it. A refusal (SERVER_BUSY, INVALID_STATE…) closes the row and throws.
   */
  async #startOperation<
    A extends
      | 'start_server'
      | 'stop_server'
      | 'restart_server'
      | 'kill_server'
      | 'reinstall_server'
      | 'update_server',
  >(
    row: ServersTable,
    kind: OperationKind,
    action: A,
    payload: Parameters<AgentHub['request']>[2] & Record<string, unknown>,
    actor: string | null,
  ): Promise<string> {
    const id = newMessageId('op');
    const at = nowIso();
    await this.#ops.insert({
      id,
      kind,
      server_id: row.id,
      node_id: row.node_id,
      actor_user_id: actor,
      stage: 'requested',
      created_at: at,
      updated_at: at,
      finished_at: null,
      success: null,
      error_code: null,
      error_message: null,
    });
    try {
      await this.#hub().request(row.node_id, action, payload as never, { serverId: row.id, operationId: id });
    } catch (e) {
      const code = e instanceof CodedError ? e.code : 'INTERNAL_ERROR';
      await this.#finishOperation(id, { success: false, code, message: (e as Error).message });
      throw e;
    }
    if (await this.#ops.setStage(id, 'accepted', nowIso(), 'requested'))
      this.#publishOperation(row.id, { id, kind, stage: 'accepted' });
    this.#log.info({ serverId: row.id, operationId: id, kind, action }, 'operation accepted');
    return id;
  }

  /** Open operations older than the timeout are closed as TIMEOUT. */
  async sweepOperations(now = Date.now()): Promise<void> {
    for (const op of await this.#ops.listOpen()) {
      if (now - Date.parse(op.created_at) < this.#operationTimeoutMs) continue;
      await this.#finishOperation(op.id, {
        success: false,
        code: 'TIMEOUT',
        message: `the Agent did not report the end within ${Math.round(this.#operationTimeoutMs / 1000)} s`,
      });
    }
  }

  /**
   * On an Agent's hello: its open operations that it does not list as running get a grace
   * period for their end (held in its outbox, sent right after the hello); then OPERATION_LOST.
   */
  async #reconcileOperations(nodeId: string, running: ReadonlySet<string>, helloAt: string): Promise<void> {
    const open = (await this.#ops.listOpen(nodeId)).filter(
      (o) => !running.has(o.id) && o.updated_at <= helloAt,
    );
    if (open.length === 0) return;
    const timer = setTimeout(() => {
      void (async () => {
        for (const o of open) {
          const now = await this.#ops.findById(o.id);
          if (!now || now.finished_at !== null || now.updated_at > helloAt) continue;
          await this.#finishOperation(o.id, {
            success: false,
            code: 'OPERATION_LOST',
            message: 'the Agent reconnected without this operation and never reported its end',
          });
        }
      })().catch((e) => this.#log.warn({ err: e, nodeId }, 'operation reconcile failed'));
    }, RECONCILE_GRACE_MS);
    timer.unref();
  }

  async #template(row: ServersTable, cache: Map<string, Template>): Promise<Template | undefined> {
    if (!row.template_id) return undefined;
    let template = cache.get(row.template_id);
    if (!template) {
      template = await this.#templates.template(row.template_id);
      cache.set(row.template_id, template);
    }
    return template;
  }

  async #load(row: ServersTable): Promise<Loaded> {
    const template = await this.#template(row, new Map());
    const allocation = row.allocation_id ? await this.#allocations.get(row.allocation_id) : undefined;
    return { row, template, allocation };
  }

  #toServer(loaded: Loaded, viewer: Viewer): Server {
    const { row: s, template, allocation } = loaded;
    this.#refreshSecrets(loaded);
    const environment = parseJson<Record<string, string>>(s.environment, {});
    const limits = parseJson<Limits>(s.limits, {});
    const system = systemOf(limits, allocation);
    let shownEnv = environment;
    let variables: Server['variables'] = null;
    let startupDisplay: string;
    if (template) {
      const visible = visibleVariables(template.variables, environment, { canViewHidden: viewer.admin });
      variables = visible.map((v) => ({
        name: v.name,
        description: v.description,
        envVariable: v.envVariable,
        value: v.value,
        defaultValue: v.defaultValue,
        rules: v.rules,
        userViewable: v.userViewable,
        userEditable: v.userEditable,
        fieldType: v.fieldType,
      }));
      shownEnv = Object.fromEntries(visible.map((v) => [v.envVariable, v.value]));
      startupDisplay = displayStartup(s.startup, template.variables, environment, {
        canViewHidden: viewer.admin,
        system,
      });
    } else {
      startupDisplay = fillStartup(s.startup, { ...systemEnvironment(system), ...environment });
    }
    return {
      id: s.id,
      name: s.name,
      nodeId: s.node_id,
      status: this.#live.status(s.id) ?? ServerStatus.parse(s.status),
      nodeOnline: this.#hub().isOnline(s.node_id),
      desiredState: DesiredState.parse(s.desired_state),
      image: s.image,
      startup: s.startup,
      startupDisplay,
      environment: shownEnv,
      ports: parseJson(s.ports, {}),
      limits,
      done: parseJson(s.done, null),
      stop: s.stop,
      stopTimeout: s.stop_timeout === null ? null : Number(s.stop_timeout),
      templateId: s.template_id,
      variables,
      allocation: allocation ? { id: allocation.id, ip: allocation.ip, port: allocation.port } : null,
      createdAt: s.created_at,
      updatedAt: s.updated_at,
      stats: this.#live.stats(s.id),
      lastUpdate: parseJson(s.last_update, null),
    };
  }

  /** What the Agent runs: from the template (templateToEggConfig) or the raw fields. */
  #egg({ row, template, allocation }: Loaded): EggConfig {
    const environment = parseJson<Record<string, string>>(row.environment, {});
    const limits = parseJson<Limits>(row.limits, {});
    const ports = allocationPorts(parseJson<Ports>(row.ports, {}), allocation);
    const done = parseJson<z.infer<typeof DonePattern> | null>(row.done, null);
    if (template) {
      const egg = templateToEggConfig(
        { ...template, startup: row.startup || template.startup },
        {
          name: row.name,
          image: row.image,
          environment,
          system: systemOf(limits, allocation),
          ports,
          limits,
        },
      );
      if (done !== null) egg.done = done;
      if (row.stop !== null) egg.stop = row.stop;
      if (row.stop_timeout !== null) egg.stopTimeout = Number(row.stop_timeout);
      return egg;
    }
    const env = allocation
      ? { SERVER_IP: allocation.ip, SERVER_PORT: String(allocation.port), ...environment }
      : environment;
    return {
      name: row.name,
      image: row.image,
      startup: row.startup,
      environment: env,
      ports,
      limits,
      ...(done === null ? {} : { done }),
      ...(row.stop === null ? {} : { stop: row.stop }),
      ...(row.stop_timeout === null ? {} : { stopTimeout: Number(row.stop_timeout) }),
    };
  }

  /** New limits: what they leave out comes from the node's defaults (an explicit 0 stays unlimited). */
  async #limitsFor(nodeId: string, limits: Limits): Promise<Limits> {
    const node = await this.#nodes.findById(nodeId);
    return withDefaultLimits(
      limits,
      node ? effectiveDefaults(node, this.#defaultLimits) : this.#defaultLimits,
    );
  }

  async #row(id: string): Promise<ServersTable> {
    const s = await this.#repo.findById(id);
    if (!s) throw new CodedError('SERVER_NOT_FOUND', 'no such server');
    return s;
  }

  /** One query for the servers, one for their allocations, one per distinct template. */
  async list(viewer: Viewer): Promise<Server[]> {
    const rows = await this.#repo.list();
    const allocations = await this.#allocations.getMany(rows.flatMap((r) => r.allocation_id ?? []));
    const cache = new Map<string, Template>();
    const out: Server[] = [];
    for (const row of rows) {
      const template = await this.#template(row, cache);
      const allocation = row.allocation_id ? allocations.get(row.allocation_id) : undefined;
      out.push(this.#toServer({ row, template, allocation }, viewer));
    }
    return out;
  }

  async get(id: string, viewer: Viewer): Promise<Server> {
    return this.#toServer(await this.#load(await this.#row(id)), viewer);
  }

  /** Status only (no template or allocation lookups), for the live relay. */
  async status(id: string): Promise<ServerStatus> {
    const row = await this.#row(id);
    return this.#live.status(id) ?? ServerStatus.parse(row.status);
  }

  /**
   * Creating needs the node online: nothing is stored when the Agent cannot create it. A template's
   * variables are validated first (VALIDATION_FAILED, details per env name); the primary port is
   * claimed before the Agent hears of it (PORT_CONFLICT).
   */
  async create(input: CreateServer): Promise<Server> {
    const node = await this.#nodes.findById(input.nodeId);
    if (!node) throw new CodedError('NOT_FOUND', 'no such node', { location: 'nodeId' });
    let template: Template | undefined;
    let environment = input.environment;
    let image = input.image;
    let startup = input.startup;
    let done = input.done;
    let stop = input.stop;
    if (input.templateId !== undefined) {
      template = await this.#templates.template(input.templateId).catch((e: unknown) => {
        if (e instanceof CodedError && e.code === 'NOT_FOUND')
          throw new CodedError('NOT_FOUND', 'no such template', { location: 'templateId' });
        throw e;
      });
      environment = applyVariableChanges(template.variables, {}, input.environment, { admin: true });
      const wanted = input.image;
      const found =
        wanted === undefined
          ? template.images[0]
          : template.images.find((i) => i.label === wanted || i.image === wanted);
      if (!found)
        throw new CodedError('VALIDATION_FAILED', "image is not one of the template's", {
          location: 'image',
        });
      image = found.image;
      if (startup === '') startup = template.startup;
      if (done === undefined && template.config.startup.done.length > 0) done = template.config.startup.done;
      if (stop === undefined) stop = template.config.stop;
    }
    if (image === undefined)
      throw new CodedError('VALIDATION_FAILED', 'image or templateId is required', { location: 'image' });
    checkImage(image);
    if (!this.#hub().isOnline(node.id)) throw new CodedError('AGENT_OFFLINE', 'the node is offline');
    const now = nowIso();
    const row: ServersTable = {
      id: shortId('s'),
      name: input.name,
      node_id: node.id,
      image,
      startup,
      environment: JSON.stringify(environment),
      ports: JSON.stringify(input.ports),
      // what the create leaves out comes from the node's defaults: never unlimited by omission
      limits: JSON.stringify(withDefaultLimits(input.limits, effectiveDefaults(node, this.#defaultLimits))),
      done: done === undefined ? null : JSON.stringify(done),
      stop: stop ?? null,
      status: 'offline',
      desired_state: 'offline',
      last_update: null,
      created_at: now,
      updated_at: now,
      template_id: template ? (input.templateId ?? null) : null,
      allocation_id: null,
      stop_timeout: input.stopTimeout ?? null,
    };
    await this.#repo.insert(row);
    const undo = async () => {
      await this.#allocations.releaseServer(row.id).catch(() => undefined);
      await this.#repo.delete(row.id);
      this.#nodeOf.delete(row.id);
      this.#live.forget(row.id);
    };
    let loaded: Loaded;
    let egg: EggConfig;
    try {
      await this.#allocations.claimRawPorts(node.id, row.id, input.ports);
      // raw servers get a pool port only when they ask; template servers take the first free one
      const primary =
        template || input.allocationId !== undefined || input.port !== undefined
          ? await this.#allocations.claimPrimary(node.id, row.id, {
              allocationId: input.allocationId,
              port: input.port,
            })
          : undefined;
      if (primary) {
        row.allocation_id = primary.id;
        await this.#repo.update(row.id, { allocation_id: primary.id });
      }
      loaded = { row, template, allocation: primary };
      egg = this.#egg(loaded);
    } catch (e) {
      await undo();
      throw e;
    }
    this.#nodeOf.set(row.id, node.id);
    this.#live.setStatus(row.id, 'offline');
    try {
      await this.#hub().request(node.id, 'create_server', { serverId: row.id, eggConfig: egg });
    } catch (e) {
      await undo();
      throw e;
    }
    this.#log.info(
      { serverId: row.id, nodeId: node.id, templateId: row.template_id, action: 'create_server' },
      'server created',
    );
    return this.get(row.id, ADMIN_VIEW);
  }

  /** A template server's environment changes: merged into the current values, validated. */
  #mergeEnvironment(loaded: Loaded, changes: Record<string, string>): Record<string, string> {
    const current = parseJson<Record<string, string>>(loaded.row.environment, {});
    if (!loaded.template) return changes;
    return applyVariableChanges(loaded.template.variables, current, changes, { admin: true });
  }

  async patch(id: string, input: PatchServer): Promise<Server> {
    const loaded = await this.#load(await this.#row(id));
    const { row } = loaded;
    const set: Partial<ServersTable> = { updated_at: nowIso() };
    if (input.name !== undefined) set.name = input.name;
    if (input.image !== undefined) {
      const found = loaded.template
        ? loaded.template.images.find((i) => i.label === input.image || i.image === input.image)?.image
        : input.image;
      if (!found)
        throw new CodedError('VALIDATION_FAILED', "image is not one of the template's", {
          location: 'image',
        });
      checkImage(found);
      set.image = found;
    }
    if (input.startup !== undefined) set.startup = input.startup;
    if (input.environment !== undefined)
      set.environment = JSON.stringify(this.#mergeEnvironment(loaded, input.environment));
    if (input.ports !== undefined) set.ports = JSON.stringify(input.ports);
    const limits = input.limits === undefined ? undefined : await this.#limitsFor(row.node_id, input.limits);
    if (limits !== undefined) set.limits = JSON.stringify(limits);
    if (input.done !== undefined) set.done = input.done === null ? null : JSON.stringify(input.done);
    if (input.stop !== undefined) set.stop = input.stop;
    if (input.stopTimeout !== undefined) set.stop_timeout = input.stopTimeout;
    const runtime = [
      'image',
      'startup',
      'environment',
      'ports',
      'limits',
      'done',
      'stop',
      'stopTimeout',
    ].some((k) => input[k as keyof PatchServer] !== undefined);
    if (runtime && !this.#hub().isOnline(row.node_id))
      throw new CodedError('AGENT_OFFLINE', 'the node is offline');
    const held = (ports: Ports) => {
      const keep = new Set(Object.values(ports).map((b) => (typeof b === 'number' ? b : b.hostPort)));
      if (loaded.allocation) keep.add(loaded.allocation.port);
      return keep;
    };
    // New ports are claimed first; the dropped ones are let go only once the Agent took the
    // change, so a refused update leaves the server holding exactly what it held before.
    if (input.ports !== undefined) await this.#allocations.claimRawPorts(row.node_id, id, input.ports);
    if (runtime) {
      const { name: _name, ...egg } = this.#egg({ ...loaded, row: { ...row, ...set } });
      try {
        await this.#hub().request(row.node_id, 'update_server', egg, {
          serverId: id,
          timeoutMs: this.#updateTimeoutMs,
        });
      } catch (e) {
        if (input.ports !== undefined)
          await this.#allocations.releaseRawPorts(id, held(parseJson<Ports>(row.ports, {})));
        throw e;
      }
    }
    if (input.ports !== undefined) await this.#allocations.releaseRawPorts(id, held(input.ports));
    await this.#repo.update(id, set);
    return this.get(id, ADMIN_VIEW);
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
    await this.#allocations.releaseServer(id);
    await this.#repo.delete(id);
    this.#nodeOf.delete(id);
    this.#featuresOf.delete(id);
    this.#pendingFeature.delete(id);
    this.#metrics.forget(id);
    this.#live.publish(id, { type: 'unsubscribed', serverId: id });
    this.#live.forget(id);
    this.#log.info({ serverId: id, action: 'delete_server' }, 'server deleted');
  }

  /**
   * Sends the power action as an operation: resolves with its id once the Agent acknowledged it
   * (202); its steps and end arrive as operation events. A refusal (SERVER_BUSY…) throws its code.
   */
  async power(
    id: string,
    action: PowerAction,
    actor: string | null = null,
  ): Promise<{ operationId: string }> {
    const row = await this.#row(id);
    const hub = this.#hub();
    if (!hub.isOnline(row.node_id)) throw new CodedError('AGENT_OFFLINE', 'the node is offline');
    const operationId = await this.#startOperation(row, action, powerActions[action], {}, actor);
    // the user's intent, once the Agent took it (a refused action leaves it as it was)
    const desired = action === 'start' || action === 'restart' ? 'running' : 'offline';
    await this.#repo.update(id, { desired_state: desired, updated_at: nowIso() });
    return { operationId };
  }

  /** A 202 request's later failure goes to the server's subscribers as an `error` message. */
  #inBackground(serverId: string, requestType: string, action: string, pending: Promise<unknown>): void {
    pending.catch((e: unknown) => {
      const code = e instanceof CodedError ? e.code : 'INTERNAL_ERROR';
      this.#log.warn({ serverId, action, code }, `${action} failed`);
      this.#live.publish(serverId, {
        type: 'error',
        code,
        message: (e as Error).message,
        serverId,
        requestType,
      });
    });
  }

  /**
   * Runs the template's install script again on the Agent (in a throw-away installer container);
   * output arrives as install_output, the end as install_completed (202 semantics).
   */
  async reinstall(id: string, actor: string | null = null): Promise<{ operationId: string }> {
    const loaded = await this.#load(await this.#row(id));
    const egg = this.#egg(loaded);
    if (!egg.install)
      throw new CodedError('VALIDATION_FAILED', 'the server has no install script', {
        location: 'templateId',
      });
    const hub = this.#hub();
    if (!hub.isOnline(loaded.row.node_id)) throw new CodedError('AGENT_OFFLINE', 'the node is offline');
    this.#log.info({ serverId: id, action: 'reinstall_server' }, 'reinstall requested');
    return {
      operationId: await this.#startOperation(loaded.row, 'reinstall', 'reinstall_server', {}, actor),
    };
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
    actor: string | null = null,
  ): Promise<{ operationId: string; done: Promise<{ ok: boolean; status: Server['status'] }> }> {
    const loaded = await this.#load(await this.#row(id));
    const { row } = loaded;
    const set: Partial<ServersTable> = { updated_at: nowIso() };
    if (input.environment !== undefined)
      set.environment = JSON.stringify(this.#mergeEnvironment(loaded, input.environment));
    const limits = input.limits === undefined ? undefined : await this.#limitsFor(row.node_id, input.limits);
    if (limits !== undefined) set.limits = JSON.stringify(limits);
    if (!this.#hub().isOnline(row.node_id)) throw new CodedError('AGENT_OFFLINE', 'the node is offline');
    // The Agent replaces the container's environment with the one sent: always the whole of it,
    // derived as for a create (a template's STARTUP/SERVER_*, a raw server's SERVER_IP/PORT).
    const next = this.#egg({ ...loaded, row: { ...row, ...set } });
    await this.#repo.update(id, set);
    this.#refreshSecrets({ ...loaded, row: { ...row, ...set } });
    const payload = {
      environment: next.environment,
      ...(limits === undefined ? {} : { limits }),
    };
    const record = async (
      operationId: string,
      ok: boolean,
      stage: string,
      message?: string,
      code?: string,
    ) => {
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
    let ended!: (r: OperationResult) => void;
    const end = new Promise<OperationResult>((resolve) => {
      ended = resolve;
    });
    let operationId: string;
    try {
      operationId = await this.#startOperation(row, 'update', 'update_server', payload, actor);
    } catch (e) {
      const code = e instanceof CodedError ? e.code : 'INTERNAL_ERROR';
      await record(newMessageId('op'), false, 'failed', (e as Error).message, code);
      this.#live.publish(id, { type: 'update_progress', serverId: id, stage: 'failed', message: code });
      throw e;
    }
    this.#opWaiters.set(operationId, ended);
    // (an end that came before the waiter was set is in the row)
    const stored = await this.#ops.findById(operationId);
    if (stored?.finished_at) {
      this.#opWaiters.delete(operationId);
      ended({
        success: Number(stored.success) === 1,
        ...(stored.error_code ? { code: stored.error_code } : {}),
        ...(stored.error_message ? { message: stored.error_message } : {}),
      });
    }
    const done = end.then(async (r) => {
      if (r.success) {
        await record(operationId, true, 'done');
        return { ok: true, status: this.#live.status(id) ?? 'offline' };
      }
      await record(operationId, false, 'failed', r.message, r.code);
      this.#live.publish(id, {
        type: 'update_progress',
        serverId: id,
        stage: 'failed',
        message: r.code ?? '',
      });
      throw new CodedError(
        ErrorCode.safeParse(r.code).success ? (r.code as ErrorCode) : 'INTERNAL_ERROR',
        r.message ?? 'the update failed',
      );
    });
    return { operationId, done };
  }

  async telemetry(id: string, metrics: MetricsService, viewer: Viewer) {
    const server = await this.get(id, viewer);
    return {
      server,
      status: server.status,
      stats: server.stats,
      console: viewer.admin
        ? this.#live.history(id)
        : this.#live.history(id).map((l) => redact(l, this.#live.secrets(id))),
      metrics: await metrics.range(id, '1h'),
      // a dialog the page should open (admins only; spectators cannot act on it)
      feature: viewer.admin ? (this.#pendingFeature.get(id) ?? null) : null,
    };
  }

  /**
   * The `eula` feature's yes: `eula=true` into `eula.txt` in the server's folder (write_file on the
   * Agent), then the server is started again (restart_server; the outcome arrives as status events).
   */
  async acceptEula(id: string): Promise<void> {
    const loaded = await this.#load(await this.#row(id));
    if (!loaded.template || !knownFeatures(loaded.template.features).includes('eula'))
      throw new CodedError('VALIDATION_FAILED', "the server's template has no eula feature", {
        location: 'feature',
      });
    const hub = this.#hub();
    if (!hub.isOnline(loaded.row.node_id)) throw new CodedError('AGENT_OFFLINE', 'the node is offline');
    await hub.request(
      loaded.row.node_id,
      'write_file',
      { path: 'eula.txt', content: 'eula=true\n' },
      { serverId: id },
    );
    this.#log.info({ serverId: id, action: 'accept_eula' }, 'EULA accepted: eula.txt written');
    this.#pendingFeature.delete(id);
    await this.#repo.update(id, { desired_state: 'running', updated_at: nowIso() });
    this.#inBackground(
      id,
      'power',
      'restart_server',
      hub.request(loaded.row.node_id, 'restart_server', {}, { serverId: id }),
    );
  }

  /** Console lines of a server that is not running, checked against its template's features. */
  async #detectFeatures(serverId: string, lines: readonly string[]): Promise<void> {
    if (this.#live.status(serverId) === 'running') return;
    const cached = this.#featuresOf.get(serverId);
    let features = cached && Date.now() - cached.at < FEATURES_CACHE_MS ? cached.features : undefined;
    if (!features) {
      const row = await this.#repo.findById(serverId);
      const template = row ? await this.#template(row, new Map()).catch(() => undefined) : undefined;
      features = template ? knownFeatures(template.features) : [];
      this.#featuresOf.set(serverId, { features, at: Date.now() });
    }
    if (features.length === 0) return;
    for (const line of lines) {
      const feature = featureOfLine(line, features);
      if (!feature) continue;
      const shown = line.slice(0, 1024);
      const last = this.#pendingFeature.get(serverId);
      this.#pendingFeature.set(serverId, { feature, line: shown });
      if (last?.feature !== feature || last.line !== shown)
        this.#log.info({ serverId, feature }, 'console calls for a template feature');
      this.#live.publish(serverId, { type: 'feature', serverId, feature, line: shown });
      return;
    }
  }

  async files(
    id: string,
    path: string,
    page: { offset: number; limit: number } = { offset: 0, limit: LIST_FILES_DEFAULT_LIMIT },
  ): Promise<z.infer<typeof ListFilesData>> {
    const row = await this.#row(id);
    const data = await this.#hub().request(
      row.node_id,
      'list_files',
      { path, offset: page.offset, limit: page.limit },
      { serverId: id },
    );
    return ListFilesData.parse(data);
  }

  async fileContent(
    id: string,
    path: string,
    viewer: Viewer = ADMIN_VIEW,
  ): Promise<z.infer<typeof GetFileData>> {
    const row = await this.#row(id);
    const data = GetFileData.parse(
      await this.#hub().request(row.node_id, 'get_file', { path }, { serverId: id }),
    );
    if (viewer.admin) return data;
    // games write hidden variables into their config files: spectators get them redacted
    const secrets = this.#hiddenValues(await this.#load(row));
    if (!secrets.length) return data;
    if (data.encoding === 'utf8') {
      const clean = redact(data.content, secrets);
      return clean === data.content ? data : { ...data, content: clean, size: Buffer.byteLength(clean) };
    }
    // a binary file: the values' bytes, compared byte for byte (latin1 maps bytes 1:1)
    const bytes = Buffer.from(data.content, 'base64').toString('latin1');
    const clean = redact(
      bytes,
      secrets.map((v) => Buffer.from(v).toString('latin1')),
    );
    if (clean === bytes) return data;
    const out = Buffer.from(clean, 'latin1');
    return { ...data, content: out.toString('base64'), size: out.length };
  }

  /** Values of the server's variables that are not user_viewable (long enough to redact). */
  #hiddenValues({ row, template }: Loaded): string[] {
    if (!template) return [];
    const environment = parseJson<Record<string, string>>(row.environment, {});
    return secretValues(
      template.variables
        .filter((v) => !v.userViewable)
        .map((v) => environment[v.envVariable] ?? v.defaultValue),
    );
  }

  /** Keeps the live relay's copy of a server's hidden values current. */
  #refreshSecrets(loaded: Loaded): void {
    this.#live.setSecrets(loaded.row.id, this.#hiddenValues(loaded));
  }

  // --- Agent → Panel ----------------------------------------------------------------------

  /** True when the server exists and belongs to the reporting node. */
  owns(nodeId: string, serverId: string): boolean {
    return this.#nodeOf.get(serverId) === nodeId;
  }

  async #setStatus(serverId: string, status: ServerStatus, previous?: ServerStatus): Promise<void> {
    // a server that runs needs no feature dialog any more
    if (status === 'running') this.#pendingFeature.delete(serverId);
    const prev = this.#live.setStatus(serverId, status);
    if (prev === status) return;
    this.#bus.publish({
      kind: 'server.status',
      serverId,
      status,
      ...((previous ?? prev) ? { previousStatus: previous ?? prev } : {}),
    });
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

  /**
   * Events of one node are handled in arrival order: a status write (or the hello's reconcile)
   * awaits the database, and a newer event must not be overtaken by an older one.
   */
  handleEvent(nodeId: string, msg: EventMessage): Promise<void> {
    const prev = this.#eventQueues.get(nodeId) ?? Promise.resolve();
    const next = prev.then(() => this.#handleEvent(nodeId, msg));
    const settled = next.catch(() => undefined);
    this.#eventQueues.set(nodeId, settled);
    settled.then(() => {
      if (this.#eventQueues.get(nodeId) === settled) this.#eventQueues.delete(nodeId);
    });
    return next;
  }

  async #handleEvent(nodeId: string, msg: EventMessage): Promise<void> {
    if (msg.event === 'agent_hello') {
      const d = msg.data as EventMessage<'agent_hello'>['data'];
      await this.reconcile(nodeId, d.servers);
      await this.#reconcileOperations(
        nodeId,
        new Set((d.operations ?? []).map((o) => o.operationId)),
        nowIso(),
      );
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
        // one message may carry the lines of one Agent tick, newline-separated; an empty line is
        // a line too (dropping it here would lose it unreported)
        const lines = d.message.split(/\r?\n/);
        this.#live.appendConsole(serverId, lines);
        this.#bus.publish({
          kind: 'server.console',
          serverId,
          lines,
          ...(d.stream ? { stream: d.stream } : {}),
        });
        if (d.stream !== 'daemon') await this.#detectFeatures(serverId, lines);
        break;
      }
      case 'server_log_dropped': {
        const d = msg.data as EventMessage<'server_log_dropped'>['data'];
        this.#live.consoleDropped(serverId, d.count, d.reason);
        break;
      }
      case 'resource_update': {
        const d = msg.data as EventMessage<'resource_update'>['data'];
        this.#live.setStats(serverId, d);
        // metrics record what they get from the bus (subscribed in services.ts)
        this.#bus.publish({ kind: 'server.stats', serverId, stats: d });
        break;
      }
      case 'server_crashed': {
        const d = msg.data as EventMessage<'server_crashed'>['data'];
        this.#bus.publish({
          kind: 'server.crashed',
          serverId,
          exitCode: d.exitCode,
          restarting: d.restarting,
        });
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
        this.#bus.publish({ kind: 'server.players', serverId, online: d.online, max: d.max, list: d.list });
        break;
      }
      case 'install_output': {
        const d = msg.data as EventMessage<'install_output'>['data'];
        const lines = this.#live.appendInstall(serverId, d.message.split(/\r?\n/));
        this.#live.publish(serverId, { type: 'install_output', serverId, lines });
        this.#bus.publish({ kind: 'server.install', serverId, lines });
        break;
      }
      case 'operation_progress': {
        const d = msg.data as EventMessage<'operation_progress'>['data'];
        const op = await this.#ops.findById(d.operationId);
        if (!op || op.node_id !== nodeId || op.server_id !== serverId) break;
        if (await this.#ops.setStage(op.id, d.stage, nowIso()))
          this.#publishOperation(serverId, { ...op, stage: d.stage }, undefined, d.message);
        break;
      }
      case 'operation_completed': {
        const d = msg.data as EventMessage<'operation_completed'>['data'];
        const op = await this.#ops.findById(d.operationId);
        if (!op || op.node_id !== nodeId || op.server_id !== serverId) {
          this.#log.warn(
            { nodeId, serverId, operationId: d.operationId },
            'end of an unknown operation; ignored',
          );
          break;
        }
        await this.#finishOperation(op.id, {
          success: d.success,
          ...(d.error ? { code: d.error.code, message: d.error.message } : {}),
        });
        break;
      }
      case 'install_completed': {
        const d = msg.data as EventMessage<'install_completed'>['data'];
        this.#log.info(
          { serverId, action: 'install', success: d.success, exitCode: d.exitCode },
          'install completed',
        );
        this.#live.completeInstall(serverId, d.success, d.exitCode);
        this.#bus.publish({
          kind: 'server.install',
          serverId,
          success: d.success,
          ...(d.exitCode === undefined ? {} : { exitCode: d.exitCode }),
        });
        this.#live.publish(serverId, {
          type: 'install_completed',
          serverId,
          success: d.success,
          ...(d.exitCode === undefined ? {} : { exitCode: d.exitCode }),
        });
        break;
      }
    }
  }
}
