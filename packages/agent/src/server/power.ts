/**
 * A server's power: its runs (start, the exit watch, the crash policy), stop with a timeout and a
 * kill after it, kill, restart, reinstall, update (the instance made again) and delete, all
 * serialised by one queue lock. A kill skips the queue (it must work while a stop hangs) and
 * cancels what waits in it. Above that queue, the per-server try-lock (PowerLocks, at the end):
 * one holder at a time, a user's operation or one of the Agent's own actions; anything else is
 * SERVER_BUSY at once, and a kill pre-empts the holder.
 */
import { lchown, mkdir } from 'node:fs/promises';
import {
  CodedError,
  type Command,
  EggConfig,
  type ErrorCode,
  type ImageUpdateData,
  type ServerStatus,
  type Signal,
  type UpdateStage,
} from '@cap/protocol';
import { parseStop } from '@cap/protocol/templates/index.ts';
import { applyConfigFiles, configContextFromEnvironment } from '../config-files/index.ts';
import type { InstanceState } from '../environment/environment.ts';
import { chownPathInside } from '../filesystem/filesystem.ts';
import type { Run, Server } from './server.ts';
import { serverEnvironment } from './startup.ts';

const DEFAULT_STOP_TIMEOUT_S = 30;

export class ServerPower {
  readonly #server: Server;
  #lock: Promise<unknown> = Promise.resolve();
  /** Bumped by every kill (see #locked). */
  #generation = 0;
  #lastCrashAt = 0;

  constructor(server: Server) {
    this.#server = server;
  }

  /**
   * Serialises power actions on this server. A kill bumps the generation: what was queued before
   * it is answered SERVER_BUSY ("cancelled") instead of running after it (a start queued behind a
   * hanging stop must not bring the server back up). `kill: false` for what a kill must not
   * cancel (a delete, the install a create starts).
   */
  locked<T>(fn: () => Promise<T>, opts: { cancellable?: boolean } = {}): Promise<T> {
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

  /** Between the steps of a restart or an update: a kill meanwhile ends it. */
  #notKilledSince(generation: number): void {
    if (generation !== this.#generation)
      throw new CodedError('SERVER_BUSY', 'cancelled: the server was killed meanwhile');
  }

  // -------------------------------------------------------------------------------------------
  // instance

  async #createContainer(): Promise<string> {
    const server = this.#server;
    await mkdir(server.dir, { recursive: true, mode: 0o750 });
    server.containerId = await server.deps.env.create(server.id, server.egg, server.dir);
    server.log.info({ action: 'create', containerId: server.containerId }, 'container created');
    return server.containerId;
  }

  /** The server's instance: the known one, the one by its name, or a new one. */
  async ensureContainer(): Promise<string> {
    const server = this.#server;
    const { env } = server.deps;
    if (server.containerId && (await env.inspect(server.containerId))) return server.containerId;
    // created by us before but gone (removed by hand): recreate it from the stored definition
    const byName = await env.find(server.id);
    if (byName) {
      server.containerId = byName.id;
      return byName.id;
    }
    return this.#createContainer();
  }

  // -------------------------------------------------------------------------------------------
  // runs

  #beginRun(containerId: string, state: InstanceState, stream: Run['stream']): void {
    const server = this.#server;
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
    server.run = run;
    server.resources.beginRun(run);
    this.#waitExit(containerId, run)
      .then((code) => {
        resolveExit(code);
        return this.#onExit(run, code);
      })
      .catch((e) => server.log.error({ err: e }, 'exit handling failed'));
  }

  /**
   * The exit code once the instance stops. A failed wait (Engine restarting, socket hiccup) is
   * not an exit: ask the runtime what the instance is doing and wait again if it still runs.
   */
  async #waitExit(containerId: string, run: Run): Promise<number> {
    const server = this.#server;
    const { env } = server.deps;
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0 && server.run !== run) return -1; // detached (Agent stopping): stop watching
      try {
        return await env.wait(containerId, run.watch.signal);
      } catch (e) {
        if (run.watch.signal.aborted) return -1;
        const st = await env.inspect(containerId).catch(() => undefined);
        if (st === null) return -1; // removed
        if (st && !st.running) return st.exitCode;
        server.log.warn({ err: e, attempt }, 'lost the exit watch; watching again');
        await new Promise((r) => setTimeout(r, Math.min(30_000, 500 * 2 ** attempt)));
      }
    }
  }

  async #onExit(run: Run, code: number): Promise<void> {
    const server = this.#server;
    if (server.run !== run) return;
    server.run = null;
    server.resources.endRun();
    server.console.resetLines();
    server.console.flushDropped();
    run.stream?.destroy();
    server.resources.latest = null;
    if (run.expected || server.deleted) {
      server.setStatus('offline', `exit ${code}`);
      return;
    }
    const st = await server.deps.env.inspect(run.containerId).catch(() => null);
    const now = Date.now();
    const tooSoon = this.#lastCrashAt > 0 && now - this.#lastCrashAt < server.deps.config.crashTimeoutMs;
    const restarting = server.egg.crashRestart !== false && !tooSoon;
    this.#lastCrashAt = now;
    server.log.warn({ exitCode: code, restarting }, 'crashed');
    server.setStatus('crashed', `exit ${code}`);
    server.events.publish('crashed', {
      serverId: server.id,
      exitCode: code,
      oomKilled: st?.oomKilled ?? false,
      restarting,
      ...(tooSoon ? { reason: 'crashed again within the crash timeout' } : {}),
    });
    if (restarting) {
      // under the per-server try-lock, as a user's start would be (not inside a user's operation)
      const restart = server.deps.ownAction
        ? server.deps.ownAction(
            'restart after a crash',
            'start_server',
            () => server.status === 'crashed' && !server.deleted,
            () => this.start(),
          )
        : this.start();
      restart.catch((e) => server.log.error({ err: e, action: 'start' }, 'restart after crash failed'));
    }
  }

  /** Waits until the exit handler of `run` has finished (status is final). */
  async #settled(run: Run): Promise<void> {
    await run.exited;
    while (this.#server.run === run) await new Promise((r) => setTimeout(r, 5));
  }

  // -------------------------------------------------------------------------------------------
  // power actions

  /** `reason` travels on the `starting` status change (why the Agent started it on its own). */
  start(reason?: string): Promise<void> {
    return this.locked(() => this.#startLocked(reason));
  }

  async #startLocked(reason?: string): Promise<void> {
    const server = this.#server;
    if (server.deleted) throw new CodedError('SERVER_NOT_FOUND', 'server was deleted');
    if (server.run) return; // already starting/running: starting again is a no-op
    server.install.refuseWhileInstalling();
    if (server.status === 'install_failed')
      throw new CodedError('INVALID_STATE', 'the install failed: reinstall the server first');
    const { env, config } = server.deps;
    await server.resources.assertUnderLimit();
    // a directory made before the Agent ran games as a user of their own (cheap: the root only)
    await lchown(server.dir, config.containerUid, config.containerGid).catch(() => undefined);
    await this.#rewriteConfigFiles();
    const id = await this.ensureContainer();
    // attach before start so the first lines are not lost
    const stream = await env.attach(id);
    server.console.resetLines();
    server.console.attach(stream);
    server.setStatus('starting', reason);
    try {
      await env.start(id);
    } catch (e) {
      stream.destroy();
      server.setStatus('offline', 'start failed');
      throw e;
    }
    const state = await env.inspect(id);
    if (!state) {
      stream.destroy();
      server.setStatus('offline', 'container vanished');
      throw new CodedError('CONTAINER_NOT_FOUND', 'container vanished after start');
    }
    this.#beginRun(id, state, stream);
    if (!server.hasDonePattern && server.status === 'starting') server.setStatus('running', 'process up');
  }

  stop(opts: { signal?: Signal; timeout?: number } = {}): Promise<void> {
    return this.locked(() => this.#stopLocked(opts));
  }

  async #stopLocked(opts: { signal?: Signal; timeout?: number }): Promise<void> {
    const server = this.#server;
    server.install.refuseWhileInstalling();
    const run = server.run;
    if (!run) {
      if (server.status === 'crashed') server.setStatus('offline', 'stopped');
      return;
    }
    const { env } = server.deps;
    run.expected = true;
    server.setStatus('stopping');
    const stop = parseStop(server.egg.stop);
    if (stop.type === 'command' && run.stream) run.stream.write(`${stop.command}\n`);
    else if (stop.type === 'signal' && server.egg.stop?.trim())
      await env.signal(run.containerId, stop.signal);
    // the egg names no stop: the caller's signal, SIGTERM by default
    else await env.signal(run.containerId, opts.signal ?? 'SIGTERM');
    const timeoutS = opts.timeout ?? server.egg.stopTimeout ?? DEFAULT_STOP_TIMEOUT_S;
    server.stage('stopping', `stop sent; kill after ${timeoutS} s`);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      run.exited.then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), timeoutS * 1000);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      server.log.info({ action: 'stop', timeoutS }, 'stop timed out, killing');
      server.stage('killing', `still running after ${timeoutS} s: killed`);
      await env.signal(run.containerId, 'SIGKILL');
      await run.exited;
    }
    await this.#settled(run);
  }

  /**
   * Kills at once, without waiting for the lock (it must work while a stop hangs), and cancels
   * every power action queued behind it. Then, once the action in flight (if any) has given the
   * lock back, kills again: a start that was past its checks may have brought the instance up.
   */
  async kill(): Promise<void> {
    this.#generation++;
    if (await this.#server.install.kill()) return;
    await this.#killNow();
    await this.locked(() => this.#killNow(), { cancellable: false });
  }

  async #killNow(): Promise<void> {
    const server = this.#server;
    const run = server.run;
    if (!run) {
      if (server.status === 'crashed') server.setStatus('offline', 'killed');
      return;
    }
    run.expected = true;
    await server.deps.env.signal(run.containerId, 'SIGKILL');
    await this.#settled(run);
  }

  restart(opts: { signal?: Signal; timeout?: number } = {}): Promise<void> {
    return this.locked(async () => {
      const generation = this.#generation;
      this.#server.install.refuseWhileInstalling();
      await this.#stopLocked(opts);
      this.#notKilledSince(generation);
      await this.#startLocked();
    });
  }

  /** Runs the install again (stopping the server first); returns once the installer has started. */
  reinstall(): Promise<void> {
    const server = this.#server;
    return this.locked(async () => {
      if (server.deleted) throw new CodedError('SERVER_NOT_FOUND', 'server was deleted');
      if (!server.egg.install) throw new CodedError('CONFIG_INVALID', 'this server has no install script');
      server.install.refuseWhileInstalling();
      if (server.run) await this.#stopLocked({});
      await server.install.start();
    });
  }

  /** First creation: the server's instance. */
  async create(): Promise<void> {
    await this.#createContainer();
  }

  /** The install a create starts (a kill does not cancel it). */
  firstInstall(): Promise<void> {
    return this.locked(() => this.#server.install.start(), { cancellable: false });
  }

  /** Kills what runs, removes the instance; the caller removes files and definition (lock held). */
  delete(finish: () => Promise<void>): Promise<void> {
    const server = this.#server;
    return this.locked(
      async () => {
        const run = server.run;
        server.deleted = true;
        await server.install.remove();
        if (run) {
          run.expected = true;
          await server.deps.env.signal(run.containerId, 'SIGKILL');
          await this.#settled(run);
        }
        await server.deps.env.removeServer(server.id, server.containerId);
        await finish();
      },
      { cancellable: false },
    );
  }

  /** New environment/limits/…: the instance made again, started again if it ran, ready awaited. */
  update(
    patch: Partial<EggConfig>,
    progress: (stage: UpdateStage, message?: string) => void,
  ): Promise<ServerStatus> {
    const server = this.#server;
    return this.locked(async () => {
      const generation = this.#generation;
      progress('validating');
      server.install.refuseWhileInstalling();
      // An update's environment is the whole new environment (a variable left out is removed);
      // the system ones (SERVER_MEMORY, SERVER_PORT, TZ…) are added to it when the instance is made.
      const merged = EggConfig.safeParse({
        ...server.egg,
        ...patch,
        environment: patch.environment ?? server.egg.environment,
        limits: { ...server.egg.limits, ...(patch.limits ?? {}) },
      });
      if (!merged.success) {
        throw new CodedError('CONFIG_INVALID', merged.error.issues.map((i) => i.message).join('; '));
      }
      // The whole new instance is made (image pulled, spec accepted by the runtime) before the
      // running one is touched: a refused update leaves the server exactly as it was.
      const { env } = server.deps;
      // host ports the new definition adds (the running instance holds the ones it had)
      const taken = await env.takenPort(merged.data, server.egg);
      if (taken) {
        throw new CodedError(
          'PORT_CONFLICT',
          `port ${taken.hostPort}/${taken.proto} on ${taken.hostIp} is already in use on this node`,
        );
      }
      await env.removeStaged(server.id); // a leftover of an update the Agent did not finish
      const next = await env.create(server.id, merged.data, server.dir, { staged: true });
      const wasRunning = server.run !== null;
      try {
        if (wasRunning) {
          progress('stopping');
          await this.#stopLocked(
            merged.data.stopTimeout === undefined ? {} : { timeout: merged.data.stopTimeout },
          );
        }
        progress('recreating');
        await env.removeServer(server.id, server.containerId);
        server.containerId = null;
        await env.promote(server.id, next);
      } catch (e) {
        await env.remove(next).catch(() => undefined);
        throw e;
      }
      server.containerId = next;
      server.setEgg(merged.data);
      server.log.info({ action: 'update', containerId: next }, 'container recreated');
      await server.store.persist();
      if (wasRunning) {
        this.#notKilledSince(generation);
        progress('starting');
        await this.#startLocked();
        progress('waiting_ready');
        await server.waitReady(120_000);
      }
      progress('done');
      return server.status;
    });
  }

  /**
   * The instance made again from the current definition (files kept): the staged one first, then
   * the running one stopped (`graceful`) or killed, removed, and the staged one promoted.
   */
  async #recreate(graceful: boolean): Promise<void> {
    const server = this.#server;
    const { env } = server.deps;
    await env.removeStaged(server.id);
    const next = await env.create(server.id, server.egg, server.dir, { staged: true });
    try {
      if (server.run) {
        if (graceful) await this.#stopLocked({});
        else await this.#killNow();
      }
      await env.removeServer(server.id, server.containerId);
      server.containerId = null;
      await env.promote(server.id, next);
    } catch (e) {
      await env.remove(next).catch(() => undefined);
      throw e;
    }
    server.containerId = next;
    await server.store.persist();
  }

  /** Ready: the done pattern (or the process up) within the timeout, then still up for `stable` s without one. */
  async #awaitReady(timeoutS: number, stableS: number): Promise<void> {
    const server = this.#server;
    await server.waitReady(timeoutS * 1000);
    if (server.hasDonePattern) return;
    const run = server.run;
    const end = Date.now() + stableS * 1000;
    while (Date.now() < end) {
      await new Promise((r) => setTimeout(r, 200));
      if (server.run !== run || server.status !== 'running')
        throw new CodedError('INVALID_STATE', `server became ${server.status} within ${stableS} s`);
    }
  }

  /**
   * An image update (issue 13 item 3): pull the definition's reference → recreate on it → start
   * if it ran → wait until ready; not ready (or crashed) → the reference is tagged back onto the
   * previous image (kept as `<repo>:cap-rollback-<server>` too), the instance made again on it
   * and started: `rolled_back` with the reason.
   */
  imageUpdate(
    opts: { readyTimeoutSeconds: number; stableSeconds: number; registryAuth?: string },
    hooks: {
      stage: (stage: string, message?: string) => void;
      pull: (e: { id?: string; status?: string; current?: number; total?: number }) => void;
    },
  ): Promise<ImageUpdateData> {
    const server = this.#server;
    return this.locked(async () => {
      const generation = this.#generation;
      if (server.deleted) throw new CodedError('SERVER_NOT_FOUND', 'server was deleted');
      server.install.refuseWhileInstalling();
      const images = server.deps.env.images;
      if (!images) throw new CodedError('DOCKER_ERROR', 'this runtime has no image updates');
      const ref = server.egg.image;
      const { repo, tag } = splitImageRef(ref);
      if (tag === null)
        throw new CodedError('CONFIG_INVALID', `image ${ref} is pinned by digest: there is no newer one`);
      const before = await images.containerImage(await this.ensureContainer());
      const previousImageId = before?.imageId ?? null;
      hooks.stage('pulling', ref);
      await images.pullWithProgress(ref, hooks.pull, opts.registryAuth);
      const after = await images.imageInfo(ref);
      if (!after) throw new CodedError('DOCKER_ERROR', `image ${ref} is not present after its pull`);
      if (after.id === previousImageId) {
        hooks.stage('done', 'the image is current');
        return { outcome: 'unchanged', previousImageId, imageId: after.id };
      }
      // kept for the rollback (and not pruned while tagged)
      if (previousImageId) await images.tagImage(previousImageId, repo, rollbackTag(server.id));
      const wasRunning = server.run !== null;
      hooks.stage('recreating', `on ${after.id.slice(0, 19)}`);
      await this.#recreate(true);
      server.log.info({ action: 'image_update', image: after.id, previousImageId }, 'recreated on new image');
      if (!wasRunning) {
        hooks.stage('done', 'recreated (not started: it was not running)');
        return { outcome: 'updated', previousImageId, imageId: after.id };
      }
      let reason: string | null = null;
      try {
        this.#notKilledSince(generation);
        hooks.stage('starting');
        await this.#startLocked('image update');
        hooks.stage('waiting_ready', `up to ${opts.readyTimeoutSeconds} s`);
        await this.#awaitReady(opts.readyTimeoutSeconds, opts.stableSeconds);
      } catch (e) {
        reason = `${(e as Error).message}`;
      }
      if (reason === null) {
        hooks.stage('done', 'ready on the new image');
        return { outcome: 'updated', previousImageId, imageId: after.id };
      }
      if (!previousImageId) throw new CodedError('INVALID_STATE', `not ready (${reason}); no previous image`);
      server.log.warn({ action: 'image_update', reason }, 'not ready on the new image: rolling back');
      hooks.stage('rolling_back', reason);
      // the reference points at the previous image again: a later recreate (a config edit) runs it too
      await images.tagImage(previousImageId, repo, tag);
      await this.#recreate(false);
      this.#notKilledSince(generation);
      await this.#startLocked('rolled back');
      await server.waitReady(opts.readyTimeoutSeconds * 1000);
      hooks.stage('done', `rolled back: ${reason}`);
      return {
        outcome: 'rolled_back',
        previousImageId,
        imageId: previousImageId,
        reason: reason.slice(0, 1024),
      };
    });
  }

  /** After an Agent restart: take over an instance that is already running, without restarting it. */
  async adopt(state: InstanceState): Promise<void> {
    const server = this.#server;
    server.containerId = state.id;
    if (!state.running) return;
    const requestedAt = Date.now();
    const stream = await server.deps.env.attach(state.id);
    // what it printed while no Agent read it comes first, from the container's log
    server.console.attach(stream, { containerId: state.id, requestedAt });
    this.#beginRun(state.id, state, stream);
    // its state is known from the instance; done lines were printed long ago
    server.setStatus('running', 'reattached');
  }

  /** Stop watching (Agent shutdown): the instance keeps running. */
  detach(): void {
    const server = this.#server;
    const run = server.run;
    server.run = null;
    server.resources.endRun();
    run?.watch.abort();
    run?.stream?.destroy();
    server.console.flushDropped();
  }

  // -------------------------------------------------------------------------------------------
  // pre-start: config files

  /**
   * The egg's config files, rewritten before every start (Wings' pre-start step). A file that
   * fails is reported in the console and does not block the start.
   */
  async #rewriteConfigFiles(): Promise<void> {
    const server = this.#server;
    const files = server.egg.configFiles;
    if (!files || Object.keys(files).length === 0) return;
    const { env, config } = server.deps;
    const vars = serverEnvironment(server.egg, { bindIp: config.bindIp, timezone: config.timezone });
    const gateway = await env.hostGateway();
    const ctx = configContextFromEnvironment(vars, gateway ? { dockerInterface: gateway } : {});
    const results = await applyConfigFiles(server.dir, files, ctx).catch((e: Error) => {
      server.log.warn({ err: e, action: 'config_files' }, 'config files not rewritten');
      server.console.daemon(`config files not rewritten: ${e.message}`);
      return [];
    });
    for (const r of results) {
      if (!r.ok) {
        server.log.warn({ action: 'config_files', file: r.file, code: r.code }, 'config file not rewritten');
        server.console.daemon(`config file ${r.file} not rewritten (${r.code}): ${r.message ?? ''}`);
      } else if (r.changed) {
        await this.#chownPath(r.file);
      }
    }
  }

  /** A rewritten (maybe created) file and the directories above it go to the game's user. */
  async #chownPath(rel: string): Promise<void> {
    const server = this.#server;
    const { containerUid, containerGid } = server.deps.config;
    await chownPathInside(server.dir, rel, containerUid, containerGid).catch((e) =>
      server.log.warn({ err: e, action: 'config_files' }, 'chown failed'),
    );
  }
}

/** `repo` and `tag` of a reference (`tag` null when pinned by digest; none given: latest). */
export function splitImageRef(ref: string): { repo: string; tag: string | null } {
  if (ref.includes('@')) return { repo: ref.slice(0, ref.indexOf('@')), tag: null };
  const colon = ref.lastIndexOf(':');
  if (colon > ref.lastIndexOf('/')) return { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { repo: ref, tag: 'latest' };
}

/** The tag that keeps a server's previous image: `cap-rollback-<server>` ([A-Za-z0-9_.-], 128 at most). */
export function rollbackTag(serverId: string): string {
  return `cap-rollback-${serverId.replace(/[^A-Za-z0-9_.-]/g, '_')}`.slice(0, 128);
}

// -------------------------------------------------------------------------------------------
// the per-server try-lock

/** Who holds a server's try-lock: an operation the Panel (or the HTTP API) asked for, or the Agent. */
export interface LockHolder {
  operationId: string;
  serverId: string;
  action: Command['action'];
  /** one of the Agent's own actions (what it is: "restart after a crash"); no operation events */
  own?: string;
  /** set when a kill pre-empted it: it ends as OPERATION_SUPERSEDED whatever it did */
  supersededBy?: string;
}

/**
 * The try-lock of power actions, one per server: a second action while one runs is refused at
 * once (SERVER_BUSY; SERVER_EXISTS while the server is being created); a kill is never refused and
 * pre-empts the holder (marked superseded; the kill holds the lock from then on). The Agent's own
 * actions take it too, after waiting for the holder to let go (`free`).
 */
export class PowerLocks {
  readonly #held = new Map<string, LockHolder>();
  readonly #waiting = new Map<string, (() => void)[]>();

  holder(serverId: string): LockHolder | undefined {
    return this.#held.get(serverId);
  }

  /** Takes the lock for `h`, or says why not. */
  tryAcquire(h: LockHolder): { code: ErrorCode; message: string } | null {
    const running = this.#held.get(h.serverId);
    if (running?.action === 'create_server')
      return { code: 'SERVER_EXISTS', message: `server ${h.serverId} is being created on this node` };
    if (running && h.action !== 'kill_server') {
      const what = running.own
        ? `the Agent's ${running.own}`
        : `${running.action} (operation ${running.operationId})`;
      return { code: 'SERVER_BUSY', message: `${what} is running on this server; kill pre-empts it` };
    }
    if (running) running.supersededBy = h.operationId;
    this.#held.set(h.serverId, h);
    return null;
  }

  /** `h` is done (a holder pre-empted meanwhile no longer holds it: nothing to give back). */
  release(h: LockHolder): void {
    if (this.#held.get(h.serverId) !== h) return;
    this.#held.delete(h.serverId);
    const waiting = this.#waiting.get(h.serverId) ?? [];
    this.#waiting.delete(h.serverId);
    for (const wake of waiting) wake();
  }

  /** Resolves once nobody holds the server's lock (take it at once, before awaiting anything). */
  async free(serverId: string): Promise<void> {
    while (this.#held.has(serverId)) {
      await new Promise<void>((resolve) => {
        const list = this.#waiting.get(serverId) ?? [];
        list.push(resolve);
        this.#waiting.set(serverId, list);
      });
    }
  }
}
