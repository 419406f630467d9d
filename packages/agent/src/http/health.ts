/**
 * The Agent's HTTP API when no AGENT_API_KEY is set. Then only `GET /health` can ever answer, so
 * it is served by node:http and Fastify is never loaded (a good part of an idle Agent's memory;
 * see bench/agent-rss.ts). It answers as buildHttp() does: the same per-address rate limit
 * before anything else, no CORS headers (those are for /transfers only, which needs the key's
 * API), the same /health body, and 401 AUTH_FAILED for every other request. The pieces both share live here (http.ts imports them; not the reverse).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { PROTOCOL_VERSION } from '@cap/protocol';
import { TokenBucket } from '../panel-link/rate-limit.ts';
import { AGENT_VERSION } from '../version.ts';

/** Client addresses remembered by the rate limiter; beyond this the oldest are forgotten. */
const MAX_TRACKED_ADDRESSES = 10_000;

/** GET /metrics: for `Authorization: Bearer <AGENT_METRICS_TOKEN>` (or, with Fastify, the API key) */
export interface MetricsEndpoint {
  token: string | undefined;
  render: () => Promise<{ contentType: string; body: string }>;
}

export interface HealthDeps {
  corsOrigins: readonly string[];
  metrics?: MetricsEndpoint | undefined;
  /** requests a second per client address (twice that as a burst); default 20 */
  rate?: number;
  docker: () => Promise<{ reachable: boolean; version: string | null }>;
  panelConnected: () => boolean;
}

/** `admit(address)`: false once that address is over its rate (a token bucket each). */
export function rateLimiter(rate: number): (address: string) => boolean {
  const buckets = new Map<string, TokenBucket>();
  return (address) => {
    let b = buckets.get(address);
    if (!b) {
      if (buckets.size >= MAX_TRACKED_ADDRESSES) buckets.delete(buckets.keys().next().value as string);
      b = new TokenBucket(rate, 2 * rate);
      buckets.set(address, b);
    }
    return b.take();
  };
}

/**
 * The CORS headers of `GET|PUT /transfers/<ticket>` (and its preflight) for a request's Origin, or
 * null when it is not allowed. Only there: the key-protected API never answers cross-origin. No
 * credentials (the ticket in the path is the credential); a browser may send Content-Type (and
 * Content-Length) and read the checksum and file name.
 */
export function transferCorsHeaders(
  origins: readonly string[],
  origin: string | undefined,
): Record<string, string> | null {
  const allowAll = origins.includes('*');
  if (!origin || !(allowAll || origins.includes(origin))) return null;
  return {
    'access-control-allow-origin': allowAll ? '*' : origin,
    vary: 'origin',
    'access-control-allow-methods': 'GET, PUT, OPTIONS',
    'access-control-allow-headers': 'content-type, content-length',
    'access-control-expose-headers': 'x-checksum-sha256, content-disposition, content-length',
    'access-control-max-age': '600',
  };
}

export const isHealthUrl = (url: string): boolean => url === '/health' || url.startsWith('/health?');
export const isMetricsUrl = (url: string): boolean => url === '/metrics' || url.startsWith('/metrics?');

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Constant-time: hashes first, so lengths leak nothing either. */
export function keyMatches(given: string, accepted: readonly (string | null | undefined)[]): boolean {
  const g = digest(given);
  let ok = false;
  for (const a of accepted) if (a && timingSafeEqual(g, digest(a))) ok = true;
  return ok;
}

export function bearerOf(authorization: string | undefined): string | null {
  return authorization?.startsWith('Bearer ') ? authorization.slice('Bearer '.length).trim() : null;
}

export async function healthReport(deps: Pick<HealthDeps, 'docker' | 'panelConnected'>) {
  const docker = await deps.docker();
  return {
    status: docker.reachable ? 'ok' : 'degraded',
    version: AGENT_VERSION,
    protocolVersion: PROTOCOL_VERSION,
    docker,
    panel: { connected: deps.panelConnected() },
  };
}

export interface AgentHttpServer {
  /** resolves with the port it listens on */
  listen(port: number, host: string): Promise<number>;
  close(): Promise<void>;
}

export function buildHealthOnly(deps: HealthDeps): AgentHttpServer {
  const rate = deps.rate ?? 20;
  const admit = rateLimiter(rate);
  let seq = 0;
  const send = (res: ServerResponse, status: number, headers: Record<string, string>, body?: unknown) => {
    const text = body === undefined ? '' : JSON.stringify(body);
    res.writeHead(status, {
      ...headers,
      ...(body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' }),
      'content-length': String(Buffer.byteLength(text)),
    });
    res.end(text);
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const requestId = `req-${(++seq).toString(36)}`;
    const url = req.url ?? '/';
    if (!admit(req.socket.remoteAddress ?? '')) {
      send(
        res,
        429,
        { 'retry-after': String(Math.max(1, Math.ceil(1 / rate))) },
        { code: 'RATE_LIMITED', message: 'too many requests; slow down', requestId },
      );
      return;
    }
    const cors: Record<string, string> = {};
    const metrics = deps.metrics;
    const bearer = bearerOf(req.headers.authorization);
    if (
      isMetricsUrl(url) &&
      req.method === 'GET' &&
      metrics &&
      bearer &&
      keyMatches(bearer, [metrics.token])
    ) {
      metrics.render().then(
        (m) => {
          res.writeHead(200, { ...cors, 'content-type': m.contentType });
          res.end(m.body);
        },
        () => send(res, 500, cors, { code: 'INTERNAL_ERROR', message: 'internal error', requestId }),
      );
      return;
    }
    if (!isHealthUrl(url)) {
      return send(res, 401, cors, { code: 'AUTH_FAILED', message: 'missing or wrong API key', requestId });
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return send(res, 404, cors, { code: 'NOT_FOUND', message: `no ${req.method} ${url}`, requestId });
    }
    healthReport(deps).then(
      (body) => send(res, 200, cors, body),
      () => send(res, 500, cors, { code: 'INTERNAL_ERROR', message: 'internal error', requestId }),
    );
  });
  return {
    listen: (port, host) =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const addr = server.address();
          resolve(typeof addr === 'object' && addr ? addr.port : port);
        });
      }),
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
