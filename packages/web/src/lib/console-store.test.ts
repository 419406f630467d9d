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
