/**
 * A real image registry for tests: Debian's `docker-registry` (distribution 2.8) serving a fresh
 * directory on a free loopback port. The Docker Engine trusts 127.0.0.0/8 over plain HTTP, so
 * pushes and pulls to `127.0.0.1:<port>/<repo>` work with no TLS and no daemon configuration.
 *
 * `pushImage` makes an image with a fresh random layer on top of a local base (so a pull really
 * downloads something), pushes it under a tag and, unless told to keep it, removes it locally.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import type Docker from 'dockerode';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export interface RunningRegistry {
  /** `127.0.0.1:<port>`: the prefix of image references in this registry. */
  host: string;
  dir: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface RegistryOptions {
  /** Extra YAML lines appended to the config (for example an `auth:` section). */
  extraConfig?: string[];
  /**
   * Basic auth (distribution's `htpasswd` auth, a bcrypt htpasswd file made with bcryptjs): the
   * registry then answers 401 without these credentials. Plain HTTP on 127.0.0.1 is fine for
   * the Engine (it trusts 127.0.0.0/8 as an insecure registry and sends the credentials).
   */
  htpasswd?: { username: string; password: string };
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<RunningRegistry> {
  assert.ok(
    existsSync(REGISTRY_BIN),
    `${REGISTRY_BIN} is missing: apt-get install docker-registry (scripts/setup-host.sh does)`,
  );
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'cap-registry-'));
  const config = join(dir, 'config.yml');
  const auth: string[] = [];
  if (opts.htpasswd) {
    const file = join(dir, 'htpasswd');
    writeFileSync(file, `${opts.htpasswd.username}:${bcrypt.hashSync(opts.htpasswd.password, 8)}\n`);
    auth.push('auth:', '  htpasswd:', '    realm: cap-test', `    path: ${file}`);
  }
  writeFileSync(
    config,
    [
      'version: 0.1',
      'log: { level: error }',
      'storage:',
      `  filesystem: { rootdirectory: ${join(dir, 'data')} }`,
      '  delete: { enabled: true }',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      ...auth,
      ...(opts.extraConfig ?? []),
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(REGISTRY_BIN, ['serve', config], { stdio: 'ignore' });
  const host = `127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const res = await fetch(`http://${host}/v2/`);
      // 401 means it is up and asks for credentials (an auth section was given)
      if (res.ok || res.status === 401) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error('docker-registry did not answer within 20 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host,
    dir,
    async stop() {
      // (a second stop: killed by a signal, exitCode stays null and signalCode is set)
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Follows a Docker progress stream to its end; rejects on an `error` entry. */
export function followProgress(docker: Docker, stream: NodeJS.ReadableStream): Promise<void> {
  return new Promise<void>((resolve, reject) =>
    docker.modem.followProgress(stream, (err: Error | null, out: { error?: string }[]) => {
      const failed = out?.find((o) => o.error);
      if (err || failed) reject(err ?? new Error(failed?.error));
      else resolve();
    }),
  );
}

export interface PushOptions {
  /** Local base image; default ctrl-alt-play/busybox:latest. */
  base?: string;
  /** Size of the random layer in bytes; default 1 MiB. */
  layerBytes?: number;
  /** Command run to make the layer instead of the random blob (argument array). */
  cmd?: string[];
  /** Image config changes (Dockerfile-like lines, e.g. `CMD ["sh","-c","sleep 1"]`). */
  changes?: string[];
  labels?: Record<string, string>;
  /** Keep the image locally after the push (default: remove it). */
  keep?: boolean;
  /** X-Registry-Auth for the push. */
  authconfig?: { username: string; password: string; serveraddress: string };
}

/** Builds `<ref>` (repository:tag in the registry) from a base plus a fresh layer and pushes it. */
export async function pushImage(docker: Docker, ref: string, opts: PushOptions = {}): Promise<void> {
  const colon = ref.lastIndexOf(':');
  assert.ok(colon > ref.lastIndexOf('/'), `ref ${ref} needs a tag`);
  const repo = ref.slice(0, colon);
  const tag = ref.slice(colon + 1);
  const bytes = opts.layerBytes ?? 1024 * 1024;
  const seed = await docker.createContainer({
    Image: opts.base ?? 'ctrl-alt-play/busybox:latest',
    Cmd: opts.cmd ?? ['sh', '-c', `head -c ${bytes} /dev/urandom > /blob`],
    Labels: { 'ctrl-alt-play.test': 'registry-seed', ...opts.labels },
  });
  try {
    await seed.start();
    await seed.wait();
    await seed.commit(opts.changes ? { repo, tag, changes: opts.changes } : { repo, tag });
  } finally {
    await seed.remove({ force: true }).catch(() => undefined);
  }
  const push = await docker.getImage(ref).push({ authconfig: opts.authconfig ?? {} });
  await followProgress(docker, push);
  if (!opts.keep) await docker.getImage(ref).remove();
}
