/**
 * The Agent's typed domain events. Each server publishes on its own bus (`Server.events`); the
 * manager pipes every server's bus into the Agent's (`ServerManager.events`), where the Panel link
 * subscribes (panel-link/relay.ts) and turns them into wire events. Server code never calls the
 * link. A subscriber that throws is logged and does not stop the others.
 */
import type { EventData, EventName } from '@cap/protocol';

/** Domain event → the wire event it goes out as (its data is that event's data). */
export const WIRE_EVENT = {
  status: 'server_status_changed',
  console: 'server_log',
  console_dropped: 'server_log_dropped',
  install_output: 'install_output',
  install_completed: 'install_completed',
  crashed: 'server_crashed',
  stats: 'resource_update',
  update_progress: 'server_update_progress',
  operation_progress: 'operation_progress',
  operation_completed: 'operation_completed',
  remote_console: 'remote_console_state',
  players: 'players_update',
  image_pull_progress: 'image_pull_progress',
} as const satisfies Record<string, EventName>;

export type ServerEventMap = { [K in keyof typeof WIRE_EVENT]: EventData<(typeof WIRE_EVENT)[K]> } & {
  /** a step of the power action in flight, inside the Agent only (the manager makes it operation_progress) */
  stage: { serverId: string; stage: string; message?: string };
};

export type ServerEventName = keyof ServerEventMap;
export type ServerEvent = { [K in ServerEventName]: { type: K; data: ServerEventMap[K] } }[ServerEventName];

type Handler<K extends ServerEventName> = (data: ServerEventMap[K]) => void;

export class EventBus {
  readonly #handlers = new Map<ServerEventName, Set<(data: never) => void>>();
  readonly #any = new Set<(e: ServerEvent) => void>();
  readonly #onError: (err: unknown, type: ServerEventName) => void;

  constructor(onError: (err: unknown, type: ServerEventName) => void = () => undefined) {
    this.#onError = onError;
  }

  /** Subscribes to one event; returns the unsubscribe. */
  on<K extends ServerEventName>(type: K, handler: Handler<K>): () => void {
    let set = this.#handlers.get(type);
    if (!set) {
      set = new Set();
      this.#handlers.set(type, set);
    }
    const h = handler as (data: never) => void;
    set.add(h);
    return () => set.delete(h);
  }

  /** Subscribes to every event, in publishing order; returns the unsubscribe. */
  onAny(handler: (e: ServerEvent) => void): () => void {
    this.#any.add(handler);
    return () => this.#any.delete(handler);
  }

  publish<K extends ServerEventName>(type: K, data: ServerEventMap[K]): void {
    for (const h of this.#handlers.get(type) ?? []) {
      try {
        (h as Handler<K>)(data);
      } catch (e) {
        this.#onError(e, type);
      }
    }
    const e = { type, data } as ServerEvent;
    for (const h of this.#any) {
      try {
        h(e);
      } catch (err) {
        this.#onError(err, type);
      }
    }
  }
}
