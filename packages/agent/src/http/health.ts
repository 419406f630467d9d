/**
 * The Agent's HTTP API when no AGENT_API_KEY is set. Then only `GET /health` can ever answer, so
 * it is served by node:http and Fastify is never loaded (a good part of an idle Agent's memory;
 * see bench/agent-rss.ts). It answers as buildHttp() does: the same per-address rate limit
 * before anything else, the same CORS headers, the same /health body, and 401 AUTH_FAILED for
 * every other request. The pieces both share live here (http.ts imports them; not the reverse).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { PROTOCOL_VERSION } from '@cap/protocol';
import { TokenBucket } from '../panel-link/rate-limit.ts';
import { AGENT_VERSION } from '../version.ts';

/** Client addresses remembered by the rate limiter; beyond this the oldest are forgotten. */
const MAX_TRACKED_ADDRESSES = 10_000;

export interface HealthDeps {
  corsOrigins: readonly string[];
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

/** The CORS headers for a request's Origin ({} when it is not allowed). */
export function corsHeaders(origins: readonly string[], origin: string | undefined): Record<string, string> {
  const allowAll = origins.includes('*');
  if (!origin || !(allowAll || origins.includes(origin))) return {};
  return {
    'access-control-allow-origin': allowAll ? '*' : origin,
    vary: 'origin',
    'access-control-allow-headers': 'authorization, x-api-key, content-type',
    'access-control-allow-methods': 'GET, POST, OPTIONS',
  };
}

export const isHealthUrl = (url: string): boolean => url === '/health' || url.startsWith('/health?');

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
    const cors = corsHeaders(deps.corsOrigins, req.headers.origin);
    if (req.method === 'OPTIONS') return send(res, 204, cors);
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
