/**
 * transfer_push (issue 16): a completed backup of a server PUT straight to another Agent's
 * transfer ticket (`<target transferUrl>/transfers/<ticket>`, an upload ticket the target issued
 * by backup_import), so a transfer between two nodes that reach each other never goes through
 * the Panel. Streamed from the file with backpressure (the socket's buffer at most), exactly the
 * archive's size and no further (content-length; a file that changed is refused before a byte
 * goes), with its sha256 in `x-checksum-sha256`; the target checks size and sha256 on arrival.
 *
 * Not an open proxy: the URL must be http(s), without credentials, query or fragment, its path
 * ending in `/transfers/<the ticket given>`; no redirect is followed, and nothing of the target's
 * answer is passed on but `{ path, size }` or the error code and message it sent. Not reaching
 * the target at all is UPSTREAM_ERROR (the Panel relays instead).
 */
import { open } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { pipeline } from 'node:stream/promises';
import { CodedError, ErrorCode, TransferTicket } from '@cap/protocol';

/** The most of the target's answer that is read (a JSON result or error). */
const ANSWER_MAX_BYTES = 16 * 1024;

/** The URL as a push may use it, or CONFIG_INVALID / URL_NOT_ALLOWED. */
export function pushTarget(raw: string, ticket: string): URL {
  if (!TransferTicket.safeParse(ticket).success)
    throw new CodedError('CONFIG_INVALID', 'not a transfer ticket');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CodedError('CONFIG_INVALID', 'the push URL is not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new CodedError('URL_NOT_ALLOWED', 'a push goes to an http(s) URL only');
  if (url.username || url.password || url.search || url.hash)
    throw new CodedError('URL_NOT_ALLOWED', 'a push URL has no credentials, query or fragment');
  if (!url.pathname.endsWith(`/transfers/${ticket}`))
    throw new CodedError('URL_NOT_ALLOWED', "a push goes to the target Agent's /transfers/<ticket> only");
  return url;
}

/** Errors of the socket before (or instead of) an answer: the target was not reached. */
function unreachable(e: unknown, origin: string, connected = false): CodedError {
  const code = (e as NodeJS.ErrnoException)?.code ?? (e as Error)?.message ?? 'error';
  return new CodedError(
    'UPSTREAM_ERROR',
    connected
      ? `the connection to the target Agent at ${origin} broke: ${code}`
      : `the target Agent at ${origin} could not be reached: ${code}`,
  );
}

export interface PushFile {
  path: string;
  size: number;
  sha256: string;
}

/**
 * Streams `file` to `url` (checked by pushTarget first). Resolves with the target's result, or
 * rejects with its error code (UPSTREAM_ERROR when it was not reached or answered no JSON).
 */
export async function pushArchive(
  file: PushFile,
  target: { url: string; ticket: string; connectTimeoutMs: number },
  onBytes?: (sent: number, total: number) => void,
): Promise<{ path: string; size: number; bytes: number; ms: number }> {
  const url = pushTarget(target.url, target.ticket);
  const started = Date.now();
  const fh = await open(file.path, 'r');
  try {
    const st = await fh.stat();
    if (st.size !== file.size)
      throw new CodedError('INVALID_STATE', 'the archive changed since it was listed');
    const lib = url.protocol === 'https:' ? https : http;
    let sent = 0;
    let lastReport = 0;
    const req = lib.request(url, {
      method: 'PUT',
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': String(file.size),
        'x-checksum-sha256': file.sha256,
      },
      // no connection pool: one request, closed after
      agent: false,
    });
    const connectTimer = setTimeout(
      () => req.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })),
      target.connectTimeoutMs,
    );
    let connected = false;
    req.once('socket', (sock) => {
      const up = () => {
        connected = true;
        clearTimeout(connectTimer);
      };
      if (sock.connecting) sock.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', up);
      else up();
    });
    const answer = new Promise<http.IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', reject);
    });
    answer.catch(() => undefined);
    const body = fh.createReadStream({ start: 0, end: Math.max(0, file.size - 1), autoClose: false });
    body.on('data', (c) => {
      sent += (c as Buffer).length;
      const now = Date.now();
      if (onBytes && (now - lastReport >= 1000 || sent === file.size)) {
        lastReport = now;
        onBytes(sent, file.size);
      }
    });
    try {
      if (file.size === 0) {
        body.destroy();
        req.end();
      } else await pipeline(body, req);
    } catch (e) {
      clearTimeout(connectTimer);
      // an early answer (the target refused the ticket) says more than the broken pipe
      const res = await Promise.race([answer, new Promise<undefined>((r) => setTimeout(r, 200))]).catch(
        () => undefined,
      );
      if (!res) throw unreachable(e, url.origin, connected);
      return await result(res, url.origin, sent, started);
    }
    const res = await answer.catch((e: unknown) => {
      throw unreachable(e, url.origin, connected);
    });
    clearTimeout(connectTimer);
    return await result(res, url.origin, sent, started);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

async function result(
  res: http.IncomingMessage,
  origin: string,
  sent: number,
  started: number,
): Promise<{ path: string; size: number; bytes: number; ms: number }> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res) {
    n += (c as Buffer).length;
    if (n > ANSWER_MAX_BYTES) {
      res.destroy();
      throw new CodedError(
        'UPSTREAM_ERROR',
        `the target at ${origin} answered more than ${ANSWER_MAX_BYTES} bytes`,
      );
    }
    chunks.push(c as Buffer);
  }
  let json: unknown;
  try {
    json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new CodedError('UPSTREAM_ERROR', `the target at ${origin} answered ${res.statusCode} without JSON`);
  }
  const o = (json && typeof json === 'object' ? json : {}) as Record<string, unknown>;
  const own = (k: string) => (Object.hasOwn(o, k) ? o[k] : undefined);
  if (res.statusCode === 200) {
    const path = own('path');
    const size = own('size');
    if (typeof path === 'string' && typeof size === 'number' && Number.isFinite(size))
      return { path: path.slice(0, 256), size, bytes: sent, ms: Date.now() - started };
    throw new CodedError('UPSTREAM_ERROR', `the target at ${origin} answered 200 without a result`);
  }
  const code = ErrorCode.safeParse(own('code'));
  const message = own('message');
  if (!code.success)
    throw new CodedError('UPSTREAM_ERROR', `the target at ${origin} answered ${res.statusCode}`);
  throw new CodedError(
    code.data,
    `the target Agent refused the archive: ${typeof message === 'string' ? message.slice(0, 1000) : res.statusCode}`,
  );
}
