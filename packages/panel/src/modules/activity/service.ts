/**
 * The activity log: a bus subscriber writes one row per user action (REST mutation, login) and
 * per operation end the Agent reports. Rows carry names, ids, the address and the result, never
 * bodies, passwords or tokens.
 */
import { z } from 'zod';
import type { EventBus, EventOf } from '../../bus/index.ts';
import type { ActivityTable } from '../../db/schema.ts';
import type { UsersRepo } from '../users/repo.ts';
import type { ActivityFilter, ActivityRepo } from './repo.ts';

export const ActivityEntry = z.object({
  id: z.string(),
  at: z.string(),
  /** e.g. `server.power.stop`, `auth.login`, `user.create`, `operation.completed` */
  action: z.string(),
  actorUserId: z.string().nullable(),
  /** the actor's email, or for a login the email that was tried */
  actorEmail: z.string().nullable(),
  ip: z.string().nullable(),
  serverId: z.string().nullable(),
  /** `ok` or an error code */
  result: z.string(),
  /** for `operation.completed`: the operation's id and kind */
  details: z.record(z.string(), z.string()).nullable(),
});
export type ActivityEntry = z.infer<typeof ActivityEntry>;

export const ACTIVITY_MAX_LIMIT = 200;

let seq = 0;
/** sortable within one millisecond of one process (the `at` column orders across them) */
function activityId(): string {
  seq = (seq + 1) % 1_000_000;
  return `act_${Date.now().toString(36)}${seq.toString(36).padStart(4, '0')}${Math.random().toString(36).slice(2, 6)}`;
}

function toEntry(r: ActivityTable): ActivityEntry {
  let details: Record<string, string> | null = null;
  if (r.details) {
    try {
      details = z.record(z.string(), z.string()).parse(JSON.parse(r.details));
    } catch {
      details = null;
    }
  }
  return {
    id: r.id,
    at: r.at,
    action: r.action,
    actorUserId: r.actor_user_id,
    actorEmail: r.actor_email,
    ip: r.ip,
    serverId: r.server_id,
    result: r.result,
    details,
  };
}

export interface ActivityLogger {
  error(obj: object, msg: string): void;
}

export class ActivityService {
  readonly #repo: ActivityRepo;
  readonly #users: UsersRepo;
  readonly #retentionDays: number;
  /** writes in flight (tests and shutdown wait for them) */
  readonly #pending = new Set<Promise<void>>();

  constructor(deps: { repo: ActivityRepo; users: UsersRepo; retentionDays: number }) {
    this.#repo = deps.repo;
    this.#users = deps.users;
    this.#retentionDays = deps.retentionDays;
  }

  /** Subscribes the log to the bus: user actions, and operations that ended. */
  attach(bus: EventBus): void {
    bus.subscribe('user_action', (e) => this.#track(this.#recordAction(e)));
    bus.subscribe('operation', (e) => {
      if (e.success !== undefined) return this.#track(this.#recordOperation(e));
    });
    // every step of a failover (the Panel's own doing: no actor)
    bus.subscribe('server.failover', (e) =>
      this.#track(
        this.#repo.insert({
          id: activityId(),
          at: new Date().toISOString(),
          action: `server.failover.${e.phase}`,
          actor_user_id: null,
          actor_email: null,
          ip: null,
          server_id: e.serverId,
          result: e.outcome,
          details: JSON.stringify({
            ...(e.failoverId ? { failoverId: e.failoverId } : {}),
            fromNodeId: e.fromNodeId,
            ...(e.toNodeId ? { toNodeId: e.toNodeId } : {}),
            ...(e.reason ? { reason: e.reason } : {}),
          }),
        }),
      ),
    );
  }

  #track(p: Promise<void>): Promise<void> {
    this.#pending.add(p);
    return p.finally(() => this.#pending.delete(p));
  }

  /** Resolves once every write started so far has ended. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#pending]);
  }

  async #recordAction(e: EventOf<'user_action'>): Promise<void> {
    await this.#repo.insert({
      id: activityId(),
      at: e.at,
      action: e.action,
      actor_user_id: e.actor,
      actor_email: e.email ?? null,
      ip: e.ip,
      server_id: e.serverId ?? null,
      result: e.result,
      details: e.details ? JSON.stringify(e.details) : null,
    });
  }

  async #recordOperation(e: EventOf<'operation'>): Promise<void> {
    const at = new Date().toISOString();
    const actor = e.actor ?? null;
    const email = actor ? ((await this.#users.findById(actor))?.email ?? null) : null;
    await this.#repo.insert({
      id: activityId(),
      at,
      action: 'operation.completed',
      actor_user_id: actor,
      actor_email: email,
      ip: null,
      server_id: e.serverId,
      result: e.success ? 'ok' : (e.errorCode ?? 'INTERNAL_ERROR'),
      details: JSON.stringify({ operationId: e.operationId, kind: e.operationKind }),
    });
  }

  /** Newest first; `nextOffset` is null on the last page. */
  async list(
    filter: ActivityFilter,
    offset: number,
    limit: number,
  ): Promise<{ entries: ActivityEntry[]; nextOffset: number | null }> {
    const n = Math.min(Math.max(1, limit), ACTIVITY_MAX_LIMIT);
    const rows = await this.#repo.list(filter, offset, n + 1);
    return {
      entries: rows.slice(0, n).map(toEntry),
      nextOffset: rows.length > n ? offset + n : null,
    };
  }

  /** Deletes entries older than the retention (PANEL_ACTIVITY_RETENTION_DAYS). */
  prune(now = Date.now()): Promise<number> {
    return this.#repo.pruneBefore(new Date(now - this.#retentionDays * 86_400_000).toISOString());
  }
}
