/**
 * The live relay's subscription to the bus: what happened becomes the live store's state and
 * the frames its watchers get (`/ws/client`). Nothing else sends server frames; the services
 * publish domain events and read the live store. Its subscriptions are `everywhere`: with
 * several replicas, a browser on one sees the servers whose Agents are linked to another.
 */
import type { ErrorCode } from '@cap/protocol';
import type { DomainEventKind, EventBus, EventOf, Handler } from '../bus/index.ts';
import { LineNumbers } from './line-numbers.ts';
import type { LiveStore } from './live-store.ts';

/** Subscribes; returns the unsubscribe function. */
export function attachLiveRelay(bus: EventBus, live: LiveStore): () => void {
  // every replica's browsers read the live state: it hears the events of all of them
  const on = <K extends DomainEventKind>(kind: K, handler: Handler<EventOf<K>>): (() => void) =>
    bus.subscribe(kind, handler, 'everywhere');
  // console lines off the bus: what it lost between replicas (a broker restart) is counted here
  // (reason `bus`), what came twice is skipped
  const numbers = new LineNumbers();
  const gapOf = (serverId: string, epoch: unknown, seq: unknown, n: number): number => {
    const { skip, gap } = numbers.take(serverId, epoch, seq, n);
    if (gap > 0) live.consoleDropped(serverId, gap, 'bus');
    return skip;
  };
  const offs = [
    on('server.status', (e) => {
      // where the Agent is linked the projection set it already; other replicas learn it here
      live.setStatus(e.serverId, e.status);
      live.publish(e.serverId, {
        type: 'status',
        serverId: e.serverId,
        status: e.status,
        ...(e.previousStatus ? { previousStatus: e.previousStatus } : {}),
      });
    }),
    on('server.console', (e) => {
      const skip = gapOf(e.serverId, e.epoch, e.seq, e.lines.length);
      if (skip >= e.lines.length) return;
      const lines = skip > 0 ? e.lines.slice(skip) : e.lines;
      // numbered (as checked by gapOf: a hostile or older publisher's numbers are not passed on)
      const numbered =
        typeof e.epoch === 'string' &&
        e.epoch.length > 0 &&
        e.epoch.length <= 64 &&
        Number.isSafeInteger(e.seq) &&
        (e.seq as number) >= e.lines.length;
      // sent again after a lost link: the first `resent` lines (those this replica had are skipped above)
      const resent = typeof e.resent === 'number' && e.resent > skip;
      live.appendConsole(
        e.serverId,
        lines,
        numbered
          ? { epoch: e.epoch as string, seq: e.seq as number, ...(resent ? { resent } : {}) }
          : undefined,
      );
    }),
    on('server.console_dropped', (e) => {
      const skip = gapOf(e.serverId, e.epoch, e.seq, e.count);
      if (e.count - skip > 0) live.consoleDropped(e.serverId, e.count - skip, e.reason);
    }),
    on('server.stats', (e) => live.setStats(e.serverId, e.stats)),
    on('server.crashed', (e) =>
      live.publish(e.serverId, {
        type: 'crashed',
        serverId: e.serverId,
        exitCode: e.exitCode,
        restarting: e.restarting,
      }),
    ),
    on('server.players', (e) => {
      live.setPlayers(e.serverId, { online: e.online, max: e.max, list: e.list });
      live.publish(e.serverId, {
        type: 'players',
        serverId: e.serverId,
        online: e.online,
        max: e.max,
        list: e.list,
      });
    }),
    on('server.remote_console', (e) => {
      const rc = { transport: e.transport, state: e.state, ...(e.message ? { message: e.message } : {}) };
      live.setRemoteConsole(e.serverId, rc);
      live.publish(e.serverId, { type: 'remote_console', serverId: e.serverId, ...rc });
    }),
    on('server.install', (e) => {
      if (e.lines) {
        const lines = live.appendInstall(e.serverId, e.lines);
        live.publish(e.serverId, { type: 'install_output', serverId: e.serverId, lines });
      }
      if (e.success !== undefined) {
        live.completeInstall(e.serverId, e.success, e.exitCode);
        live.publish(e.serverId, {
          type: 'install_completed',
          serverId: e.serverId,
          success: e.success,
          ...(e.exitCode === undefined ? {} : { exitCode: e.exitCode }),
        });
      }
    }),
    on('server.update', (e) =>
      live.publish(e.serverId, {
        type: 'update_progress',
        serverId: e.serverId,
        stage: e.stage,
        ...(e.message !== undefined ? { message: e.message } : {}),
      }),
    ),
    on('server.feature', (e) =>
      live.publish(e.serverId, { type: 'feature', serverId: e.serverId, feature: e.feature, line: e.line }),
    ),
    on('server.deleted', (e) => {
      numbers.forget(e.serverId);
      live.publish(e.serverId, { type: 'unsubscribed', serverId: e.serverId });
      live.forget(e.serverId);
    }),
    on('operation', (e) =>
      live.publish(e.serverId, {
        type: 'operation',
        serverId: e.serverId,
        operationId: e.operationId,
        kind: e.operationKind,
        stage: e.stage,
        ...(e.success !== undefined ? { success: e.success } : {}),
        ...(e.errorCode ? { errorCode: e.errorCode as ErrorCode } : {}),
        ...(e.message ? { message: e.message } : {}),
      }),
    ),
    on('node.online', (e) => live.publishAll({ type: 'node_status', nodeId: e.nodeId, online: true })),
    on('node.offline', (e) => live.publishAll({ type: 'node_status', nodeId: e.nodeId, online: false })),
  ];
  return () => {
    for (const off of offs) off();
  };
}
