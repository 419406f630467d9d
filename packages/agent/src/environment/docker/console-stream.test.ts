import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { ConsoleStream, dockerTimestamp, rfc3339Ns } from './docker.ts';

const T = (n: number) => `2026-12-02T04:00:0${n}.00000000${n}Z`;
const ns = (n: number) => rfc3339Ns(T(n)) as bigint;

async function read(since: string, chunks: (string | Buffer)[]): Promise<{ text: string; cursor: string }> {
  const s = new ConsoleStream(new PassThrough(), since);
  let text = '';
  s.on('data', (c: Buffer) => {
    text += c.toString();
  });
  for (const c of chunks) s.feed(c);
  s.flushPartial();
  await new Promise((r) => setImmediate(r)); // 'data' comes on a later tick
  const cursor = s.consoleTs;
  s.destroy();
  return { text, cursor };
}

test('log entries: timestamps taken out, lines at or before the cursor skipped, the cursor moves', async () => {
  const log = `${T(1)} one\r\n${T(2)} two\r\n${T(3)} three\r\n`;
  assert.deepEqual(await read(dockerTimestamp(0n), [log]), {
    text: 'one\r\ntwo\r\nthree\r\n',
    cursor: dockerTimestamp(ns(3)),
  });
  // opened again from the second line's timestamp: only what came after it
  assert.deepEqual(await read(dockerTimestamp(ns(2)), [log]), {
    text: 'three\r\n',
    cursor: dockerTimestamp(ns(3)),
  });
  // byte by byte: the same
  const bytes = [...Buffer.from(log)].map((b) => Buffer.from([b]));
  assert.equal((await read(dockerTimestamp(ns(1)), bytes)).text, 'two\r\nthree\r\n');
  // nothing newer: nothing, the cursor stays
  assert.deepEqual(await read(dockerTimestamp(ns(3)), [log]), { text: '', cursor: dockerTimestamp(ns(3)) });
});

test('a long line comes in parts, each with its timestamp: given as one line, byte for byte', async () => {
  const a = 'a'.repeat(16384);
  const log = `${T(1)} ${a}${T(2)} ${a}${T(3)} tail\n${T(4)} next\n`;
  const { text } = await read(dockerTimestamp(0n), [
    log.slice(0, 10_000),
    log.slice(10_000, 16_400),
    log.slice(16_400),
  ]);
  assert.equal(text, `${a}${a}tail\nnext\n`);
  // a timestamp near a line's start is the game's text
  const own = `${T(1)} at ${T(9)} the game said so\n`;
  assert.equal((await read(dockerTimestamp(0n), [own])).text, `at ${T(9)} the game said so\n`);
});

test('multi-byte characters cut between chunks, an unfinished line at the end', async () => {
  const log = Buffer.from(`${T(1)} grüße ✓\n${T(2)} no end`);
  const at = log.indexOf(Buffer.from('ü')) + 1; // inside the ü
  assert.equal(
    (await read(dockerTimestamp(0n), [log.subarray(0, at), log.subarray(at)])).text,
    'grüße ✓\nno end',
  );
});
