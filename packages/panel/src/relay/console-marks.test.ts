import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sql } from 'kysely';
import { openSqlite } from '../db/index.ts';
import { ConsoleMarks } from './console-marks.ts';

const quiet = { warn: () => undefined };

async function marksDb() {
  const db = openSqlite(':memory:');
  // the table alone (no servers rows: the foreign key is the migration's, not under test here)
  await sql`create table console_marks (server_id text primary key, epoch text not null, seq bigint not null, shown bigint not null default 0)`.execute(
    db,
  );
  return db;
}

test('a mark written is read back; it only moves forward within an epoch, and a new epoch replaces it', async () => {
  const db = await marksDb();
  const m = new ConsoleMarks(db, quiet);
  assert.equal(await m.load('s1'), undefined);
  await m.write('s1', { epoch: 'e1', seq: 10 });
  assert.deepEqual(await m.load('s1'), { epoch: 'e1', seq: 10, shown: 0 });
  await m.write('s1', { epoch: 'e1', seq: 4 }); // a late writer
  assert.deepEqual(await m.load('s1'), { epoch: 'e1', seq: 10, shown: 0 });
  await m.write('s1', { epoch: 'e2', seq: 3 }); // the Agent started again
  assert.deepEqual(await m.load('s1'), { epoch: 'e2', seq: 3, shown: 0 });
  await db.destroy();
});

test('marks of one turn go in one write; each waiter resolves once it is stored', async () => {
  const db = await marksDb();
  let statements = 0;
  const counted = db.withPlugin({
    transformQuery: (a) => {
      if (a.node.kind === 'InsertQueryNode') statements++;
      return a.node;
    },
    transformResult: async (a) => a.result,
  });
  const m = new ConsoleMarks(counted, quiet);
  await Promise.all(Array.from({ length: 50 }, (_, i) => m.write(`s${i}`, { epoch: 'e', seq: i + 1 })));
  assert.equal(statements, 1);
  assert.deepEqual(await m.load('s49'), { epoch: 'e', seq: 50, shown: 0 });
  await db.destroy();
});

test('a write that fails lets the lines through (resolves) and reads answer undefined', async () => {
  const db = await marksDb();
  await sql`drop table console_marks`.execute(db);
  const warnings: string[] = [];
  const m = new ConsoleMarks(db, { warn: (_o, msg) => warnings.push(msg) });
  await m.write('s1', { epoch: 'e', seq: 1 });
  assert.equal(await m.load('s1'), undefined);
  assert.ok(warnings.length >= 1);
  await db.destroy();
});

test("`shown` rides along in its own server's next intent (no statement or row of its own), forward only; a new epoch starts it at 0", async () => {
  const db = await marksDb();
  let statements = 0;
  const counted = db.withPlugin({
    transformQuery: (a) => {
      if (a.node.kind === 'InsertQueryNode') statements++;
      return a.node;
    },
    transformResult: async (a) => a.result,
  });
  const m = new ConsoleMarks(counted, quiet, { shownIdleMs: 60_000 });
  await m.write('s1', { epoch: 'e', seq: 5 });
  m.shown('s1', { epoch: 'e', seq: 5 });
  m.shown('s1', { epoch: 'e', seq: 3 }); // older: ignored
  assert.equal(statements, 1, 'shown alone writes nothing (in steady state)');
  assert.deepEqual(await m.load('s1'), { epoch: 'e', seq: 5, shown: 0 });
  // another server's intent does not carry it (a row more each: at 20,000 servers rows cost)
  await m.write('s2', { epoch: 'e', seq: 9 });
  assert.equal(statements, 2);
  assert.deepEqual(await m.load('s1'), { epoch: 'e', seq: 5, shown: 0 });
  assert.deepEqual(await m.load('s2'), { epoch: 'e', seq: 9, shown: 0 });
  // its own server's does
  await m.write('s1', { epoch: 'e', seq: 6 });
  assert.equal(statements, 3);
  assert.deepEqual(await m.load('s1'), { epoch: 'e', seq: 6, shown: 5 });
  // with its own server's next intent, in the same row; never back (a late writer)
  m.shown('s2', { epoch: 'e', seq: 9 });
  await m.write('s2', { epoch: 'e', seq: 12 });
  assert.deepEqual(await m.load('s2'), { epoch: 'e', seq: 12, shown: 9 });
  m.shown('s2', { epoch: 'e', seq: 4 });
  await m.write('s2', { epoch: 'e', seq: 8 });
  assert.deepEqual(await m.load('s2'), { epoch: 'e', seq: 12, shown: 9 });
  // the Agent started again: the old epoch's shown is moot
  m.shown('s2', { epoch: 'e', seq: 12 });
  await m.write('s2', { epoch: 'f', seq: 2 });
  assert.deepEqual(await m.load('s2'), { epoch: 'f', seq: 2, shown: 0 });
  await db.destroy();
});

test('a `shown` with no write to ride along goes alone after the idle time (a quiet console)', async () => {
  const db = await marksDb();
  const m = new ConsoleMarks(db, quiet, { shownIdleMs: 20 });
  await m.write('s1', { epoch: 'e', seq: 7 });
  m.shown('s1', { epoch: 'e', seq: 7 });
  for (let i = 0; i < 100; i++) {
    if ((await m.load('s1'))?.shown === 7) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.deepEqual(await m.load('s1'), { epoch: 'e', seq: 7, shown: 7 });
  await db.destroy();
});
