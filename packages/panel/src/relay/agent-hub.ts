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
  inWindow: number;
}

/** Events per second one Agent may send before the excess is dropped (responses always pass). */
export const AGENT_EVENTS_PER_SECOND = 5000;

/** Events outside the budget: an operation's steps and end, and the hello. */
const NEVER_DROPPED: ReadonlySet<string> = new Set([
  'operation_progress',
  'operation_completed',
  'agent_hello',
]);

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
  droppedEvents = 0;
  readonly #eventsPerSecond: number;

  constructor(opts: {
    log: Logger;
    pingMs: number;
    commandTimeoutMs: number;
    events: AgentHubEvents;
    eventsPerSecond?: number;
  }) {
    this.#eventsPerSecond = opts.eventsPerSecond ?? AGENT_EVENTS_PER_SECOND;
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
    const parsed = parsePanelInbound(data);
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
        // One runaway Agent must not starve the Panel: past the budget, events are dropped.
        const now = Date.now();
        if (now - conn.windowStart >= 1000) {
          if (conn.inWindow > this.#eventsPerSecond) {
            this.#log.warn(
              { nodeId: conn.nodeId, dropped: conn.inWindow - this.#eventsPerSecond },
              'agent event flood',
            );
          }
          conn.windowStart = now;
          conn.inWindow = 0;
        }
        conn.inWindow += 1;
        // an operation's steps and end (and the hello) are never dropped: rows would stay open
        if (conn.inWindow > this.#eventsPerSecond && !NEVER_DROPPED.has(msg.event)) {
          this.droppedEvents += 1;
          return;
        }
        this.#events.onEvent(conn.nodeId, msg);
      }
    } catch (err) {
      this.#log.error({ nodeId: conn.nodeId, err }, 'handling agent message failed');
    }
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
