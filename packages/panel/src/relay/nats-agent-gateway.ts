/**
 * The Agent gateway across Panel replicas (issue 15 item 1): an Agent links to one replica (the
 * load balancer picks it), and a command for its node from any replica reaches that one over
 * NATS request/reply.
 *
 * Subjects, under the bus prefix `<p>`:
 * - `<p>.agent.req.<nodeId>`: the replica holding the node's link subscribes while it holds it
 *   and answers each request with the Agent's response (or the hub's error code). A request no
 *   replica subscribes to fails at once with AGENT_OFFLINE (NATS' "no responders").
 * - `<p>.agent.presence`: every replica, every `heartbeatMs`, lists the nodes it holds; a node
 *   counts as online elsewhere while the last list naming it is younger than `presenceTtlMs`, so
 *   a replica killed with `kill -9` (no offline event) stops counting after a few seconds.
 * - `<p>.agent.claim`: a replica that takes a node's link says so, with when it took it. A replica
 *   holding an older link of that node (the Agent reconnected elsewhere before this one noticed)
 *   closes its own: the newest link wins.
 * - `<p>.agent.release`: a replica that lost a link (a real disconnect) says so at once.
 * - `<p>.agent.disconnect`: "close node N's link" (a removed node), for whoever holds it.
 *
 * What arrives from NATS is untrusted: too large, not JSON, not an object, own properties of the
 * wrong type are dropped and counted (`stats.dropped`). The request path only runs actions the
 * protocol knows; the Agent validates the payload as it does for a local command.
 *
 * Operation ends (`operation_completed`) arrive where the Agent is linked, are closed there in
 * the shared database and published on the bus; whoever waits for one on another replica hears
 * it through the bus (OperationsService listens `everywhere`).
 *
 * A replica cut off from NATS only (it keeps PostgreSQL: its registry beats go on, it does not
 * fence, /readyz stays 200, so its Agents stay linked to it): through it, its Agents' commands run
 * as before (its own hub). From the other replicas: for the first `presenceTtlMs` a request is
 * still sent (the broker keeps the cut replica's subscription until its own pings fail) and,
 * black-holed, waits out the command timeout (PANEL_COMMAND_TIMEOUT_MS, then TIMEOUT; never run:
 * it never reached the holder; one the Agent had already answered when the cut came ends the
 * same, though it ran: the usual ambiguity of a timeout); after that the node counts offline
 * there (its presence lists stop) and a command is refused at once with AGENT_OFFLINE (a refused
 * command never runs). test/faults/nats-cut-one.int.test.ts shows it. No link is moved and nothing is failed
 * over for it as long as a server's failover `afterSeconds` is longer than the Agents' ping
 * interval: failover counts a node's outage from its last heartbeat in the database
 * (`nodes.last_heartbeat_at`, which the cut replica keeps writing at each Agent pong,
 * PANEL_AGENT_PING_MS), so a leader that no longer hears the node's presence does not start one
 * while the holder still writes its beats. At the defaults (ping 30 s, PANEL_FAILOVER_MIN_SECONDS
 * 30) a server set to the minimum can be failed over in the moment before the next pong is
 * written: keep `afterSeconds` above the ping interval. The cut replica's events (console,
 * status) wait in its NATS client's buffer and reach the others when the broker is back.
 */
import { type Action, Action as ActionEnum, type ActionPayload, CodedError, ErrorCode } from '@cap/protocol';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { RequestError, TimeoutError } from '@nats-io/transport-node';
import { own, type WireObject, wireObject } from '../lib/wire.ts';
import type { AgentGateway, AgentRequestOptions } from './agent-gateway.ts';
import type { AgentHub, LinkHealth } from './agent-hub.ts';

export interface NatsGatewayLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface NatsAgentGatewayOptions {
  nc: NatsConnection;
  /** this replica's id (unique per process) */
  replicaId: string;
  prefix?: string;
  hub: () => AgentHub;
  log: NatsGatewayLogger;
  /** the Panel's command timeout (a request without its own) */
  commandTimeoutMs: number;
  /** how often this replica lists the nodes it holds (default 1 s) */
  heartbeatMs?: number;
  /** a node listed by another replica counts as online this long after its last list (default 3 × heartbeat) */
  presenceTtlMs?: number;
  /** larger messages are neither sent nor accepted (default: the broker's max_payload) */
  maxBytes?: number;
}

export interface NatsGatewayStats {
  /** messages from NATS refused (too large, not JSON, wrong shape) */
  dropped: number;
  /** requests sent to another replica */
  forwarded: number;
  /** requests from other replicas answered here */
  served: number;
  /** links closed here because another replica took a newer one */
  replaced: number;
}

/** node ids in one presence message (far below any payload limit) */
const PRESENCE_PAGE = 500;
/** extra time the requester waits past the holder's own timeout (the holder answers TIMEOUT first) */
const REPLY_MARGIN_MS = 2000;
const MAX_TIMEOUT_MS = 24 * 3600 * 1000;
const NODE_ID = /^[A-Za-z0-9_-]{1,128}$/;
const ACTIONS: ReadonlySet<string> = new Set(ActionEnum.options);
const CODES: ReadonlySet<string> = new Set(ErrorCode.options);

interface Presence {
  replica: string;
  /** when we last heard the replica name it (ms, our clock) */
  seenAt: number;
  /** when the replica took the link (ms, its clock): the newest claim wins */
  since: number;
}

type Obj = WireObject;

export class NatsAgentGateway implements AgentGateway {
  readonly #nc: NatsConnection;
  readonly #replica: string;
  readonly #prefix: string;
  readonly #hub: () => AgentHub;
  readonly #log: NatsGatewayLogger;
  readonly #timeoutMs: number;
  readonly #heartbeatMs: number;
  readonly #ttlMs: number;
  readonly #maxBytes: number;
  readonly #encoder = new TextEncoder();
  /** nodes other replicas hold, as they last said */
  readonly #presence = new Map<string, Presence>();
  /** request subscriptions of the nodes held here */
  readonly #serving = new Map<string, Subscription>();
  readonly #subs: Subscription[] = [];
  #timer: NodeJS.Timeout | undefined;
  readonly stats: NatsGatewayStats = { dropped: 0, forwarded: 0, served: 0, replaced: 0 };

  constructor(opts: NatsAgentGatewayOptions) {
    this.#nc = opts.nc;
    this.#replica = opts.replicaId;
    this.#prefix = opts.prefix ?? 'cap';
    this.#hub = opts.hub;
    this.#log = opts.log;
    this.#timeoutMs = opts.commandTimeoutMs;
    this.#heartbeatMs = opts.heartbeatMs ?? 1000;
    this.#ttlMs = opts.presenceTtlMs ?? 3 * this.#heartbeatMs;
    this.#maxBytes = opts.maxBytes ?? opts.nc.info?.max_payload ?? 1024 * 1024;
  }

  get replicaId(): string {
    return this.#replica;
  }

  #subject(kind: string): string {
    return `${this.#prefix}.agent.${kind}`;
  }

  /** Subscribes to the other replicas' presence, claims and disconnects; starts the heartbeat. */
  start(): void {
    this.#subs.push(
      this.#nc.subscribe(this.#subject('presence'), { callback: (_e, m) => this.#onPresence(m) }),
      this.#nc.subscribe(this.#subject('claim'), { callback: (_e, m) => this.#onClaim(m) }),
      this.#nc.subscribe(this.#subject('release'), { callback: (_e, m) => this.#onRelease(m) }),
      this.#nc.subscribe(this.#subject('disconnect'), { callback: (_e, m) => this.#onDisconnect(m) }),
    );
    this.#timer = setInterval(() => this.#heartbeat(), this.#heartbeatMs);
    this.#timer.unref();
    this.#heartbeat();
  }

  close(): void {
    clearInterval(this.#timer);
    for (const s of this.#subs) s.unsubscribe();
    this.#subs.length = 0;
    for (const s of this.#serving.values()) s.unsubscribe();
    this.#serving.clear();
  }

  // --- this replica's links -------------------------------------------------------------------

  /** The hub took the node's link: serve its requests here and tell the others (newest wins). */
  linked(nodeId: string): void {
    if (!NODE_ID.test(nodeId)) return;
    this.#presence.delete(nodeId);
    if (!this.#serving.has(nodeId)) {
      this.#serving.set(
        nodeId,
        this.#nc.subscribe(this.#subject(`req.${nodeId}`), {
          callback: (_e, m) => void this.#serve(nodeId, m),
        }),
      );
    }
    const since = this.#hub().linkedSince(nodeId) ?? Date.now();
    this.#send(this.#subject('claim'), { replica: this.#replica, nodeId, since });
  }

  /** The hub lost the node's link (or gave it to a newer one elsewhere): stop serving it. */
  unlinked(nodeId: string, moved = false): void {
    this.#serving.get(nodeId)?.unsubscribe();
    this.#serving.delete(nodeId);
    if (!moved) this.#send(this.#subject('release'), { replica: this.#replica, nodeId });
  }

  // --- AgentGateway ---------------------------------------------------------------------------

  async request<A extends Action>(
    nodeId: string,
    action: A,
    payload: ActionPayload<A>,
    opts: AgentRequestOptions = {},
  ): Promise<unknown> {
    const hub = this.#hub();
    if (hub.isOnline(nodeId)) return hub.request(nodeId, action, payload, opts);
    if (!this.#remote(nodeId) || !NODE_ID.test(nodeId))
      throw new CodedError('AGENT_OFFLINE', 'the node is offline');
    const timeoutMs = opts.timeoutMs ?? this.#timeoutMs;
    const data = this.#encoder.encode(
      JSON.stringify({
        action,
        payload,
        timeoutMs,
        ...(opts.serverId ? { serverId: opts.serverId } : {}),
        ...(opts.id ? { id: opts.id } : {}),
        ...(opts.operationId ? { operationId: opts.operationId } : {}),
      }),
    );
    if (data.byteLength > this.#maxBytes) {
      throw new CodedError(
        'MESSAGE_TOO_LARGE',
        `the command is ${data.byteLength} bytes; the broker takes at most ${this.#maxBytes} between replicas`,
      );
    }
    this.stats.forwarded++;
    let reply: Msg;
    try {
      reply = await this.#nc.request(this.#subject(`req.${nodeId}`), data, {
        timeout: timeoutMs + REPLY_MARGIN_MS,
      });
    } catch (e) {
      if (e instanceof RequestError && e.isNoResponders()) {
        this.#presence.delete(nodeId);
        throw new CodedError('AGENT_OFFLINE', 'the node is offline');
      }
      if (e instanceof TimeoutError || (e instanceof Error && e.name === 'TimeoutError'))
        throw new CodedError('TIMEOUT', `the agent did not answer ${action} in time`);
      throw new CodedError(
        'AGENT_OFFLINE',
        `the replica holding the node is unreachable: ${(e as Error).message}`,
      );
    }
    const answer = this.#decode(reply.data);
    if (!answer) throw new CodedError('INTERNAL_ERROR', 'the replica holding the node answered garbage');
    if (own(answer, 'ok') === true) return own(answer, 'data');
    const code = own(answer, 'code');
    const message = own(answer, 'message');
    throw new CodedError(
      typeof code === 'string' && CODES.has(code) ? (code as ErrorCode) : 'INTERNAL_ERROR',
      typeof message === 'string' ? message.slice(0, 4096) : 'agent error',
    );
  }

  isOnline(nodeId: string): boolean {
    return this.#hub().isOnline(nodeId) || this.#remote(nodeId);
  }

  disconnect(nodeId: string, reason: string): void {
    this.#hub().disconnect(nodeId, reason);
    this.#presence.delete(nodeId);
    this.#send(this.#subject('disconnect'), { nodeId, reason: reason.slice(0, 256) });
  }

  /** The link's health where it is held here; null elsewhere (it lives with the socket). */
  health(nodeId: string): LinkHealth | null {
    return this.#hub().health(nodeId);
  }

  /** Which replica holds the node's link (this one's id, another's, or null). */
  holderOf(nodeId: string): string | null {
    if (this.#hub().isOnline(nodeId)) return this.#replica;
    return this.#remote(nodeId) ? (this.#presence.get(nodeId)?.replica ?? null) : null;
  }

  #remote(nodeId: string): boolean {
    const p = this.#presence.get(nodeId);
    return p !== undefined && Date.now() - p.seenAt < this.#ttlMs;
  }

  // --- NATS -----------------------------------------------------------------------------------

  #send(subject: string, body: object): void {
    try {
      this.#nc.publish(subject, this.#encoder.encode(JSON.stringify(body)));
    } catch (err) {
      this.#log.warn({ subject, err: (err as Error).message }, 'gateway message not sent');
    }
  }

  #decode(data: Uint8Array): Obj | null {
    return wireObject(data, this.#maxBytes);
  }

  #heartbeat(): void {
    const nodes = this.#hub().linkedNodes();
    for (let i = 0; i === 0 || i < nodes.length; i += PRESENCE_PAGE) {
      this.#send(this.#subject('presence'), {
        replica: this.#replica,
        nodes: nodes.slice(i, i + PRESENCE_PAGE),
      });
    }
    // forget what went stale (bounded memory with nodes coming and going)
    const now = Date.now();
    for (const [id, p] of this.#presence) if (now - p.seenAt >= this.#ttlMs) this.#presence.delete(id);
  }

  #onPresence(m: Msg): void {
    const body = this.#decode(m.data);
    const replica = body ? own(body, 'replica') : undefined;
    const nodes = body ? own(body, 'nodes') : undefined;
    if (typeof replica !== 'string' || !Array.isArray(nodes) || nodes.length > PRESENCE_PAGE) {
      this.stats.dropped++;
      return;
    }
    if (replica === this.#replica) return;
    const now = Date.now();
    const hub = this.#hub();
    for (const id of nodes) {
      if (typeof id !== 'string' || !NODE_ID.test(id) || hub.isOnline(id)) continue;
      const p = this.#presence.get(id);
      // a heartbeat keeps the holder it names; another replica's older claim does not take over
      if (p && p.replica !== replica && now - p.seenAt < this.#ttlMs) continue;
      this.#presence.set(id, { replica, seenAt: now, since: p?.replica === replica ? p.since : 0 });
    }
  }

  #onClaim(m: Msg): void {
    const body = this.#decode(m.data);
    const replica = body ? own(body, 'replica') : undefined;
    const nodeId = body ? own(body, 'nodeId') : undefined;
    const since = body ? own(body, 'since') : undefined;
    if (
      typeof replica !== 'string' ||
      typeof nodeId !== 'string' ||
      !NODE_ID.test(nodeId) ||
      typeof since !== 'number' ||
      !Number.isFinite(since)
    ) {
      this.stats.dropped++;
      return;
    }
    if (replica === this.#replica) return;
    const hub = this.#hub();
    const mine = hub.linkedSince(nodeId);
    if (mine !== undefined) {
      // ties go to the larger replica id, so both sides agree
      if (mine > since || (mine === since && this.#replica > replica)) {
        // ours is newer: say so again, the other replica closes its link
        this.#send(this.#subject('claim'), { replica: this.#replica, nodeId, since: mine });
        return;
      }
      this.stats.replaced++;
      this.#log.info({ nodeId, holder: replica }, 'a newer link of the node is held by another replica');
      hub.release(nodeId, 'replaced by a newer connection on another Panel replica');
    }
    this.#presence.set(nodeId, { replica, seenAt: Date.now(), since });
  }

  #onRelease(m: Msg): void {
    const body = this.#decode(m.data);
    const replica = body ? own(body, 'replica') : undefined;
    const nodeId = body ? own(body, 'nodeId') : undefined;
    if (typeof replica !== 'string' || typeof nodeId !== 'string') {
      this.stats.dropped++;
      return;
    }
    if (this.#presence.get(nodeId)?.replica === replica) this.#presence.delete(nodeId);
  }

  #onDisconnect(m: Msg): void {
    const body = this.#decode(m.data);
    const nodeId = body ? own(body, 'nodeId') : undefined;
    const reason = body ? own(body, 'reason') : undefined;
    if (typeof nodeId !== 'string' || typeof reason !== 'string') {
      this.stats.dropped++;
      return;
    }
    this.#presence.delete(nodeId);
    this.#hub().disconnect(nodeId, reason.slice(0, 256));
  }

  async #serve(nodeId: string, m: Msg): Promise<void> {
    const answer = (body: object) => {
      let data = this.#encoder.encode(JSON.stringify(body));
      if (data.byteLength > this.#maxBytes) {
        data = this.#encoder.encode(
          JSON.stringify({
            ok: false,
            code: 'MESSAGE_TOO_LARGE',
            message: `the Agent's answer (${data.byteLength} bytes) is over the broker's ${this.#maxBytes}`,
          }),
        );
      }
      try {
        m.respond(data);
      } catch (err) {
        this.#log.warn({ nodeId, err: (err as Error).message }, 'gateway reply not sent');
      }
    };
    const body = this.#decode(m.data);
    const action = body ? own(body, 'action') : undefined;
    const timeoutMs = body ? own(body, 'timeoutMs') : undefined;
    const str = (k: string) => {
      const v = body ? own(body, k) : undefined;
      return typeof v === 'string' && v.length > 0 && v.length <= 256 ? v : undefined;
    };
    if (
      !body ||
      typeof action !== 'string' ||
      !ACTIONS.has(action) ||
      typeof timeoutMs !== 'number' ||
      !Number.isFinite(timeoutMs) ||
      timeoutMs < 1 ||
      timeoutMs > MAX_TIMEOUT_MS
    ) {
      this.stats.dropped++;
      answer({ ok: false, code: 'INVALID_MESSAGE', message: 'not a gateway request' });
      return;
    }
    this.stats.served++;
    const serverId = str('serverId');
    const id = str('id');
    const operationId = str('operationId');
    try {
      const data = await this.#hub().request(nodeId, action as Action, own(body, 'payload') as never, {
        timeoutMs,
        ...(serverId ? { serverId } : {}),
        ...(id ? { id } : {}),
        ...(operationId ? { operationId } : {}),
      });
      answer({ ok: true, data });
    } catch (e) {
      const code = e instanceof CodedError ? e.code : 'INTERNAL_ERROR';
      answer({ ok: false, code, message: (e as Error).message });
    }
  }
}
