import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatAgo, formatBytes, formatPercent, formatUptime } from './format.ts';

test('formatBytes picks binary units and keeps small numbers readable', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(512 * 1024 ** 2), '512 MiB');
  assert.equal(formatBytes(2.25 * 1024 ** 3), '2.3 GiB');
  assert.equal(formatBytes(null), '—');
  assert.equal(formatBytes(Number.NaN), '—');
});

test('formatUptime reads like a clock, and 0 means not running', () => {
  assert.equal(formatUptime(0), '—');
  assert.equal(formatUptime(42), '42s');
  assert.equal(formatUptime(125), '2m 5s');
  assert.equal(formatUptime(3 * 3600 + 60), '3h 1m');
  assert.equal(formatUptime(2 * 86400 + 3600 + 120), '2d 1h 2m');
});

test('formatPercent and formatAgo', () => {
  assert.equal(formatPercent(12.345), '12.3 %');
  assert.equal(formatPercent(undefined), '—');
  const now = Date.parse('2026-01-01T00:10:00Z');
  assert.equal(formatAgo('2026-01-01T00:09:30Z', now), '30s ago');
  assert.equal(formatAgo('2026-01-01T00:00:00Z', now), '10m ago');
  assert.equal(formatAgo(null, now), 'never');
  assert.equal(formatAgo('garbage', now), 'never');
});
