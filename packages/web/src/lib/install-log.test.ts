import assert from 'node:assert/strict';
import test from 'node:test';
import { EMPTY_INSTALL_LOG, withInstallOutput, withInstallResult } from './install-log.ts';

test('output that arrives after the install ended keeps its result (the badge says installed)', () => {
  let s = withInstallOutput(EMPTY_INSTALL_LOG, ['step 1']);
  s = withInstallResult(s, true, 0);
  s = withInstallOutput(s, ['\u001b[32mOpenTTD install complete\u001b[0m']);
  assert.deepEqual(s.result, { success: true, exitCode: 0 });
  assert.deepEqual(s.lines, ['step 1', 'OpenTTD install complete']);
});

test('the log keeps only its tail', () => {
  const s = withInstallOutput(
    EMPTY_INSTALL_LOG,
    Array.from({ length: 2500 }, (_, i) => `l${i}`),
  );
  assert.equal(s.lines.length, 2000);
  assert.equal(s.lines[0], 'l500');
});
