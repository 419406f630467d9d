/**
 * Live state across Panel replicas (issue 15 item 1): every replica keeps each server's console
 * ring (and install output, stats, players, remote console state) from the bus events of every
 * replica (relay/live-relay.ts listens `everywhere`); what a replica cannot have heard (lines
 * printed before it started, or while its broker link was down) it asks the replica holding the
 * server's Agent for, once, before the first browser's `subscribed` is built.
 *
 * Subject `<p>.live.snapshot.<nodeId>`: every replica subscribes (wildcard) and only the one whose
 * hub holds the node's link answers, with `LiveStore.snapshot` of the server. The asker sends
 * from its own inbox subscription (not `request()`'s promise): the answer is applied in the
 * broker's delivery order, inside the callback, before any later message is handled.
 *
 * Why this keeps order and loses nothing: a server's events arise on the holder, which updates
 * its ring and publishes the event on its one broker connection in the same turn, and answers a
 * snapshot request on that connection too. NATS delivers one connection's messages to a
 * subscriber in the order they were sent, so every event the holder published before its answer
 * reaches the asker before the answer (and is in the answer's ring), and every later one after
 * it. The asker replaces its ring with the answer's, then appends what follows: the holder's ring,
 * exactly. Lines reach browsers subscribed after the answer only (the client relay subscribes the
 * socket once `ready` resolves), so none comes twice.
 *
 * The answer carries the hidden values an update holds there too (relay/secrets-sync.ts): the
 * ring may hold lines printed with them.
 *
 * A replica is "synced" for a server from its answer on, until its broker connection drops (then
 * it may have missed events: all are asked again). Where no other replica holds the node (it is
 * linked here, or offline) nothing is asked. An answer that does not come within `timeoutMs`
 * leaves what this replica has (counted in `stats.failed`, asked again next time).
 *
 * What arrives is untrusted: a request for a server the holder's Agent does not own gets no
 * answer; an answer over `maxBytes` or of the wrong shape is dropped (`stats.dropped`). The holder
 * cuts its answer to fit: install output first, then the oldest console lines.
 */
import { PlayerEntry, RemoteConsoleState, RemoteConsoleTransport, ResourceSnapshot } from '@cap/protocol';
import { createInbox, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { z } from 'zod';
import { MAX_HELD_SECRETS } from './live-state.ts';
import type { LiveSnapshot, LiveStore } from './live-store.ts';
import type { LiveSync } from './live-sync.ts';

export interface NatsLiveLogger {
  warn(obj: object, msg: string): void;
}

export interface NatsLiveSyncOptions {
  nc: NatsConnection;
  prefix?: string;
  live: LiveStore;
  /** true when this replica's hub holds the node's link and the server is the node's */
  serves(nodeId: string, serverId: string): boolean;
  /** true when this replica holds the node's link */
  holds(nodeId: string): boolean;
  /** true when the node is linked anywhere (here or on another replica) */
  online(nodeId: string): boolean;
  log: NatsLiveLogger;
  /**
   * Called just before an answer goes out: the bus sends the events it holds back for the end of
   * the turn (NatsBus.ship), so that the answer follows every event already in the ring it
   * carries (else the asker gets a line in the ring and then once more off the bus)
   */
  beforeAnswer?: () => void;
  /** how long to wait for the holder's answer (default 2 s) */
  timeoutMs?: number;
  /** larger messages are neither sent nor accepted (default: the broker's max_payload) */
  maxBytes?: number;
}

export interface NatsLiveStats {
  /** snapshots received and applied */
  synced: number;
  /** asks that got no answer in time */
  failed: number;
  /** answers or requests refused (too large, wrong shape) */
  dropped: number;
  /** snapshots sent to other replicas */
  served: number;
}

const NODE_ID = /^[A-Za-z0-9_-]{1,128}$/;
const SERVER_ID = /^[A-Za-z0-9_-]{1,128}$/;
const Line = z.string().max(16 * 1024);
const Snapshot = z.object({
  serverId: z.string().regex(SERVER_ID),
  history: z.array(Line).max(10_000),
  install: z
    .object({
      lines: z.array(Line).max(10_000),
      success: z.boolean().optional(),
      exitCode: z.number().int().min(-1e9).max(1e9).optional(),
    })
    .optional(),
  stats: ResourceSnapshot.optional(),
  players: z
    .object({
      online: z.number().int().min(0).max(1e6),
      max: z.number().int().min(0).max(1e6),
      list: z.array(PlayerEntry).max(256),
    })
    .optional(),
  remoteConsole: z
    .object({
      transport: RemoteConsoleTransport,
      state: RemoteConsoleState,
      message: z.string().max(1024).optional(),
    })
    .optional(),
  held: z
    .array(
      z.object({
        key: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
        values: z.array(z.string().max(4096)).max(64),
      }),
    )
    .max(MAX_HELD_SECRETS)
    .optional(),
});

interface Pending {
  serverId: string;
  resolve(): void;
  timer: NodeJS.Timeout;
}

export class NatsLiveSync implements LiveSync {
  readonly #o: NatsLiveSyncOptions;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  readonly #maxBytes: number;
  readonly #encoder = new TextEncoder();
  readonly #decoder = new TextDecoder('utf-8', { fatal: true });
  readonly #synced = new Set<string>();
  /** an ask under way per server (browsers opening it at once share it) */
  readonly #asking = new Map<string, Promise<void>>();
  readonly #pending = new Map<string, Pending>();
  readonly #inbox: string;
  readonly #subs: Subscription[] = [];
  #seq = 0;
  #closed = false;
  readonly stats: NatsLiveStats = { synced: 0, failed: 0, dropped: 0, served: 0 };

  constructor(opts: NatsLiveSyncOptions) {
    this.#o = opts;
    this.#prefix = opts.prefix ?? 'cap';
    this.#timeoutMs = opts.timeoutMs ?? 2000;
    this.#maxBytes = opts.maxBytes ?? opts.nc.info?.max_payload ?? 1024 * 1024;
    this.#inbox = createInbox(`${this.#prefix}.live.inbox`);
  }

  start(): void {
    const nc = this.#o.nc;
    this.#subs.push(
      nc.subscribe(`${this.#prefix}.live.snapshot.*`, { callback: (_e, m) => this.#serve(m) }),
      nc.subscribe(`${this.#inbox}.*`, { callback: (_e, m) => this.#answer(m) }),
    );
    // a dropped broker link may have lost events: every server is asked again
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect' || s.type === 'reconnect') this.#synced.clear();
      }
    })().catch(() => undefined);
  }

  close(): void {
    this.#closed = true;
    for (const s of this.#subs) s.unsubscribe();
    this.#subs.length = 0;
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.resolve();
    }
    this.#pending.clear();
  }

  ready(serverId: string, nodeId: string): Promise<void> {
    if (this.#closed || this.#synced.has(serverId)) return Promise.resolve();
    if (!NODE_ID.test(nodeId) || !SERVER_ID.test(serverId)) return Promise.resolve();
    // linked here: the Agent's events arrive here first; offline: nobody to ask
    if (this.#o.holds(nodeId) || !this.#o.online(nodeId)) return Promise.resolve();
    const under = this.#asking.get(serverId);
    if (under) return under;
    const p = new Promise<void>((resolve) => {
      const token = String(++this.#seq);
      const timer = setTimeout(() => {
        this.#pending.delete(token);
        this.stats.failed++;
        this.#o.log.warn({ serverId, nodeId }, 'no live snapshot from the replica holding the node');
        resolve();
      }, this.#timeoutMs);
      this.#pending.set(token, { serverId, resolve, timer });
      try {
        this.#o.nc.publish(
          `${this.#prefix}.live.snapshot.${nodeId}`,
          this.#encoder.encode(JSON.stringify({ serverId })),
          { reply: `${this.#inbox}.${token}` },
        );
      } catch {
        clearTimeout(timer);
        this.#pending.delete(token);
        this.stats.failed++;
        resolve();
      }
    }).finally(() => this.#asking.delete(serverId));
    this.#asking.set(serverId, p);
    return p;
  }

  #json(data: Uint8Array): unknown {
    if (data.byteLength > this.#maxBytes) return undefined;
    try {
      return JSON.parse(this.#decoder.decode(data));
    } catch {
      return undefined;
    }
  }

  /** Another replica asks for a server of a node held here. */
  #serve(m: Msg): void {
    const nodeId = m.subject.slice(`${this.#prefix}.live.snapshot.`.length);
    if (!m.reply || !NODE_ID.test(nodeId) || !this.#o.holds(nodeId)) return;
    const body = this.#json(m.data);
    const serverId =
      typeof body === 'object' && body !== null && Object.hasOwn(body, 'serverId')
        ? (body as { serverId: unknown }).serverId
        : undefined;
    if (typeof serverId !== 'string' || !SERVER_ID.test(serverId)) {
      this.stats.dropped++;
      return;
    }
    if (!this.#o.serves(nodeId, serverId)) return;
    const data = this.#fit({ serverId, ...this.#o.live.snapshot(serverId) });
    this.#o.beforeAnswer?.();
    m.respond(data);
    this.stats.served++;
  }

  /** The snapshot, encoded, cut to the byte limit (install output first, then the oldest lines). */
  #fit(snap: LiveSnapshot & { serverId: string }): Uint8Array {
    // room for the broker's headers and the subject
    const max = this.#maxBytes - 1024;
    let data = this.#encoder.encode(JSON.stringify(snap));
    if (data.byteLength <= max) return data;
    const { install: _dropped, ...rest } = snap;
    const cut = { ...rest, history: [...rest.history] };
    data = this.#encoder.encode(JSON.stringify(cut));
    while (data.byteLength > max && cut.history.length) {
      // drop at least the share of lines that is over
      const over = data.byteLength - max;
      const n = Math.max(1, Math.ceil((cut.history.length * over) / data.byteLength));
      cut.history.splice(0, n);
      data = this.#encoder.encode(JSON.stringify(cut));
    }
    // (only values of absurd size get here: the ring is empty then, nothing to redact in it)
    if (data.byteLength > max) {
      const { held: _values, ...bare } = cut;
      data = this.#encoder.encode(JSON.stringify(bare));
    }
    return data;
  }

  /** The holder's answer: applied now, in the broker's delivery order. */
  #answer(m: Msg): void {
    const token = m.subject.slice(this.#inbox.length + 1);
    const pending = this.#pending.get(token);
    if (!pending) return;
    const parsed = Snapshot.safeParse(this.#json(m.data));
    if (!parsed.success || parsed.data.serverId !== pending.serverId) {
      this.stats.dropped++;
      return;
    }
    this.#pending.delete(token);
    clearTimeout(pending.timer);
    const { serverId, ...snap } = parsed.data;
    this.#o.live.restore(serverId, snap as LiveSnapshot);
    this.#synced.add(serverId);
    this.stats.synced++;
    pending.resolve();
  }
}
