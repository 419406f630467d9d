/**
 * Console lines of one server printed in the same turn of the event loop go up as one
 * `server_log` (its `message` holds them separated by newlines, which the Panel splits): a flood
 * costs one link message per tick instead of one per line. Any other event first sends the lines
 * before it, so the order on the link stays the order things happened in.
 */
import type { EventData, EventName } from '@cap/protocol';

type Emit = <E extends EventName>(name: E, data: EventData<E>) => void;

/** one message stays far below the link's frame limit */
export const MAX_BATCH_CHARS = 256 * 1024;
export const MAX_BATCH_LINES = 2000;

interface Batch {
  lines: string[];
  chars: number;
  stream: EventData<'server_log'>['stream'];
}

export function lineCountOf(message: string): number {
  let n = 1;
  for (let i = message.indexOf('\n'); i >= 0; i = message.indexOf('\n', i + 1)) n++;
  return n;
}

export class ConsoleCoalescer {
  readonly #send: Emit;
  readonly #pending = new Map<string, Batch>();
  #scheduled: NodeJS.Immediate | undefined;

  constructor(send: Emit) {
    this.#send = send;
  }

  readonly emit: Emit = (name, data) => {
    if (name !== 'server_log') {
      this.flush();
      this.#send(name, data);
      return;
    }
    const d = data as EventData<'server_log'>;
    let b = this.#pending.get(d.serverId);
    if (b && b.stream !== d.stream) {
      this.#flushOne(d.serverId, b);
      b = undefined;
    }
    if (!b) {
      b = { lines: [], chars: 0, stream: d.stream };
      this.#pending.set(d.serverId, b);
    }
    b.lines.push(d.message);
    b.chars += d.message.length + 1;
    if (b.lines.length >= MAX_BATCH_LINES || b.chars >= MAX_BATCH_CHARS) this.#flushOne(d.serverId, b);
    else this.#scheduled ??= setImmediate(() => this.flush());
  };

  #flushOne(serverId: string, b: Batch): void {
    this.#pending.delete(serverId);
    if (b.lines.length === 0) return;
    this.#send('server_log', {
      serverId,
      message: b.lines.join('\n'),
      ...(b.stream ? { stream: b.stream } : {}),
    });
  }

  flush(): void {
    if (this.#scheduled) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    for (const [id, b] of [...this.#pending]) this.#flushOne(id, b);
  }
}
