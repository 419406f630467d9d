/**
 * Server transfers between nodes (issue 16 item 2), Wings' flow: archive → stream → restore →
 * switch. One operation (kind `transfer`, recorded on the source node) with a stage per step:
 *
 *   stopping (when it was running) → archiving (a tar.zst backup on the source: the backup
 *   archiver) → creating (the server on the target, with its new allocation, no install) →
 *   streaming (the archive to the target's backup_import ticket, streamed with backpressure,
 *   never buffered, size and sha256 checked there: straight from the source Agent to the target
 *   Agent (transfer_push) when the target node has a transferUrl its Agent serves, else, or when
 *   the source cannot reach it, through the Panel's relay; `path` records which; the server's
 *   other local backups go the same way) →
 *   restoring (backup_restore on the target) → starting (when it was running; until running) →
 *   switching (node, allocation and local backups' node in one transaction) → cleaning (the
 *   source's container, files and old allocation go; the archive on the target too).
 *
 * A failure at any step before the switch deletes what the target got (at once, or when its Agent
 * is back: `cleanup_pending`), releases the target allocation, removes the archive on the source
 * and starts the source again when it was running; the operation fails with the step and reason.
 * Power actions on the server are refused meanwhile (SERVER_TRANSFERRING), as is a second transfer.
 * While it runs the server counts on the target's capacity too (NodesRepo.allocated): a create or
 * another transfer cannot take that headroom. A transfer a Panel restart cut (found running at
 * start) fails: its copy on the target goes (when that Agent is back), as does its archive on the
 * source, and the source is started again (once its Agent is back) when it ran before.
 * The shared part of a move (create on the target, switch, undo) is placement.ts (failover too).
 * Backups in S3 are untouched (keyed by server, not node); local ones move with the server.
 */
import { randomUUID } from 'node:crypto';
import { BackupRecord, CodedError, isCodedError, StatusData } from '@cap/protocol';
import type { Logger } from 'pino';
import type { EventBus } from '../../bus/index.ts';
import { type Db, nowIso } from '../../db/index.ts';
import type { NodesTable, ServersTable, TransfersTable } from '../../db/schema.ts';
import type { Periodic } from '../../lib/periodic.ts';
import type { ReplicaRegistry } from '../../lib/replicas.ts';
import type { AgentGateway, AgentRequestPayload } from '../../relay/agent-gateway.ts';
import type { Allocation, AllocationsService } from '../allocations/service.ts';
import type { NodesRepo } from '../nodes/repo.ts';
import type { OperationAction, OperationResult, OperationsService } from '../operations/service.ts';
import type { ServersService } from '../servers/service.ts';
import type { ArchivePath, ServerPlacement } from './placement.ts';

export const TRANSFER_STEPS = [
  'stopping',
  'archiving',
  'creating',
  'streaming',
  'restoring',
  'starting',
  'switching',
  'cleaning',
] as const;
export type TransferStep = (typeof TRANSFER_STEPS)[number];

/** How long a step's Agent operation may take (a large world archives and extracts slowly). */
const STEP_TIMEOUT_MS = 30 * 60_000;
/** How long the target's server may take to report running after its start. */
const RUNNING_TIMEOUT_MS = 120_000;

export interface Transfer {
  id: string;
  serverId: string;
  operationId: string;
  sourceNodeId: string;
  targetNodeId: string;
  targetAllocationId: string | null;
  state: 'running' | 'completed' | 'failed';
  step: TransferStep;
  /** how the archive went to the target: direct (Agent to Agent) or relay (through the Panel); null before streaming */
  path: ArchivePath | null;
  errorCode: string | null;
  errorMessage: string | null;
  createdAt: string;
  finishedAt: string | null;
}

function toTransfer(r: TransfersTable): Transfer {
  return {
    id: r.id,
    serverId: r.server_id,
    operationId: r.operation_id,
    sourceNodeId: r.source_node_id,
    targetNodeId: r.target_node_id,
    targetAllocationId: r.target_allocation_id,
    state: r.state as Transfer['state'],
    step: r.step as TransferStep,
    path: r.path === 'direct' || r.path === 'relay' ? r.path : null,
    errorCode: r.error_code,
    errorMessage: r.error_message,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
  };
}

/**
 * The run is no longer this replica's to go on with or to undo: it fenced itself (`fence`), or
 * the row is no longer `running` (another replica took its owner for dead and failed it: that
 * one undoes it, once its Agents are linked there).
 */
class LeftError extends Error {
  readonly code: 'REPLICA_FENCED' | 'INVALID_STATE';
  constructor(code: 'REPLICA_FENCED' | 'INVALID_STATE', message: string) {
    super(message);
    this.code = code;
  }
}

class StepError extends Error {
  readonly step: TransferStep;
  readonly code: string;
  constructor(step: TransferStep, code: string, message: string) {
    super(message);
    this.step = step;
    this.code = code;
  }
}

interface Run {
  t: TransfersTable;
  row: ServersTable;
  actor: string | null;
  source: string;
  target: string;
  wasRunning: boolean;
  archiveId: string | null;
  /** what exists on the target so far (undone on failure) */
  targetCreated: boolean;
  movedBackups: string[];
  /** rejects once this replica fences itself (`fence`): what the run awaits is raced with it */
  left: Promise<never>;
  leave: (e: LeftError) => void;
  /** set with `left` */
  gone: LeftError | undefined;
}

/** about how long a starting replica takes to hear the others' node lists (their heartbeat) */
const PRESENCE_WAIT_MS = 1000;

export class TransfersService {
  readonly #db: Db;
  readonly #servers: ServersService;
  readonly #nodes: NodesRepo;
  readonly #allocations: AllocationsService;
  readonly #operations: OperationsService;
  readonly #gateway: AgentGateway;
  readonly #placement: ServerPlacement;
  readonly #log: Logger;
  readonly #runningTimeoutMs: number;
  readonly #bus: EventBus;
  readonly #periodic: Periodic | undefined;
  readonly #replicas: ReplicaRegistry | undefined;
  #stopSweep: (() => void) | undefined;
  #cleanTimer: NodeJS.Timeout | undefined;
  #closing = false;
  /** the transfers this process runs now */
  readonly #runs = new Set<Run>();

  constructor(deps: {
    db: Db;
    servers: ServersService;
    nodes: NodesRepo;
    allocations: AllocationsService;
    operations: OperationsService;
    gateway: AgentGateway;
    placement: ServerPlacement;
    bus: EventBus;
    log: Logger;
    runningTimeoutMs?: number;
    /** with replicas: the leader's round that fails the transfers of replicas gone */
    periodic?: Periodic;
    /** with replicas: who runs each transfer, and whether it is alive */
    replicas?: ReplicaRegistry;
  }) {
    this.#db = deps.db;
    this.#servers = deps.servers;
    this.#nodes = deps.nodes;
    this.#allocations = deps.allocations;
    this.#operations = deps.operations;
    this.#gateway = deps.gateway;
    this.#placement = deps.placement;
    this.#log = deps.log.child({ component: 'transfers' });
    this.#runningTimeoutMs = deps.runningTimeoutMs ?? RUNNING_TIMEOUT_MS;
    this.#bus = deps.bus;
    this.#periodic = deps.periodic;
    this.#replicas = deps.replicas;
    // a failed transfer's copy on a target that was offline goes once its Agent is back
    deps.bus.subscribe('node.online', (e) => {
      void this.cleanupNode(e.nodeId).catch((err: Error) =>
        this.#log.warn({ nodeId: e.nodeId, err: err.message }, 'transfer cleanup failed'),
      );
    });
  }

  /**
   * Transfers a Panel restart cut (running when this Panel starts, not switched): failed; their
   * copy on the target and their archive on the source are removed and the source started again
   * when it ran before, each once its node's Agent is connected (cleanupNode). One switched
   * already (the server is on the target) is completed: only the source's leftovers go.
   *
   * With several replicas a transfer is run by the replica that began it (`owner_replica`): a
   * starting replica fails only those whose owner is gone (its heartbeat older than the TTL), and
   * the leader's round (`transfer-orphans`, every TTL) fails those of a replica that dies later.
   * Each is failed once: the row's state moves from `running` in one conditional update.
   */
  async init(): Promise<void> {
    await this.failOrphans({ afterStart: false });
    if (this.#replicas && this.#periodic && !this.#stopSweep)
      this.#stopSweep = this.#periodic.every('transfer-orphans', this.#replicas.ttlMs, async () => {
        await this.failOrphans({ afterStart: true });
      });
  }

  /** Fails the running transfers whose Panel is gone (one process: every running one, at start). */
  async failOrphans({ afterStart = true } = {}): Promise<number> {
    let cut = await this.#db.selectFrom('transfers').selectAll().where('state', '=', 'running').execute();
    if (this.#replicas) {
      const alive = await this.#replicas.alive(
        cut.flatMap((t) => (t.owner_replica ? [t.owner_replica] : [])),
      );
      cut = cut.filter((t) => !t.owner_replica || !alive.has(t.owner_replica));
    } else if (afterStart) return 0;
    let failed = 0;
    const nodes = new Set<string>();
    for (const t of cut) {
      if (!(await this.#failCut(t))) continue;
      failed++;
      nodes.add(t.source_node_id).add(t.target_node_id);
    }
    // with replicas the nodes may be linked to another one already (no node.online here): their
    // leftovers go now, or (at start) once this replica has heard who holds which node
    if (afterStart) await this.#cleanOnline(nodes);
    else if (this.#replicas && nodes.size) {
      this.#cleanTimer = setTimeout(() => void this.#cleanOnline(nodes), 3 * PRESENCE_WAIT_MS);
      this.#cleanTimer.unref();
    }
    return failed;
  }

  async #cleanOnline(nodes: Iterable<string>): Promise<void> {
    for (const nodeId of nodes)
      if (!this.#closing && this.#gateway.isOnline(nodeId))
        await this.cleanupNode(nodeId).catch((err: Error) =>
          this.#log.warn({ nodeId, err: err.message }, 'transfer cleanup failed'),
        );
  }

  /** One cut transfer failed (or completed, when switched already); false when another did it. */
  async #failCut(t: TransfersTable): Promise<boolean> {
    // in one transaction with the row locked first (PostgreSQL): a switch the owner is committing
    // now (its transaction holds the row) is waited for and then seen as switched, and an owner
    // switching after this claim finds the row failed and rolls its switch back (#run)
    const switched = await this.#db.transaction().execute(async (trx) => {
      const tx = trx as unknown as Db;
      if (this.#replicas)
        await tx.selectFrom('transfers').select('id').where('id', '=', t.id).forUpdate().execute();
      const server = await tx
        .selectFrom('servers')
        .select(['node_id'])
        .where('id', '=', t.server_id)
        .executeTakeFirst();
      const switched = server?.node_id === t.target_node_id;
      const claimed = await tx
        .updateTable('transfers')
        .set(
          switched
            ? { state: 'completed', finished_at: nowIso() }
            : {
                state: 'failed',
                cleanup_pending: 1,
                restart_pending: Number(t.was_running ?? 0) === 1 ? 1 : 0,
                error_code: 'INTERNAL_ERROR',
                error_message: `${t.step}: the Panel restarted during the transfer`,
                finished_at: nowIso(),
              },
        )
        .where('id', '=', t.id)
        .where('state', '=', 'running')
        .executeTakeFirst();
      if (Number(claimed.numUpdatedRows) === 0) return undefined;
      if (!switched) {
        await tx
          .deleteFrom('allocations')
          .where('server_id', '=', t.server_id)
          .where('node_id', '=', t.target_node_id)
          .where('pooled', '=', 0)
          .execute();
        await tx
          .updateTable('allocations')
          .set({ server_id: null })
          .where('server_id', '=', t.server_id)
          .where('node_id', '=', t.target_node_id)
          .execute();
      }
      return switched;
    });
    if (switched === undefined) return false;
    await this.#operations
      .finish(
        t.operation_id,
        switched
          ? { success: true }
          : {
              success: false,
              code: 'INTERNAL_ERROR',
              message: `${t.step}: the Panel restarted during the transfer`,
            },
      )
      .catch(() => undefined);
    this.#log.warn(
      { serverId: t.server_id, step: t.step, switched, owner: t.owner_replica ?? null },
      'transfer cut by a Panel restart',
    );
    return true;
  }

  /**
   * The Panel is stopping: a transfer its closing links cut is left as stored (`running`), for the
   * next Panel's init to fail and clean up, not half undone by this one.
   */
  close(): void {
    this.#closing = true;
    this.#stopSweep?.();
    this.#stopSweep = undefined;
    clearTimeout(this.#cleanTimer);
  }

  /**
   * This replica fenced itself (lib/replicas.ts: it lost the database): its transfers stop where
   * they are, undone by nobody here. Their rows stay `running` under this replica's registry id,
   * which the others take for dead one TTL after its last beat: the leader's `transfer-orphans`
   * round then fails each once and undoes it where the Agents are linked now (the target's copy
   * removed, the source's archive deleted, the source started again when it ran: `cleanupNode`).
   * Undone here as well, both would stop, start and delete the same server at once, and a run
   * left going would switch the server to the target after the leader had removed the copy there
   * (its database writes wait out the outage, then land): neither keeps the server whole.
   */
  fence(): number {
    for (const run of this.#runs)
      run.leave(
        new LeftError(
          'REPLICA_FENCED',
          'this Panel replica lost its database: the transfer is left to the leader',
        ),
      );
    return this.#runs.size;
  }

  async list(serverId: string, limit = 20): Promise<Transfer[]> {
    const rows = await this.#db
      .selectFrom('transfers')
      .selectAll()
      .where('server_id', '=', serverId)
      .orderBy('created_at', 'desc')
      .limit(limit)
      .execute();
    return rows.map(toTransfer);
  }

  /**
   * Starts a transfer of the server to `nodeId`: checked at once (NOT_FOUND, VALIDATION_FAILED for
   * its own node, AGENT_OFFLINE, SERVER_TRANSFERRING, INSUFFICIENT_RESOURCES, PORT_CONFLICT when
   * the target has no free allocation); the rest runs as the operation. `done` settles at its end.
   */
  async start(
    serverId: string,
    input: { nodeId: string; allocationId?: string | undefined },
    actor: string | null,
  ): Promise<{ transfer: Transfer; done: Promise<Transfer> }> {
    const row = await this.#servers.row(serverId);
    if (row.node_id === input.nodeId)
      throw new CodedError('VALIDATION_FAILED', 'the server is on that node already', {
        location: 'nodeId',
      });
    const target = await this.#nodes.findById(input.nodeId);
    if (!target) throw new CodedError('NOT_FOUND', 'no such node', { location: 'nodeId' });
    for (const n of [row.node_id, target.id])
      if (!this.#gateway.isOnline(n))
        throw new CodedError('AGENT_OFFLINE', `node ${n === target.id ? target.name : n} is offline`);
    if (!this.#servers.beginTransfer(serverId))
      throw new CodedError('SERVER_TRANSFERRING', 'the server is being transferred already');
    let claimed = false;
    try {
      let allocation: Allocation | undefined;
      let t: TransfersTable | undefined;
      // checked and stored in turn with the target's other capacity checks: once stored, the
      // running transfer counts on the target (a second create or transfer cannot take its room)
      await this.#servers.reserveOn(target, row, async () => {
        allocation = await this.#claim(target, row, input.allocationId);
        claimed = true;
        const operationId = await this.#operations.open(
          { id: serverId, node_id: row.node_id },
          'transfer',
          actor,
        );
        t = {
          id: randomUUID(),
          server_id: serverId,
          operation_id: operationId,
          source_node_id: row.node_id,
          target_node_id: target.id,
          source_allocation_id: row.allocation_id,
          target_allocation_id: allocation?.id ?? null,
          state: 'running',
          step: 'stopping',
          error_code: null,
          error_message: null,
          cleanup_pending: 0,
          path: null,
          was_running: 0,
          archive_id: null,
          restart_pending: 0,
          owner_replica: this.#replicas?.id ?? null,
          created_by: actor,
          created_at: nowIso(),
          finished_at: null,
        };
        await this.#db.insertInto('transfers').values(t).execute();
      });
      if (!t) throw new CodedError('INTERNAL_ERROR', 'the transfer was not stored');
      let leave: (e: LeftError) => void = () => undefined;
      const left = new Promise<never>((_, reject) => {
        leave = reject;
      });
      left.catch(() => undefined);
      const run: Run = {
        t,
        row,
        actor,
        source: row.node_id,
        target: target.id,
        wasRunning: false,
        archiveId: null,
        targetCreated: false,
        movedBackups: [],
        left,
        leave: (e) => {
          run.gone ??= e;
          leave(e);
        },
        gone: undefined,
      };
      this.#log.info(
        { serverId, from: row.node_id, to: target.id, operationId: t.operation_id },
        'transfer started',
      );
      const done = this.#run(run, allocation);
      done.catch(() => undefined);
      return { transfer: toTransfer(t), done };
    } catch (e) {
      if (claimed) await this.#servers.releaseOn(serverId, target.id).catch(() => undefined);
      this.#servers.endTransfer(serverId);
      throw e;
    }
  }

  async #claim(
    target: NodesTable,
    row: ServersTable,
    allocationId: string | undefined,
  ): Promise<Allocation | undefined> {
    const ports = JSON.parse(row.ports || '{}') as Record<string, unknown>;
    try {
      if (Object.keys(ports).length > 0)
        await this.#allocations.claimRawPorts(target.id, row.id, ports as never);
      if (row.allocation_id === null && allocationId === undefined) return undefined;
      const a = await this.#allocations.claimPrimary(target.id, row.id, { allocationId });
      if (!a)
        throw new CodedError('PORT_CONFLICT', `node ${target.name} has no allocation to move the server to`, {
          location: 'allocationId',
        });
      return a;
    } catch (e) {
      await this.#servers.releaseOn(row.id, target.id).catch(() => undefined);
      throw e;
    }
  }

  /** The next step, claimed: the row still `running` (not failed by another replica meanwhile). */
  async #step(run: Run, step: TransferStep, message?: string): Promise<void> {
    if (run.gone) throw run.gone;
    run.t.step = step;
    const claimed = await this.#db
      .updateTable('transfers')
      .set({ step })
      .where('id', '=', run.t.id)
      .where('state', '=', 'running')
      .executeTakeFirst();
    if (Number(claimed.numUpdatedRows) === 0)
      throw new LeftError(
        'INVALID_STATE',
        'the transfer was failed by another Panel replica (it took this one for dead)',
      );
    await this.#operations.step(run.t.operation_id, step, message);
  }

  /** Still this run's to undo: its row `running` (unknown, the database away: as before, it is). */
  async #stillOurs(run: Run): Promise<boolean> {
    if (run.gone) return false;
    const row = await this.#db
      .selectFrom('transfers')
      .select('state')
      .where('id', '=', run.t.id)
      .executeTakeFirst()
      .catch(() => ({ state: 'running' as const }));
    return row?.state === 'running';
  }

  /**
   * One Agent operation of a step (kind `transfer_step`), awaited to its end; failure throws. A
   * step whose node stays offline fails AGENT_OFFLINE after OperationsService's offline grace
   * (OFFLINE_GRACE_MS; a link that blips back within it changes nothing).
   */
  async #sub<A extends OperationAction>(
    run: Run,
    nodeId: string,
    action: A,
    payload: AgentRequestPayload<A>,
  ): Promise<OperationResult> {
    let end: Promise<OperationResult> | undefined;
    await this.#operations.start(
      { id: run.row.id, node_id: nodeId },
      'transfer_step',
      action,
      payload,
      run.actor,
      {
        awaitEnd: (e) => {
          end = e;
        },
      },
    );
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      end as Promise<OperationResult>,
      new Promise<OperationResult>((resolve) => {
        timer = setTimeout(
          () => resolve({ success: false, code: 'TIMEOUT', message: `${action} did not end in time` }),
          STEP_TIMEOUT_MS,
        );
        timer.unref();
      }),
    ]).finally(() => clearTimeout(timer));
    if (!r.success)
      throw new CodedError(
        (r.code as never) ?? 'INTERNAL_ERROR',
        r.message ?? `${action} failed on node ${nodeId}`,
      );
    return r;
  }

  async #status(nodeId: string, serverId: string): Promise<StatusData['status']> {
    const s = StatusData.parse(await this.#gateway.request(nodeId, 'get_status', {}, { serverId }));
    return s.status;
  }

  async #backups(nodeId: string, serverId: string): Promise<BackupRecord[]> {
    const out: BackupRecord[] = [];
    for (let offset = 0; offset < 10_000; offset += 100) {
      const page = (await this.#gateway.request(
        nodeId,
        'backup_list',
        { offset, limit: 100 },
        { serverId },
      )) as {
        backups: unknown[];
      };
      out.push(...page.backups.map((b) => BackupRecord.parse(b)));
      if (page.backups.length < 100) break;
    }
    return out;
  }

  async #run(run: Run, allocation: Allocation | undefined): Promise<Transfer> {
    const serverId = run.row.id;
    const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;
    const at = async <T>(step: TransferStep, fn: () => Promise<T>, message?: string): Promise<T> => {
      await this.#step(run, step, message);
      try {
        const work = fn();
        work.catch(() => undefined);
        // fenced: what the step awaits is not waited for (the run stops here)
        return await Promise.race([work, run.left]);
      } catch (e) {
        if (e instanceof LeftError) throw e;
        throw new StepError(step, isCodedError(e) ? e.code : 'INTERNAL_ERROR', (e as Error).message);
      }
    };
    this.#runs.add(run);
    try {
      await at('stopping', async () => {
        const status = await this.#status(run.source, serverId);
        run.wasRunning = status === 'running' || status === 'starting';
        if (run.wasRunning)
          await this.#db
            .updateTable('transfers')
            .set({ was_running: 1 })
            .where('id', '=', run.t.id)
            .execute();
        if (run.wasRunning) await this.#sub(run, run.source, 'stop_server', {});
      });
      const archive = await at('archiving', async () => {
        const backupId = randomUUID();
        run.archiveId = backupId;
        await this.#db
          .updateTable('transfers')
          .set({ archive_id: backupId })
          .where('id', '=', run.t.id)
          .execute();
        await this.#sub(run, run.source, 'backup_create', {
          backupId,
          name: 'transfer',
          format: 'tar.zst',
          ignore: [],
          commandsBefore: [],
          commandsAfter: [],
          commandWaitSeconds: 0,
          locked: false,
        });
        const all = await this.#backups(run.source, serverId);
        const rec = all.find((b) => b.backupId === backupId);
        if (!rec) throw new CodedError('INTERNAL_ERROR', 'the source does not list the transfer archive');
        return { rec, others: all.filter((b) => b.backupId !== backupId && b.state === 'completed') };
      });
      await at('creating', async () => {
        run.targetCreated = true;
        await this.#placement.createOn(run.target, serverId, allocation?.id ?? null, {
          create: (eggConfig) =>
            this.#sub(run, run.target, 'create_server', { serverId, eggConfig } as never),
        });
      });
      await at(
        'streaming',
        async () => {
          const m = { serverId, source: run.source, target: run.target };
          const push = (
            nodeId: string,
            action: 'transfer_push',
            payload: AgentRequestPayload<'transfer_push'>,
          ) => this.#sub(run, nodeId, action, payload);
          const sent = await this.#placement.sendArchive(m, archive.rec, push, (n, total, path) => {
            const how =
              path === 'direct'
                ? `pushed directly Agent to Agent (${mb(total)})`
                : `${mb(n)} of ${mb(total)} (relayed by the Panel)`;
            void this.#operations.step(run.t.operation_id, 'streaming', how).catch(() => undefined);
          });
          run.t.path = sent.path;
          await this.#db
            .updateTable('transfers')
            .set({ path: sent.path })
            .where('id', '=', run.t.id)
            .execute();
          await this.#operations
            .step(
              run.t.operation_id,
              'streaming',
              `${mb(Number(archive.rec.size ?? 0))} sent ${sent.path === 'direct' ? 'directly Agent to Agent' : 'through the Panel relay'} in ${(sent.ms / 1000).toFixed(1)} s (${sent.reason})`,
            )
            .catch(() => undefined);
          this.#log.info(
            { serverId, path: sent.path, ms: sent.ms, reason: sent.reason },
            'transfer archive sent',
          );
          // the server's other backups on the source node go with it (the same way)
          for (const b of archive.others) {
            await this.#placement.sendArchive(m, b, push);
            run.movedBackups.push(b.backupId);
          }
        },
        `0.0 MB of ${mb(Number(archive.rec.size ?? 0))}`,
      );
      await at('restoring', () =>
        this.#sub(run, run.target, 'backup_restore', { backupId: archive.rec.backupId, truncate: true }),
      );
      await at('starting', async () => {
        if (!run.wasRunning) return;
        await this.#sub(run, run.target, 'start_server', {});
        const until = Date.now() + this.#runningTimeoutMs;
        for (;;) {
          const s = await this.#status(run.target, serverId);
          if (s === 'running') break;
          if (Date.now() > until || s === 'offline' || s === 'crashed')
            throw new CodedError('INVALID_STATE', `the server on the target is ${s}, not running`);
          await new Promise((r) => setTimeout(r, 500));
        }
      });
      const statusOnTarget = await this.#status(run.target, serverId).catch(() => 'offline' as const);
      await at('switching', () =>
        this.#placement.switchTo(serverId, run.target, allocation?.id ?? null, {
          status: statusOnTarget,
          also: async (tx) => {
            // in the switch's transaction: not once another replica failed it (and undid it)
            const still = await tx
              .updateTable('transfers')
              .set({ step: 'switching' })
              .where('id', '=', run.t.id)
              .where('state', '=', 'running')
              .executeTakeFirst();
            if (Number(still.numUpdatedRows) === 0)
              throw new LeftError(
                'INVALID_STATE',
                'the transfer was failed by another Panel replica before the switch',
              );
            if (run.movedBackups.length > 0)
              await tx
                .updateTable('backups')
                .set({ node_id: run.target })
                .where('server_id', '=', serverId)
                .where('id', 'in', run.movedBackups)
                .execute();
          },
        }),
      );
      await this.#step(run, 'cleaning');
      // switched: what is left on the source goes (a failure here leaves litter, not a broken server)
      await this.#gateway
        .request(run.source, 'delete_server', {}, { serverId, timeoutMs: STEP_TIMEOUT_MS })
        .catch((e: Error) =>
          this.#log.warn({ serverId, nodeId: run.source, err: e.message }, 'source copy not deleted'),
        );
      await this.#gateway
        .request(run.target, 'backup_delete', { backupId: archive.rec.backupId }, { serverId })
        .catch((e: Error) => this.#log.warn({ serverId, err: e.message }, 'transfer archive not deleted'));
      await this.#end(run, { success: true });
      this.#log.info({ serverId, to: run.target }, 'transfer completed');
    } catch (e) {
      if (this.#closing) {
        this.#log.warn(
          { serverId, step: run.t.step },
          'transfer cut by the Panel stopping; the next one cleans up',
        );
        throw new CodedError('AGENT_OFFLINE', 'the Panel stopped during the transfer');
      }
      // fenced, or failed by another replica: undone there, not here as well
      const left = run.gone ?? (e instanceof LeftError ? e : undefined);
      if (left || !(await this.#stillOurs(run))) {
        const why =
          left ?? new LeftError('INVALID_STATE', 'the transfer was failed by another Panel replica');
        this.#log.warn(
          { serverId, step: run.t.step, code: why.code, err: (e as Error).message },
          'transfer left to the replica that fails it (not undone here)',
        );
        throw new CodedError(why.code, why.message);
      }
      const step = e instanceof StepError ? e.step : (run.t.step as TransferStep);
      const code = e instanceof StepError ? e.code : isCodedError(e) ? e.code : 'INTERNAL_ERROR';
      const reason = (e as Error).message;
      this.#log.warn({ serverId, step, code, err: reason }, 'transfer failed; undoing');
      await this.#undo(run);
      await this.#end(run, { success: false, code, message: `${step}: ${reason}`.slice(0, 4096) });
    } finally {
      this.#runs.delete(run);
      this.#servers.endTransfer(serverId);
    }
    const row = await this.#db
      .selectFrom('transfers')
      .selectAll()
      .where('id', '=', run.t.id)
      .executeTakeFirstOrThrow();
    const out = toTransfer(row);
    if (out.state !== 'completed')
      throw new CodedError((out.errorCode as never) ?? 'INTERNAL_ERROR', out.errorMessage ?? 'failed');
    return out;
  }

  /** Before the switch: the target's copy goes, the source is whole again (and running if it was). */
  async #undo(run: Run): Promise<void> {
    const serverId = run.row.id;
    const gone = await this.#placement.undoOn(run.target, serverId, { created: run.targetCreated });
    if (!gone) {
      run.t.cleanup_pending = 1;
      await this.#db
        .updateTable('transfers')
        .set({ cleanup_pending: 1 })
        .where('id', '=', run.t.id)
        .execute();
    }
    if (run.archiveId)
      await this.#gateway
        .request(run.source, 'backup_delete', { backupId: run.archiveId }, { serverId })
        .then(() =>
          this.#db.updateTable('transfers').set({ archive_id: null }).where('id', '=', run.t.id).execute(),
        )
        .catch(() => undefined);
    if (run.wasRunning)
      await this.#sub(run, run.source, 'start_server', {}).catch(async (e: Error) => {
        // its Agent unreachable now: started once it is connected again (cleanupNode)
        await this.#db
          .updateTable('transfers')
          .set({ restart_pending: 1 })
          .where('id', '=', run.t.id)
          .execute()
          .catch(() => undefined);
        this.#log.error(
          { serverId, err: e.message },
          'the source did not start again after a failed transfer; retried when its Agent is back',
        );
      });
  }

  async #end(run: Run, r: OperationResult): Promise<void> {
    await this.#db
      .updateTable('transfers')
      .set({
        state: r.success ? 'completed' : 'failed',
        error_code: r.code ?? null,
        error_message: r.message ?? null,
        finished_at: nowIso(),
      })
      .where('id', '=', run.t.id)
      .execute();
    await this.#operations.finish(run.t.operation_id, r);
  }

  /** A node back online: copies that failed transfers left on it are deleted. */
  async cleanupNode(nodeId: string): Promise<void> {
    // each with its server's node now (one query, not one per row)
    const withServerNode = () =>
      this.#db
        .selectFrom('transfers')
        .leftJoin('servers', 'servers.id', 'transfers.server_id')
        .selectAll('transfers')
        .select('servers.node_id as server_node_id');
    const rows = await withServerNode()
      .where('transfers.target_node_id', '=', nodeId)
      .where('transfers.cleanup_pending', '=', 1)
      .execute();
    for (const t of rows) {
      // (a later transfer may have moved it there for real)
      if (t.server_node_id !== nodeId)
        await this.#gateway
          .request(nodeId, 'delete_server', {}, { serverId: t.server_id, timeoutMs: STEP_TIMEOUT_MS })
          .catch((e: unknown) => {
            if (isCodedError(e) && (e.code === 'SERVER_NOT_FOUND' || e.code === 'CONTAINER_NOT_FOUND'))
              return;
            throw e;
          });
      await this.#db.updateTable('transfers').set({ cleanup_pending: 0 }).where('id', '=', t.id).execute();
      this.#log.info({ serverId: t.server_id, nodeId }, 'failed transfer copy removed from the target');
    }
    // the source of a transfer a Panel restart cut: its archive goes, and it runs again if it ran
    const cut = await withServerNode()
      .where('transfers.source_node_id', '=', nodeId)
      .where('transfers.state', '=', 'failed')
      .where((eb) =>
        eb.or([eb('transfers.restart_pending', '=', 1), eb('transfers.archive_id', 'is not', null)]),
      )
      .execute();
    for (const t of cut) {
      const here = t.server_node_id === nodeId;
      if (t.archive_id && here)
        await this.#gateway
          .request(nodeId, 'backup_delete', { backupId: t.archive_id }, { serverId: t.server_id })
          .catch((e: unknown) => {
            if (isCodedError(e) && (e.code === 'BACKUP_NOT_FOUND' || e.code === 'SERVER_NOT_FOUND')) return;
            throw e;
          });
      await this.#db.updateTable('transfers').set({ archive_id: null }).where('id', '=', t.id).execute();
      if (Number(t.restart_pending) === 1 && here) {
        const status = await this.#status(nodeId, t.server_id).catch(() => undefined);
        if (status !== 'running' && status !== 'starting')
          await this.#servers.power(t.server_id, 'start', t.created_by);
        this.#log.warn(
          { serverId: t.server_id, nodeId },
          'the source of a transfer cut by a Panel restart started again',
        );
      }
      await this.#db.updateTable('transfers').set({ restart_pending: 0 }).where('id', '=', t.id).execute();
    }
  }
}
