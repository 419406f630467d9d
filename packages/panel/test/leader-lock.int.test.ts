/**
 * The leader of the periodic work across replicas (issue 15 item 1), on a real PostgreSQL: two
 * `LocalPeriodic`s, each with its own `PgLeaderLock` session, run a job's rounds only on one of
 * them; the leader's session killed on the server (as when its replica dies) hands the job to the
 * other within a round or two; the old leader, its session gone, does not run it any more, and
 * takes it again only once the lock is free. A fenced lock (lib/replicas.ts) gives its jobs up
 * at once and takes them again, once unfenced, only when free.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { LocalPeriodic, PgLeaderLock } from '../src/lib/periodic.ts';
import { scratchDatabase, until } from './helpers.ts';

describe('PgLeaderLock on PostgreSQL', () => {
  let db: Awaited<ReturnType<typeof scratchDatabase>>;
  let url = '';
  const locks: PgLeaderLock[] = [];
  const stops: (() => void)[] = [];

  before(async () => {
    db = await scratchDatabase('postgres', 'cap_leader');
    url = db.env['DATABASE_URL'] ?? '';
  });

  after(async () => {
    for (const s of stops) s();
    for (const l of locks) await l.close();
    await db?.drop();
  });

  const replica = (name: string, job = 'schedules') => {
    const lock = new PgLeaderLock({
      open: () =>
        new pg.Client({ connectionString: url, query_timeout: 5000, application_name: `leader-${name}` }),
      namespace: 'test',
    });
    locks.push(lock);
    const errors: unknown[] = [];
    const periodic = new LocalPeriodic({ lock, onError: (_n, e) => errors.push(e) });
    const runs: number[] = [];
    const stop = periodic.every(job, 50, async () => {
      runs.push(Date.now());
    });
    stops.push(stop);
    return { lock, runs, errors, stop };
  };

  it('one replica runs each round; the other none; killing the leader hands it over', async () => {
    const a = replica('a');
    const b = replica('b');
    // generous waits: a loaded CI (PostgreSQL shared with other test files) slows each round
    await until(() => a.runs.length + b.runs.length >= 20, 30_000);
    const leader = a.runs.length > 0 ? a : b;
    const other = leader === a ? b : a;
    assert.equal(other.runs.length, 0, `only one leader (a ${a.runs.length}, b ${b.runs.length})`);
    // rounds are not doubled: about one per 50 ms
    const span = (leader.runs.at(-1) ?? 0) - (leader.runs[0] ?? 0);
    assert.ok(leader.runs.length <= span / 40 + 2, `${leader.runs.length} rounds in ${span} ms`);
    assert.deepEqual(leader.lock.held(), ['schedules']);

    // the leader's replica dies (kill -9): its rounds stop and its session dies on the server.
    // (Killing only the session is not a death: the same replica may well take the lock again
    // on its next round, before the other asks; one leader either way.)
    leader.stop();
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    const name = leader === a ? 'leader-a' : 'leader-b';
    const killedAt = Date.now();
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [
      name,
    ]);
    await admin.end();
    const before = other.runs.length;
    await until(() => other.runs.length > before + 5, 30_000);
    const first = other.runs[before] ?? 0;
    console.log(
      `# leader session killed: the other replica ran its first round after ${first - killedAt} ms (rounds 50 ms)`,
    );
    // the survivor holds the lock now
    assert.deepEqual(other.lock.held(), ['schedules']);
  });

  it('a fenced lock gives its jobs up at once and takes none until unfenced', async () => {
    const c = replica('c', 'fenced-job');
    const d = replica('d', 'fenced-job');
    await until(() => c.runs.length + d.runs.length >= 5, 30_000);
    const leader = c.runs.length > 0 ? c : d;
    const other = leader === c ? d : c;
    leader.lock.fence(true);
    const fencedAt = Date.now();
    const leaderRuns = leader.runs.length;
    const before = other.runs.length;
    await until(() => other.runs.length > before + 5, 30_000);
    console.log(
      `# fenced: the other replica ran its first round after ${(other.runs[before] ?? 0) - fencedAt} ms`,
    );
    // at most the round already past its check when the fence came
    assert.ok(
      leader.runs.length <= leaderRuns + 1,
      `the fenced one ran ${leader.runs.length - leaderRuns} rounds`,
    );
    assert.deepEqual(leader.lock.held(), []);
    // unfenced: it asks again, but the lock is the other's now
    leader.lock.fence(false);
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(leader.runs.length <= leaderRuns + 1, 'the lock is held elsewhere: still no round');
    other.stop();
    await other.lock.close();
    await until(() => leader.runs.length > leaderRuns + 3, 30_000);
    assert.deepEqual(leader.lock.held(), ['fenced-job']);
  });
});
