/**
 * The one way the Panel reaches a URL that came from outside (a mod catalog's download links, an
 * egg's `update_url`, a webhook's target): loopback, private, link-local, CGNAT, multicast and
 * reserved addresses are refused unless the admin allows them (`PANEL_OUTBOUND_ALLOW_PRIVATE=1`;
 * tests do, to reach their stand-ins). The
 * check is made on the address the socket really connects to (in the `lookup` hook), so a name
 * that resolves to a public address first and a private one next (DNS rebinding) is refused too.
 * Redirects are not followed; bodies are capped in bytes while they stream.
 */
import dns from 'node:dns';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CodedError } from '@cap/protocol';
import ipaddr from 'ipaddr.js';

export interface OutboundOptions {
  allowPrivate: boolean;
  /** the body is cut (UPSTREAM_ERROR) past this many bytes */
  maxBytes: number;
  timeoutMs?: number;
  headers?: Record<string, string>;
}

export interface OutboundRequest extends OutboundOptions {
  /** default GET */
  method?: 'GET' | 'POST';
  /** sent with its content-length */
  body?: string | Buffer;
}

/** Only `unicast` addresses are public; everything else ipaddr.js names is refused. */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  let a = ipaddr.parse(address);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) a = (a as ipaddr.IPv6).toIPv4Address();
  return a.range() === 'unicast';
}

function guardedLookup(allowPrivate: boolean): LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const list = addresses as dns.LookupAddress[];
      const bad = list.find((a) => !isPublicAddress(a.address));
      if (bad && !allowPrivate)
        return callback(
          new CodedError('URL_NOT_ALLOWED', `${hostname} resolves to ${bad.address}, a non-public address`),
          '',
          0,
        );
      const first = list[0];
      if (!first) return callback(new Error(`${hostname} has no address`), '', 0);
      if ((options as dns.LookupOptions).all)
        return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, list);
      callback(null, first.address, first.family);
    });
  };
}

/** Checks the URL's form (scheme, no credentials) and a literal IP host before any connection. */
export function checkOutboundUrl(raw: string, allowPrivate: boolean): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CodedError('URL_NOT_ALLOWED', 'not a URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new CodedError('URL_NOT_ALLOWED', `only http(s) URLs, not ${url.protocol}`);
  if (url.username || url.password) throw new CodedError('URL_NOT_ALLOWED', 'a URL with credentials');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (ipaddr.isValid(host) && !isPublicAddress(host) && !allowPrivate)
    throw new CodedError('URL_NOT_ALLOWED', `${host} is a non-public address`);
  return url;
}

export interface OutboundResponse {
  status: number;
  headers: IncomingMessage['headers'];
  /** the body, cut with UPSTREAM_ERROR past `maxBytes` */
  body: Readable;
}

/** A request → the status, headers and the capped body (any status; the caller checks it and consumes the body). */
export function outboundRequest(raw: string, o: OutboundRequest): Promise<OutboundResponse> {
  const url = checkOutboundUrl(raw, o.allowPrivate);
  const mod = url.protocol === 'https:' ? https : http;
  const headers: Record<string, string> = { 'user-agent': 'ctrl-alt-play', ...o.headers };
  if (o.body !== undefined) headers['content-length'] = String(Buffer.byteLength(o.body));
  return new Promise((resolve, reject) => {
    const req = mod.request(
      url,
      {
        method: o.method ?? 'GET',
        lookup: guardedLookup(o.allowPrivate),
        headers,
        timeout: o.timeoutMs ?? 15_000,
      },
      (res) => {
        const len = Number(res.headers['content-length']);
        if (Number.isFinite(len) && len > o.maxBytes) {
          res.destroy();
          return reject(
            new CodedError('UPSTREAM_ERROR', `${url.host} answered ${len} bytes, over ${o.maxBytes}`),
          );
        }
        let seen = 0;
        const cap = new Transform({
          transform(c: Buffer, _enc, done) {
            seen += c.length;
            if (seen > o.maxBytes)
              return done(new CodedError('UPSTREAM_ERROR', `${url.host} sent over ${o.maxBytes} bytes`));
            done(null, c);
          },
        });
        pipeline(res, cap).catch(() => undefined); // errors surface on `cap`
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: cap });
      },
    );
    req.on('timeout', () => req.destroy(new CodedError('TIMEOUT', `${url.host} did not answer in time`)));
    req.on('error', (e) =>
      reject(e instanceof CodedError ? e : new CodedError('UPSTREAM_ERROR', `${url.host}: ${e.message}`)),
    );
    req.end(o.body);
  });
}

/** GET → the status, headers and the capped body (any status; the caller checks it and consumes the body). */
export function outboundGet(raw: string, o: OutboundOptions): Promise<OutboundResponse> {
  return outboundRequest(raw, o);
}

/** A GET read whole as UTF-8 text under the cap: 2xx only, else UPSTREAM_ERROR with the status. */
export async function outboundText(raw: string, o: OutboundOptions): Promise<string> {
  const res = await outboundGet(raw, o);
  const chunks: Buffer[] = [];
  try {
    for await (const c of res.body) chunks.push(c as Buffer);
  } catch (e) {
    throw e instanceof CodedError ? e : new CodedError('UPSTREAM_ERROR', (e as Error).message);
  }
  if (res.status < 200 || res.status >= 300)
    throw new CodedError('UPSTREAM_ERROR', `${new URL(raw).host} answered ${res.status}`, {
      details: { status: res.status },
    });
  return Buffer.concat(chunks).toString('utf8');
}

/** A JSON GET with a small cap: 2xx only, else UPSTREAM_ERROR with the status. */
export async function outboundJson(raw: string, o: OutboundOptions): Promise<unknown> {
  const text = await outboundText(raw, { ...o, headers: { accept: 'application/json', ...o.headers } });
  try {
    return JSON.parse(text);
  } catch {
    throw new CodedError('UPSTREAM_ERROR', `${new URL(raw).host} did not answer JSON`);
  }
}
