/**
 * `/ws/client`: the browsers' live relay. Authenticated by the session at the upgrade and
 * re-checked on every message; every message about a server goes through requireAccess (a
 * server the caller may not see is SERVER_NOT_FOUND, a missing permission FORBIDDEN); what a
 * subscription hears follows the access it was granted with (console lines need
 * `control.console`, hidden values are redacted for all but admins and the server's owner);
 * frame, rate and fan-out limits.
 */
import {
  CLIENT_MAX_FRAME_BYTES,
  CLIENT_MAX_SOCKETS_PER_SERVER,
  type ClientMessage,
  ClientRequest,
  CodedError,
  type ErrorCode,
} from '@cap/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import { hasRole, resolvePrincipal } from '../http/auth.ts';
import { redact } from '../lib/redact.ts';
import { FEATURE_NEED, POWER_PERMISSION } from '../modules/access/permissions.ts';
import { type Access, missing } from '../modules/access/service.ts';
import type { PanelServices } from '../services.ts';
import type { Sink } from './live-store.ts';

export const CLIENT_RATE_WINDOW_MS = 200;
export const CLIENT_RATE_MAX = 10;
/** After this many refused messages the socket is closed. */
const CLIENT_ABUSE_LIMIT = 50;
/** Beyond this much unsent data, a slow browser misses messages instead of growing memory. */
const MAX_BUFFERED = 4 * 1024 * 1024;
/** how often a socket over MAX_BUFFERED is checked for having drained */
const DRAIN_CHECK_MS = 50;
export const CLOSE_TOO_BIG = 1009;
export const CLOSE_POLICY = 1008;

// One serialisation per message, however many subscribers receive it.
const serialised = new WeakMap<ClientMessage, string>();
function encode(msg: ClientMessage): string {
  let s = serialised.get(msg);
  if (s === undefined) {
    s = JSON.stringify(msg);
    serialised.set(msg, s);
  }
  return s;
}
// and one redacted copy for all spectators
const redactedCopies = new WeakMap<ClientMessage, ClientMessage>();
function redactedConsole(
  msg: ClientMessage & { type: 'console' },
  secrets: readonly string[],
): ClientMessage {
  let r = redactedCopies.get(msg);
  if (!r) {
    r = { ...msg, lines: msg.lines.map((l) => redact(l, secrets)) };
    redactedCopies.set(msg, r);
  }
  return r;
}

function originAllowed(req: FastifyRequest, publicUrl: string): boolean {
  const origin = req.headers.origin;
  if (!origin) return true; // non-browser clients send none; cookies are SameSite=Lax anyway
  try {
    const host = new URL(origin).host;
    return host === req.headers.host || host === new URL(publicUrl).host;
  } catch {
    return false;
  }
}

export async function clientRelayRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  app.get(
    '/ws/client',
    {
      websocket: true,
      config: { auth: 'user' },
      preValidation: async (req) => {
        if (!originAllowed(req, s.publicUrl()))
          throw new CodedError('FORBIDDEN', 'cross-origin socket refused');
      },
    },
    (socket, req) => {
      const key = `user:${req.principal?.user.id ?? ''}`;
      // open sockets per user (across replicas: counted in the shared database): one account
      // cannot flood the Panel with connections. Frames sent before the count is known wait
      // (each under the frame limit; as many as the rate limit lets by before it closes a
      // socket) and are then handled in order, through the same rate limit.
      const early: [RawData, boolean][] = [];
      const hold = (data: RawData, isBinary: boolean) => {
        if (early.length >= CLIENT_RATE_MAX + CLIENT_ABUSE_LIMIT) socket.close(CLOSE_POLICY, 'RATE_LIMITED');
        else early.push([data, isBinary]);
      };
      let closed = false;
      const onClose = () => {
        closed = true;
      };
      socket.on('message', hold);
      socket.once('close', onClose);
      void s.socketLimits
        .acquire(key, s.config.clientSocketsPerUser)
        .then((ok) => {
          socket.off('message', hold);
          socket.off('close', onClose);
          if (!ok) {
            socket.close(CLOSE_POLICY, 'RATE_LIMITED: too many sockets for this user');
            return;
          }
          if (closed || socket.readyState !== socket.OPEN) {
            s.socketLimits.release(key);
            return;
          }
          socket.once('close', () => s.socketLimits.release(key));
          handleClient(s, socket, req);
          for (const [data, isBinary] of early) socket.emit('message', data, isBinary);
        })
        .catch((err: Error) => {
          s.log.error({ err: err.message }, 'socket count failed');
          socket.close(1011, 'INTERNAL_ERROR');
        });
    },
  );
}

function handleClient(s: PanelServices, socket: WebSocket, req: FastifyRequest): void {
  /** serverId → the access the subscription was granted with (a change drops it: accessChanged) */
  const subs = new Map<string, Access>();
  /** the node of each subscribed server */
  const subNodes = new Map<string, string>();
  // a `user`, and any key limited to some servers, see only some servers: some nodes
  const seesAllNodes =
    req.principal !== null &&
    req.principal.serverIds === undefined &&
    hasRole(req.principal.user.role, 'spectator');
  let windowStart = 0;
  let inWindow = 0;
  let refused = 0;
  const log = s.log.child({ component: 'client-relay', userId: req.principal?.user.id });

  // console lines a slow browser missed, per server: reported as soon as its buffer drains
  const missed = new Map<string, number>();
  let drainTimer: NodeJS.Timeout | undefined;
  const reportMissed = () => {
    clearTimeout(drainTimer);
    drainTimer = undefined;
    if (socket.readyState !== socket.OPEN) return;
    if (socket.bufferedAmount > MAX_BUFFERED) {
      drainTimer = setTimeout(reportMissed, DRAIN_CHECK_MS);
      return;
    }
    for (const [serverId, count] of missed)
      socket.send(encode({ type: 'console_dropped', serverId, count, reason: 'slow_client' }));
    missed.clear();
  };
  const send: Sink = (msg) => {
    if (socket.readyState !== socket.OPEN) return;
    // news of a server reach only a subscription granted by requireAccess (an error only echoes
    // the id the client sent)
    const about = Object.hasOwn(msg, 'serverId') ? (msg as { serverId?: unknown }).serverId : undefined;
    const access = typeof about === 'string' ? subs.get(about) : undefined;
    if (msg.type !== 'error' && typeof about === 'string' && !access) return;
    // who sees only some servers hears of a node only when one of its subscribed servers runs there
    if (msg.type === 'node_status' && !seesAllNodes && ![...subNodes.values()].includes(msg.nodeId)) return;
    if (
      (msg.type === 'console' || msg.type === 'console_dropped') &&
      !access?.permissions.has('control.console')
    )
      return;
    if (socket.bufferedAmount > MAX_BUFFERED) {
      if (msg.type === 'stats') return; // the next sample replaces it
      if (msg.type === 'console' || msg.type === 'console_dropped') {
        const n = msg.type === 'console' ? msg.lines.length : msg.count;
        missed.set(msg.serverId, (missed.get(msg.serverId) ?? 0) + n);
        drainTimer ??= setTimeout(reportMissed, DRAIN_CHECK_MS);
        return;
      }
    }
    // install scripts print what they fetch with (tokens, URLs): for those who see hidden values
    if (msg.type === 'install_output' && !access?.seesHidden) return;
    // a feature dialog offers changes (accept the EULA): for those who may make them
    if (msg.type === 'feature' && (!access || missing(access, FEATURE_NEED).length > 0)) return;
    if (missed.size > 0 && (msg.type === 'console' || msg.type === 'console_dropped')) reportMissed();
    // hidden variables' values, as games print them, are for admins and the server's owner only
    if (msg.type === 'console' && !access?.seesHidden) {
      const secrets = s.live.secrets(msg.serverId);
      if (secrets.length) {
        socket.send(encode(redactedConsole(msg, secrets)));
        return;
      }
    }
    socket.send(encode(msg));
  };
  const fail = (code: ErrorCode, message: string, extra: { serverId?: string; requestType?: string } = {}) =>
    send({ type: 'error', code, message, ...extra });

  /** Ends the socket's subscription of the server (and its count). */
  const drop = (serverId: string) => {
    if (!subs.has(serverId)) return;
    subs.delete(serverId);
    subNodes.delete(serverId);
    s.live.unsubscribe(serverId, send);
    s.socketLimits.release(`server:${serverId}`);
  };

  s.live.addGlobal(send);
  // a logout, deletion, role or password change closes the socket at once (not on its next message)
  const unregister = req.principal
    ? s.clientSockets.add({
        userId: req.principal.user.id,
        sessionId: req.principal.sessionId,
        apiKeyId: req.principal.apiKeyId,
        role: req.principal.user.role,
        close: (code, reason) => {
          if (socket.readyState === socket.OPEN) socket.close(code, reason);
        },
        // removed as a subuser or left with fewer permissions: the subscription ends now; a new
        // subscribe is granted (or refused) under what the user holds then
        accessChanged: (serverId) => {
          if (!subs.has(serverId)) return;
          drop(serverId);
          if (socket.readyState === socket.OPEN) socket.send(encode({ type: 'unsubscribed', serverId }));
        },
      })
    : () => undefined;
  // sessions expire and keys are revoked elsewhere too: check again now and then, even when the
  // socket sends nothing
  const reauth = setInterval(() => {
    resolvePrincipal(s.auth, req)
      .then((p) => {
        if (!p && socket.readyState === socket.OPEN) socket.close(4401, 'UNAUTHENTICATED: session ended');
      })
      .catch((err: Error) => log.warn({ err: err.message }, 'socket re-check failed'));
  }, s.config.clientReauthMs);
  reauth.unref();
  socket.on('close', () => {
    clearInterval(reauth);
    unregister();
    clearTimeout(drainTimer);
    s.live.removeGlobal(send);
    for (const id of [...subs.keys()]) drop(id);
  });
  socket.on('error', (err) => log.debug({ err: err.message }, 'client socket error'));

  socket.on('message', (data, isBinary) => {
    const size = Array.isArray(data) ? data.reduce((a, b) => a + b.length, 0) : (data as Buffer).byteLength;
    if (size > CLIENT_MAX_FRAME_BYTES) {
      socket.close(CLOSE_TOO_BIG, 'frame too large');
      return;
    }
    const now = Date.now();
    if (now - windowStart >= CLIENT_RATE_WINDOW_MS) {
      windowStart = now;
      inWindow = 0;
    }
    inWindow += 1;
    if (inWindow > CLIENT_RATE_MAX) {
      refused += 1;
      if (refused > CLIENT_ABUSE_LIMIT) socket.close(CLOSE_POLICY, 'RATE_LIMITED');
      else fail('RATE_LIMITED', 'too many messages; slow down');
      return;
    }
    if (isBinary) {
      fail('INVALID_MESSAGE', 'text frames only');
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse((data as Buffer).toString('utf8'));
    } catch {
      fail('INVALID_MESSAGE', 'not JSON');
      return;
    }
    const parsed = ClientRequest.safeParse(json);
    if (!parsed.success) {
      fail(
        'VALIDATION_FAILED',
        parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
      );
      return;
    }
    handleRequest(parsed.data).catch((e: unknown) => {
      const code: ErrorCode = e instanceof CodedError ? e.code : 'INTERNAL_ERROR';
      if (code === 'INTERNAL_ERROR') log.error({ err: e }, 'client request failed');
      const serverId = Object.hasOwn(parsed.data, 'serverId')
        ? (parsed.data as { serverId?: string }).serverId
        : undefined;
      fail(code, e instanceof CodedError ? e.message : 'internal error', {
        requestType: parsed.data.type,
        ...(serverId ? { serverId } : {}),
      });
    });
  });

  /**
   * A state-changing socket request, published as a `user_action` as its REST twin is (same action
   * names, the outcome as `ok` or its code; the command's text is not kept, as no body is).
   */
  async function audited<T>(
    actor: { id: string; email: string },
    action: string,
    serverId: string,
    run: () => Promise<T>,
  ): Promise<T> {
    const publish = (result: string) =>
      s.bus.publish({
        kind: 'user_action',
        action,
        actor: actor.id,
        email: actor.email,
        ip: req.ip ?? null,
        serverId,
        result,
        at: new Date().toISOString(),
      });
    let out: T;
    try {
      out = await run();
    } catch (e) {
      publish(e instanceof CodedError ? e.code : 'INTERNAL_ERROR');
      throw e;
    }
    publish('ok');
    return out;
  }

  async function handleRequest(r: ClientRequest): Promise<void> {
    // The session may have ended or the role changed since the upgrade: check every time.
    const p = await resolvePrincipal(s.auth, req);
    if (!p) {
      fail('UNAUTHENTICATED', 'session ended');
      socket.close(4401, 'UNAUTHENTICATED');
      return;
    }
    // a read-only key only listens (a server-limited key's other servers: requireAccess's 404)
    if (p.scope === 'read' && r.type !== 'ping' && r.type !== 'subscribe' && r.type !== 'unsubscribe')
      throw new CodedError('FORBIDDEN', 'this API key is read-only');
    switch (r.type) {
      case 'ping':
        send({ type: 'pong' });
        return;
      case 'subscribe': {
        // seeing the server is enough for status and stats; its console needs control.console
        const access = await s.access.requireAccess(p, null, r.serverId);
        const status = await s.servers.status(r.serverId);
        const nodeId = await s.servers.nodeIdOf(r.serverId);
        // across replicas: what this one could not hear (lines printed before it started) comes
        // from the replica holding the Agent, before this socket hears anything (no line twice)
        if (!subs.has(r.serverId)) await s.liveSync.ready(r.serverId, nodeId);
        if (!subs.has(r.serverId)) {
          // sockets per server (across replicas: counted in the shared database)
          const key = `server:${r.serverId}`;
          if (!(await s.socketLimits.acquire(key, CLIENT_MAX_SOCKETS_PER_SERVER))) {
            throw new CodedError(
              'RATE_LIMITED',
              `at most ${CLIENT_MAX_SOCKETS_PER_SERVER} sockets per server`,
            );
          }
          // closed meanwhile, or a second subscribe of this socket took it first: not counted twice
          if (socket.readyState !== socket.OPEN || subs.has(r.serverId)) {
            s.socketLimits.release(key);
            if (socket.readyState !== socket.OPEN) return;
          } else s.live.subscribe(r.serverId, send);
        }
        if (!seesAllNodes) subNodes.set(r.serverId, nodeId);
        subs.set(r.serverId, access);
        // install scripts print what they fetch with (tokens, URLs): as install_output
        const install = access.seesHidden ? s.live.install(r.serverId) : undefined;
        const rc = s.live.remoteConsole(r.serverId);
        const history = access.permissions.has('control.console') ? s.live.history(r.serverId) : [];
        const mark = history.length > 0 ? s.live.historyMark(r.serverId) : undefined;
        send({
          type: 'subscribed',
          serverId: r.serverId,
          status,
          history: access.seesHidden ? history : history.map((l) => redact(l, s.live.secrets(r.serverId))),
          ...(mark ? { historyEpoch: mark.epoch, historySeq: mark.seq } : {}),
          stats: s.live.stats(r.serverId),
          ...(install ? { install } : {}),
          ...(rc ? { remoteConsole: rc } : {}),
        });
        return;
      }
      case 'unsubscribe':
        drop(r.serverId);
        // the answer is not news of the server: it goes out whether or not it was subscribed
        if (socket.readyState === socket.OPEN)
          socket.send(encode({ type: 'unsubscribed', serverId: r.serverId }));
        return;
      case 'send_command': {
        const answer = await audited(p.user, 'server.command', r.serverId, async () => {
          const access = await s.access.requireAccess(p, 'control.command', r.serverId);
          return s.servers.command(r.serverId, r.command, { seesHidden: access.seesHidden });
        });
        send({ type: 'ack', requestType: r.type, serverId: r.serverId, ...answer });
        return;
      }
      case 'power':
        await audited(p.user, `server.power.${r.action}`, r.serverId, async () => {
          await s.access.requireAccess(p, POWER_PERMISSION[r.action], r.serverId);
          await s.servers.power(r.serverId, r.action, p.user.id);
        });
        send({ type: 'ack', requestType: r.type, serverId: r.serverId });
        return;
      default: {
        // a new request type must get an access rule here before it compiles
        const unhandled: never = r;
        throw new CodedError('INVALID_MESSAGE', `unhandled request ${JSON.stringify(unhandled)}`);
      }
    }
  }
}
