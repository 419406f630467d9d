/**
 * A fake Agent speaking the real protocol over a real WebSocket: registers with the node's
 * secret, connects, sends agent_hello, answers commands with plausible events. For Panel tests
 * and the fan-out bench; the real Agent is tested against the real Panel elsewhere.
 */
import {
  type Action,
  type Command,
  type ErrorCode,
  type EventData,
  type EventName,
  errorResponse,
  event,
  OPERATION_ACTIONS,
  okResponse,
  PROTOCOL_VERSION,
  parseAgentInbound,
  type RegisterResponse,
  type ServerStatus,
} from '@cap/protocol';
import WebSocket from 'ws';

export interface FakeServer {
  status: ServerStatus;
  environment: Record<string, string>;
  eggConfig: unknown;
}

export interface FakeAgentOptions {
  panelUrl: string;
  agentSecret: string;
  name?: string;
  protocolVersion?: number | null;
  /** answer pings (default true) */
  pong?: boolean;
  /** ms from an operation's acknowledgement to its operation_completed (default 40), or per command */
  operationMs?: number | ((cmd: Command) => number);
  /** the error an operation ends with (default none: it succeeds) */
  operationError?: (cmd: Command) => { code: ErrorCode; message: string } | undefined;
  /** per-action override: return data, or throw { code, message } */
  handlers?: Partial<Record<Action, (cmd: Command) => unknown>>;
  /** delay between simulated state changes, ms */
  stepMs?: number;
  /** this Agent's clock against the real one (its pongs' timestamps), ms */
  clockSkewMs?: number;
  /** what its pongs say of its Docker Engine (default: reachable, no errors); null: nothing (an older Agent) */
  docker?: { reachable: boolean; version: string | null; errors: number } | null;
  /** system_info's `transfers` (the HTTP API serves transfer tickets); unset: not reported */
  transfers?: boolean;
}

/** Return this from a handler to leave the command unanswered (to test timeouts). */
export const NO_REPLY = Symbol('no reply');

export class FakeAgentError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export async function registerAgent(panelUrl: string, agentSecret: string, name = 'fake') {
  const res = await fetch(`${panelUrl}/api/agents/register`, {
    method: 'POST',
    headers: { authorization: `Bearer ${agentSecret}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      name,
      hostname: '127.0.0.1',
      port: 0,
      capabilities: {
        maxMemory: '8g',
        maxCpuCores: 4,
        dockerVersion: '20.10.0',
        supportedArchitectures: ['amd64'],
      },
      protocolVersion: PROTOCOL_VERSION,
    }),
  });
  return { status: res.status, body: (await res.json()) as RegisterResponse & { code?: string } };
}

export function connectAgentSocket(
  websocketUrl: string,
  token: string,
  agentId: string,
  protocolVersion: number | null = PROTOCOL_VERSION,
): WebSocket {
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, 'x-agent-id': agentId };
  if (protocolVersion !== null) headers['x-protocol-version'] = String(protocolVersion);
  return new WebSocket(websocketUrl, { headers });
}

export class FakeAgent {
  readonly id: string;
  readonly credentials: RegisterResponse['agent'];
  ws: WebSocket;
  readonly servers = new Map<string, FakeServer>();
  readonly commands: Command[] = [];
  pings = 0;
  /** what system_info reports as `transfers` (from the options; change it, then reconnect) */
  transfers: boolean | undefined;
  readonly #opts: FakeAgentOptions;
  readonly #timers = new Set<NodeJS.Timeout>();

  private constructor(opts: FakeAgentOptions, creds: RegisterResponse['agent'], ws: WebSocket) {
    this.#opts = opts;
    this.transfers = opts.transfers;
    this.credentials = creds;
    this.id = creds.id;
    this.ws = ws;
    ws.on('message', (data) => this.#onMessage(data as Buffer));
  }

  static async start(opts: FakeAgentOptions): Promise<FakeAgent> {
    const reg = await registerAgent(opts.panelUrl, opts.agentSecret, opts.name);
    if (reg.status !== 200) throw new Error(`register failed: ${reg.status} ${JSON.stringify(reg.body)}`);
    const creds = reg.body.agent;
    const ws = connectAgentSocket(
      creds.websocketUrl,
      creds.token,
      creds.id,
      opts.protocolVersion ?? PROTOCOL_VERSION,
    );
    // Listen before the socket opens: the Panel asks for system_info right away.
    const agent = new FakeAgent(opts, creds, ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
    agent.emit('agent_hello', { protocolVersion: PROTOCOL_VERSION, agentVersion: 'fake', servers: [] });
    return agent;
  }

  emit<E extends EventName>(name: E, data: EventData<E>): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(event(name, data, this.id)));
  }

  send(raw: unknown): void {
    this.ws.send(typeof raw === 'string' ? raw : JSON.stringify(raw));
  }

  /** Wait until a command matching the predicate has arrived. */
  async waitForCommand(pred: (c: Command) => boolean, timeoutMs = 5000): Promise<Command> {
    const start = Date.now();
    for (;;) {
      const c = this.commands.find(pred);
      if (c) return c;
      if (Date.now() - start > timeoutMs) throw new Error('timed out waiting for a command');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  #later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
  }

  #setStatus(serverId: string, to: ServerStatus): void {
    const s = this.servers.get(serverId);
    if (!s) return;
    const from = s.status;
    s.status = to;
    this.emit('server_status_changed', { serverId, previousStatus: from, currentStatus: to });
  }

  #walk(serverId: string, states: ServerStatus[], then?: () => void): void {
    const step = this.#opts.stepMs ?? 5;
    states.forEach((st, i) => {
      this.#later(step * (i + 1), () => {
        this.#setStatus(serverId, st);
        if (i === states.length - 1) then?.();
      });
    });
  }

  #onMessage(data: Buffer): void {
    const parsed = parseAgentInbound(data);
    if (!parsed.ok) {
      if (parsed.id) this.ws.send(JSON.stringify(errorResponse(parsed.id, parsed.code, parsed.message)));
      return;
    }
    const msg = parsed.message;
    if (msg.type === 'ping') {
      this.pings += 1;
      if (this.#opts.pong === false) return;
      this.ws.send(
        JSON.stringify({
          id: msg.id,
          type: 'pong',
          timestamp: new Date(Date.now() + (this.#opts.clockSkewMs ?? 0)).toISOString(),
          data: {
            agentStatus: this.#opts.docker?.reachable === false ? 'degraded' : 'healthy',
            activeServers: this.servers.size,
            systemLoad: { cpu: 12.5, memory: 40, disk: 30 },
            ...(this.#opts.docker === null
              ? {}
              : { docker: this.#opts.docker ?? { reachable: true, version: '20.10.24', errors: 0 } }),
          },
        }),
      );
      return;
    }
    this.commands.push(msg);
    try {
      const override = this.#opts.handlers?.[msg.action];
      const data = override ? override(msg) : this.#handle(msg);
      if (data === NO_REPLY) return;
      const operationId = (msg as { operationId?: string }).operationId;
      if (operationId && OPERATION_ACTIONS.has(msg.action) && msg.serverId) {
        // as the real Agent: acknowledged at once, the end reported once the status walk is done
        this.ws.send(JSON.stringify(okResponse(msg.id, { operationId, status: 'accepted' })));
        const serverId = msg.serverId;
        const ms = this.#opts.operationMs;
        const error = this.#opts.operationError?.(msg);
        this.#later(typeof ms === 'function' ? ms(msg) : (ms ?? 40), () =>
          this.emit('operation_completed', {
            operationId,
            serverId,
            action: msg.action,
            success: error === undefined,
            ...(error ? { error } : {}),
          }),
        );
        return;
      }
      this.ws.send(JSON.stringify(okResponse(msg.id, data)));
    } catch (e) {
      const code = e instanceof FakeAgentError ? e.code : 'INTERNAL_ERROR';
      this.ws.send(JSON.stringify(errorResponse(msg.id, code, (e as Error).message)));
    }
  }

  #server(cmd: Command): { id: string; s: FakeServer } {
    const id = cmd.serverId ?? '';
    const s = this.servers.get(id);
    if (!s) throw new FakeAgentError('SERVER_NOT_FOUND', `no server ${id}`);
    return { id, s };
  }

  #handle(cmd: Command): unknown {
    switch (cmd.action) {
      case 'system_info':
        return {
          hostname: 'fake-host',
          os: {
            id: 'debian',
            name: 'Debian GNU/Linux',
            version: '12',
            prettyName: 'Debian GNU/Linux 12 (bookworm)',
          },
          kernel: '6.1.0-fake',
          arch: 'x64',
          dockerVersion: '20.10.24',
          cpus: 4,
          memory: { total: 8 * 1024 ** 3, free: 4 * 1024 ** 3 },
          disk: { path: '/var/lib/ctrl-alt-play', total: 100 * 1024 ** 3, free: 50 * 1024 ** 3 },
          agentVersion: 'fake',
          protocolVersion: PROTOCOL_VERSION,
          ...(this.transfers === undefined ? {} : { transfers: this.transfers }),
        };
      case 'create_server': {
        const p = (cmd as Command<'create_server'>).payload;
        if (this.servers.has(p.serverId)) throw new FakeAgentError('SERVER_EXISTS', 'exists');
        this.servers.set(p.serverId, {
          status: 'offline',
          environment: p.eggConfig.environment,
          eggConfig: p.eggConfig,
        });
        return { serverId: p.serverId, status: 'offline' };
      }
      case 'start_server': {
        const { id, s } = this.#server(cmd);
        if (s.status === 'running') throw new FakeAgentError('INVALID_STATE', 'already running');
        this.#walk(id, ['starting', 'running'], () =>
          this.emit('server_log', {
            serverId: id,
            message: `started with GREETING=${s.environment.GREETING ?? ''}`,
          }),
        );
        return { serverId: id };
      }
      case 'stop_server':
      case 'kill_server': {
        const { id } = this.#server(cmd);
        this.#walk(id, cmd.action === 'kill_server' ? ['offline'] : ['stopping', 'offline']);
        return { serverId: id };
      }
      case 'restart_server': {
        const { id } = this.#server(cmd);
        this.#walk(id, ['stopping', 'offline', 'starting', 'running']);
        return { serverId: id };
      }
      case 'delete_server': {
        const { id } = this.#server(cmd);
        this.servers.delete(id);
        return { serverId: id };
      }
      case 'send_command': {
        const { id, s } = this.#server(cmd);
        if (s.status !== 'running') throw new FakeAgentError('NOT_RUNNING', 'not running');
        const c = (cmd as Command<'send_command'>).payload.command;
        this.#later(1, () => this.emit('server_log', { serverId: id, message: c.replace(/^echo /, '') }));
        return { serverId: id };
      }
      case 'update_server': {
        const { id, s } = this.#server(cmd);
        const p = (cmd as Command<'update_server'>).payload;
        if (p.environment) s.environment = p.environment;
        for (const stage of [
          'validating',
          'stopping',
          'recreating',
          'starting',
          'waiting_ready',
          'done',
        ] as const) {
          this.emit('server_update_progress', { serverId: id, stage });
        }
        return { serverId: id, status: s.status };
      }
      case 'reinstall_server': {
        const { id } = this.#server(cmd);
        this.#walk(id, ['installing'], () => {
          this.emit('install_output', { serverId: id, message: 'installing…\ninstall done' });
          this.emit('install_completed', { serverId: id, success: true, exitCode: 0 });
          this.#setStatus(id, 'offline');
        });
        return { serverId: id };
      }
      case 'get_status': {
        const { id, s } = this.#server(cmd);
        return { serverId: id, status: s.status };
      }
      case 'list_servers':
        return [...this.servers.entries()].map(([serverId, s]) => ({ serverId, status: s.status }));
      case 'list_files':
        this.#server(cmd);
        return {
          path: '/',
          entries: [
            {
              name: 'server.properties',
              type: 'file',
              size: 5,
              mode: '0644',
              modifiedAt: new Date().toISOString(),
            },
          ],
          total: 1,
          offset: (cmd as Command<'list_files'>).payload.offset ?? 0,
          limit: (cmd as Command<'list_files'>).payload.limit ?? 200,
        };
      case 'get_file':
        this.#server(cmd);
        return { path: '/server.properties', size: 5, encoding: 'utf8', content: 'a=b\n' };
    }
  }

  /** The link drops and the same Agent dials in again (its credentials, a new socket, a hello). */
  async reconnect(): Promise<void> {
    await new Promise<void>((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) resolve();
      this.ws.once('close', () => resolve());
      this.ws.terminate();
    });
    const ws = connectAgentSocket(
      this.credentials.websocketUrl,
      this.credentials.token,
      this.id,
      this.#opts.protocolVersion ?? PROTOCOL_VERSION,
    );
    // answers go to the new socket from its first message on (the Panel asks at once)
    this.ws = ws;
    ws.on('message', (data) => this.#onMessage(data as Buffer));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
    this.emit('agent_hello', { protocolVersion: PROTOCOL_VERSION, agentVersion: 'fake', servers: [] });
  }

  /**
   * The same Agent dials in at `websocketUrl` (another Panel replica) while its old socket is
   * still open, as after a network blip the old Panel has not noticed; answers go to the new one.
   */
  async linkAlso(websocketUrl: string): Promise<void> {
    const ws = connectAgentSocket(
      websocketUrl,
      this.credentials.token,
      this.id,
      this.#opts.protocolVersion ?? PROTOCOL_VERSION,
    );
    ws.on('message', (data) => this.#onMessage(data as Buffer));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
    this.ws = ws;
    this.emit('agent_hello', { protocolVersion: PROTOCOL_VERSION, agentVersion: 'fake', servers: [] });
  }

  async close(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    if (this.ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}
