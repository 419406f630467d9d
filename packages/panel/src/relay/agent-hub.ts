/**
 * One WebSocket per connected Agent: commands down (with pending-by-id and a timeout),
 * responses/events/pongs up. A newer connection for the same node replaces the older one;
 * three missed pongs mark the node offline.
 */
import {
  type Action,
  type ActionPayload,
  CodedError,
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

interface Conn {
  nodeId: string;
  ws: WebSocket;
  missed: number;
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
  onEvent(nodeId: string, msg: EventMessage): void;
  onPong(nodeId: string, msg: PongMessage): void;
}

export class AgentHub {
  readonly #conns = new Map<string, Conn>();
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

  attach(nodeId: string, ws: WebSocket): void {
    const old = this.#conns.get(nodeId);
    if (old) this.#drop(old, CLOSE_REPLACED, 'replaced by a newer connection');
    const conn: Conn = {
      nodeId,
      ws,
      missed: 0,
      pingTimer: setInterval(() => this.#ping(conn), this.#pingMs),
      windowStart: 0,
      inWindow: 0,
      dropped: new Map(),
      dropTimer: undefined,
    };
    this.#conns.set(nodeId, conn);
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
    this.#sendRaw(conn, { id: newMessageId('ping'), type: 'ping', timestamp: new Date().toISOString() });
  }

  #sendRaw(conn: Conn, msg: unknown): void {
    if (conn.ws.readyState === conn.ws.OPEN) conn.ws.send(JSON.stringify(msg));
  }

  #drop(conn: Conn, code?: number, reason?: string, terminate = false): void {
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
      this.#log.info({ nodeId: conn.nodeId, reason }, 'agent disconnected');
      this.#events.onDisconnect(conn.nodeId);
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
