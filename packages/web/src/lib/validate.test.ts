import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EnvName, Limits, PortKey } from '@cap/protocol';
import {
  envRowsToRecord,
  limitsToBody,
  limitsToInput,
  portRowsToRecord,
  recordToEnvRows,
  validateEnvRows,
  validateLimits,
  validatePortRows,
  validateServerName,
} from './validate.ts';

test('environment rows: bad names, duplicates and blank rows', () => {
  const errors = validateEnvRows([
    { key: 'WORLD_NAME', value: 'x' },
    { key: '1BAD', value: 'x' },
    { key: 'WORLD_NAME', value: 'y' },
    { key: '', value: '' },
    { key: '', value: 'orphan value' },
    { key: 'has space', value: '' },
  ]);
  assert.deepEqual([...errors.keys()].sort(), [1, 2, 4, 5]);
  assert.equal(errors.has(0), false);
  assert.equal(errors.has(3), false, 'a fully blank row is ignored');
});

test('environment rows agree with the protocol schema', () => {
  for (const name of ['A', '_x', 'MODIFIER_PRESET', '9lives', 'a-b', 'ä', '']) {
    const ui = validateEnvRows([{ key: name, value: 'v' }]).size === 0;
    assert.equal(ui, EnvName.safeParse(name).success, name);
  }
});

test('environment record round trip trims names and drops blank rows', () => {
  const rec = envRowsToRecord([
    { key: ' A ', value: '1' },
    { key: '', value: '' },
  ]);
  assert.deepEqual(rec, { A: '1' });
  assert.deepEqual(recordToEnvRows(rec), [{ key: 'A', value: '1' }]);
  assert.deepEqual(recordToEnvRows(null), []);
});

test('ports: key shape, host range and duplicates; accepted keys pass the protocol schema', () => {
  const rows = [
    { container: '25565/tcp', host: '25565' },
    { container: '27960/udp', host: '0' },
    { container: 'abc', host: '1' },
    { container: '25565/tcp', host: '25566' },
    { container: '', host: '' },
  ];
  const errors = validatePortRows(rows);
  assert.deepEqual([...errors.keys()].sort(), [1, 2, 3]);
  const rec = portRowsToRecord([rows[0]!]);
  assert.deepEqual(rec, { '25565/tcp': 25565 });
  for (const k of Object.keys(rec)) assert.ok(PortKey.safeParse(k).success);
});

test('limits: sizes and cpu, empty means unlimited, and the body passes the protocol schema', () => {
  assert.deepEqual(validateLimits({ memory: '2g', cpu: '1.5', disk: '' }), {});
  const bad = validateLimits({ memory: 'lots', cpu: 'two', disk: '5 parsecs' });
  assert.deepEqual(Object.keys(bad).sort(), ['cpu', 'disk', 'memory']);
  const body = limitsToBody({ memory: ' 512m ', cpu: '', disk: '5g' });
  assert.deepEqual(body, { memory: '512m', disk: '5g' });
  assert.ok(Limits.safeParse(body).success);
  assert.deepEqual(limitsToInput({ memory: '512m', cpu: 0 }), { memory: '512m', cpu: '', disk: '' });
});

test('server name', () => {
  assert.equal(typeof validateServerName(''), 'string');
  assert.equal(typeof validateServerName('x'.repeat(192)), 'string');
  assert.equal(validateServerName('survival'), null);
});
