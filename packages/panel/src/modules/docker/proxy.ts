/**
 * One Docker Engine API exchange written into a tunnel (tunnels.ts) with Node's HTTP client: the
 * tunnel is the client's connection, so status, headers and body come back exactly as the
 * Engine sent them, streamed. Paths are canonicalised first (what the Panel checks is what the
 * Engine routes), headers pass through an allow-list, bodies are capped in bytes while they
 * stream; only the bodies the policy must read are buffered (≤ 1 MiB).
 */
import http, { type IncomingMessage } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { CodedError } from '@cap/protocol';

/** The Engine API path after `/api/nodes/:id/docker`, checked and made canonical. */
export interface EnginePath {
  /** what is written into the tunnel: `/v1.xx` (when given) + the canonical path + the query */
  forward: string;
  /** the decoded path without the version, for routing decisions (`/containers/create`) */
  path: string;
  /** the raw query string, without `?` ('' when none) */
  query: string;
}

const VERSION = /^\/v[0-9]{1,2}\.[0-9]{1,3}(?=\/|$)/;

/**
 * Decodes the path as the Engine does, refuses what it would clean or redirect (`.`/`..`/empty
 * segments, backslashes, control characters), and re-encodes each segment so the Engine sees
 * exactly the path that was checked.
 */
export function enginePath(rawUrl: string, prefix: string): EnginePath {
  if (!rawUrl.startsWith(prefix)) throw new CodedError('NOT_FOUND', 'not a Docker path');
  const rest = rawUrl.slice(prefix.length);
  const q = rest.indexOf('?');
  const rawPath = q === -1 ? rest : rest.slice(0, q);
  const query = q === -1 ? '' : rest.slice(q + 1);
  if (rawPath.length > 4096 || query.length > 65536)
    throw new CodedError('VALIDATION_FAILED', 'the Docker path is too long');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
  if (/[\u0000-\u0020\u007f#]/.test(query))
    throw new CodedError('VALIDATION_FAILED', 'bad characters in the query');
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    throw new CodedError('VALIDATION_FAILED', 'the Docker path is not valid percent-encoding');
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
  if (!decoded.startsWith('/') || /[\u0000-\u001f\u007f\\?#]/.test(decoded))
    throw new CodedError('VALIDATION_FAILED', 'not a Docker Engine API path');
  const version = VERSION.exec(decoded)?.[0] ?? '';
  const path = decoded.slice(version.length) || '/';
  const segments = path.split('/').slice(1);
  if (segments.some((s) => s === '' || s === '.' || s === '..'))
    throw new CodedError('VALIDATION_FAILED', 'empty, "." or ".." segments are not allowed in a Docker path');
  const canonical = `/${segments.map((s) => encodeURIComponent(s)).join('/')}`;
  return { forward: `${version}${canonical}${query ? `?${query}` : ''}`, path, query };
}

/** How a request's body is handled, by endpoint. */
export type BodyKind = 'inspect' | 'upload' | 'small';
/** Bodies the Panel reads (the policy): buffered, at most this. */
export const INSPECT_MAX_BYTES = 1024 * 1024;
/** Other JSON bodies (network or volume create, exec start): streamed, at most this. */
export const SMALL_MAX_BYTES = 1024 * 1024;
/** Uploads (an image load or import, a build context, an archive put into a container): streamed. */
export const UPLOAD_MAX_BYTES = 64 * 1024 ** 3;

const INSPECT: [string, RegExp][] = [
  ['POST', /^\/containers\/create$/],
  ['POST', /^\/containers\/[^/]+\/update$/],
  ['POST', /^\/containers\/[^/]+\/exec$/],
  ['POST', /^\/volumes\/create$/],
  ['POST', /^\/networks\/[^/]+\/(connect|disconnect)$/],
];
const UPLOAD: [string, RegExp][] = [
  ['POST', /^\/images\/load$/],
  ['POST', /^\/images\/create$/],
  ['POST', /^\/build$/],
  ['PUT', /^\/containers\/[^/]+\/archive$/],
  ['POST', /^\/plugins\/create$/],
];

export function bodyKind(method: string, path: string): BodyKind {
  if (INSPECT.some(([m, re]) => m === method && re.test(path))) return 'inspect';
  if (UPLOAD.some(([m, re]) => m === method && re.test(path))) return 'upload';
  return 'small';
}

export function bodyCap(kind: BodyKind): number {
  return kind === 'inspect' ? INSPECT_MAX_BYTES : kind === 'upload' ? UPLOAD_MAX_BYTES : SMALL_MAX_BYTES;
}

/** A declared Content-Length over the cap is refused before a byte is read. */
export function checkDeclaredLength(headers: http.IncomingHttpHeaders, cap: number): void {
  const cl = headers['content-length'];
  if (cl === undefined) return;
  const n = Number(cl);
  if (!Number.isSafeInteger(n) || n < 0) throw new CodedError('VALIDATION_FAILED', 'bad Content-Length');
  if (n > cap) throw new CodedError('PAYLOAD_TOO_LARGE', `this Docker endpoint takes at most ${cap} bytes`);
}

/** Counts bytes through; past `cap` the stream fails with PAYLOAD_TOO_LARGE. */
export function capped(cap: number): Transform {
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      if (n > cap) cb(new CodedError('PAYLOAD_TOO_LARGE', `this Docker endpoint takes at most ${cap} bytes`));
      else cb(null, chunk);
    },
  });
}

/** Reads a body of at most `cap` bytes. */
export async function readCapped(body: Readable, cap: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += (c as Buffer).length;
    if (n > cap) throw new CodedError('PAYLOAD_TOO_LARGE', `this Docker endpoint takes at most ${cap} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Request headers the Engine is given (none of the Panel's credentials, no hop-by-hop ones). */
const FORWARD_REQUEST = new Set([
  'content-type',
  'content-length',
  'transfer-encoding',
  'x-registry-auth',
  'x-registry-config',
  'accept',
]);

export function forwardHeaders(h: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = { host: 'docker' };
  for (const [k, v] of Object.entries(h)) {
    if (!FORWARD_REQUEST.has(k) || v === undefined) continue;
    out[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

/** Response headers passed back (all of the Engine's but the hop-by-hop ones). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'proxy-authenticate',
  'proxy-connection',
  'te',
  'trailer',
]);

export function responseHeaders(h: http.IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

/** The Engine's answer must start within this (a stop with a long grace time answers after it). */
export const HEADERS_TIMEOUT_MS = 5 * 60_000;
/**
 * Endpoints whose answer may start only when something happens (Docker 20.10 sends the headers
 * of `/events` with the first event; a wait answers when the container stops): no headers timeout.
 */
const WAITS: RegExp[] = [/^\/events$/, /^\/containers\/[^/]+\/wait$/, /^\/containers\/[^/]+\/attach$/];

export function headersTimeout(path: string): number {
  return WAITS.some((re) => re.test(path)) ? 0 : HEADERS_TIMEOUT_MS;
}

/**
 * Writes one request into the tunnel and resolves with the Engine's response (its body a
 * stream). `body`: a Buffer (read and checked already) or a stream (piped through its cap).
 */
export function exchange(
  tunnel: Duplex,
  o: {
    method: string;
    path: string;
    headers: Record<string, string>;
    body?: Buffer | Readable;
    signal?: AbortSignal;
    /** 0: none */
    headersTimeoutMs?: number;
  },
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      createConnection: () => tunnel as never,
      method: o.method,
      path: o.path,
      headers: { ...o.headers, connection: 'close' },
      ...(o.signal ? { signal: o.signal } : {}),
    });
    const wait = o.headersTimeoutMs ?? HEADERS_TIMEOUT_MS;
    const timer =
      wait > 0
        ? setTimeout(
            () => req.destroy(new CodedError('TIMEOUT', 'the Docker Engine did not answer in time')),
            wait,
          )
        : undefined;
    req.once('response', (res) => {
      clearTimeout(timer);
      resolve(res);
    });
    req.once('error', (e) => {
      clearTimeout(timer);
      tunnel.destroy();
      reject(
        e instanceof CodedError
          ? e
          : new CodedError('DOCKER_ERROR', `the relay to the Docker Engine failed: ${e.message}`),
      );
    });
    if (Buffer.isBuffer(o.body)) req.end(o.body);
    else if (o.body) {
      o.body.on('error', (e) => req.destroy(e));
      o.body.pipe(req);
    } else req.end();
  });
}

/** Pipes two duplexes both ways (half-close passed on); an error or a close ends both. */
export function splice(a: Duplex, b: Duplex, onClose: () => void = () => undefined): void {
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    a.destroy();
    b.destroy();
    onClose();
  };
  a.pipe(b);
  b.pipe(a);
  for (const s of [a, b]) {
    s.on('error', close);
    s.on('close', close);
  }
}

/** Upgrade request headers passed on for a hijacked stream (Docker's `tcp`, or its WebSocket attach). */
const FORWARD_UPGRADE = [
  'upgrade',
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-protocol',
  'sec-websocket-extensions',
  'origin',
];

export function upgradeHeaders(h: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = { connection: 'Upgrade' };
  for (const k of FORWARD_UPGRADE) {
    const v = h[k];
    if (typeof v === 'string') out[k] = v;
  }
  return out;
}

export type Hijacked =
  | { kind: 'response'; res: IncomingMessage }
  | { kind: 'upgrade'; res: IncomingMessage; socket: Duplex; head: Buffer };

/**
 * A hijacking exchange (exec start or attach with `Upgrade`): the Engine either upgrades (the
 * connection becomes the stream, both ways) or answers as usual (an error).
 */
export function exchangeUpgrade(
  tunnel: Duplex,
  o: { method: string; path: string; headers: Record<string, string>; body?: Buffer },
): Promise<Hijacked> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      createConnection: () => tunnel as never,
      method: o.method,
      path: o.path,
      headers: o.headers,
    });
    const timer = setTimeout(
      () => req.destroy(new CodedError('TIMEOUT', 'the Docker Engine did not answer in time')),
      HEADERS_TIMEOUT_MS,
    );
    req.once('upgrade', (res, socket, head) => {
      clearTimeout(timer);
      resolve({ kind: 'upgrade', res, socket, head });
    });
    req.once('response', (res) => {
      clearTimeout(timer);
      resolve({ kind: 'response', res });
    });
    req.once('error', (e) => {
      clearTimeout(timer);
      tunnel.destroy();
      reject(
        e instanceof CodedError
          ? e
          : new CodedError('DOCKER_ERROR', `the relay to the Docker Engine failed: ${e.message}`),
      );
    });
    req.end(o.body);
  });
}

/** The upgrade answer the Engine gave, as the client is to see it (status line and headers). */
export function upgradeHead(res: IncomingMessage): string {
  const lines = [`HTTP/1.1 ${res.statusCode ?? 101} ${res.statusMessage || 'Switching Protocols'}`];
  for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
    const k = res.rawHeaders[i] as string;
    const v = res.rawHeaders[i + 1] as string;
    // biome-ignore lint/suspicious/noControlCharactersInRegex: header injection is refused
    if (/[\r\n\u0000]/.test(k + v)) continue;
    lines.push(`${k}: ${v}`);
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** Reads exactly `n` bytes of a hijacked request's body: first `head`, then the socket. */
export function readExact(socket: Duplex, head: Buffer, n: number): Promise<{ body: Buffer; rest: Buffer }> {
  if (head.length >= n) return Promise.resolve({ body: head.subarray(0, n), rest: head.subarray(n) });
  return new Promise((resolve, reject) => {
    let got = head;
    const onData = (c: Buffer) => {
      got = Buffer.concat([got, c]);
      if (got.length >= n) {
        cleanup();
        socket.pause();
        resolve({ body: got.subarray(0, n), rest: got.subarray(n) });
      }
    };
    const onEnd = () => {
      cleanup();
      reject(new CodedError('VALIDATION_FAILED', 'the request body ended early'));
    };
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
    };
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', onEnd);
    socket.resume();
  });
}
