/**
 * The URLs of a transfer ticket (issue 10 item 2), for file transfers and backup downloads alike:
 * `url` goes straight to the node's Agent (`<transferUrl>/transfers/<ticket>`) when the node has a
 * transfer URL and its Agent is connected, else it is the Panel's relay; `relayUrl` is always the
 * relay, so a browser that cannot reach the Agent falls back to it (the Agent's ticket is only
 * used up by the request that reaches it).
 */
import type { RelayTicket, TransferRelay } from './relay.ts';

export interface TransferUrls {
  /** where the browser sends (PUT) or fetches (GET) the body first */
  url: string;
  /** the Panel's relay for the same ticket, always usable as the fallback */
  relayUrl: string;
}

/** The relay path of a ticket on the Panel. */
export const relayUrlOf = (ticket: string): string => `/api/transfers/${ticket}`;

/** The choice itself: direct when the node has a transfer URL and its Agent is online. */
export function transferUrlsOf(
  ticket: string,
  node: { transferUrl: string | null; online: boolean },
): TransferUrls {
  const relayUrl = relayUrlOf(ticket);
  if (!node.transferUrl || !node.online) return { url: relayUrl, relayUrl };
  return { url: `${node.transferUrl.replace(/\/+$/, '')}/transfers/${ticket}`, relayUrl };
}

export interface TransferLinkDeps {
  relay: TransferRelay;
  /** the node's transfer URL for browsers (null: none set, or its Agent serves no transfers) */
  transferUrlOf: (nodeId: string) => Promise<string | null>;
  /** whether the node's Agent is connected now */
  isOnline: (nodeId: string) => boolean;
}

export class TransferLinks {
  readonly #deps: TransferLinkDeps;
  constructor(deps: TransferLinkDeps) {
    this.#deps = deps;
  }

  /** Remembers the ticket for the relay (so the fallback works) and answers its URLs. */
  async issue(ticket: string, grant: RelayTicket): Promise<TransferUrls> {
    const transferUrl = await this.#deps.transferUrlOf(grant.nodeId);
    this.#deps.relay.remember(ticket, grant);
    return transferUrlsOf(ticket, { transferUrl, online: this.#deps.isOnline(grant.nodeId) });
  }
}
