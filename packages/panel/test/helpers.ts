/** Test helpers: a Panel on a random port with a fresh data dir, and a logged-in client. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { KyselyPlugin } from 'kysely';
import { type DestinationStream, pino } from 'pino';
import WebSocket from 'ws';
import { type BuildOptions, build, startPanel } from '../src/app.ts';
import { loadPanelConfig } from '../src/config/index.ts';
import { FakeAgent, type FakeAgentOptions } from './fake-agent.ts';

// biome-ignore lint/suspicious/noExplicitAny: test code reads JSON bodies loosely
export type Json = any;

export const ADMIN_EMAIL = 'owner@example.test';
export const ADMIN_PASSWORD = 'owner-password-1';

export interface Session {
  cookie: string;
  csrf: string;
  /** headers for a state-changing request with this session */
  headers: Record<string, string>;
}

export interface TestPanel {
  url: string;
  app: FastifyInstance;
  dataDir: string;
  login(email?: string, password?: string): Promise<Session>;
  /** fetch with JSON body and a session's headers */
  api(
    session: Session | null,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: Json }>;
  /** a user of that role, logged in */
  userWithRole(role: 'owner' | 'admin' | 'spectator' | 'user'): Promise<Session & { email: string }>;
  /** a node and its secret */
  createNode(session: Session, name?: string): Promise<{ id: string; agentSecret: string }>;
  clientSocket(session: Session): Promise<ClientSocket>;
  stop(): Promise<void>;
}

export interface ClientSocket {
  ws: WebSocket;
  messages: Json[];
  send(msg: unknown): void;
  next(pred: (m: Json) => boolean, timeoutMs?: number): Promise<Json>;
  close(): void;
}

let userSeq = 0;

/** Poll until the condition holds (every 10 ms); throws after the timeout. */
export async function until(fn: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!(await fn())) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A port that was free a moment ago (the Panel must know its own URL before it listens). */
/** ports handed out by this process (a second call never returns one a caller has not bound yet) */
const handedOut = new Set<number>();

/**
 * A free TCP port on loopback, below Linux's ephemeral range (32768–60999) and below the game
 * ports of the tests (20000–31999): a port the kernel picks for `listen(0)` lies inside that range,
 * where any outgoing connection of the machine can take it before the caller binds it (a replica
 * test failed EADDRINUSE so); one down here only another test can take, and it checks first.
 */
export async function freePort(): Promise<number> {
  const first = 10_000 + Math.floor(Math.random() * 10_000);
  for (let k = 0; k < 10_000; k++) {
    const port = 10_000 + ((first - 10_000 + k) % 10_000);
    if (handedOut.has(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const srv = netServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '0.0.0.0', () => srv.close(() => resolve(true)));
    });
    if (free) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free port in 10000-19999');
}

export async function startTestPanel(
  env: Record<string, string | undefined> = {},
  /** e.g. a `db` with a query-counting plugin; a given db is not closed by stop() */
  build: Omit<BuildOptions, 'logger'> & {
    /** every log line of the Panel, at trace level (a secrets-in-logs check) */
    logStream?: DestinationStream;
  } = {},
): Promise<TestPanel> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cap-panel-test-'));
  const port = await freePort();
  const config = loadPanelConfig({
    DATA_DIR: dataDir,
    PORT: String(port),
    PANEL_URL: `http://127.0.0.1:${port}`,
    HOST: '127.0.0.1',
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    LOG_LEVEL: 'silent',
    PANEL_LOGIN_RATE_PER_MIN: '1000',
    ...env,
  });
  const { logStream, ...buildOpts } = build;
  const logger = logStream
    ? pino({ level: 'trace' }, logStream)
    : pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const running = await startPanel(config, { ...buildOpts, logger });
  const url = running.url;
  // PANEL_URL is what Agents are told to dial; with port 0 it is only known now.
  const base = url;

  const api: TestPanel['api'] = async (session, method, path, body) => {
    const headers: Record<string, string> = session ? { ...session.headers } : {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${base}${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };

  // the owner of the env given (a database from elsewhere has its own), else the default one
  const login = async (
    email = config.adminEmail ?? ADMIN_EMAIL,
    password = config.adminPassword ?? ADMIN_PASSWORD,
  ): Promise<Session> => {
    const res = await fetch(`${base}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password }),
    });
    if (res.status !== 200) throw new Error(`login failed: ${res.status} ${await res.text()}`);
    const setCookie = res.headers.get('set-cookie') ?? '';
    const cookie = setCookie.split(';')[0] ?? '';
    const { csrfToken } = (await res.json()) as { csrfToken: string };
    return { cookie, csrf: csrfToken, headers: { cookie, 'x-csrf-token': csrfToken } };
  };

  const owner = await login();

  const panel: TestPanel = {
    url,
    app: running.app,
    dataDir,
    login,
    api,
    async userWithRole(role) {
      if (role === 'owner') return { ...owner, email: ADMIN_EMAIL };
      userSeq += 1;
      const email = `${role}${userSeq}@example.test`;
      const password = `${role}-password-${userSeq}`;
      const r = await api(owner, 'POST', '/api/users', { email, password, role });
      if (r.status !== 201) throw new Error(`create user: ${r.status} ${JSON.stringify(r.body)}`);
      return { ...(await login(email, password)), email };
    },
    async createNode(session, name = `node-${Math.random().toString(36).slice(2, 8)}`) {
      const r = await api(session, 'POST', '/api/nodes', { name });
      if (r.status !== 201) throw new Error(`create node: ${r.status} ${JSON.stringify(r.body)}`);
      return { id: r.body.node.id, agentSecret: r.body.agentSecret };
    },
    async clientSocket(session) {
      const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/ws/client`, {
        headers: { cookie: session.cookie },
      });
      const messages: Json[] = [];
      const waiters = new Set<() => void>();
      ws.on('message', (d) => {
        messages.push(JSON.parse(d.toString()));
        for (const w of waiters) w();
      });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      return {
        ws,
        messages,
        send: (m) => ws.send(typeof m === 'string' ? m : JSON.stringify(m)),
        next(pred, timeoutMs = 5000) {
          return new Promise((resolve, reject) => {
            const check = () => {
              const i = messages.findIndex(pred);
              if (i >= 0) {
                const [m] = messages.splice(i, 1);
                waiters.delete(check);
                clearTimeout(timer);
                resolve(m);
              }
            };
            const timer = setTimeout(() => {
              waiters.delete(check);
              reject(new Error(`timed out; got ${JSON.stringify(messages).slice(0, 500)}`));
            }, timeoutMs);
            waiters.add(check);
            check();
          });
        },
        close: () => ws.close(),
      };
    },
    async stop() {
      await running.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return panel;
}

export interface InjectSession {
  cookie: string;
  csrf: string;
  /** cookie + X-CSRF-Token, for app.inject */
  headers: Record<string, string>;
}

export interface InjectPanel {
  app: FastifyInstance;
  dataDir: string;
  login(email?: string, password?: string, headers?: Record<string, string>): Promise<InjectSession>;
  stop(): Promise<void>;
}

/** A Panel that does not listen (app.inject only), with the owner from ADMIN_* unless overridden. */
export async function injectPanel(env: Record<string, string | undefined> = {}): Promise<InjectPanel> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cap-panel-inject-'));
  const app = await build(
    loadPanelConfig({
      DATA_DIR: dataDir,
      ADMIN_EMAIL,
      ADMIN_PASSWORD,
      PANEL_LOGIN_RATE_PER_MIN: '1000',
      ...env,
    }),
    { logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }) },
  );
  return {
    app,
    dataDir,
    async login(email = ADMIN_EMAIL, password = ADMIN_PASSWORD, headers = {}) {
      const r = await app.inject({
        method: 'POST',
        url: '/api/auth/login',
        headers,
        payload: { email, password },
      });
      if (r.statusCode !== 200) throw new Error(`login failed: ${r.statusCode} ${r.body}`);
      const c = r.cookies.find((x) => x.name === 'cap_session');
      if (!c) throw new Error('no session cookie');
      const csrf = r.json().csrfToken as string;
      const cookie = `cap_session=${c.value}`;
      return { cookie, csrf, headers: { cookie, 'x-csrf-token': csrf } };
    },
    async stop() {
      await app.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Every query takes `ms` longer, as over a network to PostgreSQL: parallel requests really interleave. */
export function slowQueries(ms = 3): KyselyPlugin {
  return {
    transformQuery: (a) => a.node,
    transformResult: async (a) => {
      await new Promise((r) => setTimeout(r, ms));
      return a.result;
    },
  };
}

/** The PostgreSQL the test setup starts (scripts/setup-host.sh). */
export const TEST_PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:55432/postgres';

/**
 * A Panel environment on `engine`: nothing extra for SQLite (a fresh data dir already is one), a
 * database of its own for PostgreSQL. `drop()` removes that database again.
 */
export async function scratchDatabase(
  engine: 'sqlite' | 'postgres',
  prefix: string,
): Promise<{ env: Record<string, string>; drop(): Promise<void> }> {
  if (engine === 'sqlite') return { env: {}, drop: async () => undefined };
  const { default: pg } = await import('pg');
  const name = `${prefix}_${process.pid}_${Date.now().toString(36)}`;
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: TEST_PG_URL });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(TEST_PG_URL);
  url.pathname = `/${name}`;
  return {
    env: { DATABASE_URL: url.toString() },
    drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

/** A new node with a fake Agent on it (started with those options), once the Panel has it online. */
export async function fakeAgentNode(
  panel: TestPanel,
  owner: Session,
  opts: Omit<FakeAgentOptions, 'panelUrl' | 'agentSecret'> = {},
  name?: string,
): Promise<{ id: string; agentSecret: string; agent: FakeAgent }> {
  const node = await panel.createNode(owner, name);
  const agent = await FakeAgent.start({ ...opts, panelUrl: panel.url, agentSecret: node.agentSecret });
  await until(() => panel.app.panel.hub.isOnline(node.id));
  return { ...node, agent };
}

/** A server on that node from an image (`img` unless `extra` says), made with ?wait=true; 201 checked. */
export async function createServer(
  panel: TestPanel,
  who: Session,
  nodeId: string,
  name: string,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const r = await panel.api(who, 'POST', '/api/servers?wait=true', { name, nodeId, image: 'img', ...extra });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.id;
}

export type Account = Session & { email: string; id: string };

/** A user `<name>@example.test` of that role made by the owner, logged in, with its id. */
export async function createAccount(
  panel: TestPanel,
  owner: Session,
  name: string,
  role: 'user' | 'spectator' | 'admin',
): Promise<Account> {
  const email = `${name}@example.test`;
  const password = `${name}-password-1`;
  const r = await panel.api(owner, 'POST', '/api/users', { email, password, role });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return { ...(await panel.login(email, password)), email, id: r.body.id };
}

/** Give `who` exactly those permissions on the server (added as a subuser, or its row changed). */
export async function grantPermissions(
  panel: TestPanel,
  owner: Session,
  serverId: string,
  who: Account,
  permissions: string[],
): Promise<Json> {
  const list = await panel.api(owner, 'GET', `/api/servers/${serverId}/users`);
  assert.equal(list.status, 200, JSON.stringify(list.body));
  const r = list.body.some((x: Json) => x.userId === who.id)
    ? await panel.api(owner, 'PATCH', `/api/servers/${serverId}/users/${who.id}`, { permissions })
    : await panel.api(owner, 'POST', `/api/servers/${serverId}/users`, { email: who.email, permissions });
  assert.ok(r.status === 200 || r.status === 201, JSON.stringify(r.body));
  return r.body;
}
