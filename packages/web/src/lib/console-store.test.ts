import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CONSOLE_MAX_LINES, CommandHistory, type ConsoleEvent, ConsoleStore } from './console-store.ts';

test('console store: reset replaces, append adds, both notify, and the buffer is capped', () => {
  const s = new ConsoleStore();
  const seen: ConsoleEvent[] = [];
  const off = s.subscribe((e) => seen.push(e));
  s.reset(['a', 'b']);
  s.append(['c']);
  s.append([]);
  assert.deepEqual(s.lines, ['a', 'b', 'c']);
  assert.deepEqual(
    seen.map((e) => e.kind),
    ['reset', 'append'],
  );
  off();
  s.append(Array.from({ length: CONSOLE_MAX_LINES + 10 }, (_, i) => `l${i}`));
  assert.equal(s.lines.length, CONSOLE_MAX_LINES);
  assert.equal(s.lines.at(-1), `l${CONSOLE_MAX_LINES + 9}`);
  assert.equal(seen.length, 2, 'no events after unsubscribe');
});

test('console store: numbered lines flagged resent are dropped when shown already (by number), new ones shown; unflagged always shown', () => {
  const s = new ConsoleStore();
  s.append(['l1', 'l2', 'l3'], { epoch: 'e', seq: 3 });
  // sent again after a Panel restart: 2 and 3 were shown, 4 is new
  s.append(['l2', 'l3', 'l4'], { epoch: 'e', seq: 4, resent: true });
  assert.deepEqual(s.lines, ['l1', 'l2', 'l3', 'l4']);
  assert.equal(s.resentDropped, 2);
  // all shown already: nothing appended
  s.append(['l4'], { epoch: 'e', seq: 4, resent: true });
  assert.deepEqual(s.lines, ['l1', 'l2', 'l3', 'l4']);
  // not flagged: a real duplicate shows (the store hides only what the Panel says may repeat)
  s.append(['l4'], { epoch: 'e', seq: 4 });
  assert.equal(s.lines.length, 5);
  // another epoch (the Agent started again): new
  s.append(['m1'], { epoch: 'f', seq: 1, resent: true });
  assert.equal(s.lines.at(-1), 'm1');
  // hostile numbers are ignored (shown, not deduped)
  s.append(['x'], { epoch: 'f', seq: Number.NaN, resent: true });
  assert.equal(s.lines.at(-1), 'x');
});

test('console store: a history with its number counts as shown; a reset does not forget what was shown', () => {
  const s = new ConsoleStore();
  s.append(['l1', 'l2'], { epoch: 'e', seq: 2 });
  s.reset(['l5', 'l6'], { epoch: 'e', seq: 6 });
  s.append(['l6', 'l7'], { epoch: 'e', seq: 7, resent: true });
  assert.deepEqual(s.lines, ['l5', 'l6', 'l7']);
  // an empty history (a Panel started anew) keeps the number: what was shown is not shown again
  s.reset([]);
  s.append(['l7', 'l8'], { epoch: 'e', seq: 8, resent: true });
  assert.deepEqual(s.lines, ['l8']);
});

test('command history walks like a shell', () => {
  const h = new CommandHistory(3);
  assert.equal(h.up(), undefined);
  h.push('one');
  h.push('two');
  h.push('two');
  h.push('three');
  assert.equal(h.up(), 'three');
  assert.equal(h.up(), 'two');
  assert.equal(h.up(), 'one');
  assert.equal(h.up(), 'one', 'stays at the oldest');
  assert.equal(h.down(), 'two');
  assert.equal(h.down(), 'three');
  assert.equal(h.down(), '', 'past the newest is an empty line');
  h.push('four');
  assert.equal(h.up(), 'four');
  assert.equal(h.up(), 'three');
  assert.equal(h.up(), 'two', 'the oldest was evicted at the cap');
  assert.equal(h.up(), 'two');
});
