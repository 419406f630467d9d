/**
 * Transfer links (issue 10 item 2): every grant the Panel hands out (file transfers, backup
 * downloads) carries `url` — straight to the node's Agent when the node has a transfer URL, else
 * the Panel's relay — and `relayUrl`, always the relay. The page tries `url` and falls back to
 * `relayUrl` when `url` fails at the network level (unreachable, refused, TLS, mixed content,
 * CORS) or answers anything but 2xx (an Agent without AGENT_API_KEY answers 401; a proxy in the way
 * 403/404/502…); the relay's answer, whatever it is, is then the answer. The Agent's single-use
 * ticket is used up only by a request it accepted, so the relay can still use the same ticket.
 */

export interface TransferGrantUrls {
  url: string;
  relayUrl: string;
}

/** fetch() rejects with a TypeError for network failures (never for an HTTP error status). */
export function isNetworkError(e: unknown): boolean {
  if (e instanceof TypeError || (e instanceof Error && e.name === 'NetworkError')) return true;
  // the page's coded error for a request that got no answer (an XHR's onerror)
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === 'NETWORK_ERROR';
}

/** An HTTP status outside 2xx: of an answer (a Response, `{ status }`) or of an error thrown for one. */
export function isHttpFailure(x: unknown): boolean {
  const status = typeof x === 'object' && x !== null ? (x as { status?: unknown }).status : undefined;
  return typeof status === 'number' && status >= 100 && status <= 599 && (status < 200 || status > 299);
}

/**
 * `attempt(url)`, and when the relay is another URL and that fails at the network level or
 * answers non-2xx (returned or thrown with its `status`), `attempt(relayUrl)`. Anything else (an
 * abort, an error of the page's own) is passed on as it is.
 */
export async function withRelayFallback<T>(
  grant: TransferGrantUrls,
  attempt: (url: string) => Promise<T>,
): Promise<T> {
  let direct: T;
  try {
    direct = await attempt(grant.url);
  } catch (e) {
    if (grant.url === grant.relayUrl || !(isNetworkError(e) || isHttpFailure(e))) throw e;
    return attempt(grant.relayUrl);
  }
  if (grant.url !== grant.relayUrl && isHttpFailure(direct)) return attempt(grant.relayUrl);
  return direct;
}

/** `<base>/transfers/<ticket>` → `<base>/health` (the Agent's route without a key). */
export function healthUrlOf(directUrl: string): string | null {
  const i = directUrl.lastIndexOf('/transfers/');
  return i < 0 ? null : `${directUrl.slice(0, i)}/health`;
}

/**
 * Whether the Agent behind a direct URL answers at all, without using the ticket: a no-cors GET
 * of its `/health` resolves (opaquely) when anything answers and rejects on a network failure.
 */
export async function reachable(directUrl: string, timeoutMs = 3000): Promise<boolean> {
  const health = healthUrlOf(directUrl);
  if (!health) return false;
  try {
    await fetch(health, { mode: 'no-cors', cache: 'no-store', signal: AbortSignal.timeout(timeoutMs) });
    return true;
  } catch {
    return false;
  }
}

/**
 * The URL a browser download (a link click, streamed to disk by the browser, never held by the
 * page) should use: `url` when it is the relay or its Agent answers, else `relayUrl`.
 */
export async function downloadUrlOf(grant: TransferGrantUrls): Promise<string> {
  if (grant.url === grant.relayUrl) return grant.url;
  return (await reachable(grant.url)) ? grant.url : grant.relayUrl;
}

/** Starts the browser's own download of a grant (direct when reachable, else relayed). */
export async function startDownload(grant: TransferGrantUrls, name: string): Promise<void> {
  const a = document.createElement('a');
  a.href = await downloadUrlOf(grant);
  a.download = name;
  a.rel = 'noopener';
  document.body.appendChild(a);
  a.click();
  a.remove();
}
