/**
 * What the multi-replica tests share: a private nats-server on a free port, Panel replicas as
 * child processes (`ctrl-alt-play panel`, so `kill -9` is real), their environment, and a
 * logged-in API caller.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadAgentConfig, type RunningAgent, startAgent } from '@cap/agent';
import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import { ADMIN_EMAIL, ADMIN_PASSWORD, freePort, type Json, until } from '../packages/panel/test/helpers.ts';

const root = path.resolve(import.meta.dirname, '..');
export const NATS = '/usr/sbin/nats-server';
export const NGINX = '/usr/sbin/nginx';
const CLI = path.join(root, 'packages/cli/bin/ctrl-alt-play.js');

export interface Replica {
  name: string;
  port: number;
  url: string;
  proc: ChildProcess;
  logFile: string;
  /** how many times its log says an Agent linked */
  links(nodeId: string): number;
}

export async function stopChild(
  p: ChildProcess | undefined,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill(signal);
  await exited;
}

/** A nats-server on a free loopback port; resolves once it takes connections. */
export async function startBroker(): Promise<{ proc: ChildProcess; url: string }> {
  assert.ok(existsSync(NATS), `${NATS} is missing: apt-get install nats-server`);
  const port = await freePort();
  const proc = spawn(NATS, ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  await until(async () => {
    try {
      await (await connect({ servers: `127.0.0.1:${port}` })).close();
      return true;
    } catch {
      return false;
    }
  }, 10_000);
  return { proc, url: `nats://127.0.0.1:${port}` };
}

/** The environment every replica of one test shares (one database, one broker, one prefix). */
export function replicaEnv(opts: {
  dbEnv: Record<string, string>;
  dataDir: string;
  publicUrl: string;
  natsUrl: string;
  prefix: string;
}): Record<string, string> {
  return {
    ...opts.dbEnv,
    DATA_DIR: opts.dataDir,
    HOST: '127.0.0.1',
    PANEL_URL: opts.publicUrl,
    PANEL_TRUST_PROXY: '127.0.0.1',
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    LOG_LEVEL: 'info',
    PANEL_LOGIN_RATE_PER_MIN: '1000',
    PANEL_AGENT_PING_MS: '1000',
    PANEL_NATS_URL: opts.natsUrl,
    PANEL_NATS_PREFIX: opts.prefix,
    PANEL_REPLICA_HEARTBEAT_MS: '500',
  };
}

/** A Panel replica on a free port (its log in `dir/<name>.log`); resolves once it is healthy. */
export async function startReplica(
  dir: string,
  name: string,
  env: Record<string, string>,
  /** default: a free one */
  port?: number,
): Promise<Replica> {
  port ??= await freePort();
  const logFile = path.join(dir, `${name}.log`);
  const out = openSync(logFile, 'a');
  const proc = spawn(process.execPath, [CLI, 'panel'], {
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: ['ignore', out, out],
  });
  const url = `http://127.0.0.1:${port}`;
  await until(async () => {
    if (proc.exitCode !== null)
      throw new Error(`${name} exited: ${readFileSync(logFile, 'utf8').slice(-2000)}`);
    try {
      return (await fetch(`${url}/api/health`)).ok;
    } catch {
      return false;
    }
  }, 60_000);
  const links = (id: string) =>
    readFileSync(logFile, 'utf8')
      .split('\n')
      .filter((l) => l.includes('"agent connected"') && l.includes(id)).length;
  return { name, port, url, proc, logFile, links };
}

export interface Session {
  cookie: string;
  csrf: string;
}

/** Logs the owner in through `url`. */
export async function login(url: string): Promise<Session> {
  const res = await fetch(`${url}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }),
  });
  assert.equal(res.status, 200);
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  const csrf = ((await res.json()) as { csrfToken: string }).csrfToken;
  return { cookie, csrf };
}

/** An API call on one replica with the session. */
export async function call(
  session: Session,
  r: { url: string },
  method: string,
  p: string,
  body?: unknown,
): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${r.url}${p}`, {
    method,
    headers: {
      cookie: session.cookie,
      'x-csrf-token': session.csrf,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : null) as Json };
}

/** A real Agent (real Docker) for a node as `POST /api/nodes` answered, linking to `panelUrl`. */
export function startReplicaAgent(opts: {
  panelUrl: string;
  nodeId: string;
  agentSecret: string;
  dataDir: string;
  statsIntervalMs?: number;
}): Promise<RunningAgent> {
  return startAgent(
    loadAgentConfig({
      PANEL_URL: opts.panelUrl,
      NODE_ID: opts.nodeId,
      AGENT_SECRET: opts.agentSecret,
      AGENT_DATA_DIR: opts.dataDir,
      AGENT_HTTP_PORT: '0',
      AGENT_HTTP_HOST: '127.0.0.1',
      AGENT_FIREWALL: 'false',
      AGENT_STATS_INTERVAL_MS: String(opts.statsIntervalMs ?? 500),
      LOG_LEVEL: 'silent',
    }),
    { logger: pino({ level: 'silent' }) },
  );
}
