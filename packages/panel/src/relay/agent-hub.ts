/**
 * One WebSocket per connected Agent: commands down (with pending-by-id and a timeout),
 * responses/events/pongs up. A newer connection for the same node replaces the older one;
 * three missed pongs mark the node offline.
 */
import {
  type Action,
  type ActionPayload,
  CodedError,
  type ConsoleAck,
  command,
  type EventMessage,
  event,
  newMessageId,
  type PongMessage,
  parsePanelInbound,
  type ResponseMessage,
} from '@cap/protocol';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';

export const CLOSE_REPLACED = 4000;
export const CLOSE_PROTOCOL = 4406;
export const CLOSE_DEAD = 4408;
export const CLOSE_REMOVED = 4410;

interface Pending {
  resolve: (r: ResponseMessage) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  nodeId: string;
}

/**
 * How a node's link has been (issue 16 item 4), kept per node for this Panel process's life:
 * connections made, heartbeat gaps (pong to pong), round trip, the Agent's clock against ours
 * (its pong's timestamp against the ping's midpoint, as NTP does) and the Docker Engine as its
 * last pong reported it.
 */
export interface LinkHealth {
  /** links made since the Panel started; reconnects = connects − 1 */
  connects: number;
  disconnects: number;
  connectedSince: string | null;
  lastPongAt: string | null;
  /** pongs missed on the current link (3 drop it) */
  missedPongs: number;
  /** ms between the last two pongs; the largest seen */
  lastGapMs: number | null;
  maxGapMs: number | null;
  /** the last ping's round trip, ms */
  rttMs: number | null;
  /** the Agent's clock minus the Panel's, ms (positive: the Agent is ahead) */
  clockSkewMs: number | null;
  docker: { reachable: boolean; version: string | null; errors: number | null; at: string } | null;
}

interface Conn {
  nodeId: string;
  ws: WebSocket;
  /** when this link was attached (ms since the epoch): the newest link of a node wins */
  since: number;
  missed: number;
  /** pings in flight: id → when sent (a few at most) */
  pingsSent: Map<string, number>;
  lastPongMs: number | undefined;
  pingTimer: NodeJS.Timeout;
  windowStart: number;
  /** console lines seen in the current window */
  inWindow: number;
  /** console lines dropped over the budget, per server, not yet reported */
  dropped: Map<string, number>;
  dropTimer: NodeJS.Timeout | undefined;
}

/**
 * Console lines per second one Agent may send before the excess is dropped: a coarse safety net
 * far above the Agent's own throttle (2,000 lines / 100 ms per server, as Wings). Only console
 * lines are ever dropped, and every drop is reported as a `server_log_dropped` of the server;
 * status, crash, install, update and hello events and responses always pass.
 */
export const AGENT_LINES_PER_SECOND = 200_000;
const WINDOW_MS = 1000;

/** lines in one server_log message (a message may carry several, separated by newlines) */
function lineCount(message: string): number {
  let n = 1;
  for (let i = message.indexOf('\n'); i >= 0; i = message.indexOf('\n', i + 1)) n++;
  return n;
}

export interface AgentHubEvents {
  onConnect(nodeId: string): void;
  onDisconnect(nodeId: string): void;
  /** the link was closed because another replica holds a newer one (see `release`) */
  onMoved?(nodeId: string): void;
  onEvent(nodeId: string, msg: EventMessage): void;
  onPong(nodeId: string, msg: PongMessage): void;
  /** the console lines stored as published since the last ping (sent with it: the link's ack) */
  consoleAcks?(nodeId: string): ConsoleAck[];
  /** the operation ends stored since the last ping (sent with it, every time: the Agent learns we ack them) */
  operationAcks?(nodeId: string): string[];
}

export class AgentHub {
  readonly #conns = new Map<string, Conn>();
  readonly #health = new Map<string, LinkHealth>();
  readonly #pending = new Map<string, Pending>();
  readonly #log: Logger;
  readonly #pingMs: number;
  readonly #timeoutMs: number;
  readonly #events: AgentHubEvents;
  invalidMessages = 0;
  /** console lines dropped over the budget (each also reported to the server's subscribers) */
  droppedLines = 0;
  readonly #linesPerSecond: number;

  constructor(opts: {
    log: Logger;
    pingMs: number;
    commandTimeoutMs: number;
    events: AgentHubEvents;
    linesPerSecond?: number;
  }) {
    this.#linesPerSecond = opts.linesPerSecond ?? AGENT_LINES_PER_SECOND;
    this.#log = opts.log;
    this.#pingMs = opts.pingMs;
    this.#timeoutMs = opts.commandTimeoutMs;
    this.#events = opts.events;
  }

  isOnline(nodeId: string): boolean {
    return this.#conns.has(nodeId);
  }
  onlineCount(): number {
    return this.#conns.size;
  }

  /** The node's link health (null: no link since the Panel started). */
  health(nodeId: string): LinkHealth | null {
    const h = this.#health.get(nodeId);
    if (!h) return null;
    const conn = this.#conns.get(nodeId);
    return { ...h, missedPongs: conn ? Math.max(0, conn.missed - (conn.pingsSent.size > 0 ? 1 : 0)) : 0 };
  }

  /** Every node's link health (for metrics). */
  healthAll(): Map<string, LinkHealth> {
    const out = new Map<string, LinkHealth>();
    for (const id of this.#health.keys()) {
      const h = this.health(id);
      if (h) out.set(id, h);
    }
    return out;
  }

  forgetHealth(nodeId: string): void {
    this.#health.delete(nodeId);
  }

  #healthOf(nodeId: string): LinkHealth {
    let h = this.#health.get(nodeId);
    if (!h) {
      h = {
        connects: 0,
        disconnects: 0,
        connectedSince: null,
        lastPongAt: null,
        missedPongs: 0,
        lastGapMs: null,
        maxGapMs: null,
        rttMs: null,
        clockSkewMs: null,
        docker: null,
      };
      this.#health.set(nodeId, h);
    }
    return h;
  }

  #pong(conn: Conn, msg: PongMessage): void {
    const now = Date.now();
    const h = this.#healthOf(conn.nodeId);
    const sent = conn.pingsSent.get(msg.id);
    if (sent !== undefined) {
      conn.pingsSent.delete(msg.id);
      const rtt = now - sent;
      h.rttMs = rtt;
      const agentAt = Date.parse(msg.timestamp);
      if (Number.isFinite(agentAt)) h.clockSkewMs = Math.round(agentAt - (sent + rtt / 2));
    }
    if (conn.lastPongMs !== undefined) {
      const gap = now - conn.lastPongMs;
      h.lastGapMs = gap;
      h.maxGapMs = Math.max(h.maxGapMs ?? 0, gap);
    }
    conn.lastPongMs = now;
    h.lastPongAt = new Date(now).toISOString();
    const d = msg.data.docker;
    h.docker = {
      reachable: d?.reachable ?? msg.data.agentStatus === 'healthy',
      version: d?.version ?? null,
      errors: d?.errors ?? null,
      at: h.lastPongAt,
    };
  }

  attach(nodeId: string, ws: WebSocket): void {
    const old = this.#conns.get(nodeId);
    if (old) this.#drop(old, CLOSE_REPLACED, 'replaced by a newer connection');
    const conn: Conn = {
      nodeId,
      ws,
      since: Date.now(),
      missed: 0,
      pingsSent: new Map(),
      lastPongMs: undefined,
      pingTimer: setInterval(() => this.#ping(conn), this.#pingMs),
      windowStart: 0,
      inWindow: 0,
      dropped: new Map(),
      dropTimer: undefined,
    };
    this.#conns.set(nodeId, conn);
    const h = this.#healthOf(nodeId);
    h.connects += 1;
    h.connectedSince = new Date().toISOString();
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        this.invalidMessages += 1;
        return;
      }
      this.#onMessage(conn, data as Buffer);
    });
    ws.on('close', () => {
      if (this.#conns.get(nodeId) === conn) this.#drop(conn);
    });
    ws.on('error', (err) => this.#log.warn({ nodeId, err: err.message }, 'agent socket error'));
    this.#log.info({ nodeId }, 'agent connected');
    this.#events.onConnect(nodeId);
  }

  #ping(conn: Conn): void {
    if (conn.missed >= 3) {
      this.#log.warn({ nodeId: conn.nodeId }, 'agent missed 3 pongs; dropping');
      this.#drop(conn, CLOSE_DEAD, 'heartbeat timeout', true);
      return;
    }
    conn.missed += 1;
    const id = newMessageId('ping');
    conn.pingsSent.set(id, Date.now());
    // only the last few can still be answered (3 missed drop the link)
    for (const old of conn.pingsSent.keys()) {
      if (conn.pingsSent.size <= 4) break;
      conn.pingsSent.delete(old);
    }
    const consoleAcks = this.#events.consoleAcks?.(conn.nodeId) ?? [];
    const operationAcks = this.#events.operationAcks?.(conn.nodeId);
    this.#sendRaw(conn, {
      id,
      type: 'ping',
      timestamp: new Date().toISOString(),
      ...(consoleAcks.length > 0 ? { consoleAcks } : {}),
      // sent empty too: an Agent seeing it keeps every end it sent until acked (one not seeing
      // it, an older Panel's, keeps only the latest few)
      ...(operationAcks ? { operationAcks } : {}),
    });
  }

  #sendRaw(conn: Conn, msg: unknown): void {
    if (conn.ws.readyState === conn.ws.OPEN) conn.ws.send(JSON.stringify(msg));
  }

  /** When the node's link here was attached (ms since the epoch); undefined: not held here. */
  linkedSince(nodeId: string): number | undefined {
    return this.#conns.get(nodeId)?.since;
  }

  /** The ids of the nodes linked to this process. */
  linkedNodes(): string[] {
    return [...this.#conns.keys()];
  }

  /**
   * Closes the node's link here because a newer one is held by another replica: its requests in
   * flight fail with AGENT_OFFLINE, but no `onDisconnect` (the node is not offline).
   */
  release(nodeId: string, reason: string): void {
    const c = this.#conns.get(nodeId);
    if (c) this.#drop(c, CLOSE_REPLACED, reason, false, true);
  }

  #drop(conn: Conn, code?: number, reason?: string, terminate = false, moved = false): void {
    clearInterval(conn.pingTimer);
    this.#reportDropped(conn);
    if (this.#conns.get(conn.nodeId) === conn) this.#conns.delete(conn.nodeId);
    for (const [id, p] of this.#pending) {
      if (p.nodeId === conn.nodeId && !this.#conns.has(conn.nodeId)) {
        clearTimeout(p.timer);
        this.#pending.delete(id);
        p.reject(new CodedError('AGENT_OFFLINE', 'the agent disconnected before answering'));
      }
    }
    if (terminate) conn.ws.terminate();
    else if (code !== undefined && conn.ws.readyState === conn.ws.OPEN) conn.ws.close(code, reason);
    if (!this.#conns.has(conn.nodeId)) {
      const h = this.#healthOf(conn.nodeId);
      h.disconnects += 1;
      h.connectedSince = null;
      this.#log.info({ nodeId: conn.nodeId, reason }, 'agent disconnected');
      if (moved) this.#events.onMoved?.(conn.nodeId);
      else this.#events.onDisconnect(conn.nodeId);
    }
  }

  #onMessage(conn: Conn, data: Buffer): void {
    let parsed: ReturnType<typeof parsePanelInbound>;
    try {
      parsed = parsePanelInbound(data);
    } catch (err) {
      // the parser answers every input with a code; should it ever throw, the link stays up
      parsed = { ok: false, code: 'INVALID_MESSAGE', message: (err as Error).message };
    }
    if (!parsed.ok) {
      this.invalidMessages += 1;
      this.#log.warn(
        { nodeId: conn.nodeId, code: parsed.code, detail: parsed.message },
        'invalid agent message',
      );
      return;
    }
    const msg = parsed.message;
    conn.missed = 0;
    try {
      if (msg.type === 'response') {
        const p = this.#pending.get(msg.id);
        if (!p || p.nodeId !== conn.nodeId) return;
        clearTimeout(p.timer);
        this.#pending.delete(msg.id);
        p.resolve(msg);
      } else if (msg.type === 'pong') {
        this.#pong(conn, msg);
        this.#events.onPong(conn.nodeId, msg);
      } else {
        if (msg.event === 'server_log' && !this.#admitLines(conn, msg as EventMessage<'server_log'>)) return;
        this.#events.onEvent(conn.nodeId, msg);
      }
    } catch (err) {
      this.#log.error({ nodeId: conn.nodeId, err }, 'handling agent message failed');
    }
  }

  /**
   * One runaway Agent must not starve the Panel: past the budget, console lines (and only they)
   * are dropped, counted per server and reported when the window closes.
   */
  #admitLines(conn: Conn, msg: EventMessage<'server_log'>): boolean {
    const now = Date.now();
    if (now - conn.windowStart >= WINDOW_MS) {
      this.#reportDropped(conn);
      conn.windowStart = now;
      conn.inWindow = 0;
    }
    const n = lineCount(msg.data.message);
    conn.inWindow += n;
    if (conn.inWindow <= this.#linesPerSecond) return true;
    this.droppedLines += n;
    const id = msg.data.serverId;
    conn.dropped.set(id, (conn.dropped.get(id) ?? 0) + n);
    if (!conn.dropTimer) {
      conn.dropTimer = setTimeout(
        () => this.#reportDropped(conn),
        Math.max(1, conn.windowStart + WINDOW_MS - now),
      );
    }
    return false;
  }

  /** Dropped lines, reported in order with the node's other events as `server_log_dropped`. */
  #reportDropped(conn: Conn): void {
    clearTimeout(conn.dropTimer);
    conn.dropTimer = undefined;
    if (conn.dropped.size === 0) return;
    const total = [...conn.dropped.values()].reduce((a, b) => a + b, 0);
    this.#log.warn({ nodeId: conn.nodeId, dropped: total }, 'agent console flood over the Panel budget');
    for (const [serverId, count] of conn.dropped) {
      try {
        this.#events.onEvent(
          conn.nodeId,
          event('server_log_dropped', { serverId, count, reason: 'overloaded' }, conn.nodeId),
        );
      } catch (err) {
        this.#log.error({ nodeId: conn.nodeId, err }, 'reporting dropped lines failed');
      }
    }
    conn.dropped.clear();
  }

  /** Send a command and wait for its response (with `operationId`: its acknowledgement); a failed response throws its code. */
  async request<A extends Action>(
    nodeId: string,
    action: A,
    payload: ActionPayload<A>,
    opts: { serverId?: string; timeoutMs?: number; id?: string; operationId?: string } = {},
  ): Promise<unknown> {
    const conn = this.#conns.get(nodeId);
    if (!conn) throw new CodedError('AGENT_OFFLINE', 'the node is offline');
    const cmd = {
      ...command(action, payload, {
        ...(opts.serverId ? { serverId: opts.serverId } : {}),
        ...(opts.id ? { id: opts.id } : {}),
        agentId: nodeId,
      }),
      // asks for the acknowledgement: the answer comes at once, the end as operation_completed
      ...(opts.operationId ? { operationId: opts.operationId } : {}),
    };
    const res = await new Promise<ResponseMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(cmd.id);
        reject(new CodedError('TIMEOUT', `the agent did not answer ${action} in time`));
      }, opts.timeoutMs ?? this.#timeoutMs);
      this.#pending.set(cmd.id, { resolve, reject, timer, nodeId });
      this.#sendRaw(conn, cmd);
    });
    if (!res.success) {
      throw new CodedError(
        res.error?.code ?? 'INTERNAL_ERROR',
        res.error?.message ?? res.message ?? 'agent error',
      );
    }
    return res.data;
  }

  disconnect(nodeId: string, reason: string): void {
    const c = this.#conns.get(nodeId);
    if (c) this.#drop(c, CLOSE_REMOVED, reason);
  }

  close(): void {
    for (const c of [...this.#conns.values()]) this.#drop(c, 1001, 'panel shutting down');
  }
}
