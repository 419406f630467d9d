/**
 * One game server: its definition, its container, its state machine and a power lock.
 * Every power change goes through here; `kill` alone skips the lock (it must work when a stop hangs).
 */
import { lchown, mkdir, rename, rm, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Duplex, Readable } from 'node:stream';
import {
  bytesToSize,
  CodedError,
  canTransition,
  EggConfig,
  type EventData,
  type EventName,
  type ResourceSnapshot,
  type ServerStatus,
  type Signal,
  type StatusData,
  sizeToBytes,
  type UpdateStage,
} from '@cap/protocol';
import { doneMatcher, parseStop } from '@cap/protocol/templates/index.ts';
import type { Logger } from 'pino';
import type { AgentConfig } from '../config/config.ts';
import { applyConfigFiles, configContextFromEnvironment } from '../config-files/index.ts';
import { CgroupStats, cpuPercent } from '../environment/cgroup-stats.ts';
import {
  containerName,
  containerSpec,
  hostBindings,
  installerName,
  installerSpec,
} from '../environment/docker/container-spec.ts';
import type { ContainerState, DockerEnvironment } from '../environment/docker/docker.ts';
import { firstTakenPort } from '../environment/host-ports.ts';
import { chownPathInside, chownTree, diskUsage } from '../filesystem/filesystem.ts';
import { LineSplitter } from './console-lines.ts';
import { serverEnvironment } from './startup.ts';
import { LineThrottle } from './throttle.ts';

export type Emit = <E extends EventName>(name: E, data: EventData<E>) => void;

type DoneMatcher = (line: string) => boolean;

/** No pattern (absent or an empty list): the server counts as running once its process is up. */
function matcherFor(done: EggConfig['done']): DoneMatcher | null {
  if (done === undefined || (Array.isArray(done) && done.length === 0)) return null;
  return doneMatcher(done);
}

/** Where the last install left the server; persisted, so an Agent restart keeps `install_failed`. */
export type InstallState = 'none' | 'running' | 'done' | 'failed';

export interface ServerDeps {
  docker: DockerEnvironment;
  config: AgentConfig;
  logger: Logger;
  emit: Emit;
  serversDir: string;
  /** a step of the power action in flight (the manager turns it into operation_progress) */
  stage?: (serverId: string, stage: string, message?: string) => void;
}

interface Run {
  containerId: string;
  stream: Duplex | null;
  pid: number;
  startedAt: number;
  /** set when we asked for the exit (stop/kill/restart/delete/update): not a crash */
  expected: boolean;
  exited: Promise<number>;
  /** aborts the exit watch when the Agent lets go of the container */
  watch: AbortController;
}

const DEFAULT_STOP_TIMEOUT_S = 30;
/** Wings: a server over its disk limit is stopped, and killed if still up after this long. */
const DISK_STOP_TIMEOUT_S = 60;
/** While a server with a disk limit runs, its filesystem is probed (one statfs) this often. */
const DISK_PROBE_MS = 250;
/** From this share of the limit on, the tree is walked at every probe (cost allowing). */
const DISK_NEAR_SHARE = 0.8;
/** Over the limit by this factor while the stop runs (a game ignoring it): killed at once. */
const DISK_HARD_FACTOR = 1.1;
/** A walk may take at most this share of the time between walks (big worlds walk slowly). */
const DISK_WALK_COST_FACTOR = 4;

export class Server {
  readonly id: string;
  egg: EggConfig;
  status: ServerStatus = 'offline';
  containerId: string | null = null;
  readonly dir: string;
  readonly #deps: ServerDeps;
  readonly #log: Logger;
  #lock: Promise<unknown> = Promise.resolve();
  #run: Run | null = null;
  #lastCrashAt = 0;
  #done: DoneMatcher | null;
  readonly #throttle: LineThrottle;
  readonly #lines = new LineSplitter((line) => this.#onLine(line));
  /** the console stream attached last (a start's, before its run is recorded) */
  #attached: Duplex | null = null;
  #stats: CgroupStats | null = null;
  #prevCpu: { ns: number; at: bigint } | null = null;
  #disk = { bytes: 0, at: 0 };
  #diskWalk: Promise<void> | null = null;
  latest: ResourceSnapshot | null = null;
  #deleted = false;
  #installState: InstallState;
  /** the installer container while an install runs */
  #install: { containerId: string; done: Promise<void>; watch: AbortController } | null = null;
  #diskEnforcing = false;
  #diskKilling = false;
  /** the disk watch of the current run (see #watchDisk) */
  #diskWatch: NodeJS.Timeout | null = null;
  /** the status last written to the definition file (Wings' states.json, kept per server) */
  #persistedState: ServerStatus | undefined;
  /** definition writes, one after the other, so an older snapshot never lands after a newer one */
  #writes: Promise<void> = Promise.resolve();

  constructor(
    id: string,
    egg: EggConfig,
    deps: ServerDeps,
    installState: InstallState = 'none',
    lastState?: ServerStatus,
  ) {
    this.id = id;
    this.egg = egg;
    this.#deps = deps;
    this.dir = path.resolve(deps.serversDir, id);
    this.#log = deps.logger.child({ serverId: id });
    this.#done = matcherFor(egg.done);
    this.#installState = installState;
    this.#persistedState = lastState;
    // an install that did not finish (or failed) leaves the server unusable until a reinstall
    if (installState === 'failed' || installState === 'running') this.status = 'install_failed';
    this.#throttle = new LineThrottle({
      lines: deps.config.logThrottleLines,
      intervalMs: deps.config.logThrottleIntervalMs,
      onDropped: (count) => deps.emit('server_log_dropped', { serverId: id, count, reason: 'throttled' }),
    });
  }

  get running(): boolean {
    return this.#run !== null;
  }

  /**
   * Serialises power actions on this server. A kill bumps the generation: what was queued before
   * it is answered SERVER_BUSY ("cancelled") instead of running after it (a start queued behind a
   * hanging stop must not bring the server back up). `kill: false` for what a kill must not
   * cancel (a delete, the install a create starts).
   */
  #locked<T>(fn: () => Promise<T>, opts: { cancellable?: boolean } = {}): Promise<T> {
    const generation = this.#generation;
    const run = () => {
      if (opts.cancellable !== false && generation !== this.#generation) {
        return Promise.reject(new CodedError('SERVER_BUSY', 'cancelled: the server was killed meanwhile'));
      }
      return fn();
    };
    const next = this.#lock.then(run, run);
    this.#lock = next.catch(() => undefined);
    return next;
  }

  /** Bumped by every kill (see #locked). */
  #generation = 0;

  /** Between the steps of a restart or an update: a kill meanwhile ends it. */
  #notKilledSince(generation: number): void {
    if (generation !== this.#generation)
      throw new CodedError('SERVER_BUSY', 'cancelled: the server was killed meanwhile');
  }

  #setStatus(next: ServerStatus, reason?: string): void {
    const prev = this.status;
    if (prev === next) return;
    if (!canTransition(prev, next)) this.#log.warn({ from: prev, to: next }, 'transition outside the table');
    this.status = next;
    this.#log.info({ from: prev, to: next, reason }, 'status');
    this.#deps.emit('server_status_changed', {
      serverId: this.id,
      previousStatus: prev,
      currentStatus: next,
      ...(this.#run?.pid ? { pid: this.#run.pid } : {}),
      ...(reason ? { reason } : {}),
    });
    for (const w of [...this.#waiters]) w(next);
    // transitions only (an unchanged status returned above), and rare: a file write each is cheap.
    // Always queued: the write reads the status when it runs, so the file ends at the latest one.
    this.persist().catch((e) => this.#log.error({ err: e }, 'persist failed'));
  }

  #waiters = new Set<(s: ServerStatus) => void>();

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
  // definition and container

  get #definitionFile(): string {
    return path.join(this.#deps.serversDir, `${this.id}.json`);
  }

  /** Definition, install state and last status; written whole to a temp file and renamed over. */
  persist(): Promise<void> {
    const write = async () => {
      if (this.#deleted) return; // a late status change must not bring a deleted definition back
      const lastState = this.status;
      const tmp = `${this.#definitionFile}.tmp`;
      await writeFile(
        tmp,
        JSON.stringify(
          { serverId: this.id, eggConfig: this.egg, installState: this.#installState, lastState },
          null,
          2,
        ),
        { mode: 0o600 },
      );
      await rename(tmp, this.#definitionFile);
      this.#persistedState = lastState;
    };
    const next = this.#writes.then(write);
    this.#writes = next.catch(() => undefined);
    return next;
  }

  /** Resolves once the definition writes queued so far are on disk. */
  flushed(): Promise<void> {
    return this.#writes;
  }

  /**
   * Wings' reattach rule: the container is not running but the server was last running or
   * starting (the Agent was down when it stopped), so it is started again. Not after a user's
   * stop (`offline`), a crash left alone (`crashed`), a stop in progress or a failed install.
   */
  get resumeAfterDowntime(): boolean {
    if (this.#run || this.#install || this.#deleted || this.status === 'install_failed') return false;
    return this.#persistedState === 'running' || this.#persistedState === 'starting';
  }

  async #createContainer(): Promise<string> {
    await mkdir(this.dir, { recursive: true, mode: 0o750 });
    this.containerId = await this.#newContainer(this.egg);
    this.#log.info({ action: 'create', containerId: this.containerId }, 'container created');
    return this.containerId;
  }

  /** A container for `egg` (its image pulled when missing), named `name` (default the server's). */
  async #newContainer(egg: EggConfig, name?: string): Promise<string> {
    const { docker, config } = this.#deps;
    const entrypoint = await docker.imageEntrypoint(egg.image);
    const network = await docker.serversNetwork(config.dockerNetwork);
    const spec = containerSpec({
      network: network.name,
      serverId: this.id,
      nodeId: config.nodeId,
      egg,
      serverDir: this.dir,
      imageEntrypoint: entrypoint,
      bindIp: config.bindIp,
      timezone: config.timezone,
      user: `${config.containerUid}:${config.containerGid}`,
    });
    return docker.create(name ? { ...spec, name } : spec);
  }

  /**
   * First creation: files, definition, container, then the install when the egg has one. Returns
   * once the installer has started (status `installing`); its end comes as `install_completed`.
   */
  async create(): Promise<void> {
    // a failed create leaves nothing behind: no definition, no folder it made, no container
    const made = await mkdir(this.dir, { recursive: true, mode: 0o750 });
    try {
      const { containerUid, containerGid } = this.#deps.config;
      await lchown(this.dir, containerUid, containerGid);
      if (this.egg.install) this.#installState = 'running';
      await this.persist();
      await this.#createContainer();
    } catch (e) {
      this.#deleted = true; // no late status write brings the definition back
      await this.#writes;
      await rm(this.#definitionFile, { force: true }).catch(() => undefined);
      await rm(`${this.#definitionFile}.tmp`, { force: true }).catch(() => undefined);
      if (made !== undefined) await rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
      throw e;
    }
    if (this.egg.install) await this.#locked(() => this.#startInstall(), { cancellable: false });
  }

  async #ensureContainer(): Promise<string> {
    if (this.containerId && (await this.#deps.docker.inspect(this.containerId))) return this.containerId;
    // created by us before but gone (removed by hand): recreate it from the stored definition
    const byName = await this.#deps.docker.inspect(containerName(this.id));
    if (byName) {
      this.containerId = byName.id;
      return byName.id;
    }
    return this.#createContainer();
  }

  // -------------------------------------------------------------------------------------------
  // console

  #attachConsole(stream: Duplex): void {
    this.#attached = stream;
    stream.setEncoding?.('utf8');
    stream.on('data', (chunk: Buffer | string) => this.#onOutput(chunk.toString()));
    stream.on('error', (e) => this.#log.debug({ err: e }, 'console stream error'));
    // a console lost while the game runs on (the Engine restarted, its socket dropped) comes back
    stream.on('close', () => void this.#reattachConsole(stream));
  }

  async #reattachConsole(lost: Duplex): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const run = this.#run;
      if (!run || run.stream !== lost || run.watch.signal.aborted) return;
      await new Promise((r) => setTimeout(r, Math.min(30_000, 250 * 2 ** attempt)));
      if (this.#run !== run || run.watch.signal.aborted) return;
      try {
        const st = await this.#deps.docker.inspect(run.containerId);
        if (!st?.running) return; // an exit: the exit watch reports it
        const stream = await this.#deps.docker.attach(run.containerId);
        if (this.#run !== run) {
          stream.destroy();
          return;
        }
        run.stream = stream;
        this.#lines.reset();
        this.#attachConsole(stream);
        this.#log.info({ action: 'console', attempt }, 'console attached again');
        return;
      } catch (e) {
        this.#log.warn({ err: e, action: 'console', attempt }, 'console lost; attaching again');
      }
    }
  }

  #onOutput(text: string): void {
    this.#lines.push(text);
  }

  #onLine(line: string): void {
    if (this.status === 'starting' && this.#done?.(line)) this.#setStatus('running', 'done pattern matched');
    if (this.#throttle.admit()) {
      this.#deps.emit('server_log', { serverId: this.id, message: line, stream: 'stdout' });
    }
  }

  /** A line from the Agent itself in the server's console (Wings' "[Pterodactyl Daemon]" lines). */
  #daemon(message: string): void {
    this.#deps.emit('server_log', { serverId: this.id, message, stream: 'daemon' });
  }

  sendCommand(command: string): void {
    if (/[\r\n]/.test(command)) throw new CodedError('CONFIG_INVALID', 'a command is one line');
    // the done line can be read between the container's start and the run's bookkeeping: the
    // console attached for the start takes commands already
    const stream = this.#run?.stream ?? this.#attached;
    if (!stream || (this.status !== 'running' && this.status !== 'starting')) {
      throw new CodedError('NOT_RUNNING', 'server is not running');
    }
    // lost with the Engine and not back yet: say so rather than write into nothing
    if (stream.destroyed || !stream.writable) {
      throw new CodedError('DOCKER_ERROR', 'the console is not attached (Docker unreachable); retrying');
    }
    stream.write(`${command}\n`);
  }

  // -------------------------------------------------------------------------------------------
  // runs

  #beginRun(containerId: string, state: ContainerState, stream: Duplex | null): void {
    let resolveExit!: (code: number) => void;
    const run: Run = {
      containerId,
      stream,
      pid: state.pid,
      startedAt: Date.parse(state.startedAt) || Date.now(),
      expected: false,
      exited: new Promise<number>((r) => {
        resolveExit = r;
      }),
      watch: new AbortController(),
    };
    this.#run = run;
    this.#stats?.close();
    this.#stats = null;
    this.#prevCpu = null;
    this.#watchDisk(run);
    this.#waitExit(containerId, run)
      .then((code) => {
        resolveExit(code);
        return this.#onExit(run, code);
      })
      .catch((e) => this.#log.error({ err: e }, 'exit handling failed'));
  }

  /**
   * The exit code once the container stops. A failed wait (Engine restarting, socket hiccup) is
   * not an exit: ask the Engine what the container is doing and wait again if it still runs.
   */
  async #waitExit(containerId: string, run: Run): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0 && this.#run !== run) return -1; // detached (Agent stopping): stop watching
      try {
        return await this.#deps.docker.wait(containerId, run.watch.signal);
      } catch (e) {
        if (run.watch.signal.aborted) return -1;
        const st = await this.#deps.docker.inspect(containerId).catch(() => undefined);
        if (st === null) return -1; // removed
        if (st && !st.running) return st.exitCode;
        this.#log.warn({ err: e, attempt }, 'lost the exit watch; watching again');
        await new Promise((r) => setTimeout(r, Math.min(30_000, 500 * 2 ** attempt)));
      }
    }
  }

  async #onExit(run: Run, code: number): Promise<void> {
    if (this.#run !== run) return;
    this.#run = null;
    this.#stopDiskWatch();
    this.#stats?.close();
    this.#stats = null;
    this.#lines.reset();
    this.#throttle.flush();
    run.stream?.destroy();
    this.latest = null;
    if (run.expected || this.#deleted) {
      this.#setStatus('offline', `exit ${code}`);
      return;
    }
    const st = await this.#deps.docker.inspect(run.containerId).catch(() => null);
    const now = Date.now();
    const tooSoon = this.#lastCrashAt > 0 && now - this.#lastCrashAt < this.#deps.config.crashTimeoutMs;
    const restarting = this.egg.crashRestart !== false && !tooSoon;
    this.#lastCrashAt = now;
    this.#log.warn({ exitCode: code, restarting }, 'crashed');
    this.#setStatus('crashed', `exit ${code}`);
    this.#deps.emit('server_crashed', {
      serverId: this.id,
      exitCode: code,
      oomKilled: st?.oomKilled ?? false,
      restarting,
      ...(tooSoon ? { reason: 'crashed again within the crash timeout' } : {}),
    });
    if (restarting) {
      this.start().catch((e) => this.#log.error({ err: e, action: 'start' }, 'restart after crash failed'));
    }
  }

  // -------------------------------------------------------------------------------------------
  // power

  /** `reason` travels on the `starting` status change (why the Agent started it on its own). */
  start(reason?: string): Promise<void> {
    return this.#locked(() => this.#startLocked(reason));
  }

  async #startLocked(reason?: string): Promise<void> {
    if (this.#deleted) throw new CodedError('SERVER_NOT_FOUND', 'server was deleted');
    if (this.#run) return; // already starting/running: starting again is a no-op
    this.#refuseWhileInstalling();
    if (this.status === 'install_failed')
      throw new CodedError('INVALID_STATE', 'the install failed: reinstall the server first');
    const { docker } = this.#deps;
    const limit = this.egg.limits.disk ? sizeToBytes(this.egg.limits.disk) : 0;
    if (limit > 0 && (await this.#diskUsed(true)) > limit) {
      throw new CodedError('INSUFFICIENT_RESOURCES', 'disk usage is over the server limit');
    }
    // a directory made before the Agent ran games as a user of their own (cheap: the root only)
    await lchown(this.dir, this.#deps.config.containerUid, this.#deps.config.containerGid).catch(
      () => undefined,
    );
    await this.#rewriteConfigFiles();
    const id = await this.#ensureContainer();
    // attach before start so the first lines are not lost
    const stream = await docker.attach(id);
    this.#lines.reset();
    this.#attachConsole(stream);
    this.#setStatus('starting', reason);
    try {
      await docker.start(id);
    } catch (e) {
      stream.destroy();
      this.#setStatus('offline', 'start failed');
      throw e;
    }
    const state = await docker.inspect(id);
    if (!state) {
      stream.destroy();
      this.#setStatus('offline', 'container vanished');
      throw new CodedError('CONTAINER_NOT_FOUND', 'container vanished after start');
    }
    this.#beginRun(id, state, stream);
    if (!this.#done && this.status === 'starting') this.#setStatus('running', 'process up');
  }

  stop(opts: { signal?: Signal; timeout?: number } = {}): Promise<void> {
    return this.#locked(() => this.#stopLocked(opts));
  }

  async #stopLocked(opts: { signal?: Signal; timeout?: number }): Promise<void> {
    this.#refuseWhileInstalling();
    const run = this.#run;
    if (!run) {
      if (this.status === 'crashed') this.#setStatus('offline', 'stopped');
      return;
    }
    const { docker } = this.#deps;
    run.expected = true;
    this.#setStatus('stopping');
    const stop = parseStop(this.egg.stop);
    if (stop.type === 'command' && run.stream) run.stream.write(`${stop.command}\n`);
    else if (stop.type === 'signal' && this.egg.stop?.trim()) await docker.kill(run.containerId, stop.signal);
    // the egg names no stop: the caller's signal, SIGTERM by default
    else await docker.kill(run.containerId, opts.signal ?? 'SIGTERM');
    const timeoutS = opts.timeout ?? this.egg.stopTimeout ?? DEFAULT_STOP_TIMEOUT_S;
    this.#deps.stage?.(this.id, 'stopping', `stop sent; kill after ${timeoutS} s`);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      run.exited.then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), timeoutS * 1000);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.#log.info({ action: 'stop', timeoutS }, 'stop timed out, killing');
      this.#deps.stage?.(this.id, 'killing', `still running after ${timeoutS} s: killed`);
      await docker.kill(run.containerId, 'SIGKILL');
      await run.exited;
    }
    await this.#settled(run);
  }

  /** Waits until the exit handler of `run` has finished (status is final). */
  async #settled(run: Run): Promise<void> {
    await run.exited;
    while (this.#run === run) await new Promise((r) => setTimeout(r, 5));
  }

  /**
   * Kills at once, without waiting for the lock (it must work while a stop hangs), and cancels
   * every power action queued behind it. Then, once the action in flight (if any) has given the
   * lock back, kills again: a start that was past its checks may have brought the container up.
   */
  async kill(): Promise<void> {
    this.#generation++;
    const install = this.#install;
    if (install) {
      // killing an install ends it as failed
      await this.#deps.docker.kill(install.containerId, 'SIGKILL');
      await install.done;
      return;
    }
    await this.#killNow();
    await this.#locked(() => this.#killNow(), { cancellable: false });
  }

  async #killNow(): Promise<void> {
    const run = this.#run;
    if (!run) {
      if (this.status === 'crashed') this.#setStatus('offline', 'killed');
      return;
    }
    run.expected = true;
    await this.#deps.docker.kill(run.containerId, 'SIGKILL');
    await this.#settled(run);
  }

  restart(opts: { signal?: Signal; timeout?: number } = {}): Promise<void> {
    return this.#locked(async () => {
      const generation = this.#generation;
      this.#refuseWhileInstalling();
      await this.#stopLocked(opts);
      this.#notKilledSince(generation);
      await this.#startLocked();
    });
  }

  delete(): Promise<void> {
    return this.#locked(
      async () => {
        const run = this.#run;
        this.#deleted = true;
        const install = this.#install;
        if (install) {
          await this.#deps.docker.remove(install.containerId);
          await install.done;
        }
        if (run) {
          run.expected = true;
          await this.#deps.docker.kill(run.containerId, 'SIGKILL');
          await this.#settled(run);
        }
        await this.#deps.docker.remove(this.containerId ?? containerName(this.id));
        await rm(this.dir, { recursive: true, force: true });
        await this.#writes; // #deleted is set: nothing queued after this writes again
        await rm(this.#definitionFile, { force: true });
        this.#log.info({ action: 'delete' }, 'deleted');
      },
      { cancellable: false },
    );
  }

  /** New environment/limits/…: recreate the container, start it again if it was running, wait until ready. */
  update(
    patch: Partial<EggConfig>,
    progress: (stage: UpdateStage, message?: string) => void,
  ): Promise<ServerStatus> {
    return this.#locked(async () => {
      const generation = this.#generation;
      progress('validating');
      this.#refuseWhileInstalling();
      // An update's environment is the whole new environment (a variable left out is removed);
      // the system ones (SERVER_MEMORY, SERVER_PORT, TZ…) are added to it when the container is made.
      const merged = EggConfig.safeParse({
        ...this.egg,
        ...patch,
        environment: patch.environment ?? this.egg.environment,
        limits: { ...this.egg.limits, ...(patch.limits ?? {}) },
      });
      if (!merged.success) {
        throw new CodedError('CONFIG_INVALID', merged.error.issues.map((i) => i.message).join('; '));
      }
      // The whole new container is made (image pulled, spec accepted by the Engine) before the
      // running one is touched: a refused update leaves the server exactly as it was.
      const { docker, config } = this.#deps;
      // host ports the new definition adds (the running container holds the ones it had, on
      // whatever address: those are not tried)
      const held = new Set(hostBindings(this.egg, config.bindIp).map((b) => `${b.hostPort}|${b.proto}`));
      const taken = await firstTakenPort(
        hostBindings(merged.data, config.bindIp).filter((b) => !held.has(`${b.hostPort}|${b.proto}`)),
      );
      if (taken) {
        throw new CodedError(
          'PORT_CONFLICT',
          `port ${taken.hostPort}/${taken.proto} on ${taken.hostIp} is already in use on this node`,
        );
      }
      // (the Agent's boot removes a leftover of this name: see ServerManager.init)
      const nextName = `${containerName(this.id)}-next`;
      await docker.remove(nextName); // a leftover of an update the Agent did not finish
      const next = await this.#newContainer(merged.data, nextName);
      const wasRunning = this.#run !== null;
      try {
        if (wasRunning) {
          progress('stopping');
          await this.#stopLocked(
            merged.data.stopTimeout === undefined ? {} : { timeout: merged.data.stopTimeout },
          );
        }
        progress('recreating');
        await docker.remove(this.containerId ?? containerName(this.id));
        this.containerId = null;
        await docker.rename(next, containerName(this.id));
      } catch (e) {
        await docker.remove(next).catch(() => undefined);
        throw e;
      }
      this.containerId = next;
      this.egg = merged.data;
      this.#done = matcherFor(this.egg.done);
      this.#log.info({ action: 'update', containerId: next }, 'container recreated');
      await this.persist();
      if (wasRunning) {
        this.#notKilledSince(generation);
        progress('starting');
        await this.#startLocked();
        progress('waiting_ready');
        await this.waitReady(120_000);
      }
      progress('done');
      return this.status;
    });
  }

  /** After an Agent restart: take over a container that is already running, without restarting it. */
  async adopt(state: ContainerState): Promise<void> {
    this.containerId = state.id;
    if (!state.running) return;
    const stream = await this.#deps.docker.attach(state.id);
    this.#attachConsole(stream);
    this.#beginRun(state.id, state, stream);
    // its state is known from the container; done lines were printed long ago
    this.#setStatus('running', 'reattached');
  }

  /** Stop watching (Agent shutdown): the container keeps running. */
  detach(): void {
    this.#install?.watch.abort();
    this.#install = null;
    const run = this.#run;
    this.#run = null;
    this.#stopDiskWatch();
    run?.watch.abort();
    run?.stream?.destroy();
    this.#stats?.close();
    this.#stats = null;
    this.#throttle.flush();
  }

  // -------------------------------------------------------------------------------------------
  // install (Wings' installer container) and config files

  get installing(): boolean {
    return this.#install !== null;
  }

  #refuseWhileInstalling(): void {
    if (this.#install) throw new CodedError('INVALID_STATE', 'the server is installing');
  }

  get #scriptDir(): string {
    // ids start alphanumeric, so `.install` never collides with a server directory
    return path.join(this.#deps.serversDir, '.install', this.id);
  }

  /** Runs the install again (stopping the server first); returns once the installer has started. */
  reinstall(): Promise<void> {
    return this.#locked(async () => {
      if (this.#deleted) throw new CodedError('SERVER_NOT_FOUND', 'server was deleted');
      if (!this.egg.install) throw new CodedError('CONFIG_INVALID', 'this server has no install script');
      this.#refuseWhileInstalling();
      if (this.#run) await this.#stopLocked({});
      await this.#startInstall();
    });
  }

  /** With the lock held: script to a temp dir, installer created and started, then watched. */
  async #startInstall(): Promise<void> {
    const install = this.egg.install;
    if (!install) return;
    const { docker, config } = this.#deps;
    const scriptDir = this.#scriptDir;
    this.#installState = 'running';
    await this.persist();
    this.#setStatus('installing', 'install started');
    let containerId: string | undefined;
    try {
      await rm(scriptDir, { recursive: true, force: true });
      await mkdir(scriptDir, { recursive: true, mode: 0o700 });
      // scripts exported from Windows panels carry CRLF, which bash reads as part of each word
      await writeFile(path.join(scriptDir, 'install.sh'), install.script.replace(/\r\n/g, '\n'), {
        mode: 0o700,
      });
      await docker.remove(installerName(this.id)); // a leftover from a crash
      await docker.imageEntrypoint(install.container); // pulled here when missing
      const network = await docker.serversNetwork(config.dockerNetwork);
      containerId = await docker.create(
        installerSpec({
          network: network.name,
          serverId: this.id,
          nodeId: config.nodeId,
          egg: this.egg,
          serverDir: this.dir,
          scriptDir,
          bindIp: config.bindIp,
          timezone: config.timezone,
        }),
      );
      await docker.start(containerId);
    } catch (e) {
      this.#log.error({ err: e, action: 'install' }, 'installer did not start');
      this.#deps.emit('install_output', {
        serverId: this.id,
        message: `installer did not start: ${(e as Error).message}`,
      });
      if (containerId) await docker.remove(containerId).catch(() => undefined);
      await rm(scriptDir, { recursive: true, force: true }).catch(() => undefined);
      await this.#finishInstall(false, undefined);
      return;
    }
    this.#log.info({ action: 'install', containerId }, 'installer started');
    this.#watchInstall(containerId, false);
  }

  /** After an Agent restart: wait for an installer that is still there. */
  adoptInstall(containerId: string): void {
    if (this.#install) return;
    this.#setStatus('installing', 'reattached to the installer');
    this.#watchInstall(containerId, true);
  }

  /** An install recorded as running whose installer is gone (Agent down meanwhile): failed. */
  async installInterrupted(): Promise<void> {
    if (this.#installState === 'running' && !this.#install) await this.#finishInstall(false, undefined);
  }

  #watchInstall(containerId: string, reattached: boolean): void {
    const { docker, config } = this.#deps;
    const throttle = new LineThrottle({
      lines: config.logThrottleLines,
      intervalMs: config.logThrottleIntervalMs,
      onDropped: (count) =>
        this.#deps.emit('server_log_dropped', { serverId: this.id, count, reason: 'throttled' }),
    });
    const watch = new AbortController();
    const done = (async () => {
      let output: Readable | null = null;
      const ended = docker
        .follow(containerId, reattached ? { tail: 0 } : {})
        .then((stream) => {
          output = stream;
          // the same line cap and throttle as the game's console
          const lines = new LineSplitter((line) => {
            if (throttle.admit()) this.#deps.emit('install_output', { serverId: this.id, message: line });
          });
          stream.setEncoding('utf8');
          stream.on('data', (chunk: string) => lines.push(chunk));
          return new Promise<void>((resolve) => {
            stream.on('end', () => {
              lines.flush();
              resolve();
            });
            stream.on('error', () => resolve());
          });
        })
        .catch((e) => this.#log.warn({ err: e, action: 'install' }, 'no installer output'));
      let code: number;
      try {
        code = await docker.wait(containerId, watch.signal);
      } catch {
        if (watch.signal.aborted) {
          (output as Readable | null)?.destroy();
          return; // the Agent let go (shutdown): the next one reattaches
        }
        const st = await docker.inspect(containerId).catch(() => null);
        code = st && !st.running ? st.exitCode : -1; // removed (deleted meanwhile): failed
      }
      // the last lines before install_completed, but never hang on a stream that does not end
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([ended, new Promise((r) => (timer = setTimeout(r, 2000)))]);
      clearTimeout(timer);
      (output as Readable | null)?.destroy();
      throttle.flush();
      await docker.remove(containerId).catch(() => undefined);
      await rm(this.#scriptDir, { recursive: true, force: true }).catch(() => undefined);
      await this.#finishInstall(code === 0, code);
    })().catch((e) => this.#log.error({ err: e, action: 'install' }, 'install handling failed'));
    this.#install = { containerId, done, watch };
  }

  async #finishInstall(success: boolean, exitCode: number | undefined): Promise<void> {
    this.#install = null;
    if (this.#deleted) return;
    const { containerUid, containerGid } = this.#deps.config;
    // The installer ran as root: its files go to the game's user (Wings chowns after install too)
    // and lose any setuid/setgid bit. After a failed install as well: what it left stays there.
    await chownTree(this.dir, containerUid, containerGid).catch((e) =>
      this.#log.warn({ err: e }, 'chown failed'),
    );
    this.#installState = success ? 'done' : 'failed';
    await this.persist().catch((e) => this.#log.error({ err: e }, 'persist failed'));
    this.#log.info({ action: 'install', success, exitCode }, 'install finished');
    this.#setStatus(success ? 'offline' : 'install_failed', `install exit ${exitCode ?? 'none'}`);
    this.#deps.emit('install_completed', {
      serverId: this.id,
      success,
      ...(exitCode === undefined || exitCode < 0 ? {} : { exitCode }),
    });
  }

  /**
   * The egg's config files, rewritten before every start (Wings' pre-start step). A file that
   * fails is reported in the console and does not block the start.
   */
  async #rewriteConfigFiles(): Promise<void> {
    const files = this.egg.configFiles;
    if (!files || Object.keys(files).length === 0) return;
    const { docker, config } = this.#deps;
    const env = serverEnvironment(this.egg, { bindIp: config.bindIp, timezone: config.timezone });
    const gateway = await docker.bridgeGateway();
    const ctx = configContextFromEnvironment(env, gateway ? { dockerInterface: gateway } : {});
    const results = await applyConfigFiles(this.dir, files, ctx).catch((e: Error) => {
      this.#log.warn({ err: e, action: 'config_files' }, 'config files not rewritten');
      this.#daemon(`config files not rewritten: ${e.message}`);
      return [];
    });
    for (const r of results) {
      if (!r.ok) {
        this.#log.warn({ action: 'config_files', file: r.file, code: r.code }, 'config file not rewritten');
        this.#daemon(`config file ${r.file} not rewritten (${r.code}): ${r.message ?? ''}`);
      } else if (r.changed) {
        await this.#chownPath(r.file);
      }
    }
  }

  /** A rewritten (maybe created) file and the directories above it go to the game's user. */
  async #chownPath(rel: string): Promise<void> {
    const { containerUid, containerGid } = this.#deps.config;
    await chownPathInside(this.dir, rel, containerUid, containerGid).catch((e) =>
      this.#log.warn({ err: e, action: 'config_files' }, 'chown failed'),
    );
  }

  /**
   * Wings: over the disk limit while running → a console line, stop, kill after 60 s. Ours also
   * kills at once when the usage goes on past DISK_HARD_FACTOR × the limit while the stop runs.
   */
  #enforceDisk(bytes: number, limit: number): void {
    if (limit <= 0 || bytes <= limit || !this.#run) return;
    if (this.#diskEnforcing) {
      if (bytes <= limit * DISK_HARD_FACTOR || this.#diskKilling) return;
      this.#diskKilling = true;
      this.#log.warn({ action: 'disk_limit', bytes, limit }, 'still writing past the disk limit, killing');
      this.#daemon('server is still writing past the assigned disk space limit, killing process now');
      this.kill()
        .catch((e) => this.#log.error({ err: e, action: 'disk_limit' }, 'kill failed'))
        .finally(() => {
          this.#diskKilling = false;
        });
      return;
    }
    if (this.status !== 'running' && this.status !== 'starting') return;
    this.#diskEnforcing = true;
    this.#log.warn({ action: 'disk_limit', bytes, limit }, 'over the disk limit, stopping');
    this.#daemon('server is exceeding the assigned disk space limit, stopping process now');
    this.stop({ timeout: DISK_STOP_TIMEOUT_S })
      .catch((e) => this.#log.error({ err: e, action: 'disk_limit' }, 'stop failed'))
      .finally(() => {
        this.#diskEnforcing = false;
      });
  }

  /**
   * The disk limit, watched while the server runs. A walk of the tree costs a stat per file, so
   * it is not done every probe: a cheap statfs of the filesystem every DISK_PROBE_MS tells when
   * something was written, and the tree is walked then (and every probe while the last walk
   * grew or is near the limit), never more often than DISK_WALK_COST_FACTOR × the last walk's
   * time, and at least every diskCheckIntervalMs. What this cannot stop is in the README.
   */
  #watchDisk(run: Run): void {
    this.#stopDiskWatch();
    const limit = this.egg.limits.disk ? sizeToBytes(this.egg.limits.disk) : 0;
    if (limit <= 0) return;
    let busy = false;
    let fsUsedAtWalk = -1;
    let walkMs = 0;
    let grew = false;
    const tick = async () => {
      if (busy || this.#run !== run) return;
      busy = true;
      try {
        const st = await statfs(this.dir).catch(() => null);
        const fsUsed = st ? (st.blocks - st.bfree) * st.bsize : -1;
        if (fsUsedAtWalk < 0) fsUsedAtWalk = fsUsed; // the baseline: what the last walk saw
        const sinceWalk = Date.now() - this.#disk.at;
        const written =
          fsUsed >= 0 && fsUsedAtWalk >= 0 && fsUsed - fsUsedAtWalk >= Math.max(256 * 1024, limit / 100);
        const hot = grew || written || this.#disk.bytes >= limit * DISK_NEAR_SHARE;
        const due =
          sinceWalk >= this.#deps.config.diskCheckIntervalMs ||
          (hot && sinceWalk >= Math.max(DISK_PROBE_MS, DISK_WALK_COST_FACTOR * walkMs));
        if (!due) return;
        const before = this.#disk.bytes;
        const started = Date.now();
        const bytes = await this.#diskUsed(true);
        walkMs = Date.now() - started;
        fsUsedAtWalk = fsUsed;
        grew = bytes > before;
        if (this.#run === run) this.#enforceDisk(bytes, limit);
      } catch (e) {
        this.#log.debug({ err: e, action: 'disk_limit' }, 'disk check failed');
      } finally {
        busy = false;
      }
    };
    this.#diskWatch = setInterval(() => void tick(), DISK_PROBE_MS);
    this.#diskWatch.unref();
  }

  #stopDiskWatch(): void {
    if (this.#diskWatch) clearInterval(this.#diskWatch);
    this.#diskWatch = null;
  }

  // -------------------------------------------------------------------------------------------
  // resources

  /**
   * Bytes under the server directory. The walk can be slow on big worlds, so stats ticks get the
   * cached figure and refresh it in the background; the pre-start check waits for a fresh one.
   */
  async #diskUsed(fresh = false): Promise<number> {
    const refresh = () => {
      this.#diskWalk ??= diskUsage(this.dir)
        .then((bytes) => {
          this.#disk = { bytes, at: Date.now() };
        })
        .finally(() => {
          this.#diskWalk = null;
        });
      return this.#diskWalk;
    };
    if (fresh || this.#disk.at === 0) await refresh();
    else if (Date.now() - this.#disk.at > this.#deps.config.diskCheckIntervalMs) void refresh();
    return this.#disk.bytes;
  }

  /**
   * A file-API write of `bytes` into this server's folder (replacing a file of `replacing` bytes)
   * is refused with INSUFFICIENT_RESOURCES when it would take the folder past its disk limit.
   */
  async assertDiskRoom(bytes: number, replacing = 0): Promise<void> {
    const limit = this.egg.limits.disk ? sizeToBytes(this.egg.limits.disk) : 0;
    if (limit <= 0) return;
    const used = await this.#diskUsed(true);
    if (used - replacing + bytes > limit)
      throw new CodedError(
        'INSUFFICIENT_RESOURCES',
        `the write would take the server past its disk limit (${used} of ${limit} bytes used)`,
      );
  }

  /** One resource sample (cgroup files; one-shot Engine stats when those are not readable). */
  async sample(): Promise<ResourceSnapshot | null> {
    const run = this.#run;
    if (!run) return null;
    let cpuNs: number;
    let used: number;
    let limit: number;
    let rx: number;
    let tx: number;
    if (!this.#stats) {
      const opened = await CgroupStats.open(run.pid, run.containerId);
      if (this.#run !== run) {
        opened?.close();
        return null;
      }
      this.#stats = opened;
    }
    const at = process.hrtime.bigint();
    if (this.#stats) {
      const s = this.#stats.sample();
      if (!s) return this.latest;
      ({ cpuNs, memoryUsed: used, memoryLimit: limit, rx, tx } = s);
    } else {
      const s = await this.#deps.docker.statsOnce(run.containerId);
      if (!s) return this.latest;
      ({ cpuTotalNs: cpuNs, memoryUsed: used, memoryLimit: limit, rx, tx } = s);
    }
    if (this.#run !== run) return null;
    const prev = this.#prevCpu;
    this.#prevCpu = { ns: cpuNs, at };
    const cpu = prev ? cpuPercent(prev.ns, cpuNs, Number(at - prev.at)) : 0;
    const diskBytes = await this.#diskUsed();
    const diskLimit = this.egg.limits.disk ? sizeToBytes(this.egg.limits.disk) : 0;
    this.#enforceDisk(diskBytes, diskLimit);
    const round = (n: number) => Math.round(n * 100) / 100;
    this.latest = {
      serverId: this.id,
      cpu: round(cpu),
      memory: {
        used: bytesToSize(used),
        percentage: limit > 0 ? round((used / limit) * 100) : 0,
        usedBytes: used,
        limitBytes: limit,
      },
      network: { rx, tx },
      disk: {
        used: bytesToSize(diskBytes),
        percentage: diskLimit > 0 ? round((diskBytes / diskLimit) * 100) : 0,
        usedBytes: diskBytes,
        limitBytes: diskLimit,
      },
      uptime: Math.max(0, Math.round((Date.now() - run.startedAt) / 1000)),
    };
    return this.latest;
  }

  async statusData(): Promise<StatusData> {
    const r = this.#run ? ((await this.sample()) ?? this.latest) : null;
    const limit = r?.memory.limitBytes ?? 0;
    const used = r?.memory.usedBytes ?? 0;
    return {
      serverId: this.id,
      status: this.status,
      containerId: this.containerId,
      uptime: r?.uptime ?? 0,
      resources: {
        cpu: r?.cpu ?? 0,
        memory: {
          used: bytesToSize(used),
          available: bytesToSize(Math.max(0, limit - used)),
          usedBytes: used,
          limitBytes: limit,
        },
        network: { tx: r?.network.tx ?? 0, rx: r?.network.rx ?? 0 },
      },
    };
  }
}
