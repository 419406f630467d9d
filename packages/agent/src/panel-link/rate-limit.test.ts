import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TokenBucket } from './rate-limit.ts';

test('TokenBucket: a burst, then the rate; refills with time, never above the burst', () => {
  let now = 0;
  const b = new TokenBucket(10, 5, () => now);
  const burst = Array.from({ length: 8 }, () => b.take());
  assert.deepEqual(burst, [true, true, true, true, true, false, false, false]);
  now += 100; // 0.1 s at 10/s = one token
  assert.equal(b.take(), true);
  assert.equal(b.take(), false);
  now += 60_000; // a long pause saves up only the burst
  assert.equal(Array.from({ length: 7 }, () => b.take()).filter(Boolean).length, 5);
});
