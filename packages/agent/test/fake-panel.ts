/**
 * A small stand-in for the Panel, for Agent tests (and reusable by the Panel's own tests):
 * `POST /api/agents/register`, `POST /api/agents/refresh` and a WebSocket at `/ws/agents`
 * that records every message, can send commands and await their responses, ping, refuse
 * tokens, and drop connections.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type Action,
  type ActionPayload,
  type actionPayloads,
  command,
  type EventData,
  type EventMessage,
  type PanelInbound,
  parsePanelInbound,
  type ResponseMessage,
} from '@cap/protocol';
import { WebSocket, WebSocketServer } from 'ws';
import type { z } from 'zod';

export interface FakePanelOptions {
  secret: string;
  /** token lifetime in ms (expiresAt is sent); default 1 h */
  tokenTtlMs?: number;
  /** send a ping every N ms after connect (0 = never) */
  pingIntervalMs?: number;
  /** answer every registration with this (e.g. 400 PROTOCOL_INCOMPATIBLE) instead of tokens */
  registerAnswer?: { status: number; body: unknown };
}

export class FakePanel {
  readonly secret: string;
  url = '';
  readonly registrations: { body: unknown; headers: IncomingMessage['headers'] }[] = [];
  readonly refreshes: { body: unknown; headers: IncomingMessage['headers'] }[] = [];
  readonly connections: IncomingMessage['headers'][] = [];
  readonly received: PanelInbound[] = [];
  /** close codes of the Agent's connections, as they end */
  readonly closes: number[] = [];
  /** messages that did not parse as the protocol says (should stay empty) */
  readonly invalid: { raw: string; code: string; message: string }[] = [];
  /** tokens currently accepted on the WebSocket */
  readonly validTokens = new Set<string>();
  readonly validRefresh = new Set<string>();
  refuseRefresh = false;
  /** when set, the WebSocket closes every new connection with this code and reason */
  closeWith: { code: number; reason: string } | null = null;
  /** when true, WebSocket upgrades get 503 (the Panel is "down" for the Agent) */
  refuseUpgrades = false;
  /** when true, pings are not sent (to simulate a dead Panel) */
  silent = false;
  /** sent as `fence_servers` after each agent_hello, as the Panel does (null: nothing sent, an older Panel) */
  fenced: { serverId: string; fencedAt: string; reason: string }[] | null = [];
  /** the last `fence_servers` sent, until it was answered (a test counting responses waits for it) */
  fencing: Promise<unknown> = Promise.resolve();
  tokenTtlMs: number;
  readonly #http: Server;
  readonly #wss: WebSocketServer;
  #socket: WebSocket | null = null;
  #waiters: { pred: (m: PanelInbound) => boolean; resolve: (m: PanelInbound) => void }[] = [];
  #pingTimer: NodeJS.Timeout | undefined;
  readonly #pingIntervalMs: number;
  readonly #registerAnswer: FakePanelOptions['registerAnswer'];
  agentId = `agent_${randomBytes(4).toString('hex')}`;

  constructor(opts: FakePanelOptions) {
    this.secret = opts.secret;
    this.tokenTtlMs = opts.tokenTtlMs ?? 3600_000;
    this.#pingIntervalMs = opts.pingIntervalMs ?? 0;
    this.#registerAnswer = opts.registerAnswer;
    this.#wss = new WebSocketServer({ noServer: true });
    this.#http = createServer((req, res) => void this.#onHttp(req, res));
    this.#http.on('upgrade', (req, socket, head) => {
      if (this.refuseUpgrades) {
        socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      const auth = req.headers.authorization ?? '';
      const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
      if (!this.validTokens.has(token) || req.headers['x-agent-id'] !== this.agentId) {
        socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#onSocket(ws, req));
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.#http.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.#http.address() as AddressInfo).port}`;
    return this;
  }

  get wsUrl(): string {
    return this.url.replace(/^http/, 'ws');
  }

  get connected(): boolean {
    return this.#socket?.readyState === WebSocket.OPEN;
  }

  async stop(): Promise<void> {
    clearInterval(this.#pingTimer);
    for (const c of this.#wss.clients) c.terminate();
    this.#wss.close();
    this.#http.closeAllConnections();
    await new Promise<void>((r) => this.#http.close(() => r()));
  }

  #issue(): object {
    const token = `tok_${randomBytes(12).toString('hex')}`;
    const refreshToken = `ref_${randomBytes(12).toString('hex')}`;
    this.validTokens.add(token);
    this.validRefresh.add(refreshToken);
    return {
      success: true,
      agent: {
        id: this.agentId,
        token,
        refreshToken,
        websocketUrl: '/ws/agents',
        expiresAt: new Date(Date.now() + this.tokenTtlMs).toISOString(),
      },
    };
  }

  async #onHttp(req: IncomingMessage, res: import('node:http').ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body: unknown = null;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString() || 'null');
    } catch {
      body = null;
    }
    const send = (status: number, obj: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(obj));
    };
    if (req.method === 'POST' && req.url === '/api/agents/register') {
      this.registrations.push({ body, headers: req.headers });
      if (req.headers.authorization !== `Bearer ${this.secret}`) return send(401, { code: 'AUTH_FAILED' });
      if (this.#registerAnswer) return send(this.#registerAnswer.status, this.#registerAnswer.body);
      return send(200, this.#issue());
    }
    if (req.method === 'POST' && req.url === '/api/agents/refresh') {
      this.refreshes.push({ body, headers: req.headers });
      const rt = (body as { refreshToken?: string } | null)?.refreshToken ?? '';
      if (this.refuseRefresh || !this.validRefresh.has(rt) || req.headers['x-agent-id'] !== this.agentId) {
        return send(401, { code: 'AUTH_FAILED' });
      }
      this.validRefresh.delete(rt);
      return send(200, this.#issue());
    }
    send(404, { code: 'NOT_FOUND' });
  }

  #onSocket(ws: WebSocket, req: IncomingMessage): void {
    this.connections.push(req.headers);
    if (this.closeWith) {
      ws.close(this.closeWith.code, this.closeWith.reason);
      return;
    }
    this.#socket?.terminate();
    this.#socket = ws;
    ws.on('close', (code) => this.closes.push(code));
    ws.on('message', (data) => {
      const raw = data.toString();
      const p = parsePanelInbound(raw);
      if (!p.ok) {
        this.invalid.push({ raw, code: p.code, message: p.message });
        return;
      }
      // the Agent sends the console lines of one tick as one server_log (newline-separated);
      // kept here one per line, as the Panel splits them
      const m = p.message;
      const parts =
        m.type === 'event' && m.event === 'server_log'
          ? (m as EventMessage<'server_log'>).data.message
              .split('\n')
              .map((message) => ({ ...m, data: { ...(m as EventMessage<'server_log'>).data, message } }))
          : [m];
      for (const one of parts as PanelInbound[]) {
        this.received.push(one);
        if (one.type === 'event' && one.event === 'agent_hello' && this.fenced !== null)
          this.fencing = this.command('fence_servers', { servers: this.fenced }).catch(() => undefined);
        for (const w of [...this.#waiters]) {
          if (w.pred(one)) {
            this.#waiters.splice(this.#waiters.indexOf(w), 1);
            w.resolve(one);
          }
        }
      }
    });
    clearInterval(this.#pingTimer);
    if (this.#pingIntervalMs > 0) {
      this.#pingTimer = setInterval(() => {
        if (this.silent || ws.readyState !== WebSocket.OPEN) return;
        ws.send(
          JSON.stringify({ id: `ping_${Date.now()}`, type: 'ping', timestamp: new Date().toISOString() }),
        );
      }, this.#pingIntervalMs);
    }
  }

  /** Resolves with the first message (already received or future) that matches. */
  waitFor<T extends PanelInbound>(
    pred: (m: PanelInbound) => boolean,
    timeoutMs = 20_000,
    since = 0,
  ): Promise<T> {
    const have = this.received.slice(since).find(pred);
    if (have) return Promise.resolve(have as T);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`fake panel: timed out waiting (${timeoutMs} ms)`));
      }, timeoutMs);
      const waiter = {
        pred,
        resolve: (m: PanelInbound) => {
          clearTimeout(timer);
          resolve(m as T);
        },
      };
      this.#waiters.push(waiter);
    });
  }

  /** Waits for an event; `since` = index in `received` to start looking from. */
  waitEvent<E extends EventMessage['event']>(
    name: E,
    pred: (data: EventData<E>) => boolean = () => true,
    opts: { timeoutMs?: number; since?: number } = {},
  ): Promise<EventMessage<E>> {
    return this.waitFor(
      (m) => m.type === 'event' && m.event === name && pred(m.data as EventData<E>),
      opts.timeoutMs,
      opts.since,
    );
  }

  events<E extends EventMessage['event']>(name: E): EventMessage<E>[] {
    return this.received.filter((m) => m.type === 'event' && m.event === name) as EventMessage<E>[];
  }

  async waitConnected(timeoutMs = 20_000): Promise<void> {
    const start = Date.now();
    while (!this.connected) {
      if (Date.now() - start > timeoutMs) throw new Error('fake panel: agent did not connect');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Sends a raw frame to the connected Agent (a Buffer goes as a binary frame). */
  sendRaw(data: string | Buffer): void {
    if (!this.#socket) throw new Error('fake panel: no agent connected');
    this.#socket.send(data);
  }

  /** Sends a command and resolves with its response. */
  async command<A extends Action>(
    action: A,
    payload: z.input<(typeof actionPayloads)[A]>,
    opts: { serverId?: string; timeoutMs?: number; operationId?: string } = {},
  ): Promise<ResponseMessage> {
    // the wire carries the input shape (defaults are the Agent's to fill)
    const cmd = {
      ...command(action, payload as ActionPayload<A>, opts.serverId ? { serverId: opts.serverId } : {}),
      ...(opts.operationId ? { operationId: opts.operationId } : {}),
    };
    const wait = this.waitFor<ResponseMessage>(
      (m) => m.type === 'response' && m.id === cmd.id,
      opts.timeoutMs ?? 60_000,
    );
    this.sendRaw(JSON.stringify(cmd));
    return wait;
  }

  /** Drops the Agent's connection without a close frame. */
  dropAgent(): void {
    this.#socket?.terminate();
    this.#socket = null;
  }
}
