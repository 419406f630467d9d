/**
 * The Panel's domain event bus: what happened (a server's status, console lines, stats, an
 * operation's step, install output, players, a node going on/offline, a user's action) is
 * published once, where it arises; the live relay, metrics and the activity log subscribe.
 *
 * `EventBus` is the seam: today's `InProcessBus` calls subscribers in this process; a later
 * issue can put a broker (NATS) behind the same interface for several Panel replicas.
 */
import type {
  PlayerEntry,
  RemoteConsoleState,
  RemoteConsoleTransport,
  ResourceSnapshot,
  ServerStatus,
  UpdateStage,
} from '@cap/protocol';
import type { FeatureName } from '@cap/protocol/templates/index.ts';

export type DomainEvent =
  | { kind: 'server.status'; serverId: string; status: ServerStatus; previousStatus?: ServerStatus }
  /**
   * `seq`/`epoch`: the numbering of the last line (LinkSeq), checked again off the bus
   * (line-numbers.ts). `resent`: how many of the first lines are sent again after a lost link and
   * were perhaps published already by a process that died (ConsoleMarks: shown < seq <= intent);
   * a consumer that saw them may drop them by their numbers (serverId, epoch, seq).
   */
  | {
      kind: 'server.console';
      serverId: string;
      lines: string[];
      stream?: string;
      seq?: number;
      epoch?: string;
      resent?: number;
    }
  | { kind: 'server.stats'; serverId: string; stats: ResourceSnapshot }
  /** console lines lost before they reached the Panel (counted by the Agent or the hub) */
  | {
      kind: 'server.console_dropped';
      serverId: string;
      count: number;
      reason: string;
      /** the numbering of the last line it counts (LinkSeq) */
      seq?: number;
      epoch?: string;
      /** how many of those counted were perhaps reported already (as on server.console) */
      resent?: number;
    }
  | { kind: 'server.crashed'; serverId: string; exitCode: number; restarting: boolean }
  | {
      kind: 'server.install';
      serverId: string;
      /** output lines, or the end (success set) */
      lines?: string[];
      success?: boolean;
      exitCode?: number;
    }
  | {
      kind: 'server.players';
      serverId: string;
      online: number;
      max: number;
      list: PlayerEntry[];
    }
  | {
      kind: 'operation';
      serverId: string;
      operationId: string;
      operationKind: string;
      stage: string;
      /** set once the operation ended */
      success?: boolean;
      errorCode?: string;
      actor?: string | null;
      nodeId?: string;
      message?: string;
    }
  /** a config update's step on the Agent (the end is the `update` operation's) */
  | {
      kind: 'server.update';
      serverId: string;
      stage: UpdateStage;
      message?: string;
      /** an image update's end (issue 13 item 3): updated, unchanged or rolled back (failed: stage) */
      outcome?: 'updated' | 'unchanged' | 'rolled_back' | 'failed';
      image?: string;
    }
  /** an image update's pull so far (the layers as the Engine last reported them) */
  | {
      kind: 'server.image_pull';
      serverId: string;
      operationId: string;
      layers: { id: string; status: string; current: number; total: number }[];
      done: boolean;
    }
  /** the console called for a template feature (a dialog for who may act: accept the EULA…) */
  | { kind: 'server.feature'; serverId: string; feature: FeatureName; line: string }
  /** the server's remote console changed state (connected, wrong password, unreachable, idle) */
  | {
      kind: 'server.remote_console';
      serverId: string;
      transport: RemoteConsoleTransport;
      state: RemoteConsoleState;
      message?: string;
    }
  | { kind: 'server.deleted'; serverId: string }
  /**
   * a server's stored definition changed, published by the writer once the row is stored: the
   * other replicas re-read what they keep of it (the hidden values they redact)
   */
  | { kind: 'server.changed'; serverId: string }
  /** a step of a failover (modules/failover): pending, restoring, fenced, started, failed */
  | {
      kind: 'server.failover';
      serverId: string;
      phase: 'pending' | 'restoring' | 'fenced' | 'started' | 'failed';
      failoverId: string | null;
      fromNodeId: string;
      toNodeId: string | null;
      /** 'ok' or the ErrorCode it failed with */
      outcome: string;
      reason?: string;
    }
  /**
   * a replica's word on its own database beats, every beat (lib/replicas.ts `DbHealthWord`): the
   * others hear it (`others`) so that the database down for everyone fences none of them
   */
  | { kind: 'replica.health'; base: string; failingMs: number }
  /** a webhook was made, edited or deleted (every replica reloads the hooks it delivers to) */
  | { kind: 'webhooks.changed'; webhookId: string }
  | { kind: 'node.online'; nodeId: string }
  | { kind: 'node.offline'; nodeId: string }
  | {
      kind: 'user_action';
      /** e.g. `server.power.stop`, `auth.login`, `user.create` */
      action: string;
      /** the acting user's id (null: not logged in, e.g. a failed login) */
      actor: string | null;
      /** for logins: the email that was tried (never a password) */
      email?: string;
      ip: string | null;
      serverId?: string;
      /** 'ok' or an ErrorCode */
      result: string;
      at: string;
      /** small non-secret facts (a subuser change: whose, which permissions) */
      details?: Record<string, string>;
    };

export type DomainEventKind = DomainEvent['kind'];
export type EventOf<K extends DomainEventKind> = Extract<DomainEvent, { kind: K }>;
export type Handler<E> = (event: E) => void | Promise<void>;

/**
 * Which replicas' events a subscriber hears. `origin` (the default): only events published in
 * this process — for subscribers with effects that must happen once (the activity log's rows,
 * webhook deliveries, metrics written to the database). `everywhere`: also those of the other
 * replicas — for what every replica must know (the live state its browsers read). `others`: only
 * those of the other replicas — for a cache this process already brought up to date as it made
 * the change itself (the webhooks, a server's hidden values). In one process `origin` and
 * `everywhere` are the same, and `others` hears nothing.
 */
export type SubscriptionScope = 'origin' | 'everywhere' | 'others';

export interface EventBus {
  /** Delivers to every subscriber of the event's kind and of '*', in subscription order. */
  publish(event: DomainEvent): void;
  /** Returns the unsubscribe function. */
  subscribe<K extends DomainEventKind>(
    kind: K,
    handler: Handler<EventOf<K>>,
    scope?: SubscriptionScope,
  ): () => void;
  subscribe(kind: '*', handler: Handler<DomainEvent>, scope?: SubscriptionScope): () => void;
}

export interface BusLogger {
  error(obj: object, msg: string): void;
}

/**
 * Subscribers run synchronously in the publisher's turn, in subscription order; one that throws
 * (or whose promise rejects) is logged and never stops the others.
 */
export class InProcessBus implements EventBus {
  readonly #handlers: { kind: DomainEventKind | '*'; fn: Handler<DomainEvent> }[] = [];
  readonly #log: BusLogger;

  constructor(log: BusLogger) {
    this.#log = log;
  }

  publish(event: DomainEvent): void {
    // a copy: a subscriber that (un)subscribes while we deliver does not shift the others
    for (const h of this.#handlers.slice()) {
      if (h.kind !== '*' && h.kind !== event.kind) continue;
      try {
        const r = h.fn(event);
        if (r && typeof (r as Promise<void>).catch === 'function')
          (r as Promise<void>).catch((err: unknown) => this.#failed(event, err));
      } catch (err) {
        this.#failed(event, err);
      }
    }
  }

  subscribe<K extends DomainEventKind>(
    kind: K,
    handler: Handler<EventOf<K>>,
    scope?: SubscriptionScope,
  ): () => void;
  subscribe(kind: '*', handler: Handler<DomainEvent>, scope?: SubscriptionScope): () => void;
  // one process: every event is this process's, so `origin` and `everywhere` hear the same
  // and `others` (no other replica) nothing
  subscribe(kind: DomainEventKind | '*', handler: Handler<never>, scope?: SubscriptionScope): () => void {
    if (scope === 'others') return () => undefined;
    const entry = { kind, fn: handler as Handler<DomainEvent> };
    this.#handlers.push(entry);
    return () => {
      const i = this.#handlers.indexOf(entry);
      if (i >= 0) this.#handlers.splice(i, 1);
    };
  }

  #failed(event: DomainEvent, err: unknown): void {
    this.#log.error(
      { kind: event.kind, err: err instanceof Error ? err.message : String(err) },
      'event subscriber failed; the others go on',
    );
  }
}
