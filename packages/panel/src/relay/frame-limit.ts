/**
 * One ws server serves both live sockets, with a frame limit each: the server's default is the
 * small browser limit (32 KiB, `/ws/client`), and a route that needs more (`/ws/agents`) raises
 * it for its own upgrade. The limit is the socket's own `maxPayload`, so an oversized frame is
 * refused from its header (1009) before any of it is buffered.
 */
import type { Duplex } from 'node:stream';
import type { WebsocketPluginOptions } from '@fastify/websocket';
import type { FastifyRequest } from 'fastify';
import { WebSocket } from 'ws';

const limits = new WeakMap<object, number>();

/** Called in a route's hook before the upgrade: this request's socket takes frames up to `bytes`. */
export function allowFrames(req: FastifyRequest, bytes: number): void {
  limits.set(req.raw.socket, bytes);
}

interface SetSocket {
  setSocket(socket: Duplex, head: Buffer, options: { maxPayload?: number }): void;
}

/** The WebSocket class the ws server makes: the route's limit, else the server default. */
export class FrameLimitedWebSocket extends WebSocket {
  setSocket(socket: Duplex, head: Buffer, options: { maxPayload?: number }): void {
    const max = limits.get(socket);
    const base = WebSocket.prototype as unknown as SetSocket;
    base.setSocket.call(this, socket, head, max === undefined ? options : { ...options, maxPayload: max });
  }
}

/** as the ws server's `WebSocket` option (its type wants the module's statics too) */
export const frameLimitedWebSocketClass = FrameLimitedWebSocket as unknown as NonNullable<
  NonNullable<WebsocketPluginOptions['options']>['WebSocket']
>;
