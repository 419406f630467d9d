/**
 * Migration 012 (per-server access) on a database made before it, on both engines: existing
 * servers get the first Panel owner (no creator was recorded); deleting a user clears the
 * servers they owned and removes their subuser entries; deleting a server removes its subusers.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Migrator } from 'kysely';
import { scratchDatabase } from '../../test/helpers.ts';
import { type Db, migrate, openPostgres, openSqlite } from './index.ts';
import { migrations } from './migrations.ts';

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();

async function upTo011(db: Db): Promise<void> {
  const before = Object.fromEntries(Object.entries(migrations).filter(([k]) => k < '012'));
  const { error } = await new Migrator({
    db,
    provider: { getMigrations: async () => before },
  }).migrateToLatest();
  if (error) throw error;
}

async function exercise(db: Db): Promise<void> {
  await upTo011(db);
  const user = (id: string, role: string, s: number) => ({
    id,
    email: `${id}@example.test`,
    password_hash: 'x',
    role,
    created_at: at(s),
    updated_at: at(s),
  });
  // the admin came first; the first *owner* is o1, not o2
  await db
    .insertInto('users')
    // the users table as it was before 013 (no username yet): not the current row type
    .values([
      user('a0', 'admin', 0),
      user('o2', 'owner', 2),
      user('o1', 'owner', 1),
      user('u1', 'user', 3),
    ] as never)
    .execute();
  await db
    .insertInto('nodes')
    .values({
      id: 'n1',
      name: 'n1',
      secret_hash: 'h',
      created_at: at(0),
      token_version: 0,
      hostname: null,
      capabilities: null,
      system_info: null,
      load: null,
      protocol_version: null,
      last_heartbeat_at: null,
      default_limits: null,
      // the nodes table as it was before 015 (no transfer_url yet)
    } as never)
    .execute();
  const server = (id: string) => ({
    id,
    name: id,
    node_id: 'n1',
    image: 'img',
    startup: '',
    environment: '{}',
    ports: '{}',
    limits: '{}',
    status: 'offline',
    desired_state: 'offline',
    created_at: at(0),
    updated_at: at(0),
  });
  await db
    .insertInto('servers')
    .values([server('s1'), server('s2')])
    .execute();
  await migrate(db);
  const owners = await db.selectFrom('servers').select(['id', 'owner_id']).orderBy('id').execute();
  assert.deepEqual(
    owners.map((r) => ({ id: r.id, owner_id: r.owner_id })),
    [
      { id: 's1', owner_id: 'o1' },
      { id: 's2', owner_id: 'o1' },
    ],
  );
  const sub = (server_id: string, user_id: string) => ({
    server_id,
    user_id,
    permissions: '["control.console"]',
    created_at: at(5),
    updated_at: at(5),
  });
  await db
    .insertInto('server_subusers')
    .values([sub('s1', 'u1'), sub('s2', 'u1'), sub('s2', 'o2')])
    .execute();
  // one entry per server and user
  await assert.rejects(db.insertInto('server_subusers').values(sub('s1', 'u1')).execute());
  await db.deleteFrom('users').where('id', '=', 'o1').execute();
  assert.deepEqual(
    (await db.selectFrom('servers').select(['owner_id']).execute()).map((r) => r.owner_id),
    [null, null],
  );
  await db.deleteFrom('users').where('id', '=', 'u1').execute();
  await db.deleteFrom('servers').where('id', '=', 's2').execute();
  assert.equal((await db.selectFrom('server_subusers').selectAll().execute()).length, 0);
}

describe('migration 012: server owners and subusers', () => {
  test('SQLite', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cap-mig-access-'));
    const db = openSqlite(join(dir, 'panel.sqlite'));
    try {
      await exercise(db);
    } finally {
      await db.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });
  test('PostgreSQL', async () => {
    const scratch = await scratchDatabase('postgres', 'cap_mig_access');
    const db = openPostgres(scratch.env.DATABASE_URL as string);
    try {
      await exercise(db);
    } finally {
      await db.destroy();
      await scratch.drop();
    }
  });
});
