/**
 * Relayed file transfers (issue 10): the browser talks to the Panel (`/api/transfers/<ticket>`),
 * the Agent dials out to the Panel (`/api/agent/transfers/<ticket>`), and the Panel pipes one into
 * the other with backpressure, holding no more than the sockets' buffers. Tickets are the Agent's
 * (single use, short-lived); the Panel keeps which node each belongs to, in memory, and lets each
 * be used once.
 */
import type { IncomingMessage } from 'node:http';
import { CodedError } from '@cap/protocol';

export interface RelayTicket {
  nodeId: string;
  serverId: string;
  direction: 'upload' | 'download';
  /** null: a folder archived while it streams */
  size: number | null;
  name: string;
  expiresAt: number;
  /** a backup's download: its recorded sha256, sent as x-checksum-sha256 */
  sha256?: string;
}

/** How long the Panel waits for the Agent to dial in once it was told to. */
export const AGENT_DIAL_TIMEOUT_MS = 30_000;
const MAX_TICKETS = 1000;

interface Waiting {
  nodeId: string;
  direction: 'upload' | 'download';
  /** download: the Agent's request carrying the bytes arrived */
  onBody?: (agentReq: IncomingMessage) => Promise<void>;
  /** upload: the Agent dialled in (the dial timeout ends) */
  onDial?: () => void;
  /** upload: the browser's body, for the Agent's GET */
  body?: IncomingMessage;
  size: number | null;
  /** upload: the Agent's result (`{ ok, path, size }` or `{ ok: false, code, message }`) */
  onResult?: (result: unknown) => void;
}

export class TransferRelay {
  readonly #tickets = new Map<string, RelayTicket>();
  readonly #waiting = new Map<string, Waiting>();

  remember(ticket: string, t: RelayTicket): void {
    const now = Date.now();
    for (const [k, v] of this.#tickets) if (v.expiresAt <= now) this.#tickets.delete(k);
    if (this.#tickets.size >= MAX_TICKETS)
      throw new CodedError('RATE_LIMITED', 'too many transfers waiting; try again shortly');
    this.#tickets.set(ticket, t);
  }

  /** The ticket's grant, once: unknown, used or expired is NOT_FOUND. */
  take(ticket: string): RelayTicket {
    const t = this.#tickets.get(ticket);
    this.#tickets.delete(ticket);
    if (!t || t.expiresAt <= Date.now())
      throw new CodedError('NOT_FOUND', 'unknown, used or expired transfer ticket');
    return t;
  }

  wait(ticket: string, w: Waiting): () => void {
    this.#waiting.set(ticket, w);
    return () => {
      if (this.#waiting.get(ticket) === w) this.#waiting.delete(ticket);
    };
  }

  /** The Agent's side of a waiting transfer (only the node it belongs to). */
  arrive(ticket: string, nodeId: string): Waiting {
    const w = this.#waiting.get(ticket);
    if (!w || w.nodeId !== nodeId) throw new CodedError('NOT_FOUND', 'no transfer waits for this ticket');
    return w;
  }

  /** Gone once the Agent's part is done. */
  finish(ticket: string): void {
    this.#waiting.delete(ticket);
  }
}
