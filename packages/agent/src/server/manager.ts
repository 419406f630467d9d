/**
 * All servers of this Agent and the one command handler both transports (Panel WebSocket, HTTP)
 * go through. Every command gets exactly one response; failures carry a code.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, open, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  CodedError,
  type Command,
  type EggConfig,
  type ErrorCode,
  type EventData,
  errorResponse,
  type ImageCheckData,
  isCodedError,
  MAX_PULL_LAYERS,
  normaliseRegistryHost,
  OPERATION_ACTIONS,
  okResponse,
  type PullLayer,
  parseAgentInbound,
  type RegistryAuthConfig,
  type ResponseMessage,
  registryHostOf,
  renderPlayerCommand,
  type ServerStatus,
  serverIdOf,
} from '@cap/protocol';
import type { Logger } from 'pino';
import { BackupStore } from '../backups/backups.ts';
import type { AgentConfig } from '../config/config.ts';
import { ContainerCache } from '../docker-api/cache.ts';
import { openDockerTunnel, ownContainer, type UpgradeDialer } from '../docker-api/tunnel.ts';
import { hostBindings } from '../environment/docker/container-spec.ts';
import type { Environment, NodeInstance } from '../environment/environment.ts';
import {
  compressFiles,
  decompressFile,
  folderArchiveName,
  openFolderArchive,
} from '../filesystem/archives.ts';
import {
  chownPathInside,
  fileSizeInside,
  getFile,
  listFiles,
  writeFileInside,
} from '../filesystem/filesystem.ts';
import {
  chmodFile,
  copyFile,
  createDirectory,
  Denylist,
  deleteFiles,
  renameFile,
  searchFiles,
  splitPath,
  statFile,
} from '../filesystem/operations.ts';
import { queryByCommand } from '../players/command.ts';
import { PlayerPoller, type PollTarget } from '../players/poller.ts';
import { type QueryFn, runQuery } from '../players/query.ts';
import type { RemoteConsole } from '../remote-console/types.ts';
import { StackRunner } from '../stacks/stacks.ts';
import { systemInfo } from '../system/system-info.ts';
import { pushArchive } from '../transfers/push.ts';
import {
  downloadSize,
  fileDownload,
  openDownload,
  receiveUpload,
  type Ticket,
  TransferTickets,
} from '../transfers/transfers.ts';
import type { VolumeArchiver } from '../volumes/volumes.ts';
import { type InstallState, loadDefinitions } from './definition-store.ts';
import { EventBus, type ServerEventMap, type ServerEventName } from './events.ts';
import { FenceStore } from './fencing.ts';
import { type LockHolder, PowerLocks } from './power.ts';
import { Server } from './server.ts';

/** An HTTP request to the Panel with the link's credentials (a path on the Panel's URL). */
export type PanelDialer = (
  method: 'GET' | 'POST',
  path: string,
  body?: { stream: import('node:stream').Readable; size: number | null },
) => Promise<import('node:http').IncomingMessage>;

/** The power-like actions: each answers `{ serverId, status }` once the server has done it. */
const POWER_ACTIONS: Record<
  'start_server' | 'stop_server' | 'restart_server' | 'kill_server',
  (s: Server, payload: Record<string, unknown>) => Promise<unknown>
> = {
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
interface ActiveOperation extends LockHolder {
  acceptedAt: string;
}

const ACK_MESSAGES: Partial<Record<Command['action'], string>> = {
  create_server: 'Server create command received',
  start_server: 'Server start command received',
  stop_server: 'Server stop command received',
  restart_server: 'Server restart command received',
  kill_server: 'Server kill command received',
  reinstall_server: 'Server reinstall command received',
  update_server: 'Server update command received',
  image_update_server: 'Image update command received',
  backup_create: 'Backup command received',
  backup_restore: 'Restore command received',
  file_compress: 'Compress command received',
  file_decompress: 'Decompress command received',
  transfer_push: 'Transfer push command received',
};

/** What a fenced server id is refused (SERVER_FENCED): anything that would make or run it here. */
const FENCE_REFUSED: ReadonlySet<string> = new Set([
  'create_server',
  'start_server',
  'restart_server',
  'reinstall_server',
  'update_server',
  'backup_restore',
]);

/** Operations that take the server's file-archive lock (one at a time; power actions go on). */
const ARCHIVE_ACTIONS: ReadonlySet<string> = new Set(['file_compress', 'file_decompress', 'transfer_push']);

export class ServerManager {
  readonly servers = new Map<string, Server>();
  readonly #env: Environment;
  readonly #config: AgentConfig;
  readonly #log: Logger;
  /** every server's events and the operations' (the Panel link subscribes here) */
  readonly events: EventBus;
  readonly serversDir: string;
  readonly backups: BackupStore;
  /** the servers the Panel failed over elsewhere: never started here (fencing.ts) */
  readonly fences: FenceStore;
  #statsTimer: NodeJS.Timeout | undefined;
  #sampling = false;
  /** server ids being created right now, so two concurrent creates cannot both pass the check */
  readonly #creating = new Set<string>();
  /** Docker answered the boot listing, so "not running" below is known, not a guess */
  #listed = false;
  /** the per-server try-lock of power actions (operations and the Agent's own actions) */
  readonly #locks = new PowerLocks();
  /**
   * A backup takes a lock of its own (the server keeps running and its power actions go on
   * meanwhile; BackupStore allows one backup or restore at a time); a restore takes the server's,
   * as power actions do (it stops and starts the server).
   */
  readonly #backupLocks = new PowerLocks();
  /** compress / decompress: one at a time per server, beside power actions and backups */
  readonly #archiveLocks = new PowerLocks();
  /** every accepted operation not ended yet (a superseded one stays until it returns) */
  readonly #accepted = new Map<string, ActiveOperation>();
  /** operations accepted before the last Agent restart and never finished (see reportInterrupted) */
  #interrupted: ActiveOperation[] = [];
  #opWrites: Promise<void> = Promise.resolve();
  #shuttingDown = false;

  /** Docker volumes backed up and restored (set by the Agent; null in tests without Docker) */
  volumes: VolumeArchiver | null = null;

  /** closes SFTP sessions (set by the SFTP server when it runs); answers how many were closed */
  sftpRevoke: ((userId: string, serverId?: string) => number) | null = null;

  /** player counts of the running servers whose template tracks them (started by init) */
  readonly players: PlayerPoller;

  constructor(opts: { env: Environment; config: AgentConfig; logger: Logger; playerQuery?: QueryFn }) {
    this.#env = opts.env;
    this.#config = opts.config;
    this.#log = opts.logger;
    const playersLog = opts.logger.child({ component: 'players' });
    this.players = new PlayerPoller({
      targets: () => this.#playerTargets(),
      // command:<parser> goes through the server's remote console; the others are queries
      query: (t) =>
        t.query.startsWith('command:')
          ? queryByCommand(t.query, t.serverId ? this.remoteConsole(t.serverId) : undefined, t.timeoutMs)
          : (opts.playerQuery ?? runQuery)(t),
      publish: (d) => this.#publish(d.serverId, 'players', d),
      onError: (serverId, err, inARow) => {
        const msg = { serverId, err: (err as Error)?.message ?? String(err), inARow };
        if (inARow === 1) playersLog.warn(msg, 'player query failed');
        else playersLog.debug(msg, 'player query failed');
      },
    });
    this.events = new EventBus((err, type) =>
      this.#log.error({ err, event: type }, 'event subscriber failed'),
    );
    this.serversDir = path.resolve(opts.config.dataDir, 'servers');
    this.fences = new FenceStore(opts.config.dataDir, opts.logger.child({ component: 'fencing' }));
    this.backups = new BackupStore({
      dir: opts.config.backupDir,
      serversDir: this.serversDir,
      logger: opts.logger,
      owner: { uid: opts.config.containerUid, gid: opts.config.containerGid },
      diskFull: (e) => diskFull(e, opts.config.backupDir),
    });
  }

  /** A server of this manager: its events go to the Agent's bus; its steps become the operation's. */
  #newServer(id: string, egg: EggConfig, installState?: InstallState, lastState?: ServerStatus): Server {
    const deps = {
      env: this.#env,
      config: this.#config,
      logger: this.#log,
      serversDir: this.serversDir,
      ownAction: (
        what: string,
        action: 'start_server' | 'stop_server',
        wanted: () => boolean,
        act: () => Promise<void>,
      ) => this.#ownAction(s, what, action, wanted, act),
    };
    const s: Server = new Server(id, egg, deps, installState, lastState);
    s.events.onAny((e) => {
      if (e.type !== 'stage') this.events.publish(e.type, e.data as never);
    });
    // a status change of a server with an operation in flight is also a step of it
    s.events.on('status', (d) => {
      const op = this.#locks.holder(d.serverId);
      if (op && !op.own && d.currentStatus !== 'stopping') this.#progress(op, d.currentStatus, d.reason);
    });
    s.events.on('stage', (d) => {
      const op = this.#locks.holder(d.serverId);
      if (op && !op.own) this.#progress(op, d.stage, d.message);
    });
    return s;
  }

  /**
   * One of the Agent's own power actions (the restart after a crash, the start after the Agent's
   * downtime, the stop over the disk limit) under the same per-server try-lock as a user's: it
   * waits for an operation in flight to end and then runs only if still `wanted` (a user who
   * stopped the server meanwhile wins); while it runs a user's action is SERVER_BUSY, and a kill
   * pre-empts it as it does an operation. It is no operation of the Panel's: no operation events,
   * not in agent_hello.
   */
  async #ownAction(
    s: Server,
    what: string,
    action: 'start_server' | 'stop_server',
    wanted: () => boolean,
    act: () => Promise<void>,
  ): Promise<void> {
    const holder: LockHolder = {
      operationId: `agent:${randomUUID()}`,
      serverId: s.id,
      action,
      own: what,
    };
    for (;;) {
      await this.#locks.free(s.id);
      if (this.#shuttingDown || this.servers.get(s.id) !== s || this.fences.has(s.id) || !wanted()) {
        this.#log.info({ serverId: s.id, what }, "the Agent's own action is no longer wanted");
        return;
      }
      // taken in the turn `free` resolved in, unless another waiter was woken first
      if (!this.#locks.tryAcquire(holder)) break;
    }
    try {
      await act();
    } finally {
      this.#locks.release(holder);
    }
  }

  /**
   * The running servers that track players, with the host address their query port is published
   * on (0.0.0.0 / :: → the loopback of that family). A server whose port variable is not a port,
   * or whose port is not published, is skipped.
   */
  #playerTargets(): PollTarget[] {
    const out: PollTarget[] = [];
    for (const s of this.servers.values()) {
      const p = s.egg.players;
      if (!p || p.query === 'none' || !s.running || s.status !== 'running') continue;
      if (p.query.startsWith('command:')) {
        // through the remote console: no query port
        out.push({ serverId: s.id, query: p.query, host: '', port: 0, intervalMs: p.intervalSeconds * 1000 });
        continue;
      }
      const env = s.egg.environment;
      const name = p.portVariable ?? 'SERVER_PORT';
      const raw = Object.hasOwn(env, name) ? env[name] : undefined;
      const port = raw !== undefined && /^\d{1,5}$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
      if (!(port >= 1 && port <= 65535)) continue;
      const binding = hostBindings(s.egg, this.#config.bindIp).find(
        (b) => b.containerPort === `${port}/udp` || b.containerPort === `${port}/tcp`,
      );
      if (!binding) continue;
      const host =
        binding.hostIp === '0.0.0.0' || binding.hostIp === ''
          ? '127.0.0.1'
          : binding.hostIp === '::'
            ? '::1'
            : binding.hostIp;
      out.push({
        serverId: s.id,
        query: p.query,
        host,
        port: binding.hostPort,
        intervalMs: p.intervalSeconds * 1000,
      });
    }
    return out;
  }

  /** An event of server `serverId`: on its bus when it exists (piped to the Agent's), else on the Agent's. */
  #publish<K extends ServerEventName>(serverId: string, type: K, data: ServerEventMap[K]): void {
    const s = this.servers.get(serverId);
    if (s) s.events.publish(type, data);
    else this.events.publish(type, data);
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
      this.#publish(op.serverId, 'operation_completed', {
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

  #progress(op: LockHolder, stage: string, message?: string): void {
    this.#publish(op.serverId, 'operation_progress', {
      operationId: op.operationId,
      serverId: op.serverId,
      stage,
      ...(message ? { message: message.slice(0, 4096) } : {}),
    });
  }

  /** Loads stored definitions and re-attaches to running containers, without restarting them. */
  async init(): Promise<void> {
    await mkdir(this.serversDir, { recursive: true, mode: 0o700 });
    await this.backups.init();
    await this.fences.load();
    await this.#loadInterrupted();
    for (const def of await loadDefinitions(this.serversDir, this.#log)) {
      this.servers.set(def.serverId, this.#newServer(def.serverId, def.egg, def.installState, def.lastState));
    }
    let containers: NodeInstance[] = [];
    let installers: NodeInstance[] = [];
    let listed = false;
    try {
      // an unreachable TCP Engine must not hold up the boot (the HTTP API and /health come first)
      let timer: NodeJS.Timeout | undefined;
      [containers, installers] = await Promise.race([
        Promise.all([this.#env.listServers(), this.#env.listInstallers()]),
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
        if (c.staged) {
          // the new container of an update the Agent did not finish: the old one is still there
          this.#log.warn({ serverId: c.serverId, containerId: c.id }, 'unfinished update: container removed');
          await this.#env.remove(c.id).catch(() => undefined);
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
        const state = await this.#env.inspect(c.id);
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
    // fenced before: a fence the last run did not finish (its files are still in place)
    for (const id of this.fences.ids()) {
      const s = this.servers.get(id);
      if (s)
        await this.#applyFence(s).catch((e) => this.#log.error({ err: e, serverId: id }, 'fence failed'));
    }
    this.#statsTimer = setInterval(() => void this.#statsTick(), this.#config.statsIntervalMs);
    this.#statsTimer.unref();
    this.players.start();
  }

  /** Kills and removes a fenced server's instance, moves its files aside, forgets it. */
  async #applyFence(s: Server): Promise<string | null> {
    const moved = await s.fence((dir, def) => this.fences.moveAside(s.id, dir, def));
    if (this.servers.get(s.id) === s) this.servers.delete(s.id);
    this.transfers.dropServer(s.id);
    return moved;
  }

  /**
   * Starts the servers whose container stopped while the Agent was down (see
   * `Server.resumeAfterDowntime`), through the normal power path. Called once the Panel link
   * exists, so their status events are queued for it; does not wait for the starts.
   */
  resumeAfterDowntime(): Promise<void> {
    if (!this.#listed) return Promise.resolve();
    // the Panel's fence list first (sent on connect): a server failed over elsewhere meanwhile
    // must not start here; without a Panel within AGENT_FENCE_WAIT they start anyway
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.#config.fenceWaitMs);
      timer.unref();
    });
    return Promise.race([this.fences.listed, waited]).then(() => {
      clearTimeout(timer);
      if (!this.#shuttingDown) this.#resumeNow();
    });
  }

  #resumeNow(): void {
    for (const s of this.servers.values()) {
      if (!s.resumeAfterDowntime || this.fences.has(s.id)) continue;
      const reason = 'restarted after agent downtime';
      this.#log.info({ serverId: s.id, action: 'start', reason }, reason);
      this.#ownAction(
        s,
        'start after its downtime',
        'start_server',
        () => s.resumeAfterDowntime,
        () => s.start(reason),
      ).catch((e) => this.#log.error({ err: e, serverId: s.id, action: 'start', reason }, 'start failed'));
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
            if (r && s.running) s.events.publish('stats', r);
          }),
      );
    } finally {
      this.#sampling = false;
    }
  }

  /** Stop watching; containers keep running. The last statuses are on disk when it resolves. */
  async shutdown(): Promise<void> {
    this.#shuttingDown = true;
    this.#containerCache?.close();
    clearInterval(this.#statsTimer);
    this.players.stop();
    await this.backups.close();
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

  /**
   * The console of a server of this node (stdin or its template's remote console), for the Agent's
   * own users of it (player lists); undefined for a server this node does not have.
   */
  remoteConsole(serverId: string): RemoteConsole | undefined {
    return this.servers.get(serverId)?.remoteConsole;
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
    if (FENCE_REFUSED.has(cmd.action) && this.fences.has(serverId))
      return refused(
        'SERVER_FENCED',
        `server ${serverId} was failed over to another node; this copy is fenced`,
      );
    if (cmd.action === 'create_server') {
      if (this.servers.has(serverId) || this.#creating.has(serverId))
        return refused('SERVER_EXISTS', `server ${serverId} exists on this node`);
    } else if (!this.servers.has(serverId)) {
      return refused('SERVER_NOT_FOUND', `no server ${serverId} on this node`);
    }
    // a backup has a lock of its own (power actions go on meanwhile); the rest take the server's
    const locks =
      cmd.action === 'backup_create'
        ? this.#backupLocks
        : ARCHIVE_ACTIONS.has(cmd.action)
          ? this.#archiveLocks
          : this.#locks;
    const operationId = cmd.operationId ?? cmd.id;
    if (this.#accepted.has(operationId)) return refused('CONFLICT', `operation ${operationId} exists`);
    const op: ActiveOperation = {
      operationId,
      serverId,
      action: cmd.action,
      acceptedAt: new Date().toISOString(),
    };
    // SERVER_BUSY while another action holds the server (SERVER_EXISTS while it is being created);
    // a kill pre-empts the holder, whether an operation or the Agent's own action
    const busy = locks.tryAcquire(op);
    if (busy) return refused(busy.code, busy.message);
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
      locks.release(op);
      this.#accepted.delete(operationId);
      await this.#persistOps();
      this.#publish(serverId, 'operation_completed', {
        operationId,
        serverId,
        action: cmd.action,
        success: res.success && !superseded,
        ...(error ? { error } : {}),
        ...(res.success && !superseded && res.data !== undefined ? { data: res.data } : {}),
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

  readonly transfers = new TransferTickets();
  #dialPanel: PanelDialer | undefined;

  #dialUpgrade: UpgradeDialer | undefined;
  /** the node's container list kept from Docker's events (docker_containers), started with the link */
  #containerCache: ContainerCache | undefined;

  /** How relay_transfer reaches the Panel (the link's credentials); set once the link exists. */
  setPanelDialer(dial: PanelDialer, upgrade?: UpgradeDialer): void {
    this.#dialPanel = dial;
    this.#dialUpgrade = upgrade;
    // the list is kept from the start, so the Panel's first ask is answered from it
    if (this.#config.dockerApi && !this.#shuttingDown) {
      this.#containerCache ??= new ContainerCache({ dockerHost: this.#config.dockerHost, log: this.#log });
      this.#containerCache.start();
    }
  }

  /**
   * Private images pulled now (when absent) with the Panel's credentials for their registries
   * (used for this pull only, never kept): what a later create would pull without them.
   */
  async #pullPrivate(
    images: readonly (string | undefined)[],
    registryAuth: readonly RegistryAuthConfig[] | undefined,
  ): Promise<void> {
    if (!registryAuth?.length || !this.#env.pullImage) return;
    for (const image of images) {
      if (image === undefined) continue;
      const host = registryHostOf(image);
      const auth = registryAuth.find((a) => normaliseRegistryHost(a.serveraddress) === host);
      if (auth) await this.#env.pullImage(image, auth);
    }
  }

  /** A download's bytes for a ticket taken (the Agent's own HTTP API, or the relay). */
  async openTransferDownload(t: Ticket): Promise<{
    stream: Readable;
    size: number | null;
    name: string;
    sha256?: string;
    close: () => Promise<void>;
  }> {
    if (t.backup) return this.#openBackupDownload(t.serverId, t.backup.backupId, t.size);
    if (t.volume) return this.#volumes().openBackup(t.volume.name, t.volume.format);
    if (t.volumeFile) return this.#volumes().openFile(t.volumeFile.name, t.path);
    if (t.archive) return { ...(await openFolderArchive(t.root, t.path, t.deny, t.archive)), size: null };
    return openDownload(t.root, t.path, t.deny);
  }

  /** A completed backup's file streamed: exactly the size announced by the ticket. */
  async #openBackupDownload(serverId: string, backupId: string, size: number) {
    const f = await this.backups.file(serverId, backupId);
    if (f.size !== size)
      throw new CodedError('INVALID_STATE', `backup ${backupId} changed since the ticket was issued`);
    return { ...(await fileDownload(await open(f.path, 'r'), size, f.filename)), sha256: f.sha256 };
  }

  /**
   * An upload's body written for a ticket taken. Its bytes are charged to the server's disk
   * ledger before any is written (the quota checked again now, counting the uploads and SFTP
   * writes in flight: it may have filled since the ticket), and given back if it fails.
   */
  async receiveTransferUpload(
    t: Ticket,
    body: import('node:stream').Readable,
  ): Promise<{ path: string; size: number }> {
    if (t.volume) return this.#volumes().restore(t.volume.name, body, t.size, t.volume);
    if (t.volumeFile) return this.#volumes().upload(t.volumeFile.name, t.path, body, t.size);
    const s = this.servers.get(t.serverId);
    if (!s) throw new CodedError('SERVER_NOT_FOUND', `server ${t.serverId} is not on this node`);
    const imp = t.backup?.import;
    if (t.backup && imp) {
      const rec = await this.backups.importFile(t.serverId, t.backup.backupId, imp, body);
      return { path: `backup:${rec.backupId}`, size: rec.size ?? 0 };
    }
    const replacing = await fileSizeInside(t.root, t.path);
    const disk = await s.resources.diskLedger.join();
    try {
      // the file it replaces is freed when the upload is renamed over it
      disk.charge(Math.max(0, t.size - replacing));
      return await receiveUpload(t, body, (n) => disk.written(n));
    } catch (e) {
      disk.release(disk.charged);
      throw e;
    } finally {
      disk.close();
    }
  }

  #relay(ticket: string): void {
    const t = this.transfers.take(ticket);
    const dial = this.#dialPanel;
    if (!dial) throw new CodedError('AGENT_OFFLINE', 'no link to the Panel');
    const url = `/api/agent/transfers/${ticket}`;
    const log = this.#log.child({ serverId: t.serverId, direction: t.direction });
    const run = async () => {
      if (t.direction === 'download') {
        const d = await this.openTransferDownload(t);
        try {
          const res = await dial('POST', url, { stream: d.stream, size: d.size });
          res.resume();
        } finally {
          await d.close();
        }
        return;
      }
      const res = await dial('GET', url);
      let result: unknown;
      try {
        if (res.statusCode !== 200)
          throw new CodedError('INTERNAL_ERROR', `the Panel answered ${res.statusCode}`);
        result = { ok: true, ...(await this.receiveTransferUpload(t, res)) };
      } catch (e) {
        res.destroy();
        const coded = isCodedError(e) ? e : new CodedError('INTERNAL_ERROR', 'upload failed', { cause: e });
        result = { ok: false, code: coded.code, message: coded.message };
      }
      const body = Buffer.from(JSON.stringify(result));
      const done = await dial('POST', `${url}/result`, { stream: Readable.from([body]), size: body.length });
      done.resume();
    };
    run().catch((e) => log.warn({ err: e }, 'relayed transfer failed'));
  }

  #volumes(): VolumeArchiver {
    if (!this.volumes) throw new CodedError('DOCKER_ERROR', 'volumes are not handled by this Agent');
    return this.volumes;
  }

  /** A ticket for a Docker volume's backup or restore (no server: the Panel's admins ask). */
  async #volumeTicket(cmd: Command<'volume_backup'> | Command<'volume_restore'>) {
    const v = this.#volumes();
    const p = cmd.payload;
    // the volume exists (NOT_FOUND otherwise); reached directly or through a helper container
    await v.access(p.volume);
    const restore = cmd.action === 'volume_restore';
    const rp = p as Command<'volume_restore'>['payload'];
    if (restore) await v.assertFree(p.volume, rp.force);
    const format = restore ? 'tar.gz' : (p as Command<'volume_backup'>['payload']).format;
    const expiresAt = Date.now() + p.ttlSeconds * 1000;
    const ticket = this.transfers.issue({
      serverId: '',
      root: '',
      path: '',
      direction: restore ? 'upload' : 'download',
      size: restore ? rp.size : 0,
      expiresAt,
      deny: new Denylist([]),
      owner: { uid: this.#config.containerUid, gid: this.#config.containerGid },
      volume: {
        name: p.volume,
        format,
        force: restore ? rp.force : false,
        truncate: restore ? rp.truncate : false,
      },
    });
    return {
      ticket,
      expiresAt: new Date(expiresAt).toISOString(),
      size: restore ? rp.size : null,
      name: restore ? p.volume : `${p.volume}.${format}`,
    };
  }

  /**
   * Browsing a Docker volume (issue 11): a Docker API read, so off with the relay
   * (AGENT_DOCKER_API=0) like the container list; the Panel checks docker.read on the node.
   */
  async #volumeFiles(cmd: Command): Promise<unknown> {
    if (!this.#config.dockerApi)
      throw new CodedError('FORBIDDEN', "this node's Docker API relay is turned off (AGENT_DOCKER_API=0)");
    const v = this.#volumes();
    if (cmd.action === 'volume_list_files') {
      const { volume, path: rel, ...page } = cmd.payload as Command<'volume_list_files'>['payload'];
      return v.listFiles(volume, rel, page);
    }
    if (cmd.action === 'volume_get_file') {
      const p = cmd.payload as Command<'volume_get_file'>['payload'];
      return v.getFile(p.volume, p.path);
    }
    if (cmd.action === 'volume_create_directory') {
      const p = cmd.payload as Command<'volume_create_directory'>['payload'];
      return v.createDirectory(p.volume, p.path);
    }
    if (cmd.action === 'volume_rename') {
      const p = cmd.payload as Command<'volume_rename'>['payload'];
      return v.rename(p.volume, p.from, p.to);
    }
    if (cmd.action === 'volume_delete_files') {
      const p = cmd.payload as Command<'volume_delete_files'>['payload'];
      return v.deleteFiles(p.volume, p.root, p.names);
    }
    if (cmd.action === 'volume_file_upload') {
      const p = cmd.payload as Command<'volume_file_upload'>['payload'];
      await v.assertUploadTarget(p.volume, p.path);
      const expiresAt = Date.now() + p.ttlSeconds * 1000;
      const ticket = this.transfers.issue({
        serverId: '',
        root: '',
        path: p.path,
        direction: 'upload',
        size: p.size,
        expiresAt,
        deny: new Denylist([]),
        owner: { uid: 0, gid: 0 },
        volumeFile: { name: p.volume },
      });
      return {
        ticket,
        expiresAt: new Date(expiresAt).toISOString(),
        size: p.size,
        name: p.path.split('/').pop() ?? '',
      };
    }
    const p = cmd.payload as Command<'volume_file_download'>['payload'];
    const d = await v.download(p.volume, p.path);
    const expiresAt = Date.now() + p.ttlSeconds * 1000;
    const ticket = this.transfers.issue({
      serverId: '',
      root: '',
      path: p.path,
      direction: 'download',
      size: d.size,
      expiresAt,
      deny: new Denylist([]),
      owner: { uid: this.#config.containerUid, gid: this.#config.containerGid },
      volumeFile: { name: p.volume },
    });
    return { ticket, expiresAt: new Date(expiresAt).toISOString(), size: d.size, name: d.name };
  }

  #stackRunner: StackRunner | undefined;
  /** Compose stacks through the Engine API (src/stacks); Engine failures come back as DOCKER_ERROR. */
  async #stack(cmd: Command): Promise<unknown> {
    // a stack makes any container the relay could: off with the relay (AGENT_DOCKER_API=0)
    if (!this.#config.dockerApi)
      throw new CodedError('FORBIDDEN', "this node's Docker API relay is turned off (AGENT_DOCKER_API=0)");
    this.#stackRunner ??= new StackRunner(this.#config.dockerHost);
    const r = this.#stackRunner;
    try {
      switch (cmd.action) {
        case 'stack_deploy':
          return await r.deploy((cmd as Command<'stack_deploy'>).payload);
        case 'stack_stop':
          return await r.stop((cmd as Command<'stack_stop'>).payload.project);
        case 'stack_start':
          return await r.start((cmd as Command<'stack_start'>).payload.project);
        case 'stack_remove': {
          const p = (cmd as Command<'stack_remove'>).payload;
          return await r.remove(p.project, p.volumes);
        }
        case 'stack_inspect':
          return await r.inspect((cmd as Command<'stack_inspect'>).payload.project);
        default:
          return await r.list();
      }
    } catch (e) {
      if (isCodedError(e)) throw e;
      const x = e as { json?: { message?: string }; message?: string };
      throw new CodedError('DOCKER_ERROR', String(x.json?.message ?? x.message ?? e).slice(0, 4000));
    }
  }

  #denylist(s: Server): Denylist {
    return new Denylist(s.egg.fileDenylist);
  }

  /** What the file API creates belongs to the game's user (it must be able to change it). */
  async #giveToGame(dir: string, rel: string): Promise<void> {
    const { containerUid, containerGid } = this.#config;
    await chownPathInside(dir, rel, containerUid, containerGid).catch((e) =>
      this.#log.warn({ err: e }, 'chown failed'),
    );
  }

  async #dispatch(
    cmd: Command,
    serverId: string | undefined,
    op?: ActiveOperation,
  ): Promise<{ data?: unknown; message?: string }> {
    const p = cmd.payload as Record<string, unknown>;
    if (serverId !== undefined && FENCE_REFUSED.has(cmd.action) && this.fences.has(serverId))
      throw new CodedError(
        'SERVER_FENCED',
        `server ${serverId} was failed over to another node; this node's copy is fenced`,
      );
    switch (cmd.action) {
      case 'fence_servers': {
        const { servers } = cmd.payload as Command<'fence_servers'>['payload'];
        // on disk before anything else acts on it
        await this.fences.replace(servers);
        const fenced: { serverId: string; movedTo: string | null }[] = [];
        for (const f of servers) {
          const s = this.servers.get(f.serverId);
          if (!s) continue;
          this.#log.warn({ serverId: f.serverId, reason: f.reason }, 'server fenced by the Panel');
          fenced.push({ serverId: f.serverId, movedTo: await this.#applyFence(s) });
        }
        return { data: { fenced } };
      }
      case 'create_server': {
        const { eggConfig, registryAuth } = cmd.payload as Command<'create_server'>['payload'];
        const id = serverId!;
        if (this.servers.has(id) || this.#creating.has(id)) {
          throw new CodedError('SERVER_EXISTS', `server ${id} exists on this node`);
        }
        this.#creating.add(id);
        try {
          await this.#pullPrivate([eggConfig.image, eggConfig.install?.container], registryAuth);
          const s = this.#newServer(id, eggConfig);
          await s.create();
          this.servers.set(id, s);
          return { data: { serverId: id, containerId: s.containerId, status: s.status } };
        } finally {
          this.#creating.delete(id);
        }
      }
      case 'reinstall_server': {
        const s = this.#server(serverId);
        // the installer's and the game's images, when absent, pulled with the Panel's credentials
        const { registryAuth } = cmd.payload as Command<'reinstall_server'>['payload'];
        await this.#pullPrivate([s.egg.install?.container, s.egg.image], registryAuth);
        await s.reinstall();
        return { data: { serverId, status: s.status } };
      }
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
        // its backups go with it (refused while one is being made or restored)
        this.backups.assertIdle(s.id);
        await s.delete();
        this.servers.delete(s.id);
        this.transfers.dropServer(s.id);
        await this.backups.dropServer(s.id);
        return { data: { serverId, deleted: true } };
      }
      case 'get_status': {
        const s = this.#server(serverId);
        const players = this.players.snapshot(s.id);
        return { data: { ...(await s.statusData()), ...(players ? { players } : {}) } };
      }
      case 'send_command':
        return { data: await this.#server(serverId).command((p as { command: string }).command) };
      case 'player_action': {
        // the template's kick/ban command, filled in safely (refused before anything is sent)
        const s = this.#server(serverId);
        const { action, ...target } = cmd.payload as Command<'player_action'>['payload'];
        const players = s.egg.players;
        const line = renderPlayerCommand(action, players?.[action === 'kick' ? 'kick' : 'ban'], target);
        return { data: { ...(await s.command(line)), command: line } };
      }
      case 'update_server': {
        const s = this.#server(serverId);
        const progress = (stage: EventData<'server_update_progress'>['stage'], message?: string) => {
          s.events.publish('update_progress', { serverId: s.id, stage, ...(message ? { message } : {}) });
          if (op) this.#progress(op, stage, message);
        };
        let status: ServerStatus;
        try {
          const { registryAuth, ...patch } = cmd.payload as Command<'update_server'>['payload'];
          // a new image from a private registry: pulled with the Panel's credentials first
          if (patch.image !== undefined && patch.image !== s.egg.image)
            await this.#pullPrivate([patch.image], registryAuth);
          status = await s.update(patch, progress);
        } catch (e) {
          progress('failed', isCodedError(e) ? e.code : 'INTERNAL_ERROR');
          throw e;
        }
        return { data: { serverId, status } };
      }
      case 'image_check': {
        const s = this.#server(serverId);
        const images = this.#env.images;
        if (!images) throw new CodedError('DOCKER_ERROR', 'this runtime has no image updates');
        const { registryAuth } = cmd.payload as Command<'image_check'>['payload'];
        const here = s.containerId ? await images.containerImage(s.containerId) : null;
        let remoteDigest: string | null = null;
        let error: string | undefined;
        try {
          remoteDigest = await images.remoteDigest(s.egg.image, registryAuth);
        } catch (e) {
          error = (e as Error).message.slice(0, 1024);
        }
        const data: ImageCheckData = {
          image: s.egg.image,
          imageId: here?.imageId ?? null,
          localDigests: here?.digests ?? [],
          remoteDigest,
          ...(error === undefined ? {} : { error }),
        };
        return { data };
      }
      case 'image_update_server': {
        const s = this.#server(serverId);
        const p = cmd.payload as Command<'image_update_server'>['payload'];
        const layers = new Map<string, PullLayer>();
        let last = 0;
        const send = (done: boolean) => {
          if (!op) return;
          last = Date.now();
          s.events.publish('image_pull_progress', {
            operationId: op.operationId,
            serverId: s.id,
            layers: [...layers.values()].slice(0, MAX_PULL_LAYERS),
            done,
          });
        };
        const data = await s.power.imageUpdate(
          {
            readyTimeoutSeconds: p.readyTimeoutSeconds,
            stableSeconds: p.stableSeconds,
            ...(p.registryAuth ? { registryAuth: p.registryAuth } : {}),
          },
          {
            stage: (stage, message) => {
              if (stage === 'recreating' || stage === 'done') send(true);
              if (op) this.#progress(op, stage, message);
            },
            pull: (e) => {
              if (!e.id || !e.status) return;
              if (!layers.has(e.id) && layers.size >= MAX_PULL_LAYERS) return;
              layers.set(e.id, { id: e.id, status: e.status, current: e.current ?? 0, total: e.total ?? 0 });
              if (Date.now() - last >= 250) send(false);
            },
          },
        );
        return { data };
      }
      case 'system_info': {
        const v = await this.#env.version().catch(() => 'unreachable');
        const info = await systemInfo(path.resolve(this.#config.dataDir), v);
        // the images here (automatic placement looks at them); left out when the engine fails
        const images = await this.#env.imageTags?.().catch(() => undefined);
        // transfer tickets are served over HTTP only by the full API (AGENT_API_KEY set)
        const transfers = Boolean(this.#config.apiKey);
        return { data: images === undefined ? { ...info, transfers } : { ...info, images, transfers } };
      }
      case 'list_servers':
        return { data: { servers: this.summary() } };
      case 'list_files': {
        const { path: rel, offset, limit, sort, order } = cmd.payload as Command<'list_files'>['payload'];
        return { data: await listFiles(this.#server(serverId).dir, rel, { offset, limit, sort, order }) };
      }
      case 'get_file': {
        const s = this.#server(serverId);
        return { data: await getFile(s.dir, (p as { path: string }).path, undefined, this.#denylist(s)) };
      }
      case 'stat_file':
        return { data: await statFile(this.#server(serverId).dir, (p as { path: string }).path) };
      case 'create_directory': {
        const s = this.#server(serverId);
        const made = await createDirectory(s.dir, (p as { path: string }).path, this.#denylist(s));
        await this.#giveToGame(s.dir, made.path);
        return { data: { paths: [made.path] } };
      }
      case 'rename_file': {
        const s = this.#server(serverId);
        const { from, to } = cmd.payload as Command<'rename_file'>['payload'];
        return { data: await renameFile(s.dir, from, to, this.#denylist(s)) };
      }
      case 'copy_file': {
        const s = this.#server(serverId);
        const { from, to } = cmd.payload as Command<'copy_file'>['payload'];
        const { containerUid: uid, containerGid: gid } = this.#config;
        return {
          data: await copyFile(s.dir, from, to, (bytes) => s.assertDiskRoom(bytes), this.#denylist(s), {
            uid,
            gid,
          }),
        };
      }
      case 'delete_files': {
        const s = this.#server(serverId);
        const { root, names } = cmd.payload as Command<'delete_files'>['payload'];
        return { data: await deleteFiles(s.dir, root, names, this.#denylist(s)) };
      }
      case 'chmod_file': {
        const s = this.#server(serverId);
        const { path: rel, mode } = cmd.payload as Command<'chmod_file'>['payload'];
        return { data: await chmodFile(s.dir, rel, Number.parseInt(mode, 8), this.#denylist(s)) };
      }
      case 'list_mods': {
        // loaded on first use: the YAML/TOML/zip readers stay out of an idle Agent's memory
        const { listMods } = await import('../mods/mods.ts');
        return {
          data: await listMods(this.#server(serverId).dir, cmd.payload as Command<'list_mods'>['payload']),
        };
      }
      case 'search_files': {
        const { path: rel, query, limit } = cmd.payload as Command<'search_files'>['payload'];
        return { data: await searchFiles(this.#server(serverId).dir, rel, query, limit) };
      }
      case 'create_transfer': {
        const s = this.#server(serverId);
        const {
          direction,
          path: rel,
          size,
          ttlSeconds,
          backupId,
          archive,
        } = cmd.payload as Command<'create_transfer'>['payload'];
        const deny = this.#denylist(s);
        const expiresAt = Date.now() + ttlSeconds * 1000;
        const { containerUid: uid, containerGid: gid } = this.#config;
        if (backupId !== undefined) {
          // a backup's download: its file, never a path of the server's
          if (direction !== 'download' || rel !== undefined)
            throw new CodedError('CONFIG_INVALID', 'a backup ticket is a download and names no path');
          const f = await this.backups.file(s.id, backupId);
          const ticket = this.transfers.issue({
            serverId: s.id,
            root: s.dir,
            path: '',
            direction,
            size: f.size,
            expiresAt,
            deny,
            owner: { uid, gid },
            backup: { backupId, sha256: f.sha256 },
          });
          return {
            data: {
              ticket,
              expiresAt: new Date(expiresAt).toISOString(),
              size: f.size,
              name: f.filename,
              sha256: f.sha256,
            },
          };
        }
        if (rel === undefined) throw new CodedError('CONFIG_INVALID', 'a transfer names a path or a backup');
        let info: { size: number | null; name: string };
        if (direction === 'download' && archive)
          info = { size: null, name: await folderArchiveName(s.dir, rel, deny, archive) };
        else if (direction === 'download') info = await downloadSize(s.dir, rel, deny);
        else {
          if (archive) throw new CodedError('VALIDATION_FAILED', 'an upload is one file (no archive)');
          if (size === undefined) throw new CodedError('VALIDATION_FAILED', 'an upload names its size');
          // the name is checked now (`..`, NUL, length, denylist); links when the body comes
          const parts = splitPath(rel);
          if (parts.length === 0) throw new CodedError('NAME_INVALID', 'the path names the server root');
          deny.assert(parts.join('/'));
          await s.assertDiskRoom(size, await fileSizeInside(s.dir, rel));
          info = { size, name: path.posix.basename(rel.replace(/\\/g, '/')) };
        }
        const ticket = this.transfers.issue({
          serverId: s.id,
          root: s.dir,
          path: rel,
          direction,
          size: info.size ?? 0,
          ...(archive && direction === 'download' ? { archive } : {}),
          expiresAt,
          deny,
          owner: { uid, gid },
        });
        return { data: { ticket, expiresAt: new Date(expiresAt).toISOString(), ...info } };
      }
      case 'backup_import': {
        const s = this.#server(serverId);
        const bi = cmd.payload as Command<'backup_import'>['payload'];
        const imp = {
          format: bi.format,
          size: bi.size,
          sha256: bi.sha256,
          name: bi.name,
          bytes: bi.bytes,
          entries: bi.entries,
          createdAt: bi.createdAt,
        };
        await this.backups.checkImport(s.id, bi.backupId, imp);
        const expiresAt = Date.now() + bi.ttlSeconds * 1000;
        const { containerUid: uid, containerGid: gid } = this.#config;
        const ticket = this.transfers.issue({
          serverId: s.id,
          root: s.dir,
          path: '',
          direction: 'upload',
          size: bi.size,
          expiresAt,
          deny: this.#denylist(s),
          owner: { uid, gid },
          backup: { backupId: bi.backupId, sha256: bi.sha256, import: imp },
        });
        return {
          data: {
            ticket,
            expiresAt: new Date(expiresAt).toISOString(),
            size: bi.size,
            name: `${s.id}-${bi.backupId}.${bi.format}`,
          },
        };
      }
      case 'relay_transfer':
        this.#relay((p as { ticket: string }).ticket);
        return { data: { started: true } };
      case 'transfer_push': {
        const s = this.#server(serverId);
        const push = cmd.payload as Command<'transfer_push'>['payload'];
        const f = await this.backups.file(s.id, push.backupId);
        const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;
        this.#log.info(
          { serverId: s.id, backupId: push.backupId, targetNodeId: push.targetNodeId, size: f.size },
          'pushing a backup to another Agent',
        );
        const data = await pushArchive(
          f,
          { url: push.url, ticket: push.ticket, connectTimeoutMs: push.connectTimeoutMs },
          (sent, total) => {
            if (op) this.#progress(op, 'streaming', `${mb(sent)} of ${mb(total)} (direct)`);
          },
        );
        return { data };
      }
      case 'docker_containers': {
        if (!this.#config.dockerApi)
          throw new CodedError(
            'FORBIDDEN',
            "this node's Docker API relay is turned off (AGENT_DOCKER_API=0)",
          );
        this.#containerCache ??= new ContainerCache({ dockerHost: this.#config.dockerHost, log: this.#log });
        const all = await this.#containerCache.containers();
        const { offset = 0, limit } = cmd.payload as Command<'docker_containers'>['payload'];
        return {
          data: {
            ...all,
            containers:
              limit === undefined
                ? all.containers.slice(offset)
                : all.containers.slice(offset, offset + limit),
            total: all.containers.length,
          },
        };
      }
      case 'docker_tunnel': {
        if (!this.#config.dockerApi)
          throw new CodedError(
            'FORBIDDEN',
            "this node's Docker API relay is turned off (AGENT_DOCKER_API=0)",
          );
        const dial = this.#dialUpgrade;
        if (!dial) throw new CodedError('AGENT_OFFLINE', 'no link to the Panel');
        await openDockerTunnel({
          ticket: (p as { ticket: string }).ticket,
          dial,
          dockerHost: this.#config.dockerHost,
          log: this.#log,
        });
        // the Panel's policy keeps non-owners away from the Agent's own container
        const agentContainer = await ownContainer(this.#config.dockerHost).catch(() => null);
        return { data: { started: true, agentContainer } };
      }
      case 'write_file': {
        const server = this.#server(serverId);
        const { dir } = server;
        const {
          path: rel,
          content,
          expectedSha256,
          expectedModifiedAt,
          createOnly,
        } = cmd.payload as Command<'write_file'>['payload'];
        // over the quota is refused before anything is written (the size it replaces is freed)
        await server.assertDiskRoom(Buffer.byteLength(content, 'utf8'), await fileSizeInside(dir, rel));
        const written = await writeFileInside(dir, rel, content, {
          expectedSha256,
          expectedModifiedAt,
          createOnly,
          deny: this.#denylist(server),
        });
        // the game runs as its own user and must be able to rewrite it (eula.txt)
        const { containerUid, containerGid } = this.#config;
        await chownPathInside(dir, written.path, containerUid, containerGid).catch((e) =>
          this.#log.warn({ err: e, action: 'write_file' }, 'chown failed'),
        );
        return { data: written };
      }
      case 'backup_create':
      case 'backup_list':
      case 'backup_delete':
      case 'backup_restore':
      case 'backup_lock':
        return this.backups.handle(cmd, this.#server(serverId), (stage, message) => {
          if (op) this.#progress(op, stage, message);
        });
      case 'file_compress':
      case 'file_decompress': {
        const s = this.#server(serverId);
        const { containerUid: uid, containerGid: gid } = this.#config;
        // a zip is spooled on the Agent's data disk (not /tmp, often a RAM disk)
        const tmpDir = path.join(path.resolve(this.#config.dataDir), 'tmp');
        await mkdir(tmpDir, { recursive: true, mode: 0o700 });
        const job = {
          tmpDir,
          root: s.dir,
          deny: this.#denylist(s),
          owner: { uid, gid },
          progress: (stage: string, message?: string) => {
            if (op) this.#progress(op, stage, message);
          },
        };
        const room = await s.diskRoom();
        if (cmd.action === 'file_compress')
          return { data: await compressFiles(job, cmd.payload as Command<'file_compress'>['payload'], room) };
        return {
          data: await decompressFile(job, cmd.payload as Command<'file_decompress'>['payload'], room),
        };
      }
      case 'volume_backup':
      case 'volume_restore':
        return {
          data: await this.#volumeTicket(cmd as Command<'volume_backup'> | Command<'volume_restore'>),
        };
      case 'volume_list_files':
      case 'volume_get_file':
      case 'volume_file_download':
      case 'volume_file_upload':
      case 'volume_create_directory':
      case 'volume_rename':
      case 'volume_delete_files':
        return { data: await this.#volumeFiles(cmd) };
      case 'stack_deploy':
      case 'stack_stop':
      case 'stack_start':
      case 'stack_remove':
      case 'stack_list':
      case 'stack_inspect':
        return { data: await this.#stack(cmd) };
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
