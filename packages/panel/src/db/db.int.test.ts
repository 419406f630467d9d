/**
 * The repositories against both databases: SQLite (node:sqlite) and a real PostgreSQL
 * (TEST_DATABASE_URL; a fresh database per run, dropped after). Never skipped.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CodedError } from '@cap/protocol';
import { importTemplate } from '@cap/protocol/templates/index.ts';
import { generate } from 'otplib';
import pg from 'pg';
import { pino } from 'pino';
import { build } from '../app.ts';
import { loadPanelConfig } from '../config/index.ts';
import { RefreshTokensRepo } from '../modules/agents/repo.ts';
import { AllocationsRepo } from '../modules/allocations/repo.ts';
import { AllocationsService } from '../modules/allocations/service.ts';
import { MetricsRepo } from '../modules/metrics/repo.ts';
import { MetricsService } from '../modules/metrics/service.ts';
import { NodesRepo } from '../modules/nodes/repo.ts';
import { ServersRepo } from '../modules/servers/repo.ts';
import { TemplatesRepo } from '../modules/templates/repo.ts';
import { TemplatesService } from '../modules/templates/service.ts';
import { UsersRepo } from '../modules/users/repo.ts';
import { type Db, migrate, openPostgres, openSqlite } from './index.ts';
import { SettingsRepo } from './settings-repo.ts';

/** Migration 006 on this database: 2FA (sealed secret, last step, recovery codes), tickets, sessions, key scopes. */
async function exerciseAccounts(
  app: Awaited<ReturnType<typeof build>>,
  email: string,
  password: string,
  headers: Record<string, string>,
): Promise<void> {
  const inject = (method: string, url: string, payload?: object, h: Record<string, string> = headers) =>
    app.inject({ method: method as 'GET', url, headers: h, ...(payload ? { payload } : {}) });
  const start = await inject('POST', '/api/auth/2fa/enrol');
  assert.equal(start.statusCode, 200, start.body);
  const secret = start.json().secret as string;
  // the previous step's code is accepted only while the clock is in the next one: start well
  // inside a 30 s step, so that a slow request does not cross into the one after (a CI flake)
  const intoStep = (Date.now() / 1000) % 30;
  if (intoStep > 22) await new Promise((r) => setTimeout(r, (30 - intoStep) * 1000 + 250));
  const t = Math.floor(Date.now() / 1000);
  const confirm = await inject('POST', '/api/auth/2fa/confirm', {
    currentPassword: password,
    code: await generate({ secret, epoch: t - 30 }),
  });
  assert.equal(confirm.statusCode, 200, confirm.body);
  const [rc] = confirm.json().recoveryCodes as [string];
  const ticket = async () => {
    const r = await inject('POST', '/api/auth/login', { email, password }, {});
    assert.equal(r.json().twoFactorRequired, true, r.body);
    return r.json().ticket as string;
  };
  const code = await generate({ secret, epoch: t });
  const ok = await inject('POST', '/api/auth/login/2fa', { ticket: await ticket(), code }, {});
  assert.equal(ok.statusCode, 200, ok.body);
  const replay = await inject('POST', '/api/auth/login/2fa', { ticket: await ticket(), code }, {});
  assert.equal(replay.statusCode, 401, 'a used code was accepted again');
  const byRc = await inject('POST', '/api/auth/login/2fa', { ticket: await ticket(), recoveryCode: rc }, {});
  assert.equal(byRc.statusCode, 200, byRc.body);
  const rcAgain = await inject(
    'POST',
    '/api/auth/login/2fa',
    { ticket: await ticket(), recoveryCode: rc },
    {},
  );
  assert.equal(rcAgain.statusCode, 401);
  const sessions = await inject('GET', '/api/auth/sessions');
  assert.ok(sessions.json().length >= 3, sessions.body);
  assert.equal(sessions.json().filter((x: { current: boolean }) => x.current).length, 1);
  const key = await inject('POST', '/api/api-keys', { name: 'ro', currentPassword: password, scope: 'read' });
  assert.equal(key.statusCode, 201, key.body);
  const bearer = { authorization: `Bearer ${key.json().key}` };
  assert.equal((await inject('GET', '/api/nodes', undefined, bearer)).statusCode, 200);
  assert.equal((await inject('POST', '/api/nodes', { name: 'ro-node' }, bearer)).statusCode, 403);
}

const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:55432/postgres';
const now = () => new Date().toISOString();

async function exercise(db: Db): Promise<void> {
  await migrate(db);
  await migrate(db); // idempotent
  const users = new UsersRepo(db);
  await users.insert({
    id: 'u1',
    email: 'a@x.test',
    username: 'a',
    password_hash: 'h',
    role: 'owner',
    created_at: now(),
    updated_at: now(),
  });
  assert.equal(await users.count(), 1);
  assert.equal(await users.count('owner'), 1);
  assert.equal((await users.findByEmail('A@X.TEST'))?.id, 'u1');
  await assert.rejects(
    users.insert({
      id: 'u2',
      email: 'a@x.test',
      username: 'a2',
      password_hash: 'h',
      role: 'admin',
      created_at: now(),
      updated_at: now(),
    }),
  );

  const settings = new SettingsRepo(db);
  await settings.set('k', 'v1');
  await settings.set('k', 'v2');
  assert.equal(await settings.get('k'), 'v2');

  const nodes = new NodesRepo(db);
  await nodes.insert({
    id: 'n1',
    name: 'node',
    secret_hash: 'sh',
    hostname: null,
    capabilities: null,
    system_info: null,
    load: null,
    protocol_version: 1,
    last_heartbeat_at: null,
    created_at: now(),
    token_version: 0,
    default_limits: null,
    public_address: null,
    agent_refusal: null,
    transfer_url: null,
  });
  assert.equal((await nodes.findBySecretHash('sh'))?.id, 'n1');

  const servers = new ServersRepo(db);
  await servers.insert({
    id: 's1',
    name: 's',
    node_id: 'n1',
    image: 'i',
    startup: '',
    environment: '{"A":"1"}',
    ports: '{}',
    limits: '{}',
    done: null,
    stop: null,
    status: 'offline',
    desired_state: 'offline',
    last_update: null,
    created_at: now(),
    updated_at: now(),
    template_id: null,
    allocation_id: null,
    stop_timeout: null,
  });
  assert.equal((await nodes.serverCounts()).get('n1'), 1);
  // one node's count: that node's only (a node without servers has none)
  assert.deepEqual([...(await nodes.serverCounts('n1'))], [['n1', 1]]);
  assert.deepEqual([...(await nodes.serverCounts('no-such-node'))], []);

  // templates: uuid unique (parallel stores: one wins), NULL uuids never collide, in-use count
  const templates = new TemplatesService(new TemplatesRepo(db), pino({ level: 'silent' }));
  const { template } = importTemplate(
    JSON.stringify({
      meta: { version: 'PTDL_v2' },
      uuid: 'u-1',
      name: 'T',
      author: 'a',
      docker_images: { m: 'img:1' },
      startup: 'x',
      config: { files: '{}', startup: '{}', logs: '{}', stop: '^C' },
      variables: [],
    }),
  );
  const stored = await Promise.allSettled([templates.store(template), templates.store(template)]);
  assert.equal(stored.filter((r) => r.status === 'fulfilled').length, 1);
  const lost = stored.find((r) => r.status === 'rejected') as PromiseRejectedResult;
  assert.equal((lost.reason as CodedError).code, 'CONFLICT');
  await templates.store({ ...template, uuid: null });
  await templates.store({ ...template, uuid: null });
  assert.equal((await templates.list()).length, 3);
  const replaced = await templates.store({ ...template, name: 'T2' }, { replace: true });
  assert.equal(replaced.replaced, true);
  assert.equal((await templates.get(replaced.summary.id)).name, 'T2');

  // allocations: all-or-nothing pool adds, race-safe claims, release on server delete
  const allocs = new AllocationsService(new AllocationsRepo(db), nodes);
  await allocs.add('n1', { ip: '0.0.0.0', ports: ['40000-40001'] });
  await assert.rejects(allocs.add('n1', { ip: '0.0.0.0', ports: ['40002', '40001'] }), {
    code: 'PORT_CONFLICT',
  });
  assert.equal((await allocs.list('n1')).length, 2, 'nothing of a refused batch is stored');
  const raced = await Promise.allSettled([
    allocs.claimPort('n1', 's1', 41000, '0.0.0.0'),
    allocs.claimPort('n1', 's1', 41000, '0.0.0.0'),
  ]);
  // the same server asking twice gets the one entry; another server is refused
  assert.ok(raced.some((r) => r.status === 'fulfilled'));
  const held = (await allocs.list('n1')).filter((a) => a.port === 41000);
  assert.deepEqual(
    held.map((a) => a.serverId),
    ['s1'],
    'one entry for the port, held by s1',
  );
  await assert.rejects(allocs.claimPort('n1', 'other', 41000, '0.0.0.0'), { code: 'PORT_CONFLICT' });
  const primary = await allocs.claimPrimary('n1', 's1', {});
  assert.equal(primary?.port, 40000);
  await allocs.releaseServer('s1');
  const left = await allocs.list('n1');
  assert.deepEqual(
    left.map((a) => [a.port, a.serverId]),
    [
      [40000, null],
      [40001, null],
    ],
  );
  // a node with servers cannot vanish underneath them
  await assert.rejects(nodes.delete('n1'));

  const tokens = new RefreshTokensRepo(db);
  await tokens.insert({ id: 't1', node_id: 'n1', created_at: now(), expires_at: now(), used_at: null });
  assert.equal(await tokens.markUsed('t1', now()), true);
  assert.equal(await tokens.markUsed('t1', now()), false);

  const metrics = new MetricsService(new MetricsRepo(db));
  const base = Date.UTC(2030, 0, 1, 0, 0, 0);
  const snap = (cpu: number, mem: number) => ({
    serverId: 's1',
    cpu,
    uptime: 1,
    network: { rx: 10, tx: 20 },
    memory: { used: '1m', percentage: 1, usedBytes: mem, limitBytes: 0 },
    disk: { used: '1m', percentage: 1, usedBytes: 5_000_000_000, limitBytes: 0 },
  });
  metrics.record('s1', snap(10, 100), base + 1000);
  metrics.record('s1', snap(30, 300), base + 2000);
  metrics.record('s1', snap(50, 500), base + 61_000); // next minute closes the first
  await metrics.flush();
  const rows = await new MetricsRepo(db).range('s1', base - 1);
  assert.equal(rows.length, 1);
  assert.equal(rows[0]?.cpu, 20);
  assert.equal(rows[0]?.memory_bytes, 200);
  assert.equal(rows[0]?.disk_bytes, 5_000_000_000);
  const buckets = await metrics.range('s1', '1h', base + 120_000);
  assert.deepEqual(
    buckets.map((b) => b.cpu),
    [20, 50],
  );
  await metrics.flush(true);
  await metrics.flush(true); // upsert, not duplicate
  assert.equal((await new MetricsRepo(db).range('s1', base - 1)).length, 2);
  await metrics.prune(base + 8 * 24 * 3600_000);
  assert.equal((await new MetricsRepo(db).range('s1', 0)).length, 0);

  await servers.delete('s1');
  await nodes.delete('n1');
  assert.equal(await tokens.find('t1'), undefined, 'refresh tokens go with their node');
}

describe('database', () => {
  test('SQLite (node:sqlite) with WAL and foreign keys', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cap-db-'));
    const db = openSqlite(join(dir, 'panel.sqlite'));
    try {
      await exercise(db);
    } finally {
      await db.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('PostgreSQL', () => {
    const name = `cap_test_${process.pid}_${Date.now().toString(36)}`;
    const url = new URL(PG_URL);
    const admin = new pg.Client({ connectionString: PG_URL });
    before(async () => {
      await admin.connect();
      await admin.query(`CREATE DATABASE ${name}`);
      url.pathname = `/${name}`;
    });
    after(async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    });

    test('the same repositories and migrations', async () => {
      const db = openPostgres(url.toString());
      try {
        await exercise(db);
      } finally {
        await db.destroy();
      }
    });

    test('the whole Panel on DATABASE_URL', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'cap-pg-app-'));
      const second = `${name}_app`;
      await admin.query(`CREATE DATABASE ${second}`);
      const appUrl = new URL(PG_URL);
      appUrl.pathname = `/${second}`;
      const app = await build(
        loadPanelConfig({
          DATA_DIR: dir,
          DATABASE_URL: appUrl.toString(),
          ADMIN_EMAIL: 'pg@x.test',
          ADMIN_PASSWORD: 'pg-password-1',
        }),
        { logger: pino({ level: 'silent' }) },
      );
      try {
        const login = await app.inject({
          method: 'POST',
          url: '/api/auth/login',
          payload: { email: 'pg@x.test', password: 'pg-password-1' },
        });
        assert.equal(login.statusCode, 200);
        const headers = {
          cookie: `cap_session=${login.cookies.find((c) => c.name === 'cap_session')?.value}`,
          'x-csrf-token': login.json().csrfToken,
        };
        const node = await app.inject({
          method: 'POST',
          url: '/api/nodes',
          headers,
          payload: { name: 'pg-node' },
        });
        assert.equal(node.statusCode, 201);
        const reg = await app.inject({
          method: 'POST',
          url: '/api/agents/register',
          headers: { authorization: `Bearer ${node.json().agentSecret}` },
          payload: {
            name: 'a',
            hostname: 'h',
            port: 1,
            capabilities: { maxMemory: '1g', maxCpuCores: 1, dockerVersion: '1', supportedArchitectures: [] },
          },
        });
        assert.equal(reg.statusCode, 200, reg.body);
        // with PostgreSQL the signing key still lives in DATA_DIR (0600 in a 0700 dir), not in the database
        assert.equal(statSync(dir).mode & 0o777, 0o700);
        assert.equal(statSync(join(dir, 'keys', 'agent-jwt.key')).mode & 0o777, 0o600);
        const settings = await app.panel.db.selectFrom('settings').select('key').execute();
        assert.equal(
          settings.some((r) => r.key === 'agent_jwt_key'),
          false,
        );
        const list = await app.inject({ method: 'GET', url: '/api/nodes', headers });
        assert.equal(list.json()[0].serverCount, 0);
        assert.equal((await app.inject({ method: 'GET', url: '/api/dashboard', headers })).statusCode, 200);
        await exerciseAccounts(app, 'pg@x.test', 'pg-password-1', headers);
      } finally {
        await app.close();
        await admin.query(`DROP DATABASE IF EXISTS ${second} WITH (FORCE)`);
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
