import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ResourceSnapshot } from '@cap/protocol';
import { appendStats, MAX_POINTS, seriesFromBuckets, stripAnsi } from './series.ts';

const snap = (rx: number, tx: number, cpu = 5): ResourceSnapshot => ({
  serverId: 's1',
  cpu,
  memory: { used: '10m', percentage: 1, usedBytes: 10 * 1024 ** 2, limitBytes: 0 },
  network: { rx, tx },
  disk: { used: '1m', percentage: 0, usedBytes: 1024 ** 2, limitBytes: 0 },
  uptime: 10,
});

test('network rates come from counter differences and never go negative after a restart', () => {
  let s = appendStats([], snap(1000, 500), 1_000);
  assert.equal(s[0]!.rxRate, null);
  s = appendStats(s, snap(3000, 1500), 3_000);
  assert.equal(s[1]!.rxRate, 1000);
  assert.equal(s[1]!.txRate, 500);
  s = appendStats(s, snap(10, 10), 4_000); // counters reset
  assert.equal(s[2]!.rxRate, 0);
  assert.equal(appendStats(s, snap(1, 1), 4_000).length, 3, 'an out-of-order sample is ignored');
});

test('series are capped and buckets are sorted by time', () => {
  let s = appendStats([], snap(0, 0), 1);
  for (let i = 2; i < MAX_POINTS + 50; i++) s = appendStats(s, snap(i, i), i * 1000);
  assert.equal(s.length, MAX_POINTS);
  const b = seriesFromBuckets([
    { t: '2026-01-01T00:00:10Z', cpu: 2, memoryBytes: 1, rxBytes: 200, txBytes: 0, diskBytes: 1 },
    { t: '2026-01-01T00:00:00Z', cpu: 1, memoryBytes: 1, rxBytes: 100, txBytes: 0, diskBytes: 1 },
    { t: 'not a time', cpu: 9, memoryBytes: 1, rxBytes: 0, txBytes: 0, diskBytes: 1 },
  ]);
  assert.deepEqual(
    b.map((p) => p.cpu),
    [1, 2],
  );
  assert.equal(b[1]!.rxRate, 10);
});

test('stripAnsi removes colour, cursor and title sequences but keeps the text', () => {
  const e = String.fromCharCode(27);
  assert.equal(stripAnsi(`${e}[31mred${e}[0m plain`), 'red plain');
  assert.equal(stripAnsi(`${e}]0;title${String.fromCharCode(7)}after`), 'after');
  assert.equal(stripAnsi(`${e}[2J${e}[Hclear`), 'clear');
  assert.equal(stripAnsi('<b>not html</b>'), '<b>not html</b>');
});
