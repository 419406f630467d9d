/**
 * Node-only (the Panel and the Agent; not part of the wire contract, not in the index): the
 * chunks of large streamed bodies reclaimed as they go.
 *
 * Every socket read is a new Buffer; once written on it is garbage that V8 collects only when the
 * memory outside its heap grew by 64 MiB since the last full collection, and marking takes a
 * while at loopback speed: +64–80 MiB of RSS during a 2 GiB transfer, however large the file
 * (bench/file-transfer.ts: arrayBuffers, not the heap). The chunks die young, so a minor
 * collection (a scavenge, about a millisecond) every RECLAIM_MS while a body streams frees them.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

export const RECLAIM_MS = 50;

let minorGc: (() => void) | null | undefined;

/** V8's gc() (a context of its own gets it; the flag is off again at once), or null when absent. */
function reclaimer(): (() => void) | null {
  if (minorGc !== undefined) return minorGc;
  minorGc = null;
  try {
    const exposed = (globalThis as { gc?: unknown }).gc;
    let gc: unknown = typeof exposed === 'function' ? exposed : undefined;
    if (!gc) {
      v8.setFlagsFromString('--expose-gc');
      try {
        gc = vm.runInNewContext('gc');
      } finally {
        v8.setFlagsFromString('--no-expose-gc');
      }
    }
    if (typeof gc === 'function') {
      const f = gc as (o: { type: 'minor'; execution: 'sync' }) => void;
      minorGc = () => f({ type: 'minor', execution: 'sync' });
    }
  } catch {
    // no gc(): the chunks wait for V8's own collection
  }
  return minorGc;
}

let streaming = 0;
let timer: NodeJS.Timeout | null = null;

/** While `body` streams (until it emits 'close'), young garbage is collected every RECLAIM_MS. */
export function reclaimWhileStreaming(body: { once(event: 'close', f: () => void): unknown }): void {
  const gc = reclaimer();
  if (!gc) return;
  streaming++;
  if (!timer) {
    timer = setInterval(gc, RECLAIM_MS);
    timer.unref();
  }
  body.once('close', () => {
    if (--streaming > 0 || !timer) return;
    clearInterval(timer);
    timer = null;
  });
}
