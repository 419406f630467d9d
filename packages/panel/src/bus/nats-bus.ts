/**
 * The event bus across Panel replicas (issue 15 item 1): every event is delivered to this
 * process's subscribers at once, in the publisher's turn (as `InProcessBus` does, so nothing that
 * relies on it changes), and published on NATS under `<prefix>.events.<kind>`; what the other
 * replicas publish arrives from NATS and is delivered here to the `everywhere` and `others`
 * subscribers only (the live state, caches of what another replica changed), never to the `origin` ones (the activity log, webhooks: their effects happen
 * once, where the event arose). The connection is made with `noEcho`, so a replica never hears
 * its own events twice.
 *
 * Order: NATS keeps the order of one connection's messages on a subject, and a server's events
 * arise where its Agent is linked (one replica), so each server's events reach every replica in
 * the order they were published.
 *
 * What comes from NATS is untrusted: a message over `maxBytes`, that is not JSON, not an object,
 * or whose `kind` is not one of ours (looked up in a Set, so `constructor` is not a kind) is
 * dropped and counted (`dropped`), never delivered and never fatal. A publish while the broker is
 * away is buffered by the client and sent after it reconnects; one that cannot be sent at all
 * (the connection closed for good, or an event too large) is counted in `unsent` and logged.
 */
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { own, wireObject } from '../lib/wire.ts';
import {
  type BusLogger,
  type DomainEvent,
  type DomainEventKind,
  type EventBus,
  type EventOf,
  type Handler,
  InProcessBus,
  type SubscriptionScope,
} from './index.ts';

/** Every kind of DomainEvent, at run time (the type below fails to compile when one is missing). */
export const EVENT_KINDS = [
  'server.status',
  'server.console',
  'server.stats',
  'server.console_dropped',
  'server.crashed',
  'server.install',
  'server.players',
  'operation',
  'server.update',
  'server.feature',
  'server.remote_console',
  'server.deleted',
  'server.changed',
  'node.online',
  'node.offline',
  'user_action',
  'server.failover',
  'server.image_pull',
  'webhooks.changed',
  'replica.health',
] as const satisfies readonly DomainEventKind[];
type MissingKinds = Exclude<DomainEventKind, (typeof EVENT_KINDS)[number]>;
const allKindsListed: MissingKinds extends never ? true : MissingKinds = true;
void allKindsListed;

const KINDS: ReadonlySet<string> = new Set(EVENT_KINDS);

export interface NatsBusOptions {
  /** subject prefix: several Panels (or test runs) can share one broker */
  prefix?: string;
  /** larger messages are neither sent nor accepted (NATS' own default limit is 1 MiB) */
  maxBytes?: number;
  /** a name the broker shows for this connection */
  name?: string;
}

export interface NatsBusStats {
  /** messages from NATS refused (too large, not JSON, not one of our events) */
  dropped: number;
  /** events that could not be sent (too large, or the connection closed) */
  unsent: number;
  /** events received from other replicas and delivered here */
  received: number;
}

export class NatsBus implements EventBus {
  /** subscribers of this process's events only */
  readonly #origin: InProcessBus;
  /** subscribers of every replica's events */
  readonly #everywhere: InProcessBus;
  /** subscribers of the other replicas' events only */
  readonly #others: InProcessBus;
  readonly #nc: NatsConnection;
  readonly #sub: Subscription;
  readonly #prefix: string;
  readonly #maxBytes: number;
  readonly #log: BusLogger;
  readonly #encoder = new TextEncoder();
  readonly stats: NatsBusStats = { dropped: 0, unsent: 0, received: 0 };
  /**
   * events of this turn of the event loop, shipped together at its end (`#ship`): the client
   * writes what is published in one go with one socket write, where events arriving one by one
   * (each Agent message its own task) cost one write each — a third of a replica's CPU at
   * 1,000 Agents × 20 servers (bench/panel-scale.ts). Order is kept; `flush` and `close` ship first.
   */
  #pending: { subject: string; data: Uint8Array; kind: string }[] = [];
  #shipping: NodeJS.Immediate | undefined;

  /** Connects to the broker (`servers`: `nats://host:port`, comma-separated for a cluster). */
  static async connect(servers: string, log: BusLogger, opts: NatsBusOptions = {}): Promise<NatsBus> {
    const nc = await connect({
      servers: servers.split(',').map((s) => s.trim()),
      name: opts.name ?? 'ctrl-alt-play-panel',
      noEcho: true,
      // a replica keeps trying: the broker coming back must not need a Panel restart
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      waitOnFirstConnect: false,
    });
    return new NatsBus(nc, log, opts);
  }

  constructor(nc: NatsConnection, log: BusLogger, opts: NatsBusOptions = {}) {
    this.#nc = nc;
    this.#log = log;
    this.#origin = new InProcessBus(log);
    this.#everywhere = new InProcessBus(log);
    this.#others = new InProcessBus(log);
    this.#prefix = opts.prefix ?? 'cap';
    this.#maxBytes = opts.maxBytes ?? 512 * 1024;
    this.#sub = nc.subscribe(`${this.#prefix}.events.>`, {
      callback: (err, msg) => {
        if (err) {
          this.#log.error({ err: err.message }, 'event subscription failed');
          return;
        }
        const event = this.#decode(msg.data);
        if (!event) {
          this.stats.dropped++;
          return;
        }
        this.stats.received++;
        this.#everywhere.publish(event);
        this.#others.publish(event);
      },
    });
  }

  #decode(data: Uint8Array): DomainEvent | null {
    const value = wireObject(data, this.#maxBytes);
    const kind = value ? own(value, 'kind') : undefined;
    if (typeof kind !== 'string' || !KINDS.has(kind)) return null;
    return value as unknown as DomainEvent;
  }

  publish(event: DomainEvent): void {
    this.#origin.publish(event);
    this.#everywhere.publish(event);
    const data = this.#encoder.encode(JSON.stringify(event));
    if (data.byteLength > this.#maxBytes) {
      this.stats.unsent++;
      this.#log.error(
        { kind: event.kind, bytes: data.byteLength, max: this.#maxBytes, unsent: this.stats.unsent },
        'event too large for the broker: delivered here only',
      );
      return;
    }
    this.#pending.push({ subject: `${this.#prefix}.events.${event.kind}`, data, kind: event.kind });
    this.#shipping ??= setImmediate(() => this.ship());
  }

  /**
   * Sends the events held back for the end of this turn now. Whatever else goes out on the
   * connection after this call (a live-state answer) then follows every event published before it.
   */
  ship(): void {
    clearImmediate(this.#shipping);
    this.#shipping = undefined;
    const batch = this.#pending;
    this.#pending = [];
    for (const m of batch) {
      try {
        this.#nc.publish(m.subject, m.data);
      } catch (err) {
        this.stats.unsent++;
        this.#log.error(
          { kind: m.kind, err: (err as Error).message, unsent: this.stats.unsent },
          'event not sent to the broker: delivered here only',
        );
      }
    }
  }

  subscribe<K extends DomainEventKind>(
    kind: K,
    handler: Handler<EventOf<K>>,
    scope?: SubscriptionScope,
  ): () => void;
  subscribe(kind: '*', handler: Handler<DomainEvent>, scope?: SubscriptionScope): () => void;
  subscribe(
    kind: DomainEventKind | '*',
    handler: Handler<never>,
    scope: SubscriptionScope = 'origin',
  ): () => void {
    const bus = scope === 'everywhere' ? this.#everywhere : scope === 'others' ? this.#others : this.#origin;
    return bus.subscribe(kind as DomainEventKind, handler as Handler<EventOf<DomainEventKind>>);
  }

  /** The broker connection (the Agent gateway across replicas shares it). */
  get connection(): NatsConnection {
    return this.#nc;
  }

  /** Resolves once the broker has every event published so far. */
  flush(): Promise<void> {
    this.ship();
    return this.#nc.flush();
  }

  async close(): Promise<void> {
    this.ship();
    this.#sub.unsubscribe();
    if (!this.#nc.isClosed()) await this.#nc.drain().catch(() => this.#nc.close());
  }
}
