/**
 * The live store's console frames carry the numbering of their lines (issue 15): the last line's
 * epoch/seq, and `resent` when some were sent again after a lost link, so a browser can drop what
 * it showed already. One frame holds one run of numbers.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClientMessage } from '@cap/protocol';
import { LiveState } from './live-state.ts';

const turn = () => new Promise((r) => setImmediate(r));

test('numbered lines of one turn go in one frame with the last number; resent flags it; a jump, an epoch or unnumbered lines start a new frame', async () => {
  const live = new LiveState();
  const frames: ClientMessage[] = [];
  live.subscribe('s', (m) => frames.push(m));
  live.appendConsole('s', ['a', 'b'], { epoch: 'e', seq: 2 });
  live.appendConsole('s', ['c'], { epoch: 'e', seq: 3, resent: true });
  await turn();
  assert.deepEqual(frames, [
    { type: 'console', serverId: 's', lines: ['a', 'b', 'c'], epoch: 'e', seq: 3, resent: true },
  ]);
  frames.length = 0;
  live.appendConsole('s', ['d'], { epoch: 'e', seq: 4 });
  live.appendConsole('s', ['z'], { epoch: 'e', seq: 9 }); // a jump
  live.appendConsole('s', ['n'], { epoch: 'f', seq: 1 });
  live.appendConsole('s', ['old']);
  await turn();
  assert.deepEqual(frames, [
    { type: 'console', serverId: 's', lines: ['d'], epoch: 'e', seq: 4 },
    { type: 'console', serverId: 's', lines: ['z'], epoch: 'e', seq: 9 },
    { type: 'console', serverId: 's', lines: ['n'], epoch: 'f', seq: 1 },
    { type: 'console', serverId: 's', lines: ['old'] },
  ]);
  assert.equal(live.historyMark('s'), undefined, 'the ring ends in an unnumbered line');
  live.appendConsole('s', ['p'], { epoch: 'f', seq: 2 });
  assert.deepEqual(live.historyMark('s'), { epoch: 'f', seq: 2 });
  live.close();
});

test('the live relay passes the numbering on: resent only while some flagged lines are left after what this replica had', async () => {
  const { InProcessBus } = await import('../bus/index.ts');
  const { attachLiveRelay } = await import('./live-relay.ts');
  const bus = new InProcessBus({ error: () => undefined, warn: () => undefined } as never);
  const live = new LiveState();
  const off = attachLiveRelay(bus, live);
  const frames: ClientMessage[] = [];
  live.subscribe('s', (m) => frames.push(m));
  const send = (lines: string[], seq: number, resent?: number) =>
    bus.publish({
      kind: 'server.console',
      serverId: 's',
      lines,
      epoch: 'e',
      seq,
      ...(resent ? { resent } : {}),
    });
  send(['a', 'b'], 2);
  await turn();
  // b flagged as sent again, and had here: skipped; c is new (not flagged)
  send(['b', 'c'], 3, 1);
  await turn();
  // c and d flagged: c had here (skipped), d not: passed on flagged, with e
  send(['c', 'd', 'e'], 5, 2);
  await turn();
  assert.deepEqual(frames, [
    { type: 'console', serverId: 's', lines: ['a', 'b'], epoch: 'e', seq: 2 },
    { type: 'console', serverId: 's', lines: ['c'], epoch: 'e', seq: 3 },
    { type: 'console', serverId: 's', lines: ['d', 'e'], epoch: 'e', seq: 5, resent: true },
  ]);
  off();
  live.close();
});
