/**
 * What waits while the Panel is away. Status changes and crashes are queued and never lost
 * (at worst older status changes of a server give way to its newer ones); console lines are
 * queued too, within a budget (MAX_LOG_LINES lines, MAX_LOG_BYTES of text, for all servers):
 * past it the oldest lines give way and are counted, one `server_log_dropped` per server on
 * reconnect (it goes first, with the number of the last line it counts: LinkSeq). Operation
 * events are never evicted. Lines and operation ends sent on a link that then died unacked are
 * queued again at the front (`requeue`): the Panel skips the lines it had by their numbers, and
 * closes an operation once (an end it had changes nothing).
 */
import type { EventMessage, ResponseMessage } from '@cap/protocol';
import { lineCountOf } from './coalesce.ts';

type Outgoing = EventMessage | ResponseMessage;

/** Never evicted: an operation's steps and outcome must reach the Panel. */
const KEPT: ReadonlySet<string> = new Set(['operation_completed', 'operation_progress']);
const eventOf = (m: Outgoing): string => (m.type === 'event' ? m.event : 'response');

/** what console lines may wait for the Panel (every server together) */
export const MAX_LOG_LINES = 20_000;
export const MAX_LOG_BYTES = 4 * 1024 * 1024;

interface Held {
  msg: Outgoing;
  /** a console message: its lines and length */
  lines?: number;
  chars?: number;
  /** evicted (counted) */
  gone?: boolean;
}

const isLog = (m: Outgoing): m is EventMessage<'server_log'> =>
  m.type === 'event' && m.event === 'server_log';

export class Outbox {
  readonly #max: number;
  readonly #maxLines: number;
  readonly #maxChars: number;
  #queue: Held[] = [];
  /** the console messages of the queue, oldest first (from `#head`) */
  #logs: Held[] = [];
  #head = 0;
  #logLines = 0;
  #logChars = 0;
  #others = 0;
  #gone = 0;
  /** per server: lines counted, and the link numbering of the last (LinkSeq) */
  readonly #droppedLogs = new Map<string, { count: number; seq?: number; epoch?: string }>();

  constructor(max = 1000, logs: { lines?: number; bytes?: number } = {}) {
    this.#max = max;
    this.#maxLines = logs.lines ?? MAX_LOG_LINES;
    this.#maxChars = logs.bytes ?? MAX_LOG_BYTES;
  }

  get size(): number {
    return this.#queue.length - this.#gone;
  }

  /** Queues a message for delivery on reconnect. */
  hold(msg: Outgoing): void {
    if (isLog(msg)) {
      const h = this.#logEntry(msg);
      this.#queue.push(h);
      this.#logs.push(h);
      this.#fitLogs();
      return;
    }
    // live gauges are worthless once stale: the next sample after reconnect replaces them
    if (msg.type === 'event' && msg.event === 'resource_update') return;
    // players too: every server's latest is sent again once the link is up (PlayerPoller.resendAll)
    if (msg.type === 'event' && msg.event === 'players_update') return;
    this.#queue.push({ msg });
    this.#others++;
    if (this.#others > this.#max) this.#evictOne();
  }

  /**
   * Console messages and operation ends sent on a link that died without an ack (some may never
   * have arrived), queued again before everything held, in their order; the oldest lines give
   * way first when over the budget (ends never do).
   */
  requeue(sent: (EventMessage<'server_log'> | EventMessage<'operation_completed'>)[]): void {
    if (sent.length === 0) return;
    const entries: Held[] = sent.map((m) => {
      if (isLog(m)) return this.#logEntry(m);
      this.#others++;
      return { msg: m };
    });
    this.#queue = [...entries, ...this.#queue.filter((h) => !h.gone)];
    this.#logs = [
      ...entries.filter((h) => h.lines !== undefined),
      ...this.#logs.slice(this.#head).filter((h) => !h.gone),
    ];
    this.#head = 0;
    this.#gone = 0;
    this.#fitLogs();
  }

  #logEntry(msg: EventMessage<'server_log'>): Held {
    const h = { msg, lines: lineCountOf(msg.data.message), chars: msg.data.message.length };
    this.#logLines += h.lines;
    this.#logChars += h.chars;
    return h;
  }

  #fitLogs(): void {
    while (
      (this.#logLines > this.#maxLines || this.#logChars > this.#maxChars) &&
      this.#head < this.#logs.length
    ) {
      const h = this.#logs[this.#head++] as Held;
      h.gone = true;
      this.#gone++;
      this.#logLines -= h.lines ?? 0;
      this.#logChars -= h.chars ?? 0;
      const { serverId, seq, epoch } = (h.msg as EventMessage<'server_log'>).data;
      const count = (this.#droppedLogs.get(serverId)?.count ?? 0) + (h.lines ?? 0);
      this.#droppedLogs.set(serverId, {
        count,
        ...(seq === undefined ? {} : { seq }),
        ...(epoch === undefined ? {} : { epoch }),
      });
    }
    // evicted entries are compacted away once they are half the queue (amortised)
    if (this.#gone > 64 && this.#gone * 2 > this.#queue.length) {
      this.#queue = this.#queue.filter((h) => !h.gone);
      this.#logs = this.#logs.slice(this.#head);
      this.#head = 0;
      this.#gone = 0;
    }
  }

  #evictOne(): void {
    const q = this.#queue;
    const isStatus = (m: Outgoing) => m.type === 'event' && m.event === 'server_status_changed';
    const other = (h: Held) => !h.gone && h.lines === undefined;
    const notStatus = q.findIndex((h) => other(h) && !isStatus(h.msg) && !KEPT.has(eventOf(h.msg)));
    if (notStatus >= 0) {
      q.splice(notStatus, 1);
      this.#others--;
      return;
    }
    // only status changes and operation ends left: drop the oldest status change that a newer
    // change of the same server supersedes (an operation's events are never dropped)
    for (let i = 0; i < q.length; i++) {
      const h = q[i] as Held;
      if (!other(h) || !isStatus(h.msg)) continue;
      const m = h.msg as EventMessage<'server_status_changed'>;
      const later = q
        .slice(i + 1)
        .some(
          (n) =>
            other(n) &&
            isStatus(n.msg) &&
            (n.msg as EventMessage<'server_status_changed'>).data.serverId === m.data.serverId,
        );
      if (later) {
        q.splice(i, 1);
        this.#others--;
        return;
      }
    }
    // one latest status per server and more servers than room: keep them all
  }

  /**
   * One dropped-lines notice per server (with the numbering of the last line it counts, so the
   * Panel's count goes on from there), then everything held, in order; empties the box.
   */
  drain(
    makeDropped: (serverId: string, count: number, seq: { seq?: number; epoch?: string }) => EventMessage,
  ): Outgoing[] {
    const out: Outgoing[] = [];
    for (const [serverId, { count, ...seq }] of this.#droppedLogs)
      out.push(makeDropped(serverId, count, seq));
    for (const h of this.#queue) if (!h.gone) out.push(h.msg);
    this.#queue = [];
    this.#logs = [];
    this.#head = 0;
    this.#logLines = 0;
    this.#logChars = 0;
    this.#others = 0;
    this.#gone = 0;
    this.#droppedLogs.clear();
    return out;
  }
}
