/**
 * The Agent's own HTTP API: `GET /health` (no auth) and the protocol's commands over HTTP,
 * authorised by `X-API-Key` or `Authorization: Bearer` with AGENT_API_KEY (nothing else: the
 * Panel's token is for the link only). Every request, /health included, is rate-limited per
 * client address before the key is checked, so guessing keys is as slow as flooding.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import {
  BackupId,
  CodedError,
  httpStatusOf,
  isCodedError,
  newMessageId,
  type ResponseMessage,
  ServerId,
  TransferTicket,
} from '@cap/protocol';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Ticket } from '../transfers/transfers.ts';
import {
  type AgentHttpServer,
  bearerOf,
  healthReport,
  isHealthUrl,
  isMetricsUrl,
  keyMatches,
  type MetricsEndpoint,
  rateLimiter,
  transferCorsHeaders,
} from './health.ts';

export { keyMatches };

/** Path shorthands for actions without the `_server` pattern (a Map: no name is found on a prototype). */
const SHORT_FORMS: ReadonlyMap<string, string> = new Map([
  ['send', 'send_command'],
  ['status', 'get_status'],
  ['files', 'list_files'],
  ['file', 'get_file'],
]);

/**
 * Actions only the Panel link may ask: transfer_push dials a URL it is given, and the API key's
 * holder must not make the Agent a proxy to anywhere.
 */
const LINK_ONLY: ReadonlySet<string> = new Set(['transfer_push']);

function linkOnly(body: unknown): boolean {
  if (!body || typeof body !== 'object' || !Object.hasOwn(body, 'action')) return false;
  const action = (body as { action: unknown }).action;
  return typeof action === 'string' && LINK_ONLY.has(action);
}

const LINK_ONLY_ANSWER = {
  code: 'FORBIDDEN',
  message: 'this action is for the Panel link only, not the HTTP API',
} as const;

export interface HttpDeps {
  logger: Logger;
  /** origins allowed to use /transfers/* from a browser (`*`: any); nothing else answers cross-origin */
  corsOrigins: readonly string[];
  /** the secrets accepted right now (the configured API key) */
  acceptedKeys: () => (string | null | undefined)[];
  /** requests a second per client address (twice that as a burst); default 20 */
  rate?: number;
  handle: (raw: unknown) => Promise<ResponseMessage>;
  /** `GET|PUT /transfers/<ticket>`: the ticket is the credential (no API key) */
  transfers?: {
    take: (ticket: string) => Ticket;
    download: (t: Ticket) => Promise<{
      stream: Readable;
      /** null: a folder archived while it streams (chunked) */
      size: number | null;
      name: string;
      /** a backup's recorded checksum, sent as x-checksum-sha256 */
      sha256?: string;
      close: () => Promise<void>;
    }>;
    upload: (t: Ticket, body: Readable) => Promise<{ path: string; size: number }>;
  };
  docker: () => Promise<{ reachable: boolean; version: string | null }>;
  panelConnected: () => boolean;
  /** a completed backup's file (throws a CodedError otherwise) */
  backupFile?: (
    serverId: string,
    backupId: string,
  ) => Promise<{ path: string; size: number; sha256: string; filename: string }>;
  metrics?: MetricsEndpoint | undefined;
}

function presentedKey(req: FastifyRequest): string | null {
  const k = req.headers['x-api-key'];
  if (typeof k === 'string' && k) return k;
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice('Bearer '.length).trim();
  return null;
}

function statusOf(res: ResponseMessage): number {
  return res.success ? 200 : res.error ? httpStatusOf[res.error.code] : 500;
}

export async function buildHttp(deps: HttpDeps) {
  const app = Fastify({ loggerInstance: deps.logger.child({ component: 'http' }), bodyLimit: 1024 * 1024 });
  const rate = deps.rate ?? 20;
  const admit = rateLimiter(rate);

  app.addHook('onRequest', async (req, reply) => {
    if (!admit(req.ip)) {
      return reply
        .code(429)
        .header('retry-after', String(Math.max(1, Math.ceil(1 / rate))))
        .send({ code: 'RATE_LIMITED', message: 'too many requests; slow down', requestId: req.id });
    }
    if (isHealthUrl(req.url)) return;
    // /metrics takes the metrics token too (the API key works as for every route)
    const bearer = bearerOf(req.headers.authorization);
    if (isMetricsUrl(req.url) && bearer && deps.metrics && keyMatches(bearer, [deps.metrics.token])) return;
    if (deps.transfers && req.url.startsWith('/transfers/')) {
      // CORS here only (browsers use transfer links directly); never on the key's routes
      const cors = transferCorsHeaders(deps.corsOrigins, req.headers.origin);
      if (cors) for (const [k, v] of Object.entries(cors)) reply.header(k, v);
      if (req.method !== 'OPTIONS') return;
      if (!cors)
        return reply.code(403).send({
          code: 'FORBIDDEN',
          message: 'this Origin may not use transfer links here (AGENT_CORS_ORIGINS)',
          requestId: req.id,
        });
      return reply.code(204).send();
    }
    const key = presentedKey(req);
    if (!key || !keyMatches(key, deps.acceptedKeys())) {
      return reply
        .code(401)
        .send({ code: 'AUTH_FAILED', message: 'missing or wrong API key', requestId: req.id });
    }
  });

  app.get('/health', () => healthReport(deps));

  app.get('/metrics', { exposeHeadRoute: false }, async (_req, reply) => {
    if (!deps.metrics) return reply.code(404).send({ code: 'NOT_FOUND', message: 'no metrics' });
    const m = await deps.metrics.render();
    return reply.header('content-type', m.contentType).send(m.body);
  });
  const transfers = deps.transfers;
  if (transfers) {
    const ticketOf = (raw: string) => {
      if (!TransferTicket.safeParse(raw).success)
        throw new CodedError('NOT_FOUND', 'unknown, used or expired transfer ticket');
      return transfers.take(raw);
    };
    const fail = (reply: FastifyReply, e: unknown, id: string) => {
      const code = isCodedError(e) ? e.code : 'INTERNAL_ERROR';
      return reply
        .code(httpStatusOf[code])
        .send({ code, message: isCodedError(e) ? e.message : 'internal error', requestId: id });
    };
    app.get<{ Params: { ticket: string } }>('/transfers/:ticket', async (req, reply) => {
      let d: Awaited<ReturnType<typeof transfers.download>>;
      try {
        const t = ticketOf(req.params.ticket);
        if (t.direction !== 'download') throw new CodedError('NOT_FOUND', 'not a download ticket');
        d = await transfers.download(t);
      } catch (e) {
        return fail(reply, e, req.id);
      }
      reply.raw.once('close', () => void d.close());
      if (d.sha256) reply.header('x-checksum-sha256', d.sha256);
      // a folder archived while it streams has no size: chunked
      if (d.size !== null) reply.header('content-length', String(d.size));
      return reply
        .header('content-type', 'application/octet-stream')
        .header('content-disposition', `attachment; filename*=UTF-8''${encodeURIComponent(d.name)}`)
        .header('cache-control', 'no-store')
        .send(d.stream);
    });
    // the body is the file's bytes, streamed: no parser, no body limit here
    await app.register(async (sub) => {
      sub.removeAllContentTypeParsers();
      sub.addContentTypeParser('*', (_req, _payload, done) => done(null));
      sub.put<{ Params: { ticket: string } }>('/transfers/:ticket', async (req, reply) => {
        try {
          const t = ticketOf(req.params.ticket);
          if (t.direction !== 'upload') throw new CodedError('NOT_FOUND', 'not an upload ticket');
          return await transfers.upload(t, req.raw);
        } catch (e) {
          req.raw.resume();
          return fail(reply, e, req.id);
        }
      });
    });
  }

  app.post('/api/command', async (req, reply) => {
    if (linkOnly(req.body)) return reply.code(403).send({ ...LINK_ONLY_ANSWER, requestId: req.id });
    const res = await deps.handle(req.body ?? null);
    return reply.code(statusOf(res)).send(res);
  });

  app.post<{ Params: { id: string; action: string } }>('/api/servers/:id/:action', async (req, reply) => {
    const { id, action } = req.params;
    const body = req.body;
    const cmd = {
      id: newMessageId('http'),
      type: 'command',
      timestamp: new Date().toISOString(),
      serverId: id,
      action: action.includes('_') ? action : `${action}_server`,
      payload: body && typeof body === 'object' ? body : {},
    };
    // create takes its id from the path too
    if (cmd.action === 'create_server') cmd.payload = { serverId: id, ...(cmd.payload as object) };
    // short forms: /start → start_server; long forms pass through (/send_command, /get_status …)
    const short = SHORT_FORMS.get(action);
    if (short) cmd.action = short;
    if (linkOnly(cmd)) return reply.code(403).send({ ...LINK_ONLY_ANSWER, requestId: req.id });
    const res = await deps.handle(cmd);
    return reply.code(statusOf(res)).send(res);
  });

  // a backup streamed out (never read into memory); signed URLs for browsers come later
  app.get<{ Params: { id: string; backupId: string } }>(
    '/api/servers/:id/backups/:backupId/download',
    { exposeHeadRoute: false },
    async (req, reply) => {
      const { id, backupId } = req.params;
      const bad = (status: number, code: string, message: string) =>
        reply.code(status).send({ code, message, requestId: req.id });
      if (!ServerId.safeParse(id).success || !BackupId.safeParse(backupId).success)
        return bad(400, 'CONFIG_INVALID', 'bad server or backup id');
      if (!deps.backupFile) return bad(404, 'BACKUP_NOT_FOUND', 'no backups on this Agent');
      try {
        const f = await deps.backupFile(id, backupId);
        return reply
          .header('content-type', 'application/octet-stream')
          .header('content-length', String(f.size))
          .header('content-disposition', `attachment; filename="${f.filename}"`)
          .header('x-checksum-sha256', f.sha256)
          .send(createReadStream(f.path));
      } catch (e) {
        if (isCodedError(e)) return bad(httpStatusOf[e.code], e.code, e.message);
        throw e;
      }
    },
  );

  app.setErrorHandler((err, req, reply) => {
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    // 413: body over bodyLimit; other 4xx: not JSON, a __proto__ key, a wrong content type
    const code =
      status === 413
        ? 'MESSAGE_TOO_LARGE'
        : status >= 400 && status < 500
          ? 'INVALID_MESSAGE'
          : 'INTERNAL_ERROR';
    if (code === 'INTERNAL_ERROR') req.log.error({ err }, 'request failed');
    reply.code(status >= 400 && status < 500 ? status : 500).send({
      code,
      message: code === 'INTERNAL_ERROR' ? 'internal error' : (err as Error).message,
      requestId: req.id,
    });
  });
  return app;
}

/** buildHttp() as the Agent runs it (see health.ts for the API without a key). */
export async function buildAgentHttp(deps: HttpDeps): Promise<AgentHttpServer> {
  const app = await buildHttp(deps);
  return {
    async listen(port, host) {
      await app.listen({ port, host });
      const addr = app.server.address();
      return typeof addr === 'object' && addr ? addr.port : port;
    },
    close: () => app.close(),
  };
}
