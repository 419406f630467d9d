/**
 * What waits while the Panel is away. Status changes and crashes are queued and never lost
 * (at worst older status changes of a server give way to its newer ones); console lines are
 * not queued, only counted, and reported as one `server_log_dropped` per server on reconnect.
 * Operation events are never evicted.
 */
import type { EventMessage, ResponseMessage } from '@cap/protocol';
import { lineCountOf } from './coalesce.ts';

type Outgoing = EventMessage | ResponseMessage;

/** Never evicted: an operation's steps and outcome must reach the Panel. */
const KEPT: ReadonlySet<string> = new Set(['operation_completed', 'operation_progress']);
const eventOf = (m: Outgoing): string => (m.type === 'event' ? m.event : 'response');

export class Outbox {
  readonly #max: number;
  #queue: Outgoing[] = [];
  /** per server: lines counted, and the link numbering of the last (LinkSeq) */
  readonly #droppedLogs = new Map<string, { count: number; seq?: number; epoch?: string }>();

  constructor(max = 1000) {
    this.#max = max;
  }

  get size(): number {
    return this.#queue.length;
  }

  /** Queues a message for delivery on reconnect (or just counts it, for log lines). */
  hold(msg: Outgoing): void {
    if (msg.type === 'event' && msg.event === 'server_log') {
      const { serverId: id, message, seq, epoch } = (msg as EventMessage<'server_log'>).data;
      // one message may carry several lines (ConsoleCoalescer)
      const count = (this.#droppedLogs.get(id)?.count ?? 0) + lineCountOf(message);
      this.#droppedLogs.set(id, {
        count,
        ...(seq === undefined ? {} : { seq }),
        ...(epoch === undefined ? {} : { epoch }),
      });
      return;
    }
    // live gauges are worthless once stale: the next sample after reconnect replaces them
    if (msg.type === 'event' && msg.event === 'resource_update') return;
    // players too: every server's latest is sent again once the link is up (PlayerPoller.resendAll)
    if (msg.type === 'event' && msg.event === 'players_update') return;
    this.#queue.push(msg);
    if (this.#queue.length > this.#max) this.#evictOne();
  }

  #evictOne(): void {
    const q = this.#queue;
    const isStatus = (m: Outgoing) => m.type === 'event' && m.event === 'server_status_changed';
    const notStatus = q.findIndex((m) => !isStatus(m) && !KEPT.has(eventOf(m)));
    if (notStatus >= 0) {
      q.splice(notStatus, 1);
      return;
    }
    // only status changes and operation ends left: drop the oldest status change that a newer
    // change of the same server supersedes (an operation's events are never dropped)
    for (let i = 0; i < q.length; i++) {
      if (!isStatus(q[i] as Outgoing)) continue;
      const m = q[i] as EventMessage<'server_status_changed'>;
      const later = q
        .slice(i + 1)
        .some(
          (n) =>
            isStatus(n) && (n as EventMessage<'server_status_changed'>).data.serverId === m.data.serverId,
        );
      if (later) {
        q.splice(i, 1);
        return;
      }
    }
    // one latest status per server and more servers than room: keep them all
  }

  /**
   * Everything held, in order, then one dropped-lines notice per server (with the numbering of
   * the last line it counts, so the Panel's count goes on from there); empties the box.
   */
  drain(
    makeDropped: (serverId: string, count: number, seq: { seq?: number; epoch?: string }) => EventMessage,
  ): Outgoing[] {
    const out = [...this.#queue];
    for (const [serverId, { count, ...seq }] of this.#droppedLogs)
      out.push(makeDropped(serverId, count, seq));
    this.#queue = [];
    this.#droppedLogs.clear();
    return out;
  }
}
