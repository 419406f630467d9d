/**
 * The `/ws/client` live relay: one socket per tab, reference-counted server subscriptions that
 * are re-sent after every reconnect, reconnect with capped exponential backoff and jitter, and a
 * connection state the layout turns into the "disconnected — reconnecting" banner.
 */
import type { ClientMessage, ClientRequest } from '@cap/protocol/client.ts';

/**
 * The socket's validator (the protocol's zod schemas) loads apart from the page: building those
 * schemas is a large part of a first load's script time, and no page needs them before the
 * first frame arrives. Frames that come before it are kept, in order, until it is here.
 */
type Validator = typeof import('@cap/protocol/client.ts')['ClientMessage'];
let validator: Promise<Validator> | undefined;
const loadValidator = (): Promise<Validator> =>
  (validator ??= import('@cap/protocol/client.ts').then((m) => m.ClientMessage));

export type LiveState = 'connecting' | 'open' | 'reconnecting' | 'closed';
type MessageListener = (msg: ClientMessage) => void;

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10_000;
const PING_EVERY_MS = 25_000;
/** The relay refuses more than 10 messages per 200 ms; stay under it (a dashboard subscribes to many). */
export const SEND_WINDOW_MS = 200;
export const SEND_PER_WINDOW = 8;

/** Delay before reconnect attempt `n` (0-based): doubling from 0.5 s, capped at 10 s, ±20 % jitter. */
export function backoffDelay(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(attempt, 10));
  return Math.round(base * (0.8 + random() * 0.4));
}

export class LiveClient {
  private ws: WebSocket | null = null;
  private state: LiveState = 'closed';
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private readonly subs = new Map<string, number>();
  private readonly listeners = new Set<MessageListener>();
  private readonly stateListeners = new Set<() => void>();
  private readonly url: string;
  private outbox: string[] = [];
  private windowStart = 0;
  private sentInWindow = 0;
  private flushTimer: ReturnType<typeof setTimeout> | undefined;
  /** when the next reconnect attempt happens (ms epoch), for the banner */
  nextRetryAt = 0;

  constructor(url: string) {
    this.url = url;
  }

  getState = (): LiveState => this.state;

  onState = (fn: () => void): (() => void) => {
    this.stateListeners.add(fn);
    return () => this.stateListeners.delete(fn);
  };

  onMessage(fn: MessageListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  start(): void {
    if (this.state !== 'closed') return;
    this.connect();
  }

  stop(): void {
    clearTimeout(this.retryTimer);
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    this.outbox = [];
    clearInterval(this.pingTimer);
    this.setState('closed');
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000, 'bye');
  }

  /** Subscribe to a server's console, status and stats; returns the unsubscribe. */
  subscribe(serverId: string): () => void {
    const n = this.subs.get(serverId) ?? 0;
    this.subs.set(serverId, n + 1);
    if (n === 0) this.send({ type: 'subscribe', serverId });
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (this.subs.get(serverId) ?? 1) - 1;
      if (left <= 0) {
        this.subs.delete(serverId);
        this.send({ type: 'unsubscribe', serverId });
      } else this.subs.set(serverId, left);
    };
  }

  /** Re-request a subscription (fresh history) without changing the reference count. */
  resubscribe(serverId: string): void {
    if (this.subs.has(serverId)) this.send({ type: 'subscribe', serverId });
  }

  /** Queues a request; false when the socket is not open (subscriptions are re-sent on open). */
  send(req: ClientRequest): boolean {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.outbox.push(JSON.stringify(req));
    this.flush();
    return true;
  }

  private flush(): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      this.outbox = [];
      return;
    }
    while (this.outbox.length > 0) {
      const now = Date.now();
      if (now - this.windowStart >= SEND_WINDOW_MS) {
        this.windowStart = now;
        this.sentInWindow = 0;
      }
      if (this.sentInWindow >= SEND_PER_WINDOW) {
        if (!this.flushTimer) {
          this.flushTimer = setTimeout(
            () => {
              this.flushTimer = undefined;
              this.flush();
            },
            SEND_WINDOW_MS - (now - this.windowStart) + 5,
          );
        }
        return;
      }
      ws.send(this.outbox.shift()!);
      this.sentInWindow += 1;
    }
  }

  private setState(s: LiveState): void {
    if (this.state === s) return;
    this.state = s;
    for (const fn of this.stateListeners) fn();
  }

  private connect(): void {
    this.setState(this.attempt === 0 ? 'connecting' : 'reconnecting');
    void loadValidator().then((schema) => {
      this.schema = schema;
    });
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.attempt = 0;
      this.setState('open');
      for (const serverId of this.subs.keys()) this.send({ type: 'subscribe', serverId });
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.send({ type: 'ping' }), PING_EVERY_MS);
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string') return;
      let raw: unknown;
      try {
        raw = JSON.parse(ev.data);
      } catch {
        return;
      }
      this.deliver(raw);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.outbox = [];
      clearInterval(this.pingTimer);
      if (this.state === 'closed') return;
      this.scheduleRetry();
    };
  }

  /** Frames waiting for the validator, in arrival order. */
  private early: unknown[] = [];
  private schema: Validator | null = null;

  private deliver(raw: unknown): void {
    if (this.schema === null || this.early.length > 0) {
      this.early.push(raw);
      void loadValidator().then((schema) => {
        this.schema = schema;
        const queued = this.early;
        this.early = [];
        for (const f of queued) this.validated(f);
      });
      return;
    }
    this.validated(raw);
  }

  private validated(raw: unknown): void {
    if (this.schema === null) return;
    // validated at the edge: a malformed frame is dropped, never rendered
    const parsed = this.schema.safeParse(raw);
    if (!parsed.success) return;
    for (const fn of this.listeners) fn(parsed.data);
  }

  private scheduleRetry(): void {
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.nextRetryAt = Date.now() + delay;
    this.setState('reconnecting');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (this.state !== 'closed') this.connect();
    }, delay);
  }
}
