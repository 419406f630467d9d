/**
 * The database: one SQLite file in DATA_DIR (Node's built-in node:sqlite, no native addon),
 * or PostgreSQL through the same Kysely code when DATABASE_URL is set.
 */
import { join } from 'node:path';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import {
  Kysely,
  Migrator,
  PostgresDialect,
  type SqliteDatabase,
  SqliteDialect,
  type SqliteStatement,
} from 'kysely';
import pg from 'pg';
import { ensurePrivateDir, preparePrivateDatabase, securePrivateDatabase } from '../lib/private-files.ts';
import { migrationProvider } from './migrations.ts';
import type { Database } from './schema.ts';

export type Db = Kysely<Database>;
export type { Database } from './schema.ts';

function toParams(parameters: ReadonlyArray<unknown>): SQLInputValue[] {
  return parameters.map((p) => {
    if (p === undefined) return null;
    if (typeof p === 'boolean') return p ? 1 : 0;
    return p as SQLInputValue;
  });
}

/** Adapts node:sqlite's DatabaseSync to the better-sqlite3-like shape Kysely's SqliteDialect wants. */
export function nodeSqliteAdapter(db: DatabaseSync): SqliteDatabase {
  return {
    close: () => db.close(),
    prepare(sql: string): SqliteStatement {
      const stmt: StatementSync = db.prepare(sql);
      return {
        reader: stmt.columns().length > 0,
        all: (parameters) => stmt.all(...toParams(parameters)),
        run: (parameters) => {
          const r = stmt.run(...toParams(parameters));
          return { changes: r.changes, lastInsertRowid: r.lastInsertRowid };
        },
        iterate: (parameters) => stmt.iterate(...toParams(parameters)) as IterableIterator<unknown>,
      };
    },
  };
}

export function openSqlite(file: string): Db {
  const raw = new DatabaseSync(file);
  raw.exec('PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;');
  return new Kysely<Database>({ dialect: new SqliteDialect({ database: nodeSqliteAdapter(raw) }) });
}

/**
 * `applicationName` tags every session of the pool (`pg_stat_activity.application_name`): a replica
 * taken for dead has its sessions ended by the survivors by that tag (lib/replicas.ts).
 */
export function openPostgres(url: string, applicationName?: string): Db {
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    ...(applicationName ? { application_name: applicationName } : {}),
  });
  // An idle client killed by the server (restart, failover) must not crash the Panel; the pool
  // replaces it on the next query.
  pool.on('error', (err) => process.emitWarning(`postgres idle client error: ${err.message}`));
  // A client in use (a query or a transaction in flight) whose connection ends unexpectedly (a
  // partition healing, a proxy resetting) emits 'error' too, and pg-pool listens only on idle
  // ones: unheard, it would end the process. Its queries are rejected already, and the pool drops
  // it when it is released (it is no longer queryable).
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
  });
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

export async function migrate(db: Db): Promise<void> {
  const migrator = new Migrator({ db, provider: migrationProvider });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    throw new Error(`database migration failed${failed ? ` at ${failed.migrationName}` : ''}`, {
      cause: error,
    });
  }
}

/** Open (and migrate) the Panel's database: PostgreSQL when databaseUrl is set, else DATA_DIR/panel.sqlite. */
export async function openDatabase(
  cfg: { dataDir: string; databaseUrl: string | undefined },
  opts: { applicationName?: string } = {},
): Promise<Db> {
  let db: Db;
  if (cfg.databaseUrl) {
    db = openPostgres(cfg.databaseUrl, opts.applicationName);
  } else {
    // 0700 directory, 0600 database (and so WAL/SHM), set on creation and repaired on start
    ensurePrivateDir(cfg.dataDir);
    const file = join(cfg.dataDir, 'panel.sqlite');
    preparePrivateDatabase(file);
    db = openSqlite(file);
  }
  await migrate(db);
  if (!cfg.databaseUrl) securePrivateDatabase(join(cfg.dataDir, 'panel.sqlite'));
  return db;
}

export const nowIso = (): string => new Date().toISOString();
