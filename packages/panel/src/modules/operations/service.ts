/**
 * Operations bookkeeping: a long command is recorded, sent asking for the Agent's
 * acknowledgement, and closed once from its `operation_completed` (or by the sweep / the
 * reconcile after an Agent's hello). Every step is published once on the bus.
 *
 * A waiter (`awaitEnd`, `waitFor`) whose operation's node has been offline OFFLINE_GRACE_MS
 * (its Agent stopped or was cut off after accepting) is answered AGENT_OFFLINE with `pending`
 * set: the stored operation stays open, since the Agent may still be doing it; its hello settles
 * it (an end held in its outbox, AGENT_RESTARTED for one its restart cut, OPERATION_LOST for one
 * it does not know), or the sweep does after the timeout. A link that blips back within the
 * grace changes nothing.
 */
import { CodedError, newMessageId } from '@cap/protocol';
import type { Logger } from 'pino';
import type { EventBus } from '../../bus/index.ts';
import { nowIso } from '../../db/index.ts';
import type { OperationsTable } from '../../db/schema.ts';
import type { Periodic } from '../../lib/periodic.ts';
import type { AgentGateway, AgentRequestPayload } from '../../relay/agent-gateway.ts';
import { type Operation, type OperationKind, type OperationsRepo, toOperation } from './repo.ts';

/** An operation still open this long (the Agent never reported its end) is closed as TIMEOUT. */
export const OPERATION_TIMEOUT_MS = 2 * 60 * 60 * 1000;
/** After an Agent's hello, open operations it does not list get this long for their end to arrive. */
const RECONCILE_GRACE_MS = 15_000;
/**
 * How long a waiter waits while its operation's node is offline before it hears AGENT_OFFLINE
 * (the operation itself stays open).
 */
export const OFFLINE_GRACE_MS = 10_000;
/** how often the nodes of waited operations are looked at while any is waited for */
const OFFLINE_CHECK_MS = 500;
/**
 * `data`: what the Agent's action answered when it succeeded (not stored; for a waiter in this
 * process). `pending`: the operation has not ended (AGENT_OFFLINE: the waiter stopped waiting;
 * the stored operation is settled later, maybe as a success), so what a failure would undo must
 * stay as it is.
 */
export type OperationResult = {
  success: boolean;
  code?: string;
  message?: string;
  data?: unknown;
  pending?: true;
};

/** The commands answered with an acknowledgement and ended by `operation_completed`. */
export type OperationAction =
  | 'create_server'
  | 'start_server'
  | 'stop_server'
  | 'restart_server'
  | 'kill_server'
  | 'reinstall_server'
  | 'update_server'
  | 'backup_create'
  | 'backup_restore'
  | 'file_compress'
  | 'file_decompress'
  | 'image_update_server'
  | 'transfer_push';

export class OperationsService {
  readonly #ops: OperationsRepo;
  readonly #gateway: AgentGateway;
  readonly #bus: EventBus;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  /** operationId → who waits for its end in this process (PUT /config?wait=true, a transfer's step…) */
  readonly #waiters = new Map<string, ((r: OperationResult) => void)[]>();
  /** operationId → the node of a waited operation (watched while it is waited for) */
  readonly #waitedNodes = new Map<string, string>();
  /** nodeId → since when a node with waited operations has been offline */
  readonly #offlineSince = new Map<string, number>();
  #offlineTimer: NodeJS.Timeout | undefined;
  readonly #offlineGraceMs: number;
  /**
   * operations opened by this process and not ended yet (`startedHere`) → when (ms). An end lost
   * on the bus (a broker outage) would leave one for ever: past the operation timeout it is
   * forgotten (the sweep has closed it as TIMEOUT by then, if nothing else did).
   */
  readonly #local = new Map<string, number>();
  /** operations being closed in this process (their waiters resolve in `finish`) */
  readonly #finishing = new Set<string>();
  /** kind → what must happen in the database when one ends, before anyone hears of the end */
  readonly #onEnd = new Map<string, (op: OperationsTable, r: OperationResult) => Promise<void>>();
  #sweepTimer: NodeJS.Timeout | undefined;
  readonly #periodic: Periodic | undefined;
  #stopSweep: (() => void) | undefined;

  constructor(deps: {
    repo: OperationsRepo;
    gateway: AgentGateway;
    bus: EventBus;
    log: Logger;
    timeoutMs?: number;
    /** the sweep runs through it (once across replicas); default: a timer in this process */
    periodic?: Periodic;
    /** default OFFLINE_GRACE_MS */
    offlineGraceMs?: number;
  }) {
    this.#offlineGraceMs = deps.offlineGraceMs ?? OFFLINE_GRACE_MS;
    this.#periodic = deps.periodic;
    this.#ops = deps.repo;
    this.#gateway = deps.gateway;
    this.#bus = deps.bus;
    this.#log = deps.log;
    this.#timeoutMs = deps.timeoutMs ?? OPERATION_TIMEOUT_MS;
    // Several replicas: an operation waited for here can end on the replica its Agent is linked
    // to (the row is shared); its end reaches this waiter through the bus. Ends closed here
    // resolve their waiter in `finish` (with the Agent's data).
    this.#bus.subscribe(
      'operation',
      (e) => {
        if (e.success === undefined) return;
        this.#forget(e.operationId);
        if (this.#finishing.has(e.operationId)) return;
        this.#answer(e.operationId, {
          success: e.success,
          ...(e.errorCode ? { code: e.errorCode } : {}),
          ...(e.message ? { message: e.message } : {}),
        });
      },
      'everywhere',
    );
    // a node going offline is looked at once (the grace counts from here), not at the next check
    this.#bus.subscribe(
      'node.offline',
      (e) => {
        if (this.#offlineSince.has(e.nodeId) || ![...this.#waitedNodes.values()].includes(e.nodeId)) return;
        this.#offlineSince.set(e.nodeId, Date.now());
      },
      'everywhere',
    );
  }

  /** Waits for `id`'s end in this process; its node is watched (the offline grace). */
  #wait(id: string, resolve: (r: OperationResult) => void, nodeId?: string): void {
    this.#waiters.set(id, [...(this.#waiters.get(id) ?? []), resolve]);
    if (nodeId !== undefined) this.#watch(id, nodeId);
  }

  #watch(id: string, nodeId: string): void {
    if (!this.#waiters.has(id)) return;
    this.#waitedNodes.set(id, nodeId);
    if (!this.#gateway.isOnline(nodeId) && !this.#offlineSince.has(nodeId))
      this.#offlineSince.set(nodeId, Date.now());
    if (!this.#offlineTimer) {
      this.#offlineTimer = setInterval(() => this.#checkOffline(), OFFLINE_CHECK_MS);
      this.#offlineTimer.unref();
    }
  }

  /**
   * Whether this process opened the operation (and has not heard its end yet, the end event's
   * subscribers included): what it wrote for it, it has refreshed as it wrote.
   */
  startedHere(id: string, now = Date.now()): boolean {
    this.#pruneLocal(now);
    return this.#local.has(id);
  }

  /** Forgets the operations opened here longer ago than the operation timeout (their end was lost). */
  #pruneLocal(now: number): void {
    for (const [id, at] of this.#local) if (now - at >= this.#timeoutMs) this.#local.delete(id);
  }

  /** after every subscriber of this turn heard the end (they may still ask `startedHere`) */
  #forget(id: string): void {
    if (this.#local.has(id)) setImmediate(() => this.#local.delete(id));
  }

  /** Every waiter of `id` in this process hears `r` (once: they are gone after). */
  #answer(id: string, r: OperationResult): void {
    const waiters = this.#waiters.get(id) ?? [];
    this.#unwait(id);
    for (const w of waiters) w(r);
  }

  #unwait(id: string): void {
    this.#waiters.delete(id);
    this.#waitedNodes.delete(id);
    if (this.#waitedNodes.size === 0) {
      clearInterval(this.#offlineTimer);
      this.#offlineTimer = undefined;
      this.#offlineSince.clear();
    }
  }

  /** Waiters of operations whose node has been offline for the grace hear AGENT_OFFLINE. */
  #checkOffline(now = Date.now()): void {
    const nodes = new Set(this.#waitedNodes.values());
    for (const nodeId of this.#offlineSince.keys()) if (!nodes.has(nodeId)) this.#offlineSince.delete(nodeId);
    for (const nodeId of nodes) {
      if (this.#gateway.isOnline(nodeId)) {
        this.#offlineSince.delete(nodeId);
        continue;
      }
      const since = this.#offlineSince.get(nodeId);
      if (since === undefined) {
        this.#offlineSince.set(nodeId, now);
        continue;
      }
      if (now - since < this.#offlineGraceMs) continue;
      for (const [id, n] of [...this.#waitedNodes]) {
        if (n !== nodeId) continue;
        this.#log.warn(
          { operationId: id, nodeId, offlineMs: now - since },
          'node offline: the waiter hears AGENT_OFFLINE; the operation stays open for its Agent to settle',
        );
        this.#answer(id, {
          success: false,
          code: 'AGENT_OFFLINE',
          message: `node ${nodeId} has been offline for ${Math.round((now - since) / 1000)} s; the operation stays open until its Agent reports`,
          pending: true,
        });
      }
    }
  }

  /** Starts the sweep; operations left open by an earlier Panel stay open until their Agent reports. */
  init(): void {
    const every = Math.min(60_000, Math.max(1000, Math.floor(this.#timeoutMs / 4)));
    if (this.#periodic) {
      this.#stopSweep ??= this.#periodic.every('operation-sweep', every, () => this.sweep());
      return;
    }
    this.#sweepTimer = setInterval(
      () => void this.sweep().catch((e) => this.#log.warn({ err: e }, 'operation sweep failed')),
      every,
    );
    this.#sweepTimer.unref();
  }

  close(): void {
    clearInterval(this.#sweepTimer);
    clearInterval(this.#offlineTimer);
    this.#offlineTimer = undefined;
    this.#stopSweep?.();
    this.#stopSweep = undefined;
  }

  /**
   * What an operation of `kind` leaves to do when it ends (e.g. a failed create removes the
   * server). Runs in whichever way the end arrives (Agent, sweep, reconcile, also after a Panel
   * restart), once, before the end is published and before waiters resume; a failure is logged.
   */
  onEnd(kind: OperationKind, handler: (op: OperationsTable, r: OperationResult) => Promise<void>): void {
    this.#onEnd.set(kind, handler);
  }

  async get(id: string): Promise<Operation> {
    const row = await this.#ops.findById(id);
    if (!row) throw new CodedError('NOT_FOUND', 'no such operation');
    return toOperation(row);
  }

  /** A server's recent operations, newest first. */
  async listByServer(serverId: string, limit = 20): Promise<Operation[]> {
    return (await this.#ops.listByServer(serverId, limit)).map(toOperation);
  }

  #publish(
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
  }

  /** Closes an open operation once; tells subscribers and whoever waits for it. */
  async finish(id: string, result: OperationResult): Promise<void> {
    if (!(await this.#ops.finish(id, result, nowIso()))) return;
    this.#finishing.add(id);
    try {
      await this.#finished(id, result);
    } finally {
      this.#finishing.delete(id);
    }
  }

  async #finished(id: string, result: OperationResult): Promise<void> {
    const row = await this.#ops.findById(id);
    const after = row ? this.#onEnd.get(row.kind) : undefined;
    if (row && after)
      await after(row, result).catch((err: Error) =>
        this.#log.error({ operationId: id, kind: row.kind, err: err.message }, 'operation end hook failed'),
      );
    if (row)
      this.#publish(row.server_id, row, result, undefined, {
        actor: row.actor_user_id,
        nodeId: row.node_id,
      });
    this.#answer(id, result);
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
  async start<A extends OperationAction>(
    server: { id: string; node_id: string },
    kind: OperationKind,
    action: A,
    payload: AgentRequestPayload<A>,
    actor: string | null,
    opts: {
      awaitEnd?: (end: Promise<OperationResult>) => void;
      /** an operation opened by `open` (the Panel's own first stages done): it is sent now */
      operationId?: string;
    } = {},
  ): Promise<string> {
    const id = opts.operationId ?? (await this.open(server, kind, actor));
    if (opts.operationId !== undefined) await this.#ops.setStage(id, 'requested', nowIso());
    // a waiter set before the command goes out: an end that comes at once (with its data) is not missed
    if (opts.awaitEnd)
      opts.awaitEnd(new Promise<OperationResult>((resolve) => this.#wait(id, resolve, server.node_id)));
    try {
      await this.#gateway.request(server.node_id, action, payload, { serverId: server.id, operationId: id });
    } catch (e) {
      const code = e instanceof CodedError ? e.code : 'INTERNAL_ERROR';
      await this.finish(id, { success: false, code, message: (e as Error).message });
      throw e;
    }
    if (await this.#ops.setStage(id, 'accepted', nowIso(), 'requested'))
      this.#publish(server.id, { id, kind, stage: 'accepted' });
    this.#log.info({ serverId: server.id, operationId: id, kind, action }, 'operation accepted');
    return id;
  }

  /**
   * Records an operation whose first stages the Panel runs itself (an S3 restore's import) before
   * `start` sends its command with `operationId`; `step` reports those stages, `finish` ends it
   * when they fail.
   */
  async open(server: { id: string; node_id: string }, kind: OperationKind, actor: string | null) {
    const id = newMessageId('op');
    const at = nowIso();
    this.#pruneLocal(Date.now());
    this.#local.set(id, Date.now());
    try {
      await this.#ops.insert({
        id,
        kind,
        server_id: server.id,
        node_id: server.node_id,
        actor_user_id: actor,
        stage: 'requested',
        created_at: at,
        updated_at: at,
        finished_at: null,
        success: null,
        error_code: null,
        error_message: null,
      });
    } catch (e) {
      this.#local.delete(id);
      throw e;
    }
    return id;
  }

  /** A stage of an operation the Panel runs itself (see `open`), published as an Agent's would be. */
  async step(id: string, stage: string, message?: string): Promise<void> {
    const op = await this.#ops.findById(id);
    if (!op || op.finished_at !== null) return;
    if (await this.#ops.setStage(id, stage, nowIso()))
      this.#publish(op.server_id, { ...op, stage }, undefined, message);
  }

  /**
   * Registers a waiter for the operation's end; `end` resolves with it (also when it had ended
   * before the call: that end is read from the row before this resolves).
   */
  async waitFor(id: string): Promise<{ end: Promise<OperationResult> }> {
    let ended!: (r: OperationResult) => void;
    const end = new Promise<OperationResult>((resolve) => {
      ended = resolve;
    });
    this.#wait(id, ended);
    // (an end that came before the waiter was set is in the row)
    const stored = await this.#ops.findById(id);
    if (stored && !stored.finished_at) this.#watch(id, stored.node_id);
    if (stored?.finished_at)
      this.#answer(id, {
        success: Number(stored.success) === 1,
        ...(stored.error_code ? { code: stored.error_code } : {}),
        ...(stored.error_message ? { message: stored.error_message } : {}),
      });
    return { end };
  }

  /** An Agent's `operation_progress`: a new stage of an open operation of that node and server. */
  async progress(nodeId: string, serverId: string, operationId: string, stage: string, message?: string) {
    const op = await this.#ops.findById(operationId);
    if (!op || op.node_id !== nodeId || op.server_id !== serverId) return;
    if (await this.#ops.setStage(op.id, stage, nowIso()))
      this.#publish(serverId, { ...op, stage }, undefined, message);
  }

  /** An Agent's `operation_completed`; false when the operation is not that node's and server's. */
  async completed(nodeId: string, serverId: string, operationId: string, result: OperationResult) {
    const op = await this.#ops.findById(operationId);
    if (!op || op.node_id !== nodeId || op.server_id !== serverId) return false;
    await this.finish(op.id, result);
    return true;
  }

  /** Open operations older than the timeout are closed as TIMEOUT. */
  async sweep(now = Date.now()): Promise<void> {
    for (const op of await this.#ops.listOpen()) {
      if (now - Date.parse(op.created_at) < this.#timeoutMs) continue;
      await this.finish(op.id, {
        success: false,
        code: 'TIMEOUT',
        message: `the Agent did not report the end within ${Math.round(this.#timeoutMs / 1000)} s`,
      });
    }
  }

  /**
   * On an Agent's hello: its open operations that it does not list as running get a grace
   * period for their end (held in its outbox, sent right after the hello); then OPERATION_LOST.
   */
  async reconcile(nodeId: string, running: ReadonlySet<string>, helloAt: string): Promise<void> {
    const open = (await this.#ops.listOpen(nodeId)).filter(
      (o) => !running.has(o.id) && o.updated_at <= helloAt,
    );
    if (open.length === 0) return;
    const timer = setTimeout(() => {
      void (async () => {
        for (const o of open) {
          const now = await this.#ops.findById(o.id);
          if (!now || now.finished_at !== null || now.updated_at > helloAt) continue;
          await this.finish(o.id, {
            success: false,
            code: 'OPERATION_LOST',
            message: 'the Agent reconnected without this operation and never reported its end',
          });
        }
      })().catch((e) => this.#log.warn({ err: e, nodeId }, 'operation reconcile failed'));
    }, RECONCILE_GRACE_MS);
    timer.unref();
  }
}
