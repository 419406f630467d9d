/**
 * Where a webhook may post, and the one way it posts (SSRF): http(s) only, no credentials in the
 * URL; the host is resolved and every address it resolves to is checked against loopback,
 * private, link-local, CGNAT, multicast, reserved and IPv4-mapped ranges (refused unless
 * PANEL_WEBHOOK_ALLOW_PRIVATE); the request then goes to the address that was checked (no second
 * lookup a rebinding DNS could answer differently), redirects are never followed, the answer is
 * read to at most 4 KiB and the whole attempt is bounded by a timeout.
 */
import { lookup } from 'node:dns/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { CodedError } from '@cap/protocol';
import { isPublicAddress } from '../../net/outbound.ts';

/** A loopback, private, link-local or otherwise non-public address (the Panel's one rule for all outbound URLs). */
export function isPrivateAddress(address: string): boolean {
  return !isPublicAddress(address);
}

const refuse = (message: string) => new CodedError('WEBHOOK_TARGET_REFUSED', message, { location: 'url' });

/** The URL parsed and checked for its shape (no DNS): http(s), no credentials, a host. */
export function parseTarget(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw refuse('not a URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw refuse('only http and https URLs');
  if (url.username || url.password) throw refuse('a webhook URL may not carry credentials');
  if (!url.hostname) throw refuse('the URL has no host');
  return url;
}

/** Scheme, host and a path whose long segments (tokens) are masked: what may be shown. */
export function displayOf(url: URL): string {
  const path = url.pathname
    .split('/')
    .map((seg) => (seg.length > 12 ? `${seg.slice(0, 3)}…` : seg))
    .join('/');
  return `${url.protocol}//${url.host}${path}${url.search ? '?…' : ''}`;
}

export interface Resolved {
  url: URL;
  address: string;
  family: 4 | 6;
}

/** Resolves the host and checks every address; the first is where the request goes. */
export async function resolveTarget(url: URL, allowPrivate: boolean): Promise<Resolved> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  let addresses: { address: string; family: number }[];
  if (isIP(host)) addresses = [{ address: host, family: isIP(host) }];
  else {
    try {
      addresses = await lookup(host, { all: true, verbatim: true });
    } catch (e) {
      throw refuse(`the host ${host} does not resolve (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  if (addresses.length === 0) throw refuse(`the host ${host} does not resolve`);
  if (!allowPrivate)
    for (const a of addresses)
      if (isPrivateAddress(a.address))
        throw refuse(
          `the host ${host} resolves to ${a.address}, a loopback, private or link-local address (PANEL_WEBHOOK_ALLOW_PRIVATE=1 allows it)`,
        );
  const first = addresses[0] as { address: string; family: number };
  return { url, address: first.address, family: first.family === 6 ? 6 : 4 };
}

export interface PostResult {
  status: number;
  /** up to 4 KiB of the answer */
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

const MAX_ANSWER = 4096;

/** POSTs the body to the resolved address (no redirects followed, no second DNS lookup). */
export function post(
  target: Resolved,
  body: string,
  headers: Record<string, string>,
  timeoutMs = 10_000,
): Promise<PostResult> {
  const { url } = target;
  const https = url.protocol === 'https:';
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return new Promise((resolve, reject) => {
    const req = (https ? httpsRequest : httpRequest)(
      {
        method: 'POST',
        host: target.address,
        family: target.family,
        port: url.port || (https ? 443 : 80),
        path: `${url.pathname}${url.search}`,
        headers: {
          ...headers,
          host: url.host,
          'content-length': String(Buffer.byteLength(body)),
        },
        ...(https && !isIP(hostname) ? { servername: hostname } : {}),
        // the address above is the one that was checked: no lookup happens here
        lookup: (_h, _o, cb) => cb(null, target.address, target.family),
        timeout: timeoutMs,
      },
      (res) => {
        let got = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (got.length < MAX_ANSWER) got += chunk.slice(0, MAX_ANSWER - got.length);
          else res.destroy();
        });
        const done = () => resolve({ status: res.statusCode ?? 0, body: got, headers: res.headers });
        res.on('end', done);
        res.on('close', done);
        res.on('error', done);
      },
    );
    req.on('timeout', () => req.destroy(new CodedError('TIMEOUT', `no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}
