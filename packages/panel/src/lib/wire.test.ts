import assert from 'node:assert/strict';
import { test } from 'node:test';
import { own, wireObject } from './wire.ts';

const bytes = (s: string) => new TextEncoder().encode(s);

test('wireObject takes only a plain JSON object within the size, in strict UTF-8', () => {
  assert.deepEqual(wireObject(bytes('{"a":1}'), 100), { a: 1 });
  assert.equal(wireObject(bytes('{"a":1}'), 6), null, 'over the size: not decoded');
  for (const bad of ['[1]', 'null', '"x"', '1', '{', ''])
    assert.equal(wireObject(bytes(bad), 100), null, bad);
  assert.equal(wireObject(new Uint8Array([0x7b, 0xff, 0x7d]), 100), null, 'not UTF-8');
});

test('own reads own properties only (a message naming the prototype gets nothing)', () => {
  const o = wireObject(bytes('{"kind":"x","__proto__":{"polluted":1}}'), 100);
  assert.ok(o);
  assert.equal(own(o, 'kind'), 'x');
  assert.equal(own(o, 'constructor'), undefined);
  assert.equal(own(o, 'toString'), undefined);
  assert.equal(own(o, 'polluted'), undefined);
});
