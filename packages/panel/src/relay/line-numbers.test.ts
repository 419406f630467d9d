import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LineNumbers } from './line-numbers.ts';

test('numbered lines: in order pass, a jump is counted, a number passed is skipped', () => {
  const n = new LineNumbers();
  assert.deepEqual(n.take('s', 'e1', 3, 3), { skip: 0, gap: 0 }); // lines 1-3, the first seen
  assert.deepEqual(n.take('s', 'e1', 5, 2), { skip: 0, gap: 0 }); // 4-5
  assert.deepEqual(n.take('s', 'e1', 9, 1), { skip: 0, gap: 3 }); // 9: 6-8 never came
  assert.deepEqual(n.take('s', 'e1', 9, 1), { skip: 1, gap: 0 }); // 9 again
  assert.deepEqual(n.take('s', 'e1', 12, 4), { skip: 1, gap: 0 }); // 9-12: 9 had already
  assert.deepEqual(n.take('s', 'e1', 12, 0), { skip: 0, gap: 0 }); // nothing
  // another server counts on its own
  assert.deepEqual(n.take('t', 'e1', 100, 1), { skip: 0, gap: 0 });
  assert.deepEqual(n.take('t', 'e1', 102, 1), { skip: 0, gap: 1 });
  // a new epoch (the Agent started again) counts afresh
  assert.deepEqual(n.take('s', 'e2', 1, 1), { skip: 0, gap: 0 });
  assert.deepEqual(n.take('s', 'e2', 3, 1), { skip: 0, gap: 1 });
  // forgotten (deleted): the next is a first one
  n.forget('s');
  assert.deepEqual(n.take('s', 'e2', 10, 1), { skip: 0, gap: 0 });
});

test('lines without a number or with a bad one pass as they are and change nothing', () => {
  const n = new LineNumbers();
  assert.deepEqual(n.take('s', 'e', 5, 1), { skip: 0, gap: 0 });
  for (const [epoch, seq, count] of [
    [undefined, 9, 1],
    ['e', undefined, 1],
    ['e', 1.5, 1],
    ['e', -1, 1],
    ['e', Number.NaN, 1],
    ['e', 2 ** 60, 1],
    ['e', 3, 4], // more lines than numbers
    ['x'.repeat(65), 9, 1],
    [7, 9, 1],
  ] as const)
    assert.deepEqual(n.take('s', epoch, seq, count), { skip: 0, gap: 0 }, String([epoch, seq, count]));
  assert.deepEqual(n.take('s', 'e', 6, 1), { skip: 0, gap: 0 }, 'the count went on from 5');
});
