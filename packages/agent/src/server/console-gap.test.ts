/**
 * The console's gap: what the game printed while no console of this Agent read it, read back
 * from the container's log when the console is attached again (an Agent started after a kill -9,
 * an Engine restart): from the persisted mark to the attach's first bytes, each line once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Duplex } from 'node:stream';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { CONSOLE_LOG_MAX_BYTES, parseConsoleLog } from '../environment/docker/docker.ts';
import type { ConsoleLog } from '../environment/environment.ts';
import { ServerConsole } from './console.ts';
import type { Server } from './server.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'cap-gap-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** a Server as far as its console uses it; `published` is what reached the Panel's path */
function fakeServer(id: string, log: (sinceMs: number) => ConsoleLog | null) {
  const published: { type: string; payload: Record<string, unknown> }[] = [];
  const reads: number[] = [];
  const server = {
    id,
    deleted: false,
    log: pino({ level: 'silent' }),
    events: {
      publish: (type: string, payload: Record<string, unknown>) => published.push({ type, payload }),
    },
    onConsoleLine: () => undefined,
    deps: {
      serversDir: dir,
      config: { logThrottleLines: 100_000, logThrottleIntervalMs: 1000 },
      env: {
        consoleLog: async (_id: string, sinceMs: number) => {
          reads.push(sinceMs);
          return log(sinceMs);
        },
      },
    },
  };
  const console = new ServerConsole(server as unknown as Server);
  const lines = () => published.filter((p) => p.type === 'console').map((p) => p.payload.message);
  return { console, published, lines, reads };
}

function stream(): Duplex {
  return new Duplex({ read() {}, write: (_c, _e, cb) => cb() });
}

const ns = (ms: number) => BigInt(ms) * 1_000_000n;
const until = async (ok: () => boolean) => {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
};

describe('console gap (read back from the container log)', () => {
  it('parses timestamped entries: the timestamp taken out, continuations joined, past the cap counted', () => {
    const log = parseConsoleLog(
      Buffer.from('2026-12-02T05:00:01.000000005Z one\r\n2026-12-02T05:00:02.5Z two\r\nno timestamp\n'),
    );
    assert.deepEqual(
      log.entries.map((e) => [e.ns, e.text]),
      [
        [ns(Date.parse('2026-12-02T05:00:01Z')) + 5n, 'one\r\n'],
        [ns(Date.parse('2026-12-02T05:00:02.5Z')), 'two\r\nno timestamp\n'],
      ],
    );
    assert.equal(log.over, 0);
    const big = Buffer.concat([Buffer.alloc(CONSOLE_LOG_MAX_BYTES, 0x61), Buffer.from('\nx\ny\n')]);
    assert.equal(parseConsoleLog(big).over, 3);
  });

  it('an Agent started again: the lines after the mark and before the attach, once, in order', async () => {
    const t = Date.now();
    // the Agent before the kill: handed on two lines (the mark is written before they are)
    const before = fakeServer('s-gap-1', () => null);
    const s1 = stream();
    before.console.attach(s1);
    s1.push('l1\r\nl2\r\n');
    await until(() => before.lines().length === 2);
    const mark = JSON.parse(readFileSync(path.join(dir, 's-gap-1.console'), 'utf8').trim());
    assert.equal(mark.tail, 'l1\r\nl2\r\n');
    s1.destroy();

    // the new Agent: the log has the handed lines, the gap, and the attach's first line
    const requestedAt = Date.now();
    const entries = [
      { ns: ns(t - 10), text: 'l1\r\n' },
      { ns: ns(mark.at + 5), text: 'l2\r\n' }, // stamped after the mark: found by its text
      { ns: ns(mark.at + 20), text: 'g1\r\n' },
      { ns: ns(mark.at + 30), text: 'g2\r\n' },
      { ns: ns(requestedAt + 1), text: 'a1\r\n' },
    ];
    const after = fakeServer('s-gap-1', () => ({ entries, over: 0 }));
    const s2 = stream();
    after.console.attach(s2, { containerId: 'c1', requestedAt });
    s2.push('a1\r\na2\r\n');
    await until(() => after.lines().length >= 4);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(after.lines(), ['g1', 'g2', 'a1', 'a2']);
    assert.ok((after.reads[0] as number) <= mark.at, 'read from before the mark');
    s2.destroy();
  });

  it('a line printed again: the mark is found nearest its time; an entry from before the attach is never cut', async () => {
    const w = fakeServer('s-gap-2', () => null);
    const s1 = stream();
    w.console.attach(s1);
    s1.push('same\r\n');
    await until(() => w.lines().length === 1);
    s1.destroy();
    const mark = JSON.parse(readFileSync(path.join(dir, 's-gap-2.console'), 'utf8').trim());
    const requestedAt = mark.at + 1000;
    const entries = [
      { ns: ns(mark.at - 1500), text: 'same\r\n' },
      { ns: ns(mark.at - 1000), text: 'x\r\n' },
      { ns: ns(mark.at), text: 'same\r\n' },
      { ns: ns(mark.at + 100), text: 'y\r\n' },
      // printed before the attach was asked for: the attach's identical first line is another one
      { ns: ns(mark.at + 200), text: 'same\r\n' },
    ];
    const again = fakeServer('s-gap-2', () => ({ entries, over: 2 }));
    const s2 = stream();
    again.console.attach(s2, { containerId: 'c2', requestedAt });
    s2.push('same\r\n');
    await until(() => again.lines().length >= 3);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(again.lines(), ['y', 'same', 'same']);
    assert.deepEqual(
      again.published.filter((p) => p.type === 'console_dropped').map((p) => p.payload.count),
      [2],
      'the entries past the read cap are counted',
    );
    s2.destroy();
  });

  it('no mark (a server never read): nothing read back, the attach as it is', async () => {
    const w = fakeServer('s-gap-3', () => ({ entries: [{ ns: 1n, text: 'old\r\n' }], over: 0 }));
    const s = stream();
    w.console.attach(s, { containerId: 'c3', requestedAt: Date.now() });
    s.push('live\r\n');
    await until(() => w.lines().length >= 1);
    assert.deepEqual(w.lines(), ['live']);
    assert.deepEqual(w.reads, []);
    s.destroy();
  });

  it("a daemon line comes after the game's output read before it in the same turn", async () => {
    const w = fakeServer('s-order-1', () => null);
    const s = stream();
    w.console.attach(s);
    s.push('game said this\r\n');
    // the read reaches the console on a tick; its hand-on waits for the turn's end (setImmediate)
    await new Promise((r) => process.nextTick(r));
    w.console.daemon('Server marked as offline');
    await until(() => w.lines().length >= 2);
    assert.deepEqual(w.lines(), ['game said this', 'Server marked as offline']);
    s.destroy();
  });
});
