/**
 * The Panel link's subscription to the Agent's event bus (server/events.ts): every domain event
 * goes out as its wire event, console lines of a tick batched into one message (coalesce.ts).
 * Events inside the Agent only (`stage`) are not sent.
 */
import type { EventData, EventName } from '@cap/protocol';
import type { EventBus } from '../server/events.ts';
import { WIRE_EVENT } from '../server/events.ts';
import { ConsoleCoalescer } from './coalesce.ts';

export function relayEvents(
  bus: EventBus,
  send: <E extends EventName>(name: E, data: EventData<E>) => void,
): () => void {
  const { emit } = new ConsoleCoalescer(send);
  return bus.onAny((e) => {
    if (e.type === 'stage') return;
    emit(WIRE_EVENT[e.type], e.data as never);
  });
}
