/**
 * One game server: its definition, its state machine and its event bus, with one part per
 * concern: power (power.ts: runs, the queue lock, kill pre-emption), install (install.ts),
 * console (console.ts: attach, the one line/throttle path), resources (resources.ts: stats and
 * the disk limit) and the definition store (definition-store.ts). Its runtime is an Environment
 * (../environment/environment.ts); what it does is published on `events`, never sent anywhere.
 */
import { lchown, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import {
  CodedError,
  canTransition,
  type EggConfig,
  type ResourceSnapshot,
  type SendCommandData,
  type ServerStatus,
  type Signal,
  type StatusData,
  type UpdateStage,
} from '@cap/protocol';
import { doneMatcher } from '@cap/protocol/templates/index.ts';
import type { Logger } from 'pino';
import type { AgentConfig } from '../config/config.ts';
import type { Environment, InstanceState } from '../environment/environment.ts';
import {
  type ServerConsole as AnyConsole,
  createRemoteConsole,
  type RemoteConsole,
} from '../remote-console/index.ts';
import type { BackoffOptions } from '../remote-console/managed.ts';
import { ServerConsole } from './console.ts';
import { DefinitionStore, type InstallState } from './definition-store.ts';
import { EventBus } from './events.ts';
import { ServerInstall } from './install.ts';
import { ServerPower } from './power.ts';
import { ServerResources } from './resources.ts';

export type { InstallState } from './definition-store.ts';

type DoneMatcher = (line: string) => boolean;

/** No pattern (absent or an empty list): the server counts as running once its process is up. */
function matcherFor(done: EggConfig['done']): DoneMatcher | null {
  if (done === undefined || (Array.isArray(done) && done.length === 0)) return null;
  return doneMatcher(done);
}

export interface ServerDeps {
  env: Environment;
  config: AgentConfig;
  logger: Logger;
  serversDir: string;
  /**
   * Runs one of the Agent's own power actions (`what`: "restart after a crash") under the
   * manager's per-server try-lock, once `wanted()` still holds after any operation in flight ended.
   */
  ownAction?: (
    what: string,
    action: 'start_server' | 'stop_server',
    wanted: () => boolean,
    act: () => Promise<void>,
  ) => Promise<void>;
  /** reconnect pacing of remote consoles (tests make it short) */
  remoteConsoleBackoff?: BackoffOptions;
}

/** The process of one start, while it lives. */
export interface Run {
  containerId: string;
  stream: Duplex | null;
  pid: number;
  startedAt: number;
  /** set when we asked for the exit (stop/kill/restart/delete/update): not a crash */
  expected: boolean;
  exited: Promise<number>;
  /** aborts the exit watch when the Agent lets go of the instance */
  watch: AbortController;
}

export class Server {
  readonly id: string;
  egg: EggConfig;
  status: ServerStatus = 'offline';
  containerId: string | null = null;
  readonly dir: string;
  readonly deps: ServerDeps;
  readonly log: Logger;
  /** what this server does: status, console, install, stats, stages (see events.ts) */
  readonly events: EventBus;
  // the parts (they share the state above and below)
  readonly store: DefinitionStore;
  readonly console: ServerConsole;
  readonly resources: ServerResources;
  readonly install: ServerInstall;
  readonly power: ServerPower;
  /** the current run (set and cleared by power) */
  run: Run | null = null;
  deleted = false;
  installState: InstallState;
  #done: DoneMatcher | null;
  #remote!: AnyConsole;
  #waiters = new Set<(s: ServerStatus) => void>();

  constructor(
    id: string,
    egg: EggConfig,
    deps: ServerDeps,
    installState: InstallState = 'none',
    lastState?: ServerStatus,
  ) {
    this.id = id;
    this.egg = egg;
    this.deps = deps;
    this.dir = path.resolve(deps.serversDir, id);
    this.log = deps.logger.child({ serverId: id });
    this.events = new EventBus((err, type) =>
      this.log.error({ err, event: type }, 'event subscriber failed'),
    );
    this.#done = matcherFor(egg.done);
    this.installState = installState;
    // an install that did not finish (or failed) leaves the server unusable until a reinstall
    if (installState === 'failed' || installState === 'running') this.status = 'install_failed';
    this.store = new DefinitionStore(
      deps.serversDir,
      id,
      () => ({
        serverId: this.id,
        eggConfig: this.egg,
        installState: this.installState,
        lastState: this.status,
      }),
      lastState,
    );
    this.console = new ServerConsole(this);
    this.resources = new ServerResources(this);
    this.install = new ServerInstall(this);
    this.power = new ServerPower(this);
    this.#remote = this.#makeRemoteConsole();
  }

  /** The console commands go to: stdin or the template's remote console (see remote-console/). */
  get remoteConsole(): RemoteConsole {
    return this.#remote;
  }

  #makeRemoteConsole(): AnyConsole {
    const c = createRemoteConsole({
      serverId: this.id,
      egg: () => this.egg,
      writeStdin: (command) => this.console.sendCommand(command),
      log: this.log,
      ...(this.deps.remoteConsoleBackoff ? { backoff: this.deps.remoteConsoleBackoff } : {}),
    });
    c.onState((state, message) =>
      this.events.publish('remote_console', {
        serverId: this.id,
        transport: c.transport,
        state,
        ...(message ? { message: message.slice(0, 1024) } : {}),
      }),
    );
    return c;
  }

  /** Start or stop the remote console with the server's status. */
  #followStatus(status: ServerStatus): void {
    const c = this.#remote;
    const on = c.transport === 'stdin' ? status === 'running' || status === 'starting' : status === 'running';
    if (on && c.state === 'idle') c.start();
    else if (!on && status !== 'running' && status !== 'starting') {
      if (c.state !== 'idle') c.stop();
    }
  }

  get running(): boolean {
    return this.run !== null;
  }

  get installing(): boolean {
    return this.install.running;
  }

  get latest(): ResourceSnapshot | null {
    return this.resources.latest;
  }

  get hasDonePattern(): boolean {
    return this.#done !== null;
  }

  /** A new definition (an update): the done pattern follows it. */
  setEgg(egg: EggConfig): void {
    const before = this.egg.remoteConsole?.transport ?? 'stdin';
    this.egg = egg;
    this.#done = matcherFor(egg.done);
    if ((egg.remoteConsole?.transport ?? 'stdin') !== before) {
      this.#remote.stop();
      this.#remote = this.#makeRemoteConsole();
      this.#followStatus(this.status);
    }
  }

  /** Every game console line, throttled or not: the done pattern ends `starting`. */
  onConsoleLine(line: string): void {
    if (this.status === 'starting' && this.#done?.(line)) this.setStatus('running', 'done pattern matched');
  }

  /** A step of the power action in flight (the manager makes it operation_progress). */
  stage(stage: string, message?: string): void {
    this.events.publish('stage', { serverId: this.id, stage, ...(message ? { message } : {}) });
  }

  setStatus(next: ServerStatus, reason?: string): void {
    const prev = this.status;
    if (prev === next) return;
    if (!canTransition(prev, next)) this.log.warn({ from: prev, to: next }, 'transition outside the table');
    this.status = next;
    this.log.info({ from: prev, to: next, reason }, 'status');
    this.events.publish('status', {
      serverId: this.id,
      previousStatus: prev,
      currentStatus: next,
      ...(this.run?.pid ? { pid: this.run.pid } : {}),
      ...(reason ? { reason } : {}),
    });
    for (const w of [...this.#waiters]) w(next);
    this.#followStatus(next);
    // transitions only (an unchanged status returned above), and rare: a file write each is cheap.
    // Always queued: the write reads the status when it runs, so the file ends at the latest one.
    this.store.persist().catch((e) => this.log.error({ err: e }, 'persist failed'));
  }

  /** Resolves when the server is running; rejects when it ends up offline/crashed or on timeout. */
  waitReady(timeoutMs: number): Promise<void> {
    if (this.status === 'running') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (s: ServerStatus) => {
        if (s === 'running') finish();
        else if (s === 'offline' || s === 'crashed')
          finish(new CodedError('INVALID_STATE', `server became ${s}`));
      };
      const timer = setTimeout(
        () => finish(new CodedError('TIMEOUT', 'server did not become ready')),
        timeoutMs,
      );
      const finish = (err?: Error) => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        if (err) reject(err);
        else resolve();
      };
      this.#waiters.add(done);
    });
  }

  // -------------------------------------------------------------------------------------------
  // definition

  /** Definition, install state and last status, written whole (see definition-store.ts). */
  persist(): Promise<void> {
    return this.store.persist();
  }

  /** Resolves once the definition writes queued so far are on disk. */
  flushed(): Promise<void> {
    return this.store.flushed();
  }

  /**
   * Wings' reattach rule: the instance is not running but the server was last running or
   * starting (the Agent was down when it stopped), so it is started again. Not after a user's
   * stop (`offline`), a crash left alone (`crashed`), a stop in progress or a failed install.
   */
  get resumeAfterDowntime(): boolean {
    if (this.run || this.install.running || this.deleted || this.status === 'install_failed') return false;
    const last = this.store.persistedState;
    return last === 'running' || last === 'starting';
  }

  /**
   * First creation: files, definition, instance, then the install when the egg has one. Returns
   * once the installer has started (status `installing`); its end comes as `install_completed`.
   */
  async create(): Promise<void> {
    // a failed create leaves nothing behind: no definition, no folder it made, no instance
    const made = await mkdir(this.dir, { recursive: true, mode: 0o750 });
    try {
      const { containerUid, containerGid } = this.deps.config;
      await lchown(this.dir, containerUid, containerGid);
      if (this.egg.install) this.installState = 'running';
      await this.store.persist();
      await this.power.create();
    } catch (e) {
      this.deleted = true; // no late status write brings the definition back
      await this.store.remove().catch(() => undefined);
      if (made !== undefined) await rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
      throw e;
    }
    if (this.egg.install) await this.power.firstInstall();
  }

  delete(): Promise<void> {
    return this.power.delete(async () => {
      this.#remote.stop();
      await rm(this.dir, { recursive: true, force: true });
      await this.store.remove(); // `deleted` is set: nothing queued after this writes again
      this.console.removeMark();
      this.log.info({ action: 'delete' }, 'deleted');
    });
  }

  /**
   * Fenced (failover moved it to another node): its run is killed and its instance removed as by
   * a delete, but its folder and definition are moved aside by `moveAside`, never deleted.
   */
  fence(moveAside: (dir: string, definitionFile: string) => Promise<string | null>): Promise<string | null> {
    let moved: string | null = null;
    return this.power
      .delete(async () => {
        this.#remote.stop();
        this.store.close(); // `deleted` is set: no write after this brings the definition back
        await this.store.flushed();
        moved = await moveAside(this.dir, path.join(path.dirname(this.dir), `${this.id}.json`));
        this.log.warn({ action: 'fence', movedTo: moved }, 'fenced: files moved aside');
      })
      .then(() => moved);
  }

  // -------------------------------------------------------------------------------------------
  // power, install, console, resources (the parts do it)

  start(reason?: string): Promise<void> {
    return this.power.start(reason);
  }

  stop(opts: { signal?: Signal; timeout?: number } = {}): Promise<void> {
    return this.power.stop(opts);
  }

  kill(): Promise<void> {
    return this.power.kill();
  }

  restart(opts: { signal?: Signal; timeout?: number } = {}): Promise<void> {
    return this.power.restart(opts);
  }

  reinstall(): Promise<void> {
    return this.power.reinstall();
  }

  update(
    patch: Partial<EggConfig>,
    progress: (stage: UpdateStage, message?: string) => void,
  ): Promise<ServerStatus> {
    return this.power.update(patch, progress);
  }

  adopt(state: InstanceState): Promise<void> {
    return this.power.adopt(state);
  }

  adoptInstall(containerId: string): void {
    this.install.adopt(containerId);
  }

  installInterrupted(): Promise<void> {
    return this.install.interrupted();
  }

  /** Stop watching (Agent shutdown): the instance keeps running. */
  detach(): void {
    this.#remote.stop();
    this.install.detach();
    this.power.detach();
  }

  sendCommand(command: string): void {
    this.console.sendCommand(command);
  }

  /** A user's command: through the remote console of the template (stdin by default). */
  async command(command: string): Promise<SendCommandData> {
    const c = this.#remote;
    if (c.transport === 'stdin' || c.off) {
      this.console.sendCommand(command);
      return { transport: 'stdin' };
    }
    const reply = await c.send(command);
    return { transport: c.transport, ...(reply.response === undefined ? {} : { response: reply.response }) };
  }

  diskRoom(): Promise<number> {
    return this.resources.diskRoom();
  }

  assertDiskRoom(bytes: number, replacing = 0): Promise<void> {
    return this.resources.assertDiskRoom(bytes, replacing);
  }

  sample(): Promise<ResourceSnapshot | null> {
    return this.resources.sample();
  }

  statusData(): Promise<StatusData> {
    return this.resources.statusData();
  }
}
