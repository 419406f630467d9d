/**
 * A server's install (Wings' installer container): the egg's script run once in a throw-away
 * instance with the server's files mounted, its output through the console's line path, its end
 * persisted (an Agent restart keeps `install_failed`) and reported as `install_completed`.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { CodedError } from '@cap/protocol';
import { chownTree } from '../filesystem/filesystem.ts';
import type { Server } from './server.ts';

export class ServerInstall {
  readonly #server: Server;
  /** the installer instance while an install runs */
  #current: { containerId: string; done: Promise<void>; watch: AbortController } | null = null;

  constructor(server: Server) {
    this.#server = server;
  }

  get running(): boolean {
    return this.#current !== null;
  }

  refuseWhileInstalling(): void {
    if (this.#current) throw new CodedError('INVALID_STATE', 'the server is installing');
  }

  get #scriptDir(): string {
    // ids start alphanumeric, so `.install` never collides with a server directory
    return path.join(this.#server.deps.serversDir, '.install', this.#server.id);
  }

  /** With the power lock held: script to a temp dir, installer created and started, then watched. */
  async start(): Promise<void> {
    const server = this.#server;
    const install = server.egg.install;
    if (!install) return;
    const { env } = server.deps;
    const scriptDir = this.#scriptDir;
    server.installState = 'running';
    await server.store.persist();
    server.setStatus('installing', 'install started');
    let containerId: string | undefined;
    try {
      await rm(scriptDir, { recursive: true, force: true });
      await mkdir(scriptDir, { recursive: true, mode: 0o700 });
      // scripts exported from Windows panels carry CRLF, which bash reads as part of each word
      await writeFile(path.join(scriptDir, 'install.sh'), install.script.replace(/\r\n/g, '\n'), {
        mode: 0o700,
      });
      containerId = await env.createInstaller(server.id, server.egg, server.dir, scriptDir);
      await env.start(containerId);
    } catch (e) {
      server.log.error({ err: e, action: 'install' }, 'installer did not start');
      server.events.publish('install_output', {
        serverId: server.id,
        message: `installer did not start: ${(e as Error).message}`,
      });
      if (containerId) await env.remove(containerId).catch(() => undefined);
      await rm(scriptDir, { recursive: true, force: true }).catch(() => undefined);
      await this.#finish(false, undefined);
      return;
    }
    server.log.info({ action: 'install', containerId }, 'installer started');
    this.#watch(containerId, false);
  }

  /** After an Agent restart: wait for an installer that is still there. */
  adopt(containerId: string): void {
    if (this.#current) return;
    this.#server.setStatus('installing', 'reattached to the installer');
    this.#watch(containerId, true);
  }

  /** An install recorded as running whose installer is gone (Agent down meanwhile): failed. */
  async interrupted(): Promise<void> {
    if (this.#server.installState === 'running' && !this.#current) await this.#finish(false, undefined);
  }

  /** Killing an install ends it as failed. Returns false when none runs. */
  async kill(): Promise<boolean> {
    const install = this.#current;
    if (!install) return false;
    await this.#server.deps.env.signal(install.containerId, 'SIGKILL');
    await install.done;
    return true;
  }

  /** The server is being deleted: the installer goes (its end is not reported as an install's). */
  async remove(): Promise<void> {
    const install = this.#current;
    if (!install) return;
    await this.#server.deps.env.remove(install.containerId);
    await install.done;
  }

  /** Stop watching (Agent shutdown): the installer runs on, the next Agent reattaches. */
  detach(): void {
    this.#current?.watch.abort();
    this.#current = null;
  }

  #watch(containerId: string, reattached: boolean): void {
    const server = this.#server;
    const { env } = server.deps;
    const out = server.console;
    const watch = new AbortController();
    const done = (async () => {
      let output: Readable | null = null;
      // the same line cap, throttle and drop count as the game's console
      const sink = out.sink((message) =>
        server.events.publish('install_output', { serverId: server.id, message }),
      );
      const ended = env
        .logs(containerId, reattached ? { tail: 0 } : {})
        .then((stream) => {
          output = stream;
          return out.follow(stream, sink);
        })
        .catch((e) => server.log.warn({ err: e, action: 'install' }, 'no installer output'));
      let code: number;
      try {
        code = await env.wait(containerId, watch.signal);
      } catch {
        if (watch.signal.aborted) {
          (output as Readable | null)?.destroy();
          return; // the Agent let go (shutdown): the next one reattaches
        }
        const st = await env.inspect(containerId).catch(() => null);
        code = st && !st.running ? st.exitCode : -1; // removed (deleted meanwhile): failed
      }
      // the last lines before install_completed, but never hang on a stream that does not end
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([ended, new Promise((r) => (timer = setTimeout(r, 2000)))]);
      clearTimeout(timer);
      (output as Readable | null)?.destroy();
      out.flushDropped();
      await env.remove(containerId).catch(() => undefined);
      await rm(this.#scriptDir, { recursive: true, force: true }).catch(() => undefined);
      await this.#finish(code === 0, code);
    })().catch((e) => server.log.error({ err: e, action: 'install' }, 'install handling failed'));
    this.#current = { containerId, done, watch };
  }

  async #finish(success: boolean, exitCode: number | undefined): Promise<void> {
    const server = this.#server;
    this.#current = null;
    if (server.deleted) return;
    const { containerUid, containerGid } = server.deps.config;
    // The installer ran as root: its files go to the game's user (Wings chowns after install too)
    // and lose any setuid/setgid bit. After a failed install as well: what it left stays there.
    await chownTree(server.dir, containerUid, containerGid).catch((e) =>
      server.log.warn({ err: e }, 'chown failed'),
    );
    server.installState = success ? 'done' : 'failed';
    await server.store.persist().catch((e) => server.log.error({ err: e }, 'persist failed'));
    server.log.info({ action: 'install', success, exitCode }, 'install finished');
    server.setStatus(success ? 'offline' : 'install_failed', `install exit ${exitCode ?? 'none'}`);
    server.events.publish('install_completed', {
      serverId: server.id,
      success,
      ...(exitCode === undefined || exitCode < 0 ? {} : { exitCode }),
    });
  }
}
