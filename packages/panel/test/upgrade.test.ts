/**
 * Upgrades (issue 14 item 7): a database made by the previous release (4b1adcc, migrations
 * 001–011; fixtures/release-4b1adcc.sqlite, made by fixtures/make-release-db.ts from that tree)
 * is migrated by today's Panel at start, on SQLite and on PostgreSQL (the same rows copied into a
 * database migrated to 011), and what it held is all there: users log in with their passwords,
 * roles, the API key, the node with its limits and allocations, templates and servers.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, test } from 'node:test';
import { Migrator, sql } from 'kysely';
import { openPostgres } from '../src/db/index.ts';
import { migrations } from '../src/db/migrations.ts';
import { type Json, scratchDatabase, startTestPanel } from './helpers.ts';

const FIXTURE = new URL('./fixtures/release-4b1adcc.sqlite', import.meta.url).pathname;
/** the tables of the release, in an order their foreign keys accept */
const TABLES = [
  'users',
  'sessions',
  'api_keys',
  'nodes',
  'agent_refresh_tokens',
  'templates',
  'servers',
  'allocations',
  'metric_buckets',
  'settings',
  'operations',
  'activity',
  'recovery_codes',
  'login_tickets',
];

/** A PostgreSQL database as the release left it: its migrations, then the fixture's rows. */
async function postgresFromFixture(url: string): Promise<void> {
  const db = openPostgres(url);
  try {
    const release = Object.fromEntries(Object.entries(migrations).filter(([k]) => k < '012'));
    const { error } = await new Migrator({
      db,
      provider: { getMigrations: async () => release },
    }).migrateToLatest();
    if (error) throw error;
    const src = new DatabaseSync(FIXTURE, { readOnly: true });
    try {
      const have = new Set(
        src
          .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
          .all()
          .map((r) => String(r.name)),
      );
      for (const t of TABLES) {
        if (!have.has(t)) continue;
        const rows = src.prepare(`SELECT * FROM ${t}`).all() as Record<string, unknown>[];
        if (rows.length)
          await db
            .insertInto(t as never)
            .values(rows as never)
            .execute();
      }
      // every table of the release is copied (a new one in the fixture must be listed above)
      const missed = [...have].filter(
        (t) => !TABLES.includes(t) && !t.startsWith('kysely_') && !t.startsWith('sqlite_'),
      );
      assert.deepEqual(missed, []);
    } finally {
      src.close();
    }
  } finally {
    await db.destroy();
  }
}

async function checkUpgraded(env: Record<string, string>): Promise<void> {
  const panel = await startTestPanel({
    ...env,
    // users exist: no owner is created; the helper logs in with the release's owner
    ADMIN_EMAIL: 'owner@release.test',
    ADMIN_PASSWORD: 'owner-password-1',
  });
  try {
    // every migration of today ran
    const applied = (
      await sql<{ name: string }>`SELECT name FROM kysely_migration`.execute(panel.app.panel.db)
    ).rows
      .map((r) => r.name)
      .sort();
    assert.deepEqual(applied, Object.keys(migrations).sort());

    const owner = await panel.login('owner@release.test', 'owner-password-1');
    await panel.login('admin@release.test', 'admin-password-1');
    await panel.login('viewer@release.test', 'viewer-password-1');
    const users = (await panel.api(owner, 'GET', '/api/users')).body as Json[];
    assert.deepEqual(users.map((u) => [u.email, u.role, u.username]).sort(), [
      ['admin@release.test', 'admin', 'admin'],
      ['owner@release.test', 'owner', 'owner'],
      ['viewer@release.test', 'spectator', 'viewer'],
    ]);
    const ownerId = users.find((u) => u.email === 'owner@release.test').id;
    const keys = (await panel.api(owner, 'GET', '/api/api-keys')).body as Json[];
    assert.deepEqual(keys, [], "the owner has no key: it is the admin's");

    const templates = (await panel.api(owner, 'GET', '/api/templates')).body as Json[];
    assert.deepEqual(templates.map((t) => t.name).sort(), ['OpenArena', 'OpenTTD', 'Teeworlds']);
    const tee = templates.find((t) => t.name === 'Teeworlds');

    const nodes = (await panel.api(owner, 'GET', '/api/nodes')).body as Json[];
    assert.equal(nodes.length, 1);
    const node = nodes[0];
    assert.equal(node.name, 'old-node');
    assert.deepEqual(node.defaultLimits, { memory: '2g', cpu: 2 });
    assert.equal(node.publicAddress, null);
    const allocs = (await panel.api(owner, 'GET', `/api/nodes/${node.id}/allocations`)).body as Json[];
    assert.deepEqual(allocs.map((a) => [a.ip, a.port, a.serverId]).sort(), [
      ['0.0.0.0', 27960, 'sold-template'],
      ['0.0.0.0', 27961, null],
      ['0.0.0.0', 27962, null],
    ]);

    const servers = (await panel.api(owner, 'GET', '/api/servers')).body as Json[];
    const byId = new Map(servers.map((s) => [s.id, s]));
    assert.equal(servers.length, 2);
    const t = byId.get('sold-template');
    assert.equal(t.name, 'Old Teeworlds');
    assert.equal(t.templateId, tee.id);
    assert.equal(t.environment.SERVER_NAME, 'kept across the upgrade');
    assert.equal(t.environment.MAX_PLAYERS, '12');
    assert.deepEqual(t.limits, { memory: '1g', cpu: 1 });
    assert.equal(t.stopTimeout, 30);
    assert.equal(t.allocation.port, 27960);
    // migration 012: servers made before owners existed belong to the first owner
    assert.equal(t.ownerId, ownerId);
    assert.equal(t.address, null, 'no public address yet: no 0.0.0.0 shown either');
    const raw = byId.get('sold-raw');
    assert.equal(raw.image, 'ctrl-alt-play/busybox:latest');
    assert.equal(raw.startup, 'sleep 3600');
    assert.deepEqual(raw.environment, { FOO: 'bar' });
    assert.deepEqual(raw.ports, { '8080/tcp': 28080 });

    // and the upgraded database works on: a public address gives the server its address
    const patched = await panel.api(owner, 'PATCH', `/api/nodes/${node.id}`, {
      publicAddress: 'old.example.test',
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(
      (await panel.api(owner, 'GET', '/api/servers/sold-template')).body.address,
      'old.example.test:27960',
    );
  } finally {
    await panel.stop();
  }
}

describe('a database made by the previous release (4b1adcc) migrates with its data', () => {
  test('SQLite', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cap-upgrade-'));
    try {
      copyFileSync(FIXTURE, join(dir, 'panel.sqlite'));
      await checkUpgraded({ DATA_DIR: dir });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('PostgreSQL', async (t) => {
    let scratch: Awaited<ReturnType<typeof scratchDatabase>>;
    try {
      scratch = await scratchDatabase('postgres', 'cap_upgrade');
    } catch (e) {
      if (process.env.CI === 'true' || process.env['CAP_REQUIRE_REAL']) throw e;
      t.skip(`no PostgreSQL: ${(e as Error).message}`);
      return;
    }
    try {
      await postgresFromFixture(scratch.env.DATABASE_URL ?? '');
      await checkUpgraded(scratch.env);
    } finally {
      await scratch.drop();
    }
  });
});
