/**
 * All servers of this Agent and the one command handler both transports (Panel WebSocket, HTTP)
 * go through. Every command gets exactly one response; failures carry a code.
 */
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  CodedError,
  type Command,
  CreateServerPayload,
  type ErrorCode,
  type EventData,
  errorResponse,
  isCodedError,
  OPERATION_ACTIONS,
  okResponse,
  parseAgentInbound,
  type ResponseMessage,
  ServerStatus,
  serverIdOf,
} from '@cap/protocol';
import type { Logger } from 'pino';
import type { AgentConfig } from '../config/config.ts';
import { containerName } from '../environment/docker/container-spec.ts';
import type { DockerEnvironment } from '../environment/docker/docker.ts';
import {
  chownPathInside,
  fileSizeInside,
  getFile,
  listFiles,
  writeFileInside,
} from '../filesystem/filesystem.ts';
import { systemInfo } from '../system/system-info.ts';
import { type Emit, type InstallState, Server } from './server.ts';

/** The power-like actions: each answers `{ serverId, status }` once the server has done it. */
const POWER_ACTIONS: Record<
  'reinstall_server' | 'start_server' | 'stop_server' | 'restart_server' | 'kill_server',
  (s: Server, payload: Record<string, unknown>) => Promise<unknown>
> = {
  reinstall_server: (s) => s.reinstall(),
  start_server: (s) => s.start(),
  stop_server: (s, p) => s.stop(p as Command<'stop_server'>['payload']),
  restart_server: (s, p) => s.restart(p as Command<'restart_server'>['payload']),
  kill_server: (s) => s.kill(),
};

/**
 * A write that failed for want of space or quota (the Agent's data disk full) is not "unexpected":
 * INSUFFICIENT_RESOURCES, naming the path written and the data directory it is on.
 */
export function diskFull(e: unknown, dataDir: string): CodedError | null {
  const err = e as NodeJS.ErrnoException | undefined;
  if (err?.code !== 'ENOSPC' && err?.code !== 'EDQUOT') return null;
  const what = err.code === 'ENOSPC' ? 'no space left on the disk' : 'the disk quota is exhausted';
  const where = typeof err.path === 'string' ? ` writing ${err.path}` : '';
  return new CodedError(
    'INSUFFICIENT_RESOURCES',
    `the Agent's data disk is full (${what})${where}; data directory ${path.resolve(dataDir)}`,
    { cause: e },
  );
}

/** An accepted operation that has not ended (persisted in `<dataDir>/operations.json`). */
interface ActiveOperation {
  operationId: string;
  serverId: string;
  action: Command['action'];
  acceptedAt: string;
  /** set when a kill pre-empted it: it ends as OPERATION_SUPERSEDED whatever it did */
  supersededBy?: string;
}

const ACK_MESSAGES: Partial<Record<Command['action'], string>> = {
  create_server: 'Server create command received',
  start_server: 'Server start command received',
  stop_server: 'Server stop command received',
  restart_server: 'Server restart command received',
  kill_server: 'Server kill command received',
  reinstall_server: 'Server reinstall command received',
  update_server: 'Server update command received',
};

export class ServerManager {
  readonly servers = new Map<string, Server>();
  readonly #docker: DockerEnvironment;
  readonly #config: AgentConfig;
  readonly #log: Logger;
  readonly #emit: Emit;
  readonly serversDir: string;
  #statsTimer: NodeJS.Timeout | undefined;
  #sampling = false;
  /** server ids being created right now, so two concurrent creates cannot both pass the check */
  readonly #creating = new Set<string>();
  /** Docker answered the boot listing, so "not running" below is known, not a guess */
  #listed = false;
  /** serverId → the operation running on it (the per-server try-lock of power actions) */
  readonly #ops = new Map<string, ActiveOperation>();
  /** every accepted operation not ended yet (a superseded one stays until it returns) */
  readonly #accepted = new Map<string, ActiveOperation>();
  /** operations accepted before the last Agent restart and never finished (see reportInterrupted) */
  #interrupted: ActiveOperation[] = [];
  #opWrites: Promise<void> = Promise.resolve();
  #shuttingDown = false;

  /** closes SFTP sessions (set by the SFTP server when it runs); answers how many were closed */
  sftpRevoke: ((userId: string, serverId?: string) => number) | null = null;

  constructor(opts: { docker: DockerEnvironment; config: AgentConfig; logger: Logger; emit: Emit }) {
    this.#docker = opts.docker;
    this.#config = opts.config;
    this.#log = opts.logger;
    this.#emit = opts.emit;
    this.serversDir = path.resolve(opts.config.dataDir, 'servers');
  }

  #deps() {
    return {
      docker: this.#docker,
      config: this.#config,
      logger: this.#log,
      // a status change of a server with an operation in flight is also a step of it
      emit: ((name, data) => {
        this.#emit(name, data);
        if (name !== 'server_status_changed') return;
        const d = data as EventData<'server_status_changed'>;
        const op = this.#ops.get(d.serverId);
        if (op && d.currentStatus !== 'stopping') this.#progress(op, d.currentStatus, d.reason);
      }) as Emit,
      serversDir: this.serversDir,
      stage: (serverId: string, stage: string, message?: string) => {
        const op = this.#ops.get(serverId);
        if (op) this.#progress(op, stage, message);
      },
    };
  }

  get #opsFile(): string {
    return path.resolve(this.#config.dataDir, 'operations.json');
  }

  /** The accepted operations, written whole to a temp file and renamed over (one write at a time). */
  #persistOps(): Promise<void> {
    const write = async () => {
      const tmp = `${this.#opsFile}.tmp`;
      await writeFile(tmp, JSON.stringify([...this.#accepted.values()], null, 2), { mode: 0o600 });
      await rename(tmp, this.#opsFile);
    };
    const next = this.#opWrites.then(write);
    this.#opWrites = next.catch((e) => this.#log.error({ err: e }, 'operations not persisted'));
    return this.#opWrites;
  }

  async #loadInterrupted(): Promise<void> {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(this.#opsFile, 'utf8'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        this.#log.error({ err: e }, 'unreadable operations file, ignored');
      return;
    }
    if (!Array.isArray(raw)) return;
    for (const o of raw) {
      const op = o as Partial<ActiveOperation>;
      if (typeof op?.operationId === 'string' && typeof op.serverId === 'string' && op.action)
        this.#interrupted.push(op as ActiveOperation);
    }
  }

  /**
   * After a restart: every operation accepted before it and not finished ends as AGENT_RESTARTED
   * (queued for the Panel like any event, so it arrives after the next agent_hello).
   */
  reportInterrupted(): void {
    for (const op of this.#interrupted) {
      this.#log.warn({ serverId: op.serverId, operationId: op.operationId }, 'operation cut by a restart');
      this.#emit('operation_completed', {
        operationId: op.operationId,
        serverId: op.serverId,
        action: op.action,
        success: false,
        error: { code: 'AGENT_RESTARTED', message: `the Agent restarted while ${op.action} ran` },
      });
    }
    this.#interrupted = [];
    void this.#persistOps();
  }

  /** The operations running now, for agent_hello. */
  operations(): NonNullable<EventData<'agent_hello'>['operations']> {
    return [...this.#accepted.values()].map((o) => ({
      operationId: o.operationId,
      serverId: o.serverId,
      action: o.action,
    }));
  }

  #progress(op: ActiveOperation, stage: string, message?: string): void {
    this.#emit('operation_progress', {
      operationId: op.operationId,
      serverId: op.serverId,
      stage,
      ...(message ? { message: message.slice(0, 4096) } : {}),
    });
  }

  /** Loads stored definitions and re-attaches to running containers, without restarting them. */
  async init(): Promise<void> {
    await mkdir(this.serversDir, { recursive: true, mode: 0o700 });
    await this.#loadInterrupted();
    for (const f of await readdir(this.serversDir)) {
      if (!f.endsWith('.json')) continue;
      try {
        const raw = JSON.parse(await readFile(path.join(this.serversDir, f), 'utf8'));
        const def = CreateServerPayload.parse(raw);
        const state = (raw as { installState?: unknown }).installState;
        const installState: InstallState =
          state === 'running' || state === 'done' || state === 'failed' ? state : 'none';
        const last = ServerStatus.safeParse((raw as { lastState?: unknown }).lastState);
        this.servers.set(
          def.serverId,
          new Server(
            def.serverId,
            def.eggConfig,
            this.#deps(),
            installState,
            last.success ? last.data : undefined,
          ),
        );
      } catch (e) {
        this.#log.error({ err: e, file: f }, 'unreadable server definition, skipped');
      }
    }
    let containers: Awaited<ReturnType<DockerEnvironment['listManaged']>> = [];
    let installers: typeof containers = [];
    let listed = false;
    try {
      // an unreachable TCP Engine must not hold up the boot (the HTTP API and /health come first)
      let timer: NodeJS.Timeout | undefined;
      [containers, installers] = await Promise.race([
        Promise.all([
          this.#docker.listManaged(this.#config.nodeId),
          this.#docker.listInstallers(this.#config.nodeId),
        ]),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('docker did not answer within 10 s')), 10_000);
        }),
      ]).finally(() => clearTimeout(timer));
      listed = true;
      this.#listed = true;
    } catch (e) {
      this.#log.error({ err: e }, 'docker unreachable at boot: servers left offline until it is back');
    }
    await Promise.all(
      containers.map(async (c) => {
        if (c.name === `${containerName(c.serverId)}-next`) {
          // the new container of an update the Agent did not finish: the old one is still there
          this.#log.warn({ serverId: c.serverId, containerId: c.id }, 'unfinished update: container removed');
          await this.#docker.remove(c.id).catch(() => undefined);
          return;
        }
        const server = this.servers.get(c.serverId);
        if (!server) {
          this.#log.warn(
            { serverId: c.serverId, containerId: c.id },
            'labelled container without a definition',
          );
          return;
        }
        const state = await this.#docker.inspect(c.id);
        if (!state) return;
        try {
          await server.adopt(state);
          this.#log.info({ serverId: c.serverId, running: state.running, action: 'reattach' }, 'reattached');
        } catch (e) {
          this.#log.error({ err: e, serverId: c.serverId }, 'reattach failed');
        }
      }),
    );
    // installs that ran on while the Agent was away: wait for them; the ones gone count as failed
    for (const c of installers) {
      const server = this.servers.get(c.serverId);
      if (server) {
        server.adoptInstall(c.id);
        this.#log.info(
          { serverId: c.serverId, containerId: c.id, action: 'reattach' },
          'reattached to installer',
        );
      }
    }
    if (listed) {
      await Promise.all(
        [...this.servers.values()].map((s) =>
          s.installing ? undefined : s.installInterrupted().catch(() => undefined),
        ),
      );
    }
    this.#statsTimer = setInterval(() => void this.#statsTick(), this.#config.statsIntervalMs);
    this.#statsTimer.unref();
  }

  /**
   * Starts the servers whose container stopped while the Agent was down (see
   * `Server.resumeAfterDowntime`), through the normal power path. Called once the Panel link
   * exists, so their status events are queued for it; does not wait for the starts.
   */
  resumeAfterDowntime(): void {
    if (!this.#listed) return;
    for (const s of this.servers.values()) {
      if (!s.resumeAfterDowntime) continue;
      const reason = 'restarted after agent downtime';
      this.#log.info({ serverId: s.id, action: 'start', reason }, reason);
      s.start(reason).catch((e) =>
        this.#log.error({ err: e, serverId: s.id, action: 'start', reason }, 'start failed'),
      );
    }
  }

  async #statsTick(): Promise<void> {
    if (this.#sampling) return; // never pile up ticks when the disk is slow
    this.#sampling = true;
    try {
      await Promise.all(
        [...this.servers.values()]
          .filter((s) => s.running)
          .map(async (s) => {
            const r = await s.sample().catch(() => null);
            if (r && s.running) this.#emit('resource_update', r);
          }),
      );
    } finally {
      this.#sampling = false;
    }
  }

  /** Stop watching; containers keep running. The last statuses are on disk when it resolves. */
  async shutdown(): Promise<void> {
    this.#shuttingDown = true;
    clearInterval(this.#statsTimer);
    for (const s of this.servers.values()) s.detach();
    await Promise.all([...this.servers.values()].map((s) => s.flushed()));
    await this.#opWrites;
  }

  summary(): EventData<'agent_hello'>['servers'] {
    return [...this.servers.values()].map((s) => ({
      serverId: s.id,
      status: s.status,
      containerId: s.containerId,
    }));
  }

  activeCount(): number {
    return [...this.servers.values()].filter((s) => s.running).length;
  }

  #server(id: string | undefined): Server {
    const s = id ? this.servers.get(id) : undefined;
    if (!s) throw new CodedError('SERVER_NOT_FOUND', `no server ${id ?? ''} on this node`);
    return s;
  }

  /** Parses and runs one raw command (JSON text or object). Never throws. */
  async handleRaw(raw: unknown): Promise<ResponseMessage> {
    const parsed = parseAgentInbound(raw);
    if (!parsed.ok) return errorResponse(parsed.id ?? 'unknown', parsed.code, parsed.message);
    if (parsed.message.type !== 'command') {
      return errorResponse(parsed.message.id, 'INVALID_MESSAGE', 'expected a command');
    }
    return this.handle(parsed.message);
  }

  /**
   * A long action is an operation: refused SERVER_BUSY at once while another runs on the server
   * (a kill pre-empts it instead), then acknowledged at once when the command asks for it
   * (`operationId`), else answered when done; its steps and its end go out as events.
   */
  async handle(cmd: Command): Promise<ResponseMessage> {
    const serverId = serverIdOf(cmd);
    if (!serverId || !OPERATION_ACTIONS.has(cmd.action)) return this.#run(cmd, serverId);
    const refused = (code: ErrorCode, message: string) => ({
      ...errorResponse(cmd.id, code, message),
      serverId,
    });
    if (cmd.action === 'create_server') {
      if (this.servers.has(serverId) || this.#creating.has(serverId))
        return refused('SERVER_EXISTS', `server ${serverId} exists on this node`);
    } else if (!this.servers.has(serverId)) {
      return refused('SERVER_NOT_FOUND', `no server ${serverId} on this node`);
    }
    const running = this.#ops.get(serverId);
    const operationId = cmd.operationId ?? cmd.id;
    if (this.#accepted.has(operationId)) return refused('CONFLICT', `operation ${operationId} exists`);
    if (running?.action === 'create_server')
      return refused('SERVER_EXISTS', `server ${serverId} is being created on this node`);
    if (running && cmd.action !== 'kill_server') {
      return refused(
        'SERVER_BUSY',
        `${running.action} (operation ${running.operationId}) is running on this server; kill pre-empts it`,
      );
    }
    if (running) running.supersededBy = operationId;
    const op: ActiveOperation = {
      operationId,
      serverId,
      action: cmd.action,
      acceptedAt: new Date().toISOString(),
    };
    this.#ops.set(serverId, op);
    this.#accepted.set(operationId, op);
    await this.#persistOps();
    const done = this.#run(cmd, serverId, op).then(async (res) => {
      // cut by the Agent's shutdown: unfinished, reported as AGENT_RESTARTED by the next boot
      if (this.#shuttingDown) return res;
      const superseded = op.supersededBy !== undefined;
      const error = superseded
        ? {
            code: 'OPERATION_SUPERSEDED' as const,
            message: `pre-empted by operation ${op.supersededBy} (kill)`,
          }
        : res.error;
      if (this.#ops.get(serverId) === op) this.#ops.delete(serverId);
      this.#accepted.delete(operationId);
      await this.#persistOps();
      this.#emit('operation_completed', {
        operationId,
        serverId,
        action: cmd.action,
        success: res.success && !superseded,
        ...(error ? { error } : {}),
      });
      return res;
    });
    if (cmd.operationId === undefined) return done;
    return {
      ...okResponse(
        cmd.id,
        { operationId, status: 'accepted', serverId },
        ACK_MESSAGES[cmd.action] ?? 'command received',
      ),
      serverId,
    };
  }

  async #run(cmd: Command, serverId: string | undefined, op?: ActiveOperation): Promise<ResponseMessage> {
    const log = this.#log.child({ action: cmd.action, ...(serverId ? { serverId } : {}) });
    try {
      if (op) this.#progress(op, 'accepted');
      const r = await this.#dispatch(cmd, serverId, op);
      log.debug('command done');
      return okResponse(cmd.id, r.data, r.message);
    } catch (e) {
      const coded = isCodedError(e)
        ? e
        : (diskFull(e, this.#config.dataDir) ??
          new CodedError('INTERNAL_ERROR', 'unexpected failure', { cause: e }));
      if (coded.code === 'INTERNAL_ERROR' || coded.code === 'DOCKER_ERROR')
        log.error({ err: e }, 'command failed');
      else log.info({ code: coded.code }, 'command refused');
      const res = errorResponse(cmd.id, coded.code, coded.message);
      return serverId ? { ...res, serverId } : res;
    }
  }

  async #dispatch(
    cmd: Command,
    serverId: string | undefined,
    op?: ActiveOperation,
  ): Promise<{ data?: unknown; message?: string }> {
    const p = cmd.payload as Record<string, unknown>;
    switch (cmd.action) {
      case 'create_server': {
        const { eggConfig } = cmd.payload as Command<'create_server'>['payload'];
        const id = serverId!;
        if (this.servers.has(id) || this.#creating.has(id)) {
          throw new CodedError('SERVER_EXISTS', `server ${id} exists on this node`);
        }
        this.#creating.add(id);
        try {
          const s = new Server(id, eggConfig, this.#deps());
          await s.create();
          this.servers.set(id, s);
          return { data: { serverId: id, containerId: s.containerId, status: s.status } };
        } finally {
          this.#creating.delete(id);
        }
      }
      case 'reinstall_server':
      case 'start_server':
      case 'stop_server':
      case 'restart_server':
      case 'kill_server': {
        const s = this.#server(serverId);
        await POWER_ACTIONS[cmd.action](s, p);
        return { data: { serverId, status: s.status } };
      }
      case 'delete_server': {
        const s = this.#server(serverId);
        await s.delete();
        this.servers.delete(s.id);
        return { data: { serverId, deleted: true } };
      }
      case 'get_status':
        return { data: await this.#server(serverId).statusData() };
      case 'send_command':
        this.#server(serverId).sendCommand((p as { command: string }).command);
        return {};
      case 'update_server': {
        const s = this.#server(serverId);
        const progress = (stage: EventData<'server_update_progress'>['stage'], message?: string) => {
          this.#emit('server_update_progress', { serverId: s.id, stage, ...(message ? { message } : {}) });
          if (op) this.#progress(op, stage, message);
        };
        let status: ServerStatus;
        try {
          status = await s.update(cmd.payload as Command<'update_server'>['payload'], progress);
        } catch (e) {
          progress('failed', isCodedError(e) ? e.code : 'INTERNAL_ERROR');
          throw e;
        }
        return { data: { serverId, status } };
      }
      case 'system_info': {
        const v = await this.#docker.version().catch(() => 'unreachable');
        return { data: await systemInfo(path.resolve(this.#config.dataDir), v) };
      }
      case 'list_servers':
        return { data: { servers: this.summary() } };
      case 'list_files': {
        const { path: rel, offset, limit } = cmd.payload as Command<'list_files'>['payload'];
        return { data: await listFiles(this.#server(serverId).dir, rel, { offset, limit }) };
      }
      case 'get_file':
        return { data: await getFile(this.#server(serverId).dir, (p as { path: string }).path) };
      case 'write_file': {
        const server = this.#server(serverId);
        const { dir } = server;
        const { path: rel, content } = cmd.payload as Command<'write_file'>['payload'];
        // over the quota is refused before anything is written (the size it replaces is freed)
        await server.assertDiskRoom(Buffer.byteLength(content, 'utf8'), await fileSizeInside(dir, rel));
        const written = await writeFileInside(dir, rel, content);
        // the game runs as its own user and must be able to rewrite it (eula.txt)
        const { containerUid, containerGid } = this.#config;
        await chownPathInside(dir, written.path, containerUid, containerGid).catch((e) =>
          this.#log.warn({ err: e, action: 'write_file' }, 'chown failed'),
        );
        return { data: written };
      }
      case 'sftp_revoke': {
        const { userId, serverId: only } = cmd.payload as Command<'sftp_revoke'>['payload'];
        return { data: { closed: this.sftpRevoke?.(userId, only) ?? 0 } };
      }
      default: {
        const never: never = cmd.action;
        throw new CodedError('UNKNOWN_ACTION', `unknown action ${String(never)}`);
      }
    }
  }
}
