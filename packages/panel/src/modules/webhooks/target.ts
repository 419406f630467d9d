/**
 * Where a webhook may post, and the one way it posts (SSRF): http(s) only, no credentials in the
 * URL; the host is resolved and every address it resolves to is checked against loopback,
 * private, link-local, CGNAT, multicast, reserved and IPv4-mapped ranges (refused unless
 * PANEL_OUTBOUND_ALLOW_PRIVATE) for a clear refusal; the request itself goes through the Panel's
 * one outbound client (net/outbound.ts), which checks again the address the socket really connects
 * to (a rebinding DNS answering differently the second time is refused there), never follows
 * redirects, reads at most 4 KiB of the answer and bounds the whole attempt by a timeout.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { CodedError } from '@cap/protocol';
import { isPublicAddress, outboundRequest } from '../../net/outbound.ts';

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
          `the host ${host} resolves to ${a.address}, a loopback, private or link-local address (PANEL_OUTBOUND_ALLOW_PRIVATE=1 allows it)`,
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

/** POSTs the body through the outbound client; keeps the first 4 KiB of the answer. */
export async function post(
  url: URL,
  allowPrivate: boolean,
  body: string,
  headers: Record<string, string>,
  timeoutMs = 10_000,
): Promise<PostResult> {
  const res = await outboundRequest(url.href, {
    method: 'POST',
    body,
    headers,
    allowPrivate,
    maxBytes: 1024 * 1024,
    timeoutMs,
  });
  let got = '';
  try {
    for await (const chunk of res.body) {
      got += (chunk as Buffer).toString('utf8');
      if (got.length >= MAX_ANSWER) break;
    }
  } catch {
    // the status is what counts; a body cut short keeps what came
  }
  res.body.destroy();
  return { status: res.status, body: got.slice(0, MAX_ANSWER), headers: res.headers };
}
