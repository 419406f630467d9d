/**
 * ConsoleMarks on PostgreSQL (TEST_DATABASE_URL; a database of its own, dropped after): the
 * upsert there is one statement of four arrays (unnest), the reads of a turn one `in` query,
 * two writes may be in flight at once. Forward only within an epoch, a new epoch replaces,
 * whatever order the writes end in.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { sql } from 'kysely';
import { scratchDatabase } from '../../test/helpers.ts';
import { type Db, openPostgres } from '../db/index.ts';
import { ConsoleMarks } from './console-marks.ts';

const quiet = { warn: () => undefined };
let db: Db;
let drop: () => Promise<void>;
const statements = { insert: 0, unnest: 0, select: 0 };

before(async () => {
  const scratch = await scratchDatabase('postgres', 'cap_marks');
  drop = scratch.drop;
  db = openPostgres(scratch.env['DATABASE_URL'] as string);
  await sql`create table console_marks (server_id text primary key, epoch text not null, seq bigint not null, shown bigint not null default 0)`.execute(
    db,
  );
});
after(async () => {
  await db.destroy();
  await drop();
});

const counted = () =>
  db.withPlugin({
    transformQuery: (a) => {
      const k = a.node.kind;
      if (k === 'InsertQueryNode') statements.insert++;
      else if (k === 'SelectQueryNode') statements.select++;
      else if (k === 'RawNode') {
        const text = (a.node as unknown as { sqlFragments: string[] }).sqlFragments.join('?');
        if (/^\s*insert/i.test(text)) statements.insert++;
        if (/unnest/i.test(text)) statements.unnest++;
      }
      return a.node;
    },
    transformResult: async (a) => a.result,
  });

test('postgres: forward only within an epoch; a new epoch replaces; read back', async () => {
  const m = new ConsoleMarks(db, quiet);
  assert.equal(await m.load('p1'), undefined);
  await m.write('p1', { epoch: 'e1', seq: 10 });
  assert.deepEqual(await m.load('p1'), { epoch: 'e1', seq: 10, shown: 0 });
  await m.write('p1', { epoch: 'e1', seq: 4 }); // a late writer
  assert.deepEqual(await m.load('p1'), { epoch: 'e1', seq: 10, shown: 0 });
  await m.write('p1', { epoch: 'e2', seq: 3 });
  assert.deepEqual(await m.load('p1'), { epoch: 'e2', seq: 3, shown: 0 });
});

test('postgres: one turn of 3,000 marks is one upsert per 2,000 rows; one turn of reads one select per 2,000 ids', async () => {
  const m = new ConsoleMarks(counted(), quiet);
  statements.insert = 0;
  statements.select = 0;
  statements.unnest = 0;
  await Promise.all(Array.from({ length: 3000 }, (_, i) => m.write(`b${i}`, { epoch: 'e', seq: i + 1 })));
  assert.equal(statements.insert, 2);
  assert.equal(statements.unnest, 2, 'the arrays form on PostgreSQL');
  const read = await Promise.all(Array.from({ length: 3000 }, (_, i) => m.load(`b${i}`)));
  assert.equal(statements.select, 2);
  assert.deepEqual(
    read,
    Array.from({ length: 3000 }, (_, i) => ({ epoch: 'e', seq: i + 1, shown: 0 })),
  );
  assert.equal(await m.load('b-none'), undefined);
});

test('postgres: writes one after the other while others are in flight end at the highest mark', async () => {
  const m = new ConsoleMarks(db, quiet);
  const waits: Promise<boolean>[] = [];
  for (let seq = 1; seq <= 40; seq++) {
    waits.push(m.write('c1', { epoch: 'e', seq }));
    waits.push(m.write('c2', { epoch: 'e', seq: 41 - seq })); // backwards: stays at 40
    await new Promise((r) => setImmediate(r)); // a turn each: many batches, two in flight
  }
  await Promise.all(waits);
  assert.deepEqual(await m.load('c1'), { epoch: 'e', seq: 40, shown: 0 });
  assert.deepEqual(await m.load('c2'), { epoch: 'e', seq: 40, shown: 0 });
});

test("postgres: `shown` rides along in its server's next upsert, forward only, never past a newer epoch", async () => {
  const m = new ConsoleMarks(counted(), quiet, { shownIdleMs: 60_000 });
  statements.insert = 0;
  await m.write('d1', { epoch: 'e', seq: 5 });
  m.shown('d1', { epoch: 'e', seq: 5 });
  assert.equal(statements.insert, 1);
  await m.write('d2', { epoch: 'e', seq: 1 });
  assert.equal(statements.insert, 2);
  assert.deepEqual(await m.load('d1'), { epoch: 'e', seq: 5, shown: 0 }, "not in another server's row");
  await m.write('d1', { epoch: 'e', seq: 5 });
  assert.equal(statements.insert, 3, 'no statement of its own');
  assert.deepEqual(await m.load('d1'), { epoch: 'e', seq: 5, shown: 5 });
  m.shown('d1', { epoch: 'e', seq: 2 });
  await m.write('d1', { epoch: 'e', seq: 3 }); // late: neither moves back
  assert.deepEqual(await m.load('d1'), { epoch: 'e', seq: 5, shown: 5 });
  m.shown('d1', { epoch: 'e', seq: 5 });
  await m.write('d1', { epoch: 'f', seq: 1 });
  assert.deepEqual(await m.load('d1'), { epoch: 'f', seq: 1, shown: 0 });
});
