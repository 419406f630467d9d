/**
 * The Panel link's subscription to the Agent's event bus (server/events.ts): every domain event
 * goes out as its wire event, console lines of a tick batched into one message (coalesce.ts).
 * Events inside the Agent only (`stage`) are not sent. Each `server_log` is numbered on its way
 * out (`seq`: its last line's number per server, `epoch`: this process; see LinkSeq in the
 * protocol), so the Panel counts the lines a dead socket swallowed and skips any it had already.
 */
import { randomUUID } from 'node:crypto';
import type { EventData, EventName } from '@cap/protocol';
import type { EventBus } from '../server/events.ts';
import { WIRE_EVENT } from '../server/events.ts';
import { ConsoleCoalescer, lineCountOf } from './coalesce.ts';

export function relayEvents(
  bus: EventBus,
  send: <E extends EventName>(name: E, data: EventData<E>) => void,
  epoch: string = randomUUID(),
): () => void {
  const seqs = new Map<string, number>();
  const numbered = <E extends EventName>(name: E, data: EventData<E>) => {
    if (name === 'server_log') {
      const d = data as EventData<'server_log'>;
      const seq = (seqs.get(d.serverId) ?? 0) + lineCountOf(d.message);
      seqs.set(d.serverId, seq);
      send('server_log', { ...d, seq, epoch });
      return;
    }
    send(name, data);
  };
  const { emit } = new ConsoleCoalescer(numbered);
  return bus.onAny((e) => {
    if (e.type === 'stage') return;
    emit(WIRE_EVENT[e.type], e.data as never);
  });
}
