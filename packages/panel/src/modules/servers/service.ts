/**
 * Servers: the use cases (list, get, create, patch, delete, power, reinstall, config update,
 * files, the EULA answer). What should exist is in the database; commands go to the node's Agent
 * through the AgentGateway; what the Agents report comes back through the AgentEventProjection
 * (projection.ts), the schemas are in schemas.ts, the row → API mapping in mapping.ts.
 */

import { createHash } from 'node:crypto';
import {
  CodedError,
  type ConsoleAck,
  type EggConfig,
  ErrorCode,
  type EventMessage,
  GetFileData,
  imageRefProblem,
  LIST_FILES_DEFAULT_LIMIT,
  type Limits,
  ListFilesData,
  type PlayerAction,
  PlayerActionData,
  type PlayerTarget,
  type Ports,
  type PowerAction,
  playerCommandNeedsId,
  type RegistryAuthConfig,
  type RemoteConsoleTransport,
  renderPlayerCommand,
  SendCommandData,
  ServerStatus,
  SystemInfo,
} from '@cap/protocol';
import { applyVariableChanges, knownFeatures, type Template } from '@cap/protocol/templates/index.ts';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { EventBus } from '../../bus/index.ts';
import { nowIso } from '../../db/index.ts';
import type { NodesTable, OperationsTable, ServersTable } from '../../db/schema.ts';
import { shortId } from '../../lib/crypto.ts';
import { redact, secretValues } from '../../lib/redact.ts';
import type { AgentGateway, AgentRequestPayload } from '../../relay/agent-gateway.ts';
import type { ConsoleMarks } from '../../relay/console-marks.ts';
import type { LiveStore } from '../../relay/live-store.ts';
import { LocalSecretsSync, type SecretsSync } from '../../relay/secrets-sync.ts';
import type { AllocationsService } from '../allocations/service.ts';
import type { MetricsService } from '../metrics/service.ts';
import {
  capacityOf,
  describeShortages,
  maxUsage,
  type NodeCapacity,
  RESOURCES,
  shortages,
  type Usage,
  usageOf,
  ZERO_USAGE,
} from '../nodes/capacity.ts';
import type { NodesRepo } from '../nodes/repo.ts';
import { type DefaultLimits, effectiveDefaults, withDefaultLimits } from '../nodes/service.ts';
import type { Operation } from '../operations/repo.ts';
import type { OperationResult, OperationsService } from '../operations/service.ts';
import type { TemplatesService } from '../templates/service.ts';
import { eggOf, hiddenValues, type Loaded, parseJson, toServer } from './mapping.ts';
import { type Placement, place } from './placement.ts';
import { AgentEventProjection } from './projection.ts';
import type { ServersRepo } from './repo.ts';
import {
  ADMIN_VIEW,
  type ConfigUpdate,
  type CreateServer,
  type PatchServer,
  type Server,
  type Viewer,
} from './schemas.ts';

/** A raw image must be a Docker image reference (a template's were checked at its import). */
function checkImage(image: string): void {
  const problem = imageRefProblem(image);
  if (problem) throw new CodedError('VALIDATION_FAILED', `image reference ${problem}`, { location: 'image' });
}

/** An operation's failure as the error a waiting request answers with. */
function operationError(r: OperationResult, fallback: string): CodedError {
  return new CodedError(
    ErrorCode.safeParse(r.code).success ? (r.code as ErrorCode) : 'INTERNAL_ERROR',
    r.message ?? fallback,
  );
}

const powerActions = {
  start: 'start_server',
  stop: 'stop_server',
  restart: 'restart_server',
  kill: 'kill_server',
} as const;

export class ServersService {
  readonly #repo: ServersRepo;
  readonly #nodes: NodesRepo;
  readonly #templates: TemplatesService;
  readonly #allocations: AllocationsService;
  readonly #gateway: AgentGateway;
  readonly #live: LiveStore;
  /** an update's old and new hidden values, held on every replica while it runs */
  readonly #secretsSync: SecretsSync;
  readonly #bus: EventBus;
  readonly #log: Logger;
  readonly #updateTimeoutMs: number;
  /** before a server's row goes (its backups in object storage are removed then) */
  readonly #beforeDelete: ((serverId: string) => Promise<void>) | undefined;
  /** the Panel-wide defaults, for nodes without their own */
  readonly #defaultLimits: DefaultLimits;
  readonly #operations: OperationsService;
  readonly #registryAuth: ((image: string) => Promise<RegistryAuthConfig | undefined>) | undefined;
  readonly #failoverMinSeconds: number;
  readonly #projection: AgentEventProjection;
  /** capacity checks and what they admit run one at a time per node (check, then store) */
  readonly #nodeLocks = new Map<string, Promise<unknown>>();
  /**
   * serverId → the ticket of the read whose hidden values the live state holds: each read of a
   * row takes a ticket before it reads (a write, when it stored), and one older than the ticket
   * applied is dropped (newest wins: an earlier read that ends later holds the older row).
   */
  readonly #secretsApplied = new Map<string, number>();
  #rereadSeq = 0;
  /** resizes the Agent has not finished: counted at their larger size until they end */
  readonly #resizing = new Map<string, { nodeId: string; stored: Usage; next: Usage }>();
  /** servers being moved to another node (modules/transfers): power actions are refused */
  readonly #transferring = new Set<string>();

  constructor(deps: {
    repo: ServersRepo;
    nodes: NodesRepo;
    templates: TemplatesService;
    allocations: AllocationsService;
    gateway: AgentGateway;
    live: LiveStore;
    /** where what happens is published once (the live relay, metrics and the activity log subscribe) */
    bus: EventBus;
    log: Logger;
    updateTimeoutMs: number;
    beforeDelete?: (serverId: string) => Promise<void>;
    defaultLimits?: DefaultLimits;
    operations: OperationsService;
    /** stored registry credentials for an image's registry (sent with create_server, not kept by the Agent) */
    registryAuth?: (image: string) => Promise<RegistryAuthConfig | undefined>;
    /** the least failover.afterSeconds an admin may set (PANEL_FAILOVER_MIN_SECONDS) */
    failoverMinSeconds?: number;
    /** the shared console high-water marks (a line sent again is never published twice) */
    consoleMarks?: ConsoleMarks;
    /** holds an update's hidden values on every replica (default: this process's live state) */
    secretsSync?: SecretsSync;
  }) {
    this.#secretsSync = deps.secretsSync ?? new LocalSecretsSync(deps.live);
    this.#failoverMinSeconds = deps.failoverMinSeconds ?? 30;
    this.#operations = deps.operations;
    this.#registryAuth = deps.registryAuth;
    this.#defaultLimits = deps.defaultLimits ?? {};
    this.#repo = deps.repo;
    this.#nodes = deps.nodes;
    this.#templates = deps.templates;
    this.#allocations = deps.allocations;
    this.#gateway = deps.gateway;
    this.#live = deps.live;
    this.#bus = deps.bus;
    this.#log = deps.log;
    this.#updateTimeoutMs = deps.updateTimeoutMs;
    this.#beforeDelete = deps.beforeDelete;
    this.#operations.onEnd('create', (op, r) => this.#createEnded(op, r));
    this.#operations.onEnd('update', (op, r) => this.#updateEnded(op, r));
    // across replicas: a server made through another replica has hidden values this one redacts
    // from its spectators' console, re-read on the create's stages. Not for an operation this
    // replica started: it refreshed them as it wrote. (By the operation's starter, not by the
    // event's origin: the end arises where the Agent is linked, maybe here.) An edit's writer
    // publishes server.changed once it stored the row (below). Reads take tickets: the newest wins.
    const reread = (serverId: string) => {
      const ticket = ++this.#rereadSeq;
      void this.#row(serverId)
        .then(async (row) => this.#refreshSecrets(await this.#load(row), ticket))
        .catch(() => undefined);
    };
    this.#bus.subscribe(
      'operation',
      (e) => {
        // (an update's writer says so itself, once stored: server.changed below)
        if (e.operationKind !== 'create') return;
        if (this.#operations.startedHere(e.operationId)) return;
        reread(e.serverId);
      },
      'everywhere',
    );
    // The end above can come before the writer stored the row (a PATCH is stored once the
    // Agent's success reached the writer, after the end event): the writer says so once stored.
    this.#bus.subscribe('server.changed', (e) => reread(e.serverId), 'others');
    // another replica's update stored its end: the stored values are read here before its hold
    // goes (else the new value would be unredacted between the two); a failed read keeps it
    this.#secretsSync.onRelease((serverId, key) => {
      const ticket = ++this.#rereadSeq;
      void this.#row(serverId)
        .then(async (row) => this.#refreshSecrets(await this.#load(row), ticket))
        .then(
          () => this.#live.releaseSecrets(serverId, key),
          (e: unknown) => {
            if (e instanceof CodedError && e.code === 'SERVER_NOT_FOUND')
              this.#live.releaseSecrets(serverId, key);
            else
              this.#log.warn(
                { serverId, err: (e as Error)?.message },
                "an update's hidden values kept: the server's row could not be read",
              );
          },
        );
    });
    this.#projection = new AgentEventProjection({
      repo: deps.repo,
      templates: deps.templates,
      live: deps.live,
      bus: deps.bus,
      log: deps.log,
      operations: deps.operations,
      ...(deps.consoleMarks ? { marks: deps.consoleMarks } : {}),
    });
  }

  /** The stored credentials for the registries of the egg's images (game and install). */
  async #registryAuthFor(egg: Pick<EggConfig, 'image' | 'install'>): Promise<RegistryAuthConfig[]> {
    if (!this.#registryAuth) return [];
    const out: RegistryAuthConfig[] = [];
    for (const image of [egg.image, egg.install?.container]) {
      if (image === undefined) continue;
      const auth = await this.#registryAuth(image);
      if (auth && !out.some((a) => a.serveraddress === auth.serveraddress)) out.push(auth);
    }
    return out;
  }

  async init(): Promise<void> {
    const templates = new Map<string, Template>();
    for (const s of await this.#repo.list()) {
      this.#projection.track(s.id, s.node_id, s.template_id);
      this.#live.setStatus(s.id, ServerStatus.parse(s.status));
      const template = await this.#template(s, templates).catch(() => undefined);
      this.#refreshSecrets({ row: s, template, allocation: undefined });
    }
    this.#operations.init();
  }

  close(): void {
    this.#operations.close();
  }

  // --- operations ---------------------------------------------------------------------------

  operation(id: string): Promise<Operation> {
    return this.#operations.get(id);
  }

  /** A server's recent operations, newest first. */
  async operations(serverId: string, limit = 20): Promise<Operation[]> {
    await this.#row(serverId);
    return this.#operations.listByServer(serverId, limit);
  }

  /** Open operations older than the timeout are closed as TIMEOUT. */
  sweepOperations(now = Date.now()): Promise<void> {
    return this.#operations.sweep(now);
  }

  // --- use cases ----------------------------------------------------------------------------
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
    const node = await this.#nodes.findById(row.node_id);
    return { row, template, allocation, nodeAddress: node?.public_address ?? null };
  }

  /** `ticket`: taken before the row was read (see #secretsApplied) */
  #toServer(loaded: Loaded, viewer: Viewer, ticket: number): Server {
    this.#refreshSecrets(loaded, ticket);
    return toServer(loaded, viewer, {
      status: this.#live.status(loaded.row.id),
      stats: this.#live.stats(loaded.row.id),
      nodeOnline: this.#gateway.isOnline(loaded.row.node_id),
    });
  }

  /** New limits: what they leave out comes from the node's defaults (an explicit 0 stays unlimited). */
  async #limitsFor(nodeId: string, limits: Limits): Promise<Limits> {
    const node = await this.#nodes.findById(nodeId);
    return withDefaultLimits(
      limits,
      node ? effectiveDefaults(node, this.#defaultLimits) : this.#defaultLimits,
    );
  }

  /** `fn` after the node's earlier capacity checks (each check and what it admits, in turn). */
  async #withNodeLock<T>(nodeId: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#nodeLocks.get(nodeId) ?? Promise.resolve();
    const run = before.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.#nodeLocks.set(nodeId, tail);
    try {
      return await run;
    } finally {
      if (this.#nodeLocks.get(nodeId) === tail) this.#nodeLocks.delete(nodeId);
    }
  }

  /**
   * The node's capacity with what its servers take (`except` left out: the one being resized;
   * resizes in flight at their larger size). Without system_info yet, an online node's Agent is
   * asked for it first.
   */
  async capacity(node: NodesTable, except?: string): Promise<NodeCapacity> {
    let info: SystemInfo | null = null;
    const stored =
      node.system_info === null ? undefined : SystemInfo.safeParse(parseJson(node.system_info, null));
    if (stored?.success) info = stored.data;
    else if (this.#gateway.isOnline(node.id)) {
      const asked = SystemInfo.safeParse(
        await this.#gateway.request(node.id, 'system_info', {}, { timeoutMs: 5000 }).catch(() => null),
      );
      if (asked.success) {
        info = asked.data;
        await this.#nodes.update(node.id, { system_info: JSON.stringify(info) });
      }
    }
    let allocated = (await this.#nodes.allocated(node.id, except)).get(node.id) ?? ZERO_USAGE;
    for (const [serverId, r] of this.#resizing) {
      if (r.nodeId !== node.id || serverId === except) continue;
      const larger = maxUsage(r.stored, r.next);
      allocated = {
        memory: allocated.memory - r.stored.memory + larger.memory,
        disk: allocated.disk - r.stored.disk + larger.disk,
        cpu: allocated.cpu - r.stored.cpu + larger.cpu,
      };
    }
    return capacityOf(node, info, allocated);
  }

  /**
   * INSUFFICIENT_RESOURCES (409, details { memory: { needed, free }, … }) when `limits` do not fit
   * on the node. A resize (`current` given) is judged only on what grows: shrinking never fails.
   */
  async #assertFits(node: NodesTable, limits: Limits, resize?: { serverId: string; current: Limits }) {
    const cap = await this.capacity(node, resize?.serverId);
    const needed = usageOf(limits);
    if (resize) {
      const now = usageOf(resize.current);
      for (const r of RESOURCES) if (needed[r] <= now[r]) needed[r] = 0;
    }
    const short = shortages(cap, needed);
    if (Object.keys(short).length > 0)
      throw new CodedError(
        'INSUFFICIENT_RESOURCES',
        `the server does not fit on node ${node.name}: ${describeShortages(short)}`,
        { details: short, location: 'limits' },
      );
  }

  /**
   * A resize of a stored server to `limits`, checked against its node and counted there until
   * `settled` ends (then the stored row is what counts).
   */
  async #reserveResize(row: ServersTable, limits: Limits): Promise<(settled: Promise<unknown>) => void> {
    const node = await this.#nodes.findById(row.node_id);
    if (!node) throw new CodedError('NOT_FOUND', 'no such node');
    const current = parseJson<Limits>(row.limits, {});
    return this.#withNodeLock(node.id, async () => {
      await this.#assertFits(node, limits, { serverId: row.id, current });
      const entry = { nodeId: node.id, stored: usageOf(current), next: usageOf(limits) };
      this.#resizing.set(row.id, entry);
      return (settled: Promise<unknown>) => {
        const drop = () => {
          if (this.#resizing.get(row.id) === entry) this.#resizing.delete(row.id);
        };
        settled.then(drop, drop);
      };
    });
  }

  async #row(id: string): Promise<ServersTable> {
    const s = await this.#repo.findById(id);
    if (!s) throw new CodedError('SERVER_NOT_FOUND', 'no such server');
    return s;
  }

  /**
   * One query for the servers, one for their allocations, one per distinct template. `viewer`:
   * one for all, or per server (undefined: the caller may not see it, it is left out). With
   * `imageUpdates`, the servers query also reads the last image check: `updateAvailable: true`
   * marks a server whose registry has a newer digest (the server list).
   */
  async list(
    viewer: Viewer | ((serverId: string) => Viewer | undefined),
    opts: { imageUpdates?: boolean } = {},
  ): Promise<Server[]> {
    const viewerOf = typeof viewer === 'function' ? viewer : () => viewer;
    const ticket = ++this.#rereadSeq;
    const all = opts.imageUpdates
      ? await this.#repo.listWithImageUpdates()
      : (await this.#repo.list()).map((row) => ({ row, updateAvailable: false }));
    const listed = all.filter((x) => viewerOf(x.row.id) !== undefined);
    const rows = listed.map((x) => x.row);
    const updates = new Set(listed.filter((x) => x.updateAvailable).map((x) => x.row.id));
    const allocations = await this.#allocations.getMany(rows.flatMap((r) => r.allocation_id ?? []));
    const addresses = new Map(
      rows.length === 0 ? [] : (await this.#nodes.list()).map((n) => [n.id, n.public_address ?? null]),
    );
    const cache = new Map<string, Template>();
    const out: Server[] = [];
    for (const row of rows) {
      const template = await this.#template(row, cache);
      const allocation = row.allocation_id ? allocations.get(row.allocation_id) : undefined;
      const nodeAddress = addresses.get(row.node_id) ?? null;
      const server = this.#toServer(
        { row, template, allocation, nodeAddress },
        viewerOf(row.id) as Viewer,
        ticket,
      );
      out.push(updates.has(row.id) ? { ...server, updateAvailable: true } : server);
    }
    return out;
  }

  async get(id: string, viewer: Viewer): Promise<Server> {
    const ticket = ++this.#rereadSeq;
    return this.#toServer(await this.#load(await this.#row(id)), viewer, ticket);
  }

  /** Status only (no template or allocation lookups), for the live relay. */
  async status(id: string): Promise<ServerStatus> {
    const row = await this.#row(id);
    return this.#live.status(id) ?? ServerStatus.parse(row.status);
  }

  /**
   * Creating needs the node online: nothing is stored when the Agent cannot create it. A template's
   * variables are validated first (VALIDATION_FAILED, details per env name); the primary port is
   * claimed before the Agent hears of it (PORT_CONFLICT). `create_server` is an operation: this
   * resolves once the Agent acknowledged it, with the server as stored; `done` resolves with it
   * once the Agent created it, or rejects with the code after the server was removed again.
   */
  async create(
    input: CreateServer,
    actor: string | null = null,
  ): Promise<{ operationId: string; server: Server; done: Promise<Server>; placement?: Placement }> {
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
    let node: NodesTable | undefined;
    let placement: Placement | undefined;
    if (input.nodeId !== undefined) {
      node = await this.#nodes.findById(input.nodeId);
      if (!node) throw new CodedError('NOT_FOUND', 'no such node', { location: 'nodeId' });
    } else {
      if (input.allocationId !== undefined)
        throw new CodedError('VALIDATION_FAILED', 'an allocationId belongs to a node: give nodeId too', {
          location: 'allocationId',
        });
      const rawPorts = Object.values(input.ports).map((b) => (typeof b === 'number' ? b : b.hostPort));
      ({ node, placement } = await place(
        {
          nodes: this.#nodes,
          gateway: this.#gateway,
          allocations: this.#allocations,
          capacity: (n) => this.capacity(n),
        },
        {
          usage: (n) => usageOf(withDefaultLimits(input.limits, effectiveDefaults(n, this.#defaultLimits))),
          image,
          poolAllocation: template !== undefined && input.port === undefined,
          ports: [...new Set([...rawPorts, ...(input.port === undefined ? [] : [input.port])])],
          narrow: input.placement ?? {},
        },
      ));
      this.#log.info({ nodeId: node.id, reason: placement.reason }, 'server placed');
    }
    if (!this.#gateway.isOnline(node.id)) throw new CodedError('AGENT_OFFLINE', 'the node is offline');
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
      owner_id: input.ownerId ?? actor,
      backup_limit: input.backupLimit ?? null,
    };
    // checked and stored in turn per node: two creates cannot both take the last room
    await this.#withNodeLock(node.id, async () => {
      await this.#assertFits(node, parseJson<Limits>(row.limits, {}));
      await this.#repo.insert(row);
    });
    const undo = () => this.#removeCreated(row.id);
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
      loaded = { row, template, allocation: primary, nodeAddress: node.public_address ?? null };
      egg = eggOf(loaded);
    } catch (e) {
      await undo();
      throw e;
    }
    this.#projection.track(row.id, node.id, row.template_id);
    this.#live.setStatus(row.id, 'offline');
    // its hidden values redacted everywhere before its container can print them (the others
    // read the row on the create's stages, a while later)
    const held = await this.#holdSecrets(undefined, loaded);
    let operationId: string;
    try {
      const registryAuth = await this.#registryAuthFor(egg);
      operationId = await this.#operations.start(
        row,
        'create',
        'create_server',
        { serverId: row.id, eggConfig: egg, ...(registryAuth.length > 0 ? { registryAuth } : {}) },
        actor,
      );
    } catch (e) {
      // refused (or the Agent unreachable) before it took it: nothing stays (nor its hold on
      // the others: no container was made to print anything)
      this.#releaseHeld(row.id, held);
      await undo();
      throw e;
    }
    this.#log.info(
      {
        serverId: row.id,
        nodeId: node.id,
        templateId: row.template_id,
        action: 'create_server',
        operationId,
      },
      'server create accepted',
    );
    const { end } = await this.#operations.waitFor(operationId);
    // a failed end has removed the server already (the create hook, also after a Panel restart)
    const created = end.then(async (r) => {
      if (!r.success) throw operationError(r, 'the create failed');
      const server = await this.get(row.id, ADMIN_VIEW);
      this.#releaseHeld(row.id, held);
      return server;
    });
    // (an end that failed at once has removed it: then its error is the answer)
    const server = await this.get(row.id, ADMIN_VIEW).catch(async (e: unknown) => {
      await created;
      throw e;
    });
    return { operationId, server, done: created, ...(placement ? { placement } : {}) };
  }

  /** A create that did not happen: the server's row, ports and live state go. */
  async #removeCreated(serverId: string): Promise<void> {
    await this.#allocations.releaseServer(serverId).catch(() => undefined);
    await this.#repo.delete(serverId);
    this.#projection.forget(serverId);
    this.#live.forget(serverId);
    this.#secretsApplied.delete(serverId);
  }

  /**
   * The one writer of a server's last update outcome: every update operation's end (PATCH of a
   * runtime field or PUT /config; the Agent's report, a refusal, the sweep or an Agent's hello),
   * on whichever replica closes it, once, before its waiters resume. It replaces this operation's
   * `pending` (see #updatePending) or an older update's outcome, never a newer update's.
   */
  async #updateEnded(op: OperationsTable, r: OperationResult): Promise<void> {
    const row = await this.#repo.findById(op.server_id);
    if (!row) return;
    const stored = parseJson<{ operationId?: unknown } | null>(row.last_update, null);
    const other = typeof stored?.operationId === 'string' ? stored.operationId : undefined;
    if (other !== undefined && other !== op.id) {
      const newer = await this.#operations.get(other).catch(() => undefined);
      if (newer && (newer.createdAt > op.created_at || (newer.createdAt === op.created_at && other > op.id)))
        return;
    }
    const result = {
      operationId: op.id,
      ok: r.success,
      stage: r.success ? 'done' : 'failed',
      at: nowIso(),
      ...(r.message ? { message: r.message } : {}),
      ...(r.code ? { code: r.code } : {}),
    };
    await this.#repo.update(op.server_id, { last_update: JSON.stringify(result) });
    if (!r.success)
      this.#bus.publish({
        kind: 'server.update',
        serverId: op.server_id,
        stage: 'failed',
        message: r.code ?? '',
      });
  }

  /**
   * An update whose waiter was answered `pending` (AGENT_OFFLINE: its node offline past the grace)
   * has not ended: the server's last update says so, unless its end was recorded meanwhile (by
   * #updateEnded, maybe on another replica): stored only while the operation is open and the
   * stored outcome is the one read here.
   */
  async #updatePending(serverId: string, operationId: string, r: OperationResult): Promise<void> {
    const row = await this.#repo.findById(serverId);
    if (!row) return;
    const pending = {
      operationId,
      ok: false,
      stage: 'pending',
      at: nowIso(),
      ...(r.message ? { message: r.message } : {}),
      ...(r.code ? { code: r.code } : {}),
    };
    await this.#repo
      .setLastUpdateWhileOpen(serverId, operationId, row.last_update, JSON.stringify(pending))
      .catch((err: Error) =>
        this.#log.warn({ serverId, operationId, err: err.message }, 'pending update not recorded'),
      );
  }

  /**
   * A create operation that ended without success: the Agent made nothing (its create leaves
   * nothing behind on failure), so the Panel removes the server too. When the Agent's state is
   * unknown (no end reported: TIMEOUT, OPERATION_LOST; cut by its restart) it is asked to delete
   * whatever it may hold, best effort.
   */
  async #createEnded(op: { server_id: string; node_id: string }, r: OperationResult): Promise<void> {
    if (r.success) {
      this.#log.info({ serverId: op.server_id, action: 'create_server' }, 'server created');
      return;
    }
    this.#log.warn({ serverId: op.server_id, code: r.code }, 'server create failed; removed');
    if (r.code === 'TIMEOUT' || r.code === 'OPERATION_LOST' || r.code === 'AGENT_RESTARTED')
      this.#gateway
        .request(
          op.node_id,
          'delete_server',
          {},
          { serverId: op.server_id, timeoutMs: this.#updateTimeoutMs },
        )
        .catch(() => undefined);
    await this.#removeCreated(op.server_id);
  }

  /** A template server's environment changes: merged into the current values, validated. */
  #mergeEnvironment(loaded: Loaded, changes: Record<string, string>, admin = true): Record<string, string> {
    const current = parseJson<Record<string, string>>(loaded.row.environment, {});
    if (!loaded.template) {
      // a raw server's environment is the container's whole: for admins
      if (!admin) throw new CodedError('FORBIDDEN', "a raw server's environment is for admins");
      return changes;
    }
    // startup.update without admin: the viewable, editable variables only (PERMISSION_DENIED)
    return applyVariableChanges(loaded.template.variables, current, changes, { admin });
  }

  /**
   * A change of name only is stored at once (`operationId` null). A change the container must be
   * recreated for goes to the Agent as an `update` operation: this resolves once it acknowledged
   * it; `done` resolves with the server once the Agent reported success (the change is stored
   * then), or rejects with the code (nothing stored, new ports let go).
   */
  async patch(
    id: string,
    input: PatchServer,
    actor: string | null = null,
  ): Promise<{ operationId: string | null; done: Promise<Server> }> {
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
    if (input.backupLimit !== undefined) set.backup_limit = input.backupLimit;
    if (input.failover !== undefined) {
      if (input.failover.afterSeconds < this.#failoverMinSeconds)
        throw new CodedError(
          'VALIDATION_FAILED',
          `failover.afterSeconds must be at least ${this.#failoverMinSeconds}`,
          { location: 'failover.afterSeconds' },
        );
      set.failover_enabled = input.failover.enabled ? 1 : 0;
      set.failover_after_seconds = input.failover.afterSeconds;
    }
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
    if (runtime && !this.#gateway.isOnline(row.node_id))
      throw new CodedError('AGENT_OFFLINE', 'the node is offline');
    // before anything is claimed or stored: a refused resize leaves the whole patch undone
    const release = limits === undefined ? undefined : await this.#reserveResize(row, limits);
    try {
      return await this.#patchChecked(id, input, loaded, set, runtime, actor, release);
    } catch (e) {
      release?.(Promise.resolve());
      throw e;
    }
  }

  async #patchChecked(
    id: string,
    input: PatchServer,
    loaded: Loaded,
    set: Partial<ServersTable>,
    runtime: boolean,
    actor: string | null,
    release: ((settled: Promise<unknown>) => void) | undefined,
  ): Promise<{ operationId: string | null; done: Promise<Server> }> {
    const { row } = loaded;
    const held = (ports: Ports) => {
      const keep = new Set(Object.values(ports).map((b) => (typeof b === 'number' ? b : b.hostPort)));
      if (loaded.allocation) keep.add(loaded.allocation.port);
      return keep;
    };
    // New ports are claimed first; the dropped ones are let go only once the Agent took the
    // change, so a refused update leaves the server holding exactly what it held before.
    if (input.ports !== undefined) await this.#allocations.claimRawPorts(row.node_id, id, input.ports);
    const refused = async () => {
      if (input.ports !== undefined)
        await this.#allocations.releaseRawPorts(id, held(parseJson<Ports>(row.ports, {})));
    };
    const store = async () => {
      if (input.ports !== undefined) await this.#allocations.releaseRawPorts(id, held(input.ports));
      await this.#repo.update(id, set);
      this.#changed(id);
      return this.get(id, ADMIN_VIEW);
    };
    if (!runtime) return { operationId: null, done: store() };
    const { name: _name, ...egg } = eggOf({ ...loaded, row: { ...row, ...set } });
    // redacted everywhere before the Agent recreates the container with it (stored on success)
    const hold = await this.#holdSecrets(loaded, { ...loaded, row: { ...row, ...set } });
    if (!release) return this.#patchRuntime(row, egg, actor, store, refused, hold);
    const started = await this.#patchRuntime(row, egg, actor, store, refused, hold);
    release(started.done);
    return started;
  }

  async #patchRuntime(
    row: ServersTable,
    egg: Omit<EggConfig, 'name'>,
    actor: string | null,
    store: () => Promise<Server>,
    refused: () => Promise<void>,
    /** the hold of the update's hidden values (#holdSecrets) */
    held: string | undefined,
  ): Promise<{ operationId: string; done: Promise<Server> }> {
    let operationId: string;
    try {
      // a new image from a private registry is pulled with the stored credentials
      const registryAuth = await this.#registryAuthFor({ image: egg.image });
      operationId = await this.#operations.start(
        row,
        'update',
        'update_server',
        { ...egg, ...(registryAuth.length > 0 ? { registryAuth } : {}) },
        actor,
      );
    } catch (e) {
      await refused();
      throw e;
    }
    // (held in this process: a Panel restart before the end leaves the stored definition as it was)
    const { end } = await this.#operations.waitFor(operationId);
    const done = end.then(async (r) => {
      if (r.success) {
        // stored (and re-read here by store's get) before the hold goes
        const server = await store();
        this.#releaseHeld(row.id, held);
        return server;
      }
      // not ended (its node offline past the grace): the Agent may still take the new ports
      if (r.pending) await this.#updatePending(row.id, operationId, r);
      else await refused();
      throw operationError(r, 'the update failed');
    });
    return { operationId, done };
  }

  async delete(id: string, force = false): Promise<void> {
    const row = await this.#row(id);
    try {
      await this.#gateway.request(
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
    await this.#beforeDelete?.(id);
    await this.#allocations.releaseServer(id);
    await this.#repo.delete(id);
    this.#projection.forget(id);
    this.#secretsApplied.delete(id);
    // the live relay tells the watchers and forgets it, metrics drop its samples
    this.#bus.publish({ kind: 'server.deleted', serverId: id });
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
    this.assertNotTransferring(id);
    const row = await this.#row(id);
    if (!this.#gateway.isOnline(row.node_id)) throw new CodedError('AGENT_OFFLINE', 'the node is offline');
    const operationId = await this.#operations.start(row, action, powerActions[action], {}, actor);
    // the user's intent, once the Agent took it (a refused action leaves it as it was)
    const desired = action === 'start' || action === 'restart' ? 'running' : 'offline';
    await this.#repo.update(id, { desired_state: desired, updated_at: nowIso() });
    return { operationId };
  }

  /** Marks a server as being transferred (false: it already is); `endTransfer` clears it. */
  beginTransfer(id: string): boolean {
    if (this.#transferring.has(id)) return false;
    this.#transferring.add(id);
    return true;
  }

  endTransfer(id: string): void {
    this.#transferring.delete(id);
  }

  /** SERVER_TRANSFERRING (409) while the server is being moved to another node. */
  assertNotTransferring(id: string): void {
    if (this.#transferring.has(id))
      throw new CodedError(
        'SERVER_TRANSFERRING',
        'the server is being transferred to another node; try again when the transfer ended',
      );
  }

  /** The stored row (NOT_FOUND otherwise), for the transfer. */
  async row(id: string): Promise<ServersTable> {
    return this.#row(id);
  }

  /**
   * A transfer's reservation on its target: checked and `store`d in turn with the node's other
   * capacity checks (a stored running transfer counts on its target: NodesRepo.allocated).
   */
  async reserveOn(node: NodesTable, row: ServersTable, store: () => Promise<void>): Promise<void> {
    await this.#withNodeLock(node.id, async () => {
      await this.#assertFits(node, parseJson<Limits>(row.limits, {}), undefined);
      await store();
    });
  }

  /** After a move switched the row (transfers/placement.ts): the server's events come from its new node. */
  async movedTo(id: string, nodeId: string, status: ServerStatus): Promise<void> {
    this.#projection.track(id, nodeId);
    // its status events before the switch came from a node it was not on yet (ignored then)
    const prev = this.#live.setStatus(id, status);
    await this.#repo.update(id, { status, updated_at: nowIso() });
    if (prev !== status)
      this.#bus.publish({
        kind: 'server.status',
        serverId: id,
        status,
        ...(prev ? { previousStatus: prev } : {}),
      });
  }

  /**
   * A power action and its end (the Docker relay answers a managed container's start/stop once
   * it is done, as the Engine would): the operation's result, or TIMEOUT after `timeoutMs`.
   */
  async powerAndWait(
    id: string,
    action: PowerAction,
    actor: string | null,
    timeoutMs: number,
  ): Promise<{ operationId: string; success: boolean; code?: string; message?: string }> {
    const { operationId } = await this.power(id, action, actor);
    const { end } = await this.#operations.waitFor(operationId);
    let timer: NodeJS.Timeout | undefined;
    try {
      const r = await Promise.race([
        end,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new CodedError('TIMEOUT', `the server's ${action} did not finish in time`)),
            timeoutMs,
          );
        }),
      ]);
      return {
        operationId,
        success: r.success,
        ...(r.code ? { code: r.code } : {}),
        ...(r.message ? { message: r.message } : {}),
      };
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Runs the template's install script again on the Agent (in a throw-away installer container);
   * output arrives as install_output, the end as install_completed (202 semantics).
   */
  async reinstall(id: string, actor: string | null = null): Promise<{ operationId: string }> {
    const loaded = await this.#load(await this.#row(id));
    const egg = eggOf(loaded);
    if (!egg.install)
      throw new CodedError('VALIDATION_FAILED', 'the server has no install script', {
        location: 'templateId',
      });
    if (!this.#gateway.isOnline(loaded.row.node_id))
      throw new CodedError('AGENT_OFFLINE', 'the node is offline');
    this.#log.info({ serverId: id, action: 'reinstall_server' }, 'reinstall requested');
    // the installer's and the game's images are pulled (when absent) with the stored credentials
    const registryAuth = await this.#registryAuthFor(egg);
    return {
      operationId: await this.#operations.start(
        loaded.row,
        'reinstall',
        'reinstall_server',
        registryAuth.length > 0 ? { registryAuth } : {},
        actor,
      ),
    };
  }

  /**
   * A console command, through the template's transport (the Agent picks it: stdin or the remote
   * console). The game's response, where the transport gives one, has the server's hidden values
   * redacted unless `seesHidden` (an admin or the owner).
   */
  async command(
    id: string,
    cmd: string,
    opts: { seesHidden?: boolean } = {},
  ): Promise<{ response?: string; transport?: RemoteConsoleTransport }> {
    const row = await this.#row(id);
    const raw = await this.#gateway.request(row.node_id, 'send_command', { command: cmd }, { serverId: id });
    const parsed = SendCommandData.safeParse(raw ?? {});
    if (!parsed.success) return {};
    const { response, transport } = parsed.data;
    const out: { response?: string; transport?: RemoteConsoleTransport } = {};
    if (transport) out.transport = transport;
    if (response !== undefined) {
      out.response = opts.seesHidden ? response : redact(response, this.#hidden(await this.#load(row)));
    }
    return out;
  }

  /** Which player commands the server's template declares (kick/ban buttons show only then). */
  async playerCommands(
    id: string,
  ): Promise<{ kick: boolean; ban: boolean; needsId: { kick: boolean; ban: boolean } }> {
    const players = eggOf(await this.#load(await this.#row(id))).players;
    return {
      kick: players?.kick !== undefined,
      ban: players?.ban !== undefined,
      // a player the game's list gives no id for cannot be kicked by such a command
      needsId: { kick: playerCommandNeedsId(players?.kick), ban: playerCommandNeedsId(players?.ban) },
    };
  }

  /**
   * Kick or ban a player by the template's `players.kick`/`ban` (issue 12): the command is made
   * here first, so an unsafe name (PLAYER_NAME_UNSAFE) or a missing command
   * (PLAYER_ACTION_UNSUPPORTED) is refused before anything reaches the Agent, which checks again.
   */
  async playerAction(
    id: string,
    action: PlayerAction,
    target: PlayerTarget,
    opts: { seesHidden?: boolean } = {},
  ): Promise<{ command: string; response?: string; transport?: RemoteConsoleTransport }> {
    const row = await this.#row(id);
    const loaded = await this.#load(row);
    const players = eggOf(loaded).players;
    const command = renderPlayerCommand(action, players?.[action === 'kick' ? 'kick' : 'ban'], target);
    const raw = await this.#gateway.request(
      row.node_id,
      'player_action',
      {
        action,
        ...(target.id !== undefined ? { id: target.id } : {}),
        ...(target.name !== undefined ? { name: target.name } : {}),
        ...(target.reason !== undefined ? { reason: target.reason } : {}),
      },
      { serverId: id },
    );
    const parsed = PlayerActionData.safeParse(raw ?? {});
    if (!parsed.success) return { command };
    const { response, transport } = parsed.data;
    return {
      command: parsed.data.command,
      ...(transport ? { transport } : {}),
      ...(response !== undefined
        ? { response: opts.seesHidden ? response : redact(response, this.#hidden(loaded)) }
        : {}),
    };
  }

  /**
   * New environment/limits → stored → `update_server` (the Agent recreates and waits for ready);
   * progress is relayed as `update_progress`, the final result stored on the server.
   */
  async updateConfig(
    id: string,
    input: ConfigUpdate,
    actor: string | null = null,
    /** a Panel admin (else only editable variables; limits are refused by the route) */
    admin = true,
  ): Promise<{ operationId: string; done: Promise<{ ok: boolean; status: Server['status'] }> }> {
    const loaded = await this.#load(await this.#row(id));
    const { row } = loaded;
    const set: Partial<ServersTable> = { updated_at: nowIso() };
    if (input.environment !== undefined)
      set.environment = JSON.stringify(this.#mergeEnvironment(loaded, input.environment, admin));
    const limits = input.limits === undefined ? undefined : await this.#limitsFor(row.node_id, input.limits);
    if (limits !== undefined) set.limits = JSON.stringify(limits);
    if (!this.#gateway.isOnline(row.node_id)) throw new CodedError('AGENT_OFFLINE', 'the node is offline');
    // checked before anything is stored (a refused resize changes nothing); counted until it ends
    const release = limits === undefined ? undefined : await this.#reserveResize(row, limits);
    try {
      const started = await this.#updateConfigChecked(id, loaded, set, limits, actor);
      release?.(started.done);
      return started;
    } catch (e) {
      release?.(Promise.resolve());
      throw e;
    }
  }

  async #updateConfigChecked(
    id: string,
    loaded: Loaded,
    set: Partial<ServersTable>,
    limits: Limits | undefined,
    actor: string | null,
  ): Promise<{ operationId: string; done: Promise<{ ok: boolean; status: Server['status'] }> }> {
    const { row } = loaded;
    // The Agent replaces the container's environment with the one sent: always the whole of it,
    // derived as for a create (a template's STARTUP/SERVER_*, a raw server's SERVER_IP/PORT).
    const next = eggOf({ ...loaded, row: { ...row, ...set } });
    // the old and the new values redacted everywhere before the row (and the Agent) changes
    const held = await this.#holdSecrets(loaded, { ...loaded, row: { ...row, ...set } });
    await this.#repo.update(id, set);
    this.#refreshSecrets({ ...loaded, row: { ...row, ...set } });
    // stored before the Agent is asked: the other replicas re-read it before its game can print it
    this.#changed(id);
    const payload = {
      environment: next.environment,
      ...(limits === undefined ? {} : { limits }),
    };
    // (a refusal closes the operation: #updateEnded records it, as every end)
    const operationId = await this.#operations.start(row, 'update', 'update_server', payload, actor);
    const { end } = await this.#operations.waitFor(operationId);
    const done = end.then(async (r) => {
      if (r.pending) {
        // the waiter stops waiting (AGENT_OFFLINE), the update has not ended: stored as pending;
        // its real end (the Agent's hello or the sweep, on whichever replica closes it) replaces it
        await this.#updatePending(id, operationId, r);
        throw new CodedError('AGENT_OFFLINE', r.message ?? 'the node went offline during the update');
      }
      if (r.success) {
        this.#releaseHeld(id, held);
        return { ok: true, status: this.#live.status(id) ?? 'offline' };
      }
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
      // a dialog the page should open (for those who see hidden values; the route narrows it further)
      feature: viewer.admin ? (this.#projection.pendingFeature(id) ?? null) : null,
    };
  }

  /**
   * The `eula` feature's yes: `eula=true` into `eula.txt` in the server's folder (write_file on the
   * Agent), then the server is started again as a `restart` operation: resolves with its id once
   * the Agent acknowledged it (a refusal, e.g. SERVER_BUSY, throws its code; the file stays written).
   */
  async acceptEula(id: string, actor: string | null = null): Promise<{ operationId: string }> {
    const loaded = await this.#load(await this.#row(id));
    if (!loaded.template || !knownFeatures(loaded.template.features).includes('eula'))
      throw new CodedError('VALIDATION_FAILED', "the server's template has no eula feature", {
        location: 'feature',
      });
    if (!this.#gateway.isOnline(loaded.row.node_id))
      throw new CodedError('AGENT_OFFLINE', 'the node is offline');
    await this.#gateway.request(
      loaded.row.node_id,
      'write_file',
      { path: 'eula.txt', content: 'eula=true\n' },
      { serverId: id },
    );
    this.#log.info({ serverId: id, action: 'accept_eula' }, 'EULA accepted: eula.txt written');
    this.#projection.clearFeature(id);
    const operationId = await this.#operations.start(loaded.row, 'restart', 'restart_server', {}, actor);
    await this.#repo.update(id, { desired_state: 'running', updated_at: nowIso() });
    return { operationId };
  }

  /** The node a server lives on (SERVER_NOT_FOUND when there is no such server). */
  /**
   * A file-archive operation (compress, decompress) on the server's node: its id once the Agent
   * accepted it; `awaitEnd` gets its end (with the Agent's data) when asked for (`?wait=true`).
   */
  async fileOperation<A extends 'file_compress' | 'file_decompress'>(
    id: string,
    kind: 'compress' | 'decompress',
    action: A,
    payload: AgentRequestPayload<A>,
    actor: string | null,
    opts: { awaitEnd?: (end: Promise<OperationResult>) => void } = {},
  ): Promise<string> {
    return this.#operations.start(await this.#row(id), kind, action, payload, actor, opts);
  }

  // --- failover (modules/failover) --------------------------------------------------------

  /**
   * Where the server could run instead of its node (failover): automatic placement's rules
   * (online, capacity, a free allocation when it takes one, the image, free raw ports).
   */
  async placeElsewhere(id: string): Promise<{ node: NodesTable; placement: Placement }> {
    const row = await this.#row(id);
    const ports = parseJson<Ports>(row.ports, {});
    const limits = parseJson<Limits>(row.limits, {});
    return place(
      {
        nodes: this.#nodes,
        gateway: this.#gateway,
        allocations: this.#allocations,
        capacity: (n) => this.capacity(n),
      },
      {
        usage: () => usageOf(limits),
        image: row.image,
        poolAllocation: row.allocation_id !== null,
        ports: [...new Set(Object.values(ports).map((b) => (typeof b === 'number' ? b : b.hostPort)))],
        narrow: {},
      },
    );
  }

  /**
   * The server's ports claimed on `nodeId` (its primary from the pool when it has one, its raw
   * ports); its ports on other nodes are kept until `moveTo`. Returns the new primary's id.
   */
  async claimOn(id: string, nodeId: string): Promise<string | null> {
    const row = await this.#row(id);
    await this.#allocations.claimRawPorts(nodeId, id, parseJson<Ports>(row.ports, {}));
    if (row.allocation_id === null) return null;
    const primary = await this.#allocations.claimPrimary(nodeId, id, {});
    return primary?.id ?? null;
  }

  /** The server's allocations on `nodeId` let go (a failover there that did not happen). */
  releaseOn(id: string, nodeId: string): Promise<void> {
    return this.#allocations.releaseOnNode(id, nodeId);
  }

  /** The server's allocations on any node but `nodeId` let go. */
  releaseElsewhereThan(id: string, nodeId: string): Promise<void> {
    return this.#allocations.releaseElsewhere(id, nodeId);
  }

  /** What the Agent of `nodeId` is given to create the server there (no install: files come from a backup). */
  async eggOn(id: string, allocationId: string | null): Promise<EggConfig> {
    const loaded = await this.#load(await this.#row(id));
    const allocation = allocationId ? await this.#allocations.get(allocationId) : undefined;
    const { install: _install, ...egg } = eggOf({ ...loaded, allocation });
    return egg;
  }

  async nodeIdOf(id: string): Promise<string> {
    return (await this.#row(id)).node_id;
  }

  /** Raw file bytes (downloads) only for who sees hidden values, or on a server without any. */
  async assertSeesRawFiles(id: string, viewer: Viewer): Promise<void> {
    if (viewer.admin) return;
    if (hiddenValues(await this.#load(await this.#row(id))).length > 0)
      throw new CodedError(
        'FORBIDDEN',
        "this server has hidden variables its files may hold: downloads are for admins and the server's owner",
      );
  }

  /**
   * A write by someone who gets hidden values redacted must not replace a file that holds them:
   * the text they edited has `[hidden]` where the values were, and saving it would lose them.
   */
  async assertWriteKeepsHidden(id: string, path: string, viewer: Viewer): Promise<void> {
    if (viewer.admin) return;
    const row = await this.#row(id);
    const secrets = this.#hidden(await this.#load(row));
    if (!secrets.length) return;
    let current: z.infer<typeof GetFileData>;
    try {
      current = GetFileData.parse(
        await this.#gateway.request(row.node_id, 'get_file', { path }, { serverId: id }),
      );
    } catch (e) {
      if (e instanceof CodedError && e.code === 'FILE_NOT_FOUND') return;
      throw e;
    }
    const text =
      current.encoding === 'utf8' ? current.content : Buffer.from(current.content, 'base64').toString('utf8');
    if (secrets.some((v) => v && text.includes(v)))
      throw new CodedError(
        'FILE_DENIED',
        "this file holds values of hidden variables: only admins and the server's owner may overwrite it",
      );
  }

  async files(
    id: string,
    path: string,
    page: { offset: number; limit: number; sort?: 'name' | 'size' | 'modified'; order?: 'asc' | 'desc' } = {
      offset: 0,
      limit: LIST_FILES_DEFAULT_LIMIT,
    },
  ): Promise<z.infer<typeof ListFilesData>> {
    const row = await this.#row(id);
    const data = await this.#gateway.request(
      row.node_id,
      'list_files',
      { path, offset: page.offset, limit: page.limit, sort: page.sort ?? 'name', order: page.order ?? 'asc' },
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
      await this.#gateway.request(row.node_id, 'get_file', { path }, { serverId: id }),
    );
    if (viewer.admin) return data;
    // games write hidden variables into their config files: who may not see them gets them redacted
    const secrets = this.#hidden(await this.#load(row));
    if (!secrets.length) return data;
    if (data.encoding === 'utf8') {
      const clean = redact(data.content, secrets);
      return clean === data.content
        ? data
        : { ...data, ...redactedHash(data, clean), content: clean, size: Buffer.byteLength(clean) };
    }
    // a binary file: the values' bytes, compared byte for byte (latin1 maps bytes 1:1)
    const bytes = Buffer.from(data.content, 'base64').toString('latin1');
    const clean = redact(
      bytes,
      secrets.map((v) => Buffer.from(v).toString('latin1')),
    );
    if (clean === bytes) return data;
    const out = Buffer.from(clean, 'latin1');
    return { ...data, ...redactedHash(data, out), content: out.toString('base64'), size: out.length };
  }

  /** Tells the other replicas a server's row was stored anew (they re-read its hidden values). */
  #changed(serverId: string): void {
    this.#bus.publish({ kind: 'server.changed', serverId });
  }

  /**
   * Before the Agent gets an update (or a create) that changes the server's hidden values: the
   * old and the new are held on every replica (relay/secrets-sync.ts), so whatever the old
   * container prints as it stops and the new one as it starts is redacted for spectators wherever
   * they watch, before either can print. Returns the hold's key (undefined: nothing changes).
   * Released (#releaseHeld) once the update's success is stored; the values it replaced stay
   * held (a hold of their own, never released), as the history keeps what printed them. A refused, failed, rolled-back or unfinished update keeps it for good (capped per
   * server, MAX_HELD_SECRETS; until the Panel restarts): the attempted value may have been
   * printed, and those lines stay in the console history, so it is never shown in clear later.
   */
  async #holdSecrets(before: Loaded | undefined, after: Loaded): Promise<string | undefined> {
    const old = before ? hiddenValues(before) : [];
    const next = hiddenValues(after);
    if (next.length === old.length && next.every((v) => old.includes(v))) return undefined;
    const key = shortId('h');
    // the values it replaces stay redacted for good (a separate hold, never released): lines
    // printed with them stay in the console history, and an old password is still a secret
    const replaced = old.filter((v) => !next.includes(v));
    await Promise.all([
      this.#secretsSync.hold(after.row.id, key, secretValues([...old, ...next])),
      replaced.length > 0
        ? this.#secretsSync.hold(after.row.id, shortId('r'), secretValues(replaced))
        : undefined,
    ]);
    return key;
  }

  /** What spectators get redacted: the stored hidden values and those an update holds. */
  #hidden(loaded: Loaded): string[] {
    return secretValues([...hiddenValues(loaded), ...this.#live.secrets(loaded.row.id)]);
  }

  /** The update's success is stored (and read here): its hold goes here and on the others. */
  #releaseHeld(serverId: string, key: string | undefined): void {
    if (key !== undefined) this.#secretsSync.release(serverId, key);
  }

  /** Keeps the live relay's copy of a server's hidden values current. */
  /** Without a ticket: a write's, as it stored (the newest). */
  #refreshSecrets(loaded: Loaded, ticket = ++this.#rereadSeq): void {
    const id = loaded.row.id;
    if ((this.#secretsApplied.get(id) ?? 0) > ticket) return;
    this.#secretsApplied.set(id, ticket);
    this.#live.setSecrets(id, hiddenValues(loaded));
  }

  // --- Agent → Panel (the projection) -------------------------------------------------------

  /** True when the server exists and belongs to the reporting node. */
  owns(nodeId: string, serverId: string): boolean {
    return this.#projection.owns(nodeId, serverId);
  }

  /** On (re)connect the Agent lists what runs; servers it does not know are offline. */
  reconcile(nodeId: string, reported: { serverId: string; status: ServerStatus }[]): Promise<void> {
    return this.#projection.reconcile(nodeId, reported);
  }

  /** An Agent's event, handled in arrival order per node (see AgentEventProjection). */
  handleEvent(nodeId: string, msg: EventMessage): Promise<void> {
    return this.#projection.handleEvent(nodeId, msg);
  }

  /** The console lines stored as published since the last call (the link's ack, on the next ping). */
  consoleAcks(nodeId: string): ConsoleAck[] {
    return this.#projection.takeAcks(nodeId);
  }

  /** The operation ends stored since the last call (the link's ack, on the next ping). */
  operationAcks(nodeId: string): string[] {
    return this.#projection.takeOperationAcks(nodeId);
  }
}

/** A redacted read's sha256 is that of the redacted text: a save checked against it is FILE_CHANGED. */
function redactedHash(data: { sha256?: string }, shown: string | Buffer): { sha256?: string } {
  return data.sha256 === undefined ? {} : { sha256: createHash('sha256').update(shown).digest('hex') };
}
