/**
 * What replicas count together in PostgreSQL (issue 15 item 1), each "replica" here its own
 * database connection to one scratch database: socket counts (PgSocketLimits over
 * ReplicaRegistry) with a replica that stops beating (its counts stop counting after the TTL)
 * and one taken for dead while alive (it writes its counts again, under a fresh id); a dead
 * replica's PostgreSQL sessions ended by a survivor; the SFTP login limit.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import pino from 'pino';
import { type Db, openDatabase } from '../src/db/index.ts';
import { ReplicaRegistry } from '../src/lib/replicas.ts';
import type { AccessService } from '../src/modules/access/service.ts';
import { DbWindowLimiter } from '../src/modules/auth/db-limiter.ts';
import { SftpService } from '../src/modules/sftp/service.ts';
import type { SshKeysService } from '../src/modules/sftp/ssh-keys.ts';
import type { UsersRepo } from '../src/modules/users/repo.ts';
import { PgSocketLimits } from '../src/relay/socket-limits.ts';
import { scratchDatabase, until } from './helpers.ts';

const quiet = { warn: () => undefined };

describe('replicas counting together in PostgreSQL', () => {
  let scratch: Awaited<ReturnType<typeof scratchDatabase>>;
  const dbs: Db[] = [];
  const open = async () => {
    const db = await openDatabase({ dataDir: '/nonexistent', databaseUrl: scratch.env['DATABASE_URL'] });
    dbs.push(db);
    return db;
  };

  before(async () => {
    scratch = await scratchDatabase('postgres', 'cap_live_shared');
  });
  after(async () => {
    for (const db of dbs) await db.destroy().catch(() => undefined);
    await scratch?.drop();
  });

  it('socket counts add up over live replicas; a silent one stops counting after the TTL; a rejoined one counts again', async () => {
    const ttlMs = 1500;
    const r1 = new ReplicaRegistry({ db: await open(), id: 'live-r1', heartbeatMs: 100, ttlMs, log: quiet });
    const r2 = new ReplicaRegistry({ db: await open(), id: 'live-r2', heartbeatMs: 100, ttlMs, log: quiet });
    await r1.start();
    await r2.start();
    const l1 = new PgSocketLimits({ db: dbs[0] as Db, replicas: r1, log: quiet });
    const l2 = new PgSocketLimits({ db: dbs[1] as Db, replicas: r2, log: quiet });
    const key = 'user:live-u1';
    assert.equal(await l1.acquire(key, 3), true);
    assert.equal(await l2.acquire(key, 3), true);
    assert.equal(await l2.acquire(key, 3), true);
    assert.equal(await l1.acquire(key, 3), false, 'the fourth on either replica is refused');
    assert.equal(await l2.acquire(key, 3), false);
    // acquires at once on both replicas: one of them gets the last place, never both
    l2.release(key);
    const both = await Promise.all([l1.acquire(key, 3), l2.acquire(key, 3)]);
    assert.equal(both.filter(Boolean).length, 1, `one place, one winner: ${both}`);
    assert.equal(l1.local(key) + l2.local(key), 3);

    // r2 "killed": it beats no more; once older than the TTL its counts stop counting
    r2.halt();
    const r1Own = l1.local(key);
    await until(async () => l1.acquire(key, 3), 10_000);
    assert.equal(l1.local(key), r1Own + 1);

    // r1 taken for dead while alive (its row gone): its next beat writes a row under a fresh id
    // and its counts again
    const r3 = new ReplicaRegistry({ db: await open(), id: 'live-r3', heartbeatMs: 100, ttlMs, log: quiet });
    await r3.start();
    const l3 = new PgSocketLimits({ db: dbs[2] as Db, replicas: r3, log: quiet });
    await (dbs[2] as Db).deleteFrom('live_counts').where('replica_id', '=', 'live-r1').execute();
    await (dbs[2] as Db).deleteFrom('panel_replicas').where('id', '=', 'live-r1').execute();
    await until(async () => {
      if (r1.id === 'live-r1') return false;
      const rows = await (dbs[2] as Db)
        .selectFrom('live_counts')
        .select('n')
        .where('replica_id', '=', r1.id)
        .execute();
      return Number(rows[0]?.n ?? 0) === l1.local(key);
    }, 10_000);
    assert.equal(r1.id, 'live-r1.1', 'a fresh id');
    const room = 3 - l1.local(key);
    for (let i = 0; i < room; i++) assert.equal(await l3.acquire(key, 3), true);
    assert.equal(await l3.acquire(key, 3), false, "r1's counts count again");
    await r1.close();
    await r3.close();
  });

  it("a dead replica's database sessions are ended by a survivor (those from before it was dead)", async () => {
    const ttlMs = 1000;
    const url = scratch.env['DATABASE_URL'] as string;
    const app = `cap-live-dead-${process.pid}`;
    const dead = new ReplicaRegistry({
      db: await open(),
      id: 'live-dead',
      heartbeatMs: 100,
      ttlMs,
      log: quiet,
      pgApp: app,
    });
    await dead.start();
    // a session of the dead replica's (its leader lock's, say) holding an advisory lock
    const held = new pg.Client({ connectionString: url, application_name: `${app}:leader` });
    held.on('error', () => undefined);
    await held.connect();
    await held.query('SELECT pg_advisory_lock(4242)');
    const ended = new Promise<void>((resolve) => held.once('end', () => resolve()));
    dead.halt();
    const survivor = new ReplicaRegistry({
      db: await open(),
      id: 'live-survivor',
      heartbeatMs: 100,
      ttlMs,
      log: quiet,
    });
    await survivor.start();
    const t0 = Date.now();
    await Promise.race([
      ended,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error('the dead replica session was not ended')), 10_000).unref(),
      ),
    ]);
    const endedMs = Date.now() - t0;
    assert.ok(endedMs < ttlMs + 2000, `ended ${endedMs} ms after the halt`);
    // the lock is free for the survivors
    const other = new pg.Client({ connectionString: url });
    await other.connect();
    assert.equal((await other.query('SELECT pg_try_advisory_lock(4242) AS ok')).rows[0]?.ok, true);
    // a session with the name begun after the row was removed (the replica back): kept
    const later = new pg.Client({ connectionString: url, application_name: app });
    await later.connect();
    await new Promise((r) => setTimeout(r, 3 * 100 + ttlMs));
    assert.equal((await later.query('SELECT 1 AS one')).rows[0]?.one, 1);
    await later.end();
    await other.end();
    await survivor.close();
  });

  it('a replica that loses its database fences itself when another is alive, not when alone', async () => {
    const ttlMs = 1000;
    const fences: string[] = [];
    const lone = new ReplicaRegistry({
      db: await open(),
      id: 'live-lone',
      heartbeatMs: 100,
      ttlMs,
      log: quiet,
    });
    lone.onFence({ fenced: () => fences.push('lone'), unfenced: () => undefined });
    await lone.start();
    // the database gone under it (its pool ended: every beat fails)
    await (dbs.at(-1) as Db).destroy();
    await new Promise((r) => setTimeout(r, ttlMs + 500));
    assert.equal(lone.fenced, false, 'alone: nobody would take over, so it keeps going');
    lone.halt();
    await (dbs[0] as Db).deleteFrom('panel_replicas').execute();

    const peer = new ReplicaRegistry({
      db: await open(),
      id: 'live-peer',
      heartbeatMs: 100,
      ttlMs,
      log: quiet,
    });
    await peer.start();
    const cut = new ReplicaRegistry({
      db: await open(),
      id: 'live-cut',
      heartbeatMs: 100,
      ttlMs,
      log: quiet,
    });
    cut.onFence({ fenced: () => fences.push('cut'), unfenced: () => undefined });
    await cut.start();
    await until(() => cut.peers === 1, 5_000);
    const lostAt = Date.now();
    await (dbs.at(-1) as Db).destroy();
    await until(() => cut.fenced, 5_000);
    const fencedMs = Date.now() - lostAt;
    assert.ok(fencedMs < ttlMs, `fenced ${fencedMs} ms after its database went: before the TTL`);
    assert.deepEqual(fences, ['cut']);
    cut.halt();
    await peer.close();
  });

  it('the database down for both: each tells its word every beat (say), hears the other, neither fences; hostile words are not taken', async () => {
    const ttlMs = 1000;
    const fences: string[] = [];
    const said = new Map<string, number>();
    const regs: ReplicaRegistry[] = [];
    const make = async (id: string) => {
      const r = new ReplicaRegistry({
        db: await open(),
        id,
        heartbeatMs: 100,
        ttlMs,
        log: quiet,
        // what the bus does with `others`: every other replica hears it, never the teller
        say: (word) => {
          said.set(id, (said.get(id) ?? 0) + 1);
          for (const o of regs) if (o !== r) o.heard({ kind: 'replica.health', ...word });
        },
      });
      r.onFence({ fenced: () => fences.push(id), unfenced: () => undefined });
      regs.push(r);
      return r;
    };
    const x = await make('live-all-x');
    const y = await make('live-all-y');
    await x.start();
    await y.start();
    // each a peer of the other (an earlier test's row may still count until it is past the TTL)
    await until(
      () => x.heard({ base: 'live-all-y', failingMs: 0 }) && y.heard({ base: 'live-all-x', failingMs: 0 }),
      5_000,
    );
    await until(() => x.peers === 1 && y.peers === 1, 5_000);
    // hostile words: none taken (inherited, mistyped, unbounded, not a peer, its own)
    const bad: unknown[] = [
      null,
      'live-all-y',
      [{ base: 'live-all-y', failingMs: 5000 }],
      Object.create({ base: 'live-all-y', failingMs: 5000 }),
      { base: 'live-all-y', failingMs: Number.NaN },
      { base: 'live-all-y', failingMs: Number.POSITIVE_INFINITY },
      { base: 'live-all-y', failingMs: -1 },
      { base: 'live-all-y', failingMs: '5000' },
      { base: 'live-all-y', failingMs: 1e12 },
      { base: 'y'.repeat(201), failingMs: 5000 },
      { base: 'live-all-stranger', failingMs: 5000 },
      { base: 'live-all-x', failingMs: 5000 },
      { base: 7, failingMs: 5000 },
    ];
    assert.deepEqual(
      bad.map((w) => x.heard(w)),
      bad.map(() => false),
    );
    // both lose the database at once (their pools ended: every beat fails)
    const saidBefore = new Map(said);
    await (dbs.at(-1) as Db).destroy();
    await (dbs.at(-2) as Db).destroy();
    await new Promise((r) => setTimeout(r, 3 * ttlMs));
    assert.deepEqual(fences, [], 'both heard the other failing too: nobody fenced');
    for (const id of ['live-all-x', 'live-all-y'])
      assert.ok(
        (said.get(id) ?? 0) - (saidBefore.get(id) ?? 0) >= 15,
        `${id} told its word every beat while its beats failed (${(said.get(id) ?? 0) - (saidBefore.get(id) ?? 0)} in ${3 * ttlMs} ms)`,
      );
    // y falls silent (halted): x no longer hears it failing and fences
    y.halt();
    await until(() => x.fenced, 5_000);
    assert.deepEqual(fences, ['live-all-x']);
    x.halt();
    await (dbs[0] as Db).deleteFrom('panel_replicas').execute();
  });

  it('the SFTP login limit counts over replicas', async () => {
    const sftp = async () => {
      const db = await open();
      return new SftpService({
        db,
        users: { findByUsername: async () => undefined } as unknown as UsersRepo,
        keys: {} as SshKeysService,
        access: {} as AccessService,
        gateway: () => {
          throw new Error('not used');
        },
        log: pino({ level: 'silent' }),
        loginRatePerMin: 3,
        limiter: (limit, windowMs) => new DbWindowLimiter(db, limit, windowMs, 'sftp'),
      });
    };
    const replicas = [await sftp(), await sftp()];
    const codes: string[] = [];
    for (let i = 0; i < 4; i++) {
      const err = await (replicas[i % 2] as SftpService)
        .authenticate(
          'n1',
          { username: 'live-guess.s1', password: `wrong-${i}`, ip: '192.0.2.7' },
          '127.0.0.1',
        )
        .then(
          () => 'ok',
          (e: { code?: string }) => e.code ?? 'none',
        );
      codes.push(err);
    }
    // 3 a minute per name: the fourth is refused although each replica saw only 2
    assert.deepEqual(codes, ['AUTH_FAILED', 'AUTH_FAILED', 'AUTH_FAILED', 'RATE_LIMITED']);
  });
});
