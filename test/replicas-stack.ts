/**
 * Panel replicas on real PostgreSQL and NATS, optionally behind Debian's nginx (issue 15 item 2),
 * shared by the replica system tests: a scratch database, a private nats-server on a free port,
 * N Panel processes (`ctrl-alt-play panel`, child processes, so `kill('a')` is a real SIGKILL) and
 * nginx with all of them as one round-robin upstream (no stickiness; WebSocket upgrade). Each
 * replica serves the built web UI (packages/web/dist) too.
 *
 *   const stack = await startReplicaStack({ replicas: 2, nginx: true });
 *   stack.urls.proxy; stack.urls.a; stack.urls.b   // nginx, replica a, replica b
 *   await stack.kill('a');                         // SIGKILL, waits for the exit
 *   await stack.stop();                            // everything, the database dropped
 *
 * nginx adds `X-Cap-Upstream: <host:port>` to every answer (the WebSocket handshake's 101 too),
 * so a test can tell which replica served something (`replicaAt`).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  freePort,
  scratchDatabase,
  until,
} from '../packages/panel/test/helpers.ts';
import {
  NATS,
  NGINX,
  type Replica,
  replicaEnv,
  startBroker,
  startReplica,
  stopChild,
} from './replicas-harness.ts';

export { NATS, NGINX };
/** the owner every replica's database gets (ADMIN_EMAIL / ADMIN_PASSWORD) */
export const OWNER = { email: ADMIN_EMAIL, password: ADMIN_PASSWORD };

/** Whether the stack can run here (CAP_REQUIRE_REAL turns a missing one into a failure instead). */
export const stackSkip = (): string | false =>
  !(existsSync(NATS) && existsSync(NGINX)) && !process.env['CAP_REQUIRE_REAL']
    ? 'nats-server or nginx not installed'
    : false;

export interface StackReplica extends Replica {
  /** whether its process is still running */
  alive(): boolean;
}

export interface ReplicaStack {
  /** `proxy` (nginx; the first replica without it) and each replica by name ('a', 'b', …) */
  urls: Record<string, string>;
  replicas: StackReplica[];
  /** the replica by name */
  replica(name: string): StackReplica;
  /** the replica listening on `host:port` (an `X-Cap-Upstream` value), if any */
  replicaAt(upstream: string | undefined | null): StackReplica | undefined;
  /**
   * how many requests nginx passed to each replica by name (those whose path starts with
   * `prefix`; a WebSocket is counted when it closed); {} without nginx
   */
  served(prefix?: string): Record<string, number>;
  /** SIGKILL (or `signal`) the replica and wait until it exited */
  kill(name: string, signal?: NodeJS.Signals): Promise<void>;
  /** stop the replicas, nginx and NATS, drop the database, remove the logs (KEEP_REPLICA_LOGS keeps them) */
  stop(): Promise<void>;
  /** the stack's scratch directory (logs, nginx files, the Panels' DATA_DIR) */
  dir: string;
}

export async function startReplicaStack(opts: {
  replicas: number;
  nginx: boolean;
  /** more Panel settings for every replica */
  env?: Record<string, string>;
  /** the scratch database's name prefix (default cap_replicas) */
  tag?: string;
}): Promise<ReplicaStack> {
  assert.ok(existsSync(NATS), `${NATS} is missing: apt-get install nats-server`);
  if (opts.nginx) assert.ok(existsSync(NGINX), `${NGINX} is missing: apt-get install nginx-light`);
  const dir = mkdtempSync(path.join(tmpdir(), 'cap-replicas-'));
  const replicas: StackReplica[] = [];
  let broker: ChildProcess | undefined;
  let nginx: ChildProcess | undefined;
  let db: Awaited<ReturnType<typeof scratchDatabase>> | undefined;
  let proxyUrl = '';

  const stop = async () => {
    for (const r of replicas) await stopChild(r.proc);
    await stopChild(nginx, 'SIGQUIT');
    await stopChild(broker);
    await db?.drop();
    if (process.env['KEEP_REPLICA_LOGS']) console.log(`# replica logs in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  };

  try {
    db = await scratchDatabase('postgres', opts.tag ?? 'cap_replicas');
    const nats = await startBroker();
    broker = nats.proc;
    const ports = await Promise.all(Array.from({ length: opts.replicas }, () => freePort()));
    const proxyPort = opts.nginx ? await freePort() : (ports[0] as number);
    proxyUrl = `http://127.0.0.1:${proxyPort}`;
    const env = {
      ...replicaEnv({
        dbEnv: db.env,
        dataDir: path.join(dir, 'panel'),
        publicUrl: proxyUrl,
        natsUrl: nats.url,
        prefix: `caprep${process.pid}x${proxyPort}`,
      }),
      ...opts.env,
    };
    // one after the other: the first migrates the database and makes the owner
    for (let i = 0; i < opts.replicas; i++) {
      const r = await startReplica(dir, String.fromCharCode(97 + i), env, ports[i] as number);
      replicas.push({ ...r, alive: () => r.proc.exitCode === null && r.proc.signalCode === null });
    }

    if (opts.nginx) {
      const temps = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'];
      for (const d of temps) mkdirSync(path.join(dir, d));
      writeFileSync(
        path.join(dir, 'nginx.conf'),
        [
          'daemon off;',
          'worker_processes 1;',
          `pid ${dir}/nginx.pid;`,
          `error_log ${dir}/error.log warn;`,
          'events { worker_connections 1024; }',
          'http {',
          "  log_format upstream '$request_method $uri $status $upstream_addr';",
          `  access_log ${dir}/access.log upstream;`,
          ...temps.map((d) => `  ${d}_temp_path ${dir}/${d};`),
          '  map $http_upgrade $connection_upgrade { default upgrade; "" close; }',
          // round robin, no stickiness: one request here, the next there
          '  upstream panels {',
          ...replicas.map((r) => `    server 127.0.0.1:${r.port} max_fails=1 fail_timeout=5s;`),
          '  }',
          '  server {',
          `    listen 127.0.0.1:${proxyPort};`,
          '    location / {',
          '      proxy_pass http://panels;',
          '      proxy_http_version 1.1;',
          '      proxy_set_header Upgrade $http_upgrade;',
          '      proxy_set_header Connection $connection_upgrade;',
          '      proxy_set_header Host $host;',
          '      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
          '      proxy_connect_timeout 1s;',
          '      proxy_next_upstream error timeout http_503;',
          '      proxy_read_timeout 3600s;',
          '      add_header X-Cap-Upstream $upstream_addr always;',
          '    }',
          '  }',
          '}',
          '',
        ].join('\n'),
      );
      execFileSync(NGINX, ['-t', '-q', '-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'pipe' });
      nginx = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'ignore' });
      await until(async () => {
        try {
          return (await fetch(`${proxyUrl}/api/health`)).ok;
        } catch {
          return false;
        }
      }, 10_000);
    }
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }

  const replica = (name: string) => {
    const r = replicas.find((x) => x.name === name);
    assert.ok(r, `no replica ${name}`);
    return r;
  };
  // a retried request lists each upstream tried ("a, b"): the last one answered
  const replicaAt = (upstream: string | undefined | null) => {
    const last = upstream?.split(',').at(-1)?.trim();
    return replicas.find((r) => last === `127.0.0.1:${r.port}`);
  };
  return {
    urls: {
      proxy: proxyUrl,
      ...Object.fromEntries(replicas.map((r) => [r.name, r.url])),
    },
    replicas,
    replica,
    replicaAt,
    served(prefix = '/') {
      const out: Record<string, number> = {};
      const log = path.join(dir, 'access.log');
      if (!existsSync(log)) return out;
      for (const line of readFileSync(log, 'utf8').split('\n')) {
        const [, uri, , ...upstream] = line.split(' ');
        const r = replicaAt(upstream.join(' '));
        if (r && uri?.startsWith(prefix)) out[r.name] = (out[r.name] ?? 0) + 1;
      }
      return out;
    },
    async kill(name, signal = 'SIGKILL') {
      await stopChild(replica(name).proc, signal);
    },
    stop,
    dir,
  };
}
