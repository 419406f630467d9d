/**
 * Relayed file transfers (issue 10): the browser talks to the Panel (`/api/transfers/<ticket>`),
 * the Agent dials out to the Panel (`/api/agent/transfers/<ticket>`), and the Panel pipes one into
 * the other with backpressure, holding no more than the sockets' buffers. Tickets are the Agent's
 * (single use, short-lived); the Panel keeps which node each belongs to, in memory, and lets each
 * be used once.
 */
import type { IncomingMessage } from 'node:http';
import { type Readable, Transform } from 'node:stream';
import { CodedError, ErrorCode } from '@cap/protocol';
import type { AgentGateway } from '../../relay/agent-gateway.ts';

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
  /** a backup in object storage: the Panel streams this key from S3 (no Agent involved) */
  s3Key?: string;
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
  /** upload: the body (a browser's request, an object store's stream), for the Agent's GET */
  body?: Readable;
  size: number | null;
  /** upload: the Agent's result (`{ ok, path, size }` or `{ ok: false, code, message }`) */
  onResult?: (result: unknown) => void;
}

export class TransferRelay {
  readonly #tickets = new Map<string, RelayTicket>();
  readonly #waiting = new Map<string, Waiting>();
  #uploadedBytes = 0;

  /** Bytes this Panel relayed to Agents (relayed uploads: files, S3 restores, transfers) since it started. */
  get uploadedBytes(): number {
    return this.#uploadedBytes;
  }

  /** `body` as an Agent reads it through the relay, its bytes counted (backpressure kept). */
  counted(body: Readable): Readable {
    const count = new Transform({
      transform: (chunk: Buffer, _enc, cb) => {
        this.#uploadedBytes += chunk.length;
        cb(null, chunk);
      },
    });
    body.once('error', (e) => count.destroy(e));
    count.once('close', () => {
      if (!body.readableEnded) body.destroy();
    });
    return body.pipe(count);
  }

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

/** What the Panel-side helpers need: the relay the Agent routes use, and the gateway. */
export interface RelayDeps {
  transfers: TransferRelay;
  gateway: AgentGateway;
}

/**
 * Pulls a download ticket's bytes from the Agent as a stream, inside the Panel (a backup going
 * to object storage): the Agent is told to dial in (relay_transfer) and POSTs the bytes to
 * `/api/agent/transfers/<ticket>`; its request body is handed over with backpressure. Call
 * `done()` once the stream was consumed (or given up): the Agent's request is answered then.
 */
export async function pullFromAgent(
  d: RelayDeps,
  t: { nodeId: string; serverId: string; ticket: string; size: number },
): Promise<{ stream: IncomingMessage; size: number; done: (err?: Error) => void }> {
  let release: () => void = () => undefined;
  const consumed = new Promise<void>((resolve) => {
    release = resolve;
  });
  const stream = await new Promise<IncomingMessage>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new CodedError('TIMEOUT', 'the Agent did not send the backup')),
      AGENT_DIAL_TIMEOUT_MS,
    );
    d.transfers.wait(t.ticket, {
      nodeId: t.nodeId,
      direction: 'download',
      size: t.size,
      onBody: (body) => {
        clearTimeout(timer);
        resolve(body);
        return consumed;
      },
    });
    d.gateway
      .request(t.nodeId, 'relay_transfer', { ticket: t.ticket }, { serverId: t.serverId })
      .catch((e) => {
        clearTimeout(timer);
        reject(e);
      });
  }).catch((e) => {
    d.transfers.finish(t.ticket);
    throw e;
  });
  return {
    stream,
    size: t.size,
    done: (err) => {
      if (err && !stream.complete) stream.destroy(err);
      release();
    },
  };
}

/**
 * Pushes a stream to an upload ticket of the Agent's (a backup coming back from object storage):
 * the Agent dials in and GETs `/api/agent/transfers/<ticket>`, reading `body` with backpressure,
 * then posts its result. Resolves with the result's `{ path, size }`, or rejects with its code.
 */
export async function pushToAgent(
  d: RelayDeps,
  t: { nodeId: string; serverId: string; ticket: string; size: number },
  body: Readable,
): Promise<{ path: string; size: number }> {
  const result = await new Promise<unknown>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new CodedError('TIMEOUT', 'the Agent did not take the upload')),
      AGENT_DIAL_TIMEOUT_MS,
    );
    body.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    d.transfers.wait(t.ticket, {
      nodeId: t.nodeId,
      direction: 'upload',
      size: t.size,
      body,
      onDial: () => clearTimeout(timer),
      onResult: resolve,
    });
    d.gateway
      .request(t.nodeId, 'relay_transfer', { ticket: t.ticket }, { serverId: t.serverId })
      .catch((e) => {
        clearTimeout(timer);
        reject(e);
      });
  }).finally(() => d.transfers.finish(t.ticket));
  const r = result as { ok?: unknown; path?: unknown; size?: unknown; code?: unknown; message?: unknown };
  if (r?.ok === true && typeof r.path === 'string' && typeof r.size === 'number')
    return { path: r.path, size: r.size };
  if (r?.ok === false && typeof r.code === 'string' && typeof r.message === 'string') {
    const parsed = ErrorCode.safeParse(r.code);
    throw new CodedError(parsed.success ? parsed.data : 'INTERNAL_ERROR', r.message.slice(0, 4096));
  }
  throw new CodedError('INTERNAL_ERROR', 'the Agent sent no result');
}
