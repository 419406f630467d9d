/**
 * Failover with fencing (issue 16 item 3), opt-in per server (`failover: { enabled, afterSeconds }`).
 *
 * Once a node has been offline longer than a failover-enabled server's `afterSeconds` (counted
 * from its last heartbeat or disconnect, and never from before this Panel started), the server
 * is failed over, once, by a persisted state machine (`server_failovers`) that a Panel restart
 * resumes from its last step:
 *
 *   pending   → the latest backup the Panel can reach without the dead node (object storage: a
 *               backup kept only on that node is unreachable) — none: `failed`, the server left
 *               where it is; a target node by placement's rules (online, capacity, a free
 *               allocation, its image) — none: `failed`; its ports claimed there.
 *   restoring → the old node FENCED (`server_fences`, told to its Agent on every connect before
 *               anything else); the server created on the target (no install: its files come
 *               from the backup), the backup streamed there and restored, the server's node and
 *               allocation switched in the database, then started when it was meant to run.
 *   started | failed (with an error code and a reason).
 *
 * A failure before the switch undoes the target's copy and lifts the fence: the server stays on
 * its old node. Create on the target, switch and undo are the move mechanism transfers use too
 * (modules/transfers/placement.ts). Rounds run through `periodic` (one leader across Panel replicas).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type BackupRecord, CodedError, ErrorCode, isCodedError } from '@cap/protocol';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { EventBus } from '../../bus/index.ts';
import type { Db } from '../../db/index.ts';
import { nowIso } from '../../db/index.ts';
import type { ServerFailoversTable } from '../../db/schema.ts';
import { shortId } from '../../lib/crypto.ts';
import type { Periodic } from '../../lib/periodic.ts';
import type { AgentGateway } from '../../relay/agent-gateway.ts';
import { toPanelBackup } from '../backups/repo.ts';
import { restoreFromS3 } from '../backups/s3-offload.ts';
import type { S3Store } from '../backups/s3-store.ts';
import type { TransferRelay } from '../files/relay.ts';
import type { OperationsService } from '../operations/service.ts';
import type { ServersService } from '../servers/service.ts';
import type { ServerPlacement } from '../transfers/placement.ts';

export const FailoverState = z.enum(['pending', 'restoring', 'started', 'failed']);
export type FailoverState = z.infer<typeof FailoverState>;
export const FailoverPhase = z.enum(['pending', 'restoring', 'fenced', 'started', 'failed']);
export type FailoverPhase = z.infer<typeof FailoverPhase>;

export const Failover = z
  .object({
    id: z.string(),
    serverId: z.string(),
    fromNodeId: z.string(),
    toNodeId: z.string().nullable(),
    backupId: z.string().nullable(),
    state: FailoverState,
    /** the last step done: placed, created, restored, switched */
    step: z.string().nullable(),
    error: z.object({ code: ErrorCode, message: z.string() }).nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
    finishedAt: z.string().nullable(),
  })
  .meta({ id: 'Failover' });
export type Failover = z.infer<typeof Failover>;

export const Fence = z
  .object({ serverId: z.string(), nodeId: z.string(), fencedAt: z.string(), reason: z.string() })
  .meta({ id: 'Fence' });
export type Fence = z.infer<typeof Fence>;

export const NO_OFF_NODE_BACKUP =
  'no backup the Panel can reach without the offline node: failover needs off-node backups (PANEL_BACKUP_STORAGE=s3)';

const TICK_MS = 5000;
/** how long a resumed failover waits for its target node to be connected again */
const TARGET_WAIT_MS = 10 * 60_000;

/** The error with the step it happened in (its code kept). */
function stepError(step: string, e: unknown): CodedError {
  const message = `${step}: ${(e as Error)?.message ?? String(e)}`;
  return new CodedError(isCodedError(e) ? e.code : 'INTERNAL_ERROR', message, { cause: e });
}

function toFailover(r: ServerFailoversTable): Failover {
  const code = ErrorCode.safeParse(r.error_code);
  return {
    id: r.id,
    serverId: r.server_id,
    fromNodeId: r.from_node_id,
    toNodeId: r.to_node_id,
    backupId: r.backup_id,
    state: FailoverState.safeParse(r.state).data ?? 'failed',
    step: r.step,
    error: r.error_code
      ? { code: code.success ? code.data : 'INTERNAL_ERROR', message: r.reason ?? '' }
      : null,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    finishedAt: r.finished_at,
  };
}

export class FailoverService {
  readonly #db: Db;
  readonly #gateway: AgentGateway;
  readonly #servers: ServersService;
  readonly #operations: OperationsService;
  readonly #placement: ServerPlacement;
  readonly #relay: TransferRelay;
  readonly #s3: S3Store | undefined;
  readonly #bus: EventBus;
  readonly #log: Logger;
  readonly #periodic: Periodic;
  readonly #tickMs: number;
  /** offline time is never counted from before this Panel started (it saw nothing then) */
  readonly #startedAt = Date.now();
  /** when each node's link last dropped (this process) */
  readonly #offlineAt = new Map<string, number>();
  /** failovers running in this process */
  readonly #running = new Map<string, Promise<void>>();
  #closing = false;
  #stop: (() => void) | undefined;

  constructor(deps: {
    db: Db;
    gateway: AgentGateway;
    servers: ServersService;
    operations: OperationsService;
    placement: ServerPlacement;
    relay: TransferRelay;
    s3: S3Store | undefined;
    bus: EventBus;
    log: Logger;
    periodic: Periodic;
    tickMs?: number;
  }) {
    this.#db = deps.db;
    this.#gateway = deps.gateway;
    this.#servers = deps.servers;
    this.#operations = deps.operations;
    this.#placement = deps.placement;
    this.#relay = deps.relay;
    this.#s3 = deps.s3;
    this.#bus = deps.bus;
    this.#log = deps.log;
    this.#periodic = deps.periodic;
    this.#tickMs = deps.tickMs ?? TICK_MS;
    this.#bus.subscribe('node.offline', (e) => {
      this.#offlineAt.set(e.nodeId, Date.now());
    });
  }

  start(): void {
    this.#stop ??= this.#periodic.every('failover', this.#tickMs, () => this.tick());
  }

  /** Stops the rounds; a failover in flight is left as persisted (the next Panel resumes it). */
  async close(): Promise<void> {
    this.#closing = true;
    this.#stop?.();
    await Promise.allSettled([...this.#running.values()]);
  }

  // --- fences -------------------------------------------------------------------------------

  async fencesOf(nodeId: string): Promise<Fence[]> {
    const rows = await this.#db
      .selectFrom('server_fences')
      .selectAll()
      .where('fenced_node_id', '=', nodeId)
      .orderBy('fenced_at')
      .execute();
    return rows.map((r) => ({
      serverId: r.server_id,
      nodeId: r.fenced_node_id,
      fencedAt: r.fenced_at,
      reason: r.reason,
    }));
  }

  async fencesOfServer(serverId: string): Promise<Fence[]> {
    const rows = await this.#db
      .selectFrom('server_fences')
      .selectAll()
      .where('server_id', '=', serverId)
      .orderBy('fenced_at')
      .execute();
    return rows.map((r) => ({
      serverId: r.server_id,
      nodeId: r.fenced_node_id,
      fencedAt: r.fenced_at,
      reason: r.reason,
    }));
  }

  /**
   * The node's Agent connected: its fence list goes first (before any start can be asked of it),
   * also when empty (a lifted fence is dropped by the Agent too).
   */
  async nodeConnected(nodeId: string): Promise<void> {
    this.#offlineAt.delete(nodeId);
    await this.#sendFences(nodeId);
  }

  async #sendFences(nodeId: string): Promise<void> {
    const fences = await this.fencesOf(nodeId);
    const answer = (await this.#gateway.request(nodeId, 'fence_servers', {
      servers: fences.map((f) => ({ serverId: f.serverId, fencedAt: f.fencedAt, reason: f.reason })),
    })) as { fenced?: { serverId: string; movedTo: string | null }[] };
    for (const f of answer?.fenced ?? []) {
      this.#log.warn(
        { nodeId, serverId: f.serverId, movedTo: f.movedTo },
        'fenced copy stopped and moved aside',
      );
      this.#publish('fenced', f.serverId, {
        fromNodeId: nodeId,
        reason: `the old node's copy was stopped and its files moved to ${f.movedTo ?? '(no files)'}`,
      });
    }
  }

  // --- failovers ----------------------------------------------------------------------------

  async list(serverId: string, limit = 20): Promise<Failover[]> {
    const rows = await this.#db
      .selectFrom('server_failovers')
      .selectAll()
      .where('server_id', '=', serverId)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return rows.map(toFailover);
  }

  /** When the node's outage began as far as is known (ms; 0: unknown), or null while it is online. */
  #outageStart(nodeId: string, lastHeartbeat: string | null): number | null {
    if (this.#gateway.isOnline(nodeId)) return null;
    const beat = lastHeartbeat ? Date.parse(lastHeartbeat) : 0;
    return Math.max(this.#offlineAt.get(nodeId) ?? 0, Number.isFinite(beat) ? beat : 0);
  }

  /** One round: open failovers resumed, new ones started for servers whose node is away too long. */
  async tick(now = Date.now()): Promise<void> {
    const open = await this.#db
      .selectFrom('server_failovers')
      .selectAll()
      .where('state', 'in', ['pending', 'restoring'])
      .execute();
    const busy = new Set(open.map((r) => r.server_id));
    const candidates = await this.#db
      .selectFrom('servers')
      .innerJoin('nodes', 'nodes.id', 'servers.node_id')
      .select([
        'servers.id as id',
        'servers.node_id as node_id',
        'servers.failover_after_seconds as after',
        'nodes.last_heartbeat_at as beat',
      ])
      .where('servers.failover_enabled', '=', 1)
      .execute();
    const fresh: ServerFailoversTable[] = [];
    for (const c of candidates) {
      if (busy.has(c.id) || this.#closing) continue;
      const outage = this.#outageStart(c.node_id, c.beat);
      if (outage === null) continue;
      // offline time is not counted from before this Panel started (it saw nothing then)
      const since = Math.max(outage, this.#startedAt);
      if (now - since < Number(c.after) * 1000) continue;
      // once per outage (also across Panel restarts): a failover of it from this node since the
      // outage began is not redone
      const tried = await this.#db
        .selectFrom('server_failovers')
        .select('id')
        .where('server_id', '=', c.id)
        .where('from_node_id', '=', c.node_id)
        .where('created_at', '>=', new Date(outage).toISOString())
        .executeTakeFirst();
      if (tried) continue;
      const at = nowIso();
      const row: ServerFailoversTable = {
        id: shortId('fo'),
        server_id: c.id,
        from_node_id: c.node_id,
        to_node_id: null,
        allocation_id: null,
        backup_id: null,
        state: 'pending',
        step: null,
        error_code: null,
        reason: null,
        created_at: at,
        updated_at: at,
        finished_at: null,
      };
      await this.#db.insertInto('server_failovers').values(row).execute();
      this.#log.warn(
        { serverId: c.id, nodeId: c.node_id, offlineSeconds: Math.round((now - since) / 1000) },
        'node offline too long: failing the server over',
      );
      this.#publish('pending', c.id, {
        failoverId: row.id,
        fromNodeId: c.node_id,
        reason: `node offline for ${Math.round((now - since) / 1000)} s (failover after ${c.after} s)`,
      });
      fresh.push(row);
    }
    await Promise.all([...open, ...fresh].map((r) => this.#runOnce(r)));
  }

  #runOnce(row: ServerFailoversTable): Promise<void> {
    const running = this.#running.get(row.id);
    if (running) return running;
    const run = this.#run(row).finally(() => this.#running.delete(row.id));
    this.#running.set(row.id, run);
    return run;
  }

  async #update(id: string, set: Partial<ServerFailoversTable>): Promise<void> {
    await this.#db
      .updateTable('server_failovers')
      .set({ ...set, updated_at: nowIso() })
      .where('id', '=', id)
      .execute();
  }

  #publish(
    phase: FailoverPhase,
    serverId: string,
    e: {
      failoverId?: string;
      fromNodeId: string;
      toNodeId?: string | null;
      outcome?: string;
      reason?: string;
    },
  ): void {
    this.#bus.publish({
      kind: 'server.failover',
      serverId,
      phase,
      failoverId: e.failoverId ?? null,
      fromNodeId: e.fromNodeId,
      toNodeId: e.toNodeId ?? null,
      outcome: e.outcome ?? (phase === 'failed' ? 'INTERNAL_ERROR' : 'ok'),
      ...(e.reason ? { reason: e.reason.slice(0, 1000) } : {}),
    });
  }

  /** The newest completed backup in object storage (a node-only one is on the dead node). */
  async #reachableBackup(serverId: string): Promise<BackupRecord | undefined> {
    if (!this.#s3) return undefined;
    const row = await this.#db
      .selectFrom('backups')
      .selectAll()
      .where('server_id', '=', serverId)
      .where('state', '=', 'completed')
      .where('storage', '=', 's3')
      .orderBy('completed_at', 'desc')
      .orderBy('created_at', 'desc')
      .executeTakeFirst();
    return row ? toPanelBackup(row) : undefined;
  }

  async #fail(row: ServerFailoversTable, err: unknown, switched: boolean): Promise<void> {
    const code: ErrorCode = isCodedError(err) ? err.code : 'INTERNAL_ERROR';
    const message = ((err as Error)?.message ?? String(err)).slice(0, 4000);
    if (!switched && row.to_node_id) {
      // nothing of it stays on the target; the old node keeps it (its fence lifted)
      await this.#placement.undoOn(row.to_node_id, row.server_id, { created: true }).catch(() => undefined);
      await this.#db
        .deleteFrom('server_fences')
        .where('server_id', '=', row.server_id)
        .where('fenced_node_id', '=', row.from_node_id)
        .execute();
      if (this.#gateway.isOnline(row.from_node_id))
        await this.#sendFences(row.from_node_id).catch(() => undefined);
    }
    const at = nowIso();
    await this.#update(row.id, { state: 'failed', error_code: code, reason: message, finished_at: at });
    this.#log.error({ serverId: row.server_id, failoverId: row.id, code, err: message }, 'failover failed');
    this.#publish('failed', row.server_id, {
      failoverId: row.id,
      fromNodeId: row.from_node_id,
      toNodeId: row.to_node_id,
      outcome: code,
      reason: switched ? message : `${message}; the server stays on node ${row.from_node_id}`,
    });
  }

  async #run(start: ServerFailoversTable): Promise<void> {
    const row = { ...start };
    let switched = row.step === 'switched';
    try {
      if (row.state === 'pending') {
        if (this.#gateway.isOnline(row.from_node_id))
          throw new CodedError(
            'INVALID_STATE',
            `node ${row.from_node_id} came back before the failover began`,
          );
        const server = await this.#db
          .selectFrom('servers')
          .select(['node_id'])
          .where('id', '=', row.server_id)
          .executeTakeFirst();
        if (!server) throw new CodedError('SERVER_NOT_FOUND', 'the server was deleted');
        const backup = await this.#reachableBackup(row.server_id);
        if (!backup) throw new CodedError('BACKUP_NOT_FOUND', NO_OFF_NODE_BACKUP);
        // a claim left by an attempt a Panel restart cut short goes first
        await this.#servers.releaseElsewhereThan(row.server_id, row.from_node_id);
        const { node, placement } = await this.#servers.placeElsewhere(row.server_id);
        const allocationId = await this.#servers.claimOn(row.server_id, node.id);
        // back to a node it was failed over from before: that old fence goes (told to it first)
        const lifted = await this.#db
          .deleteFrom('server_fences')
          .where('server_id', '=', row.server_id)
          .where('fenced_node_id', '=', node.id)
          .executeTakeFirst();
        if (Number(lifted.numDeletedRows) > 0) await this.#sendFences(node.id);
        const fencedAt = nowIso();
        // fenced before the copy elsewhere exists: the old node never runs it again once told
        await this.#db
          .insertInto('server_fences')
          .values({
            server_id: row.server_id,
            fenced_node_id: row.from_node_id,
            fenced_at: fencedAt,
            reason: `failed over to node ${node.name} (${node.id})`,
          })
          .onConflict((oc) => oc.columns(['server_id', 'fenced_node_id']).doNothing())
          .execute();
        Object.assign(row, {
          updated_at: nowIso(),
          to_node_id: node.id,
          allocation_id: allocationId,
          backup_id: backup.backupId,
          state: 'restoring',
          step: 'placed',
        });
        await this.#update(row.id, {
          to_node_id: node.id,
          allocation_id: allocationId,
          backup_id: backup.backupId,
          state: 'restoring',
          step: 'placed',
        });
        this.#publish('restoring', row.server_id, {
          failoverId: row.id,
          fromNodeId: row.from_node_id,
          toNodeId: node.id,
          reason: `restoring backup ${backup.backupId} on ${node.name}: ${placement.reason}`,
        });
      }
      const target = row.to_node_id;
      if (!target) throw new CodedError('INTERNAL_ERROR', 'a restoring failover without a target');
      if (!this.#gateway.isOnline(target)) {
        // not yet reconnected (after a Panel restart): a later round goes on, for a while
        if (Date.now() - Date.parse(row.updated_at) < TARGET_WAIT_MS) return;
        throw new CodedError('AGENT_OFFLINE', `the target node ${target} stayed offline`);
      }
      if (this.#gateway.isOnline(row.from_node_id)) await this.#sendFences(row.from_node_id);
      if (row.step === 'placed') {
        // (made by an attempt a Panel restart cut short, the target knows it: restored anyway)
        await this.#placement
          .createOn(target, row.server_id, row.allocation_id, { resumed: true })
          .catch((e: unknown) => {
            throw stepError('creating it on the target', e);
          });
        row.step = 'created';
        await this.#update(row.id, { step: 'created' });
      }
      if (row.step === 'created') {
        const backup = await this.#db
          .selectFrom('backups')
          .selectAll()
          .where('id', '=', row.backup_id ?? '')
          .executeTakeFirst();
        if (!backup || !this.#s3) throw new CodedError('BACKUP_NOT_FOUND', NO_OFF_NODE_BACKUP);
        await restoreFromS3(
          { gateway: this.#gateway, transfers: this.#relay, store: this.#s3 },
          { nodeId: target, serverId: row.server_id },
          toPanelBackup(backup),
          { truncate: true },
        ).catch((e: unknown) => {
          throw stepError(`restoring backup ${backup.id} on the target`, e);
        });
        row.step = 'restored';
        await this.#update(row.id, { step: 'restored' });
      }
      if (row.step === 'restored') {
        await this.#placement.switchTo(row.server_id, target, row.allocation_id);
        switched = true;
        row.step = 'switched';
        await this.#update(row.id, { step: 'switched' });
      }
      const server = await this.#db
        .selectFrom('servers')
        .select(['desired_state'])
        .where('id', '=', row.server_id)
        .executeTakeFirst();
      if (server?.desired_state === 'running') {
        const status = await this.#servers.status(row.server_id).catch(() => undefined);
        if (status !== 'running') {
          const { operationId } = await this.#servers.power(row.server_id, 'start', null);
          const { end } = await this.#operations.waitFor(operationId);
          const r = await end;
          if (!r.success)
            throw new CodedError(
              ErrorCode.safeParse(r.code).success ? (r.code as ErrorCode) : 'INTERNAL_ERROR',
              r.message ?? 'the start failed',
            );
        }
      }
      const at = nowIso();
      await this.#update(row.id, { state: 'started', finished_at: at });
      this.#log.warn({ serverId: row.server_id, from: row.from_node_id, to: target }, 'server failed over');
      this.#publish('started', row.server_id, {
        failoverId: row.id,
        fromNodeId: row.from_node_id,
        toNodeId: target,
        reason: `restored from backup ${row.backup_id} and ${server?.desired_state === 'running' ? 'started' : 'left stopped (it was stopped)'}`,
      });
    } catch (e) {
      // the Panel is stopping: the persisted step is resumed by the next one
      if (this.#closing) return;
      await this.#fail(row, e, switched).catch((err: unknown) =>
        this.#log.error({ err: (err as Error).message, failoverId: row.id }, 'failover state not stored'),
      );
    }
  }

  /** Waits until no failover runs in this process (tests). */
  async settled(): Promise<void> {
    while (this.#running.size > 0) {
      await Promise.allSettled([...this.#running.values()]);
      await sleep(0);
    }
  }
}
