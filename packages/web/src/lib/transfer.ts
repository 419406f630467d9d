/**
 * Transfer links (issue 10 item 2): every grant the Panel hands out (file transfers, backup
 * downloads) carries `url` — straight to the node's Agent when the node has a transfer URL, else
 * the Panel's relay — and `relayUrl`, always the relay. The page tries `url` and falls back to
 * `relayUrl` only when `url` fails at the network level (unreachable, refused, TLS, mixed content,
 * CORS): an HTTP error answer is the answer and is shown. The Agent's single-use ticket is used up
 * only by a request that reached it, so the relay can still use the same ticket.
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

/**
 * `attempt(url)`, and when it fails at the network level and the relay is another URL,
 * `attempt(relayUrl)`. Anything else (an HTTP error answer, an abort) is passed on as it is.
 */
export async function withRelayFallback<T>(
  grant: TransferGrantUrls,
  attempt: (url: string) => Promise<T>,
): Promise<T> {
  try {
    return await attempt(grant.url);
  } catch (e) {
    if (grant.url === grant.relayUrl || !isNetworkError(e)) throw e;
    return attempt(grant.relayUrl);
  }
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
