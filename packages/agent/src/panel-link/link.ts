/**
 * The link to the Panel: registration, token refresh, one WebSocket with reconnect (exponential
 * backoff with jitter, capped at 4 s so a link is back within 5 s of the fault ending), heartbeats answered, dead links detected, and an outbox
 * so status changes made while the Panel is away arrive after the next `agent_hello`.
 */
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import type { Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AGENT_ID_HEADER,
  type AgentCredentials,
  bytesToSize,
  CodedError,
  type EventData,
  type EventMessage,
  errorResponse,
  event,
  type PongMessage,
  PROTOCOL_VERSION,
  PROTOCOL_VERSION_HEADER,
  parseAgentInbound,
  RegisterResponse,
  type ResponseMessage,
} from '@cap/protocol';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import { type AgentConfig, isLoopbackUrl, isPlainUrl } from '../config/config.ts';
import { dockerArch } from '../system/system-info.ts';
import { CredentialStore } from './credentials.ts';
import { Outbox } from './outbox.ts';
import { TokenBucket } from './rate-limit.ts';
import { PinnedAgent, panelAgent, postJson } from './transport.ts';

export const BACKOFF_BASE_MS = 500;
/** 4 s: the goal is a link back ≤ 5 s after a fault ends (a Panel restart, a partition);
 * between 2 and 4 s per attempt, 1,000 Agents retry at 250–500 connects/s, each refused cheaply. */
export const BACKOFF_CAP_MS = 4_000;
const STABLE_LINK_MS = 10_000;

/** A Panel of another protocol version: retrying soon cannot help, only an upgrade; 30–60 s. */
export const INCOMPATIBLE_RETRY_MS = 60_000;
export function incompatibleDelay(random = Math.random): number {
  return Math.round(INCOMPATIBLE_RETRY_MS / 2 + (random() * INCOMPATIBLE_RETRY_MS) / 2);
}

/** Full-jitter-ish backoff: between half and all of base·2^attempt, capped. */
export function backoffDelay(attempt: number, random = Math.random): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempt, 16));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export function panelHttpBase(panelUrl: string): string {
  const u = new URL(panelUrl);
  if (u.protocol === 'ws:') u.protocol = 'http:';
  if (u.protocol === 'wss:') u.protocol = 'https:';
  return u.toString().replace(/\/+$/, '');
}

export function websocketUrlFor(panelUrl: string, websocketUrl: string): string {
  const base = new URL(panelUrl);
  if (base.protocol === 'http:') base.protocol = 'ws:';
  if (base.protocol === 'https:') base.protocol = 'wss:';
  const u = new URL(websocketUrl, base);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  if (u.protocol === 'https:') u.protocol = 'wss:';
  return u.toString();
}

export interface LinkHooks {
  onCommand: (raw: unknown) => Promise<ResponseMessage>;
  hello: () => EventData<'agent_hello'>;
  pong: () => Promise<PongMessage['data']>;
  registration: () => Promise<{ port: number; dockerVersion: string }>;
  /** after each (re)connection, once agent_hello and the outbox went out (players are sent again) */
  onReady?: () => void;
}

type Outgoing = EventMessage | ResponseMessage;

interface CloseInfo {
  opened: boolean;
  lastedMs: number;
  unauthorized: boolean;
  code: number;
  reason: string;
  error?: string;
  /** the error's code when it has one (TLS_PIN_MISMATCH, CONFIG_INVALID) */
  errorCode?: string;
  url: string;
}

/** console text kept after sending until the Panel acks it, to send again after a reconnect (see #recent) */
export const RECENT_CHARS = 1024 * 1024;
/** operation ends kept after sending until the Panel acks them, to send again after a reconnect (see #ends) */
export const KEPT_ENDS = 1000;
/** the same with a Panel that never acks ends (an older release: its pings carry no `operationAcks`) */
export const KEPT_ENDS_UNACKED = 100;

type Resent = EventMessage<'server_log'> | EventMessage<'operation_completed'>;

export class PanelLink {
  readonly #config: AgentConfig;
  readonly #log: Logger;
  readonly #hooks: LinkHooks;
  readonly #store: CredentialStore;
  readonly #outbox = new Outbox();
  /**
   * Console messages sent on the current connection and not yet acked by the Panel (the pings'
   * `consoleAcks`; RECENT_CHARS of text at most): when the link ends, however it ends, some of
   * them may sit in a socket nobody reads or in a Panel that died before handling them, so they
   * are queued again; the replica that gets them skips those it had by their numbers (LinkSeq,
   * the shared console marks).
   */
  #recent: { msg: EventMessage<'server_log'>; chars: number; order: number }[] = [];
  #recentChars = 0;
  /**
   * Operation ends sent on the current connection and not yet acked (the pings' `operationAcks`:
   * the Panel stored them), by operation id: like console lines, an end may sit unread in a dead
   * socket or in a Panel killed before it stored it, so when the link ends they are queued again
   * (the Panel closes an operation once: an end it had is a no-op). At most KEPT_ENDS (the oldest
   * give way, logged and counted in `endsEvicted`); KEPT_ENDS_UNACKED once the link's first ping
   * showed a Panel that never acks them. Steps (`operation_progress`) are not kept: the next step
   * or the end supersedes one, and the hello lists what still runs.
   */
  readonly #ends = new Map<string, { msg: EventMessage<'operation_completed'>; order: number }>();
  /** the order in which console lines and ends went out (they are queued again in it) */
  #order = 0;
  /** this link's Panel acks ends: true once a ping carried `operationAcks`, false once one did not */
  #endsAcked: boolean | undefined;
  /** ends forgotten before the Panel acked them (over the cap; logged); tests and /metrics read it */
  endsEvicted = 0;
  /** an older Panel's evictions are logged once per link */
  #endsUnackedLogged = false;
  /** AGENT_PANEL_CERT_SHA256: the only certificate the Panel may present */
  readonly #pinned: PinnedAgent | undefined;
  #creds: AgentCredentials | null = null;
  #ws: WebSocket | null = null;
  #ready = false;
  #stopped = false;
  #attempt = 0;
  #sleepTimer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;
  #refreshTimer: NodeJS.Timeout | undefined;
  #loop: Promise<void> | undefined;
  /** a refresh started by the timer, awaited by stop() so nothing writes after it */
  #refreshing: Promise<void> | undefined;
  /** how many (re)connections reached agent_hello; tests and /health read it */
  connections = 0;

  constructor(config: AgentConfig, logger: Logger, hooks: LinkHooks) {
    this.#config = config;
    this.#log = logger.child({ component: 'panel-link' });
    this.#hooks = hooks;
    this.#store = new CredentialStore(config.dataDir, config.panelUrl, config.nodeId);
    this.#pinned = config.panelCertSha256 ? new PinnedAgent(config.panelCertSha256) : undefined;
  }

  get connected(): boolean {
    return this.#ready;
  }

  /** The current Panel token (for the link only; the HTTP API does not accept it). */
  get token(): string | null {
    return this.#creds?.token ?? null;
  }

  get agentId(): string | null {
    return this.#creds?.id ?? null;
  }

  /**
   * One HTTP request to the Panel (a path on PANEL_URL, never a host the Panel names) with the
   * link's credentials and the same TLS rules (pin, no plain http off loopback unless allowed):
   * relayed file transfers, whose bytes stream through it with backpressure.
   */
  dial(
    method: 'GET' | 'POST',
    pathname: string,
    body?: { stream: Readable; size: number | null },
  ): Promise<http.IncomingMessage> {
    const creds = this.#creds;
    if (!creds) return Promise.reject(new CodedError('AGENT_OFFLINE', 'not registered with the Panel'));
    const base = new URL(this.#config.panelUrl);
    if (base.protocol === 'ws:') base.protocol = 'http:';
    if (base.protocol === 'wss:') base.protocol = 'https:';
    const u = new URL(pathname, base);
    if (u.origin !== base.origin) return Promise.reject(new CodedError('CONFIG_INVALID', 'not a Panel path'));
    if (isPlainUrl(u.toString()) && !isLoopbackUrl(u.toString()) && !this.#config.allowInsecure)
      return Promise.reject(new CodedError('CONFIG_INVALID', `refusing the unencrypted ${u.origin}`));
    const agent = panelAgent(u.toString(), this.#pinned);
    const request = u.protocol === 'https:' ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const req = request(u, {
        method,
        ...(agent ? { agent } : {}),
        headers: {
          authorization: `Bearer ${creds.token}`,
          [AGENT_ID_HEADER]: creds.id,
          // a size not known in advance (a folder archived while it streams): chunked
          ...(body ? { 'content-type': 'application/octet-stream' } : {}),
          ...(body && body.size !== null ? { 'content-length': String(body.size) } : {}),
        },
      });
      req.once('response', resolve);
      req.once('error', reject);
      if (body) pipeline(body.stream, req).catch((e) => req.destroy(e as Error));
      else req.end();
    });
  }

  /**
   * An upgraded connection to the Panel (`GET <pathname>` with `Upgrade: <protocol>`, the link's
   * credentials, the same URL and TLS rules as dial()): once the Panel answers 101 the socket is
   * a raw byte pipe (the Docker Engine API relay). Anything but 101 rejects.
   */
  dialUpgrade(pathname: string, protocol: string, timeoutMs = 15_000): Promise<Duplex> {
    const creds = this.#creds;
    if (!creds) return Promise.reject(new CodedError('AGENT_OFFLINE', 'not registered with the Panel'));
    const base = new URL(this.#config.panelUrl);
    if (base.protocol === 'ws:') base.protocol = 'http:';
    if (base.protocol === 'wss:') base.protocol = 'https:';
    const u = new URL(pathname, base);
    if (u.origin !== base.origin) return Promise.reject(new CodedError('CONFIG_INVALID', 'not a Panel path'));
    if (isPlainUrl(u.toString()) && !isLoopbackUrl(u.toString()) && !this.#config.allowInsecure)
      return Promise.reject(new CodedError('CONFIG_INVALID', `refusing the unencrypted ${u.origin}`));
    const agent = panelAgent(u.toString(), this.#pinned);
    const request = u.protocol === 'https:' ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const req = request(u, {
        method: 'GET',
        ...(agent ? { agent } : {}),
        timeout: timeoutMs,
        headers: {
          authorization: `Bearer ${creds.token}`,
          [AGENT_ID_HEADER]: creds.id,
          connection: 'Upgrade',
          upgrade: protocol,
        },
      });
      req.once('upgrade', (res, socket, head) => {
        req.setTimeout(0);
        socket.setTimeout(0);
        if (head.length > 0) socket.unshift(head);
        res.resume();
        resolve(socket);
      });
      req.once('response', (res) => {
        res.resume();
        reject(new CodedError('INTERNAL_ERROR', `the Panel answered ${res.statusCode} to the upgrade`));
      });
      req.once('timeout', () =>
        req.destroy(new CodedError('TIMEOUT', 'the Panel did not answer the upgrade')),
      );
      req.once('error', reject);
      req.end();
    });
  }

  start(): void {
    this.#loop = this.#run().catch((e) => this.#log.fatal({ err: e }, 'panel link loop died'));
  }

  /** Closes the link cleanly (1000). Game servers are not touched. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#refreshTimer);
    clearTimeout(this.#sleepTimer);
    this.#wake?.();
    const ws = this.#ws;
    if (ws && ws.readyState === WebSocket.OPEN) ws.close(1000, 'agent shutting down');
    else ws?.terminate();
    await this.#loop;
    await this.#refreshing;
  }

  /**
   * Sends now, or holds for the next connection (see Outbox for what is kept). A message over
   * the link's size limit is never sent nor held: an answer is replaced by a MESSAGE_TOO_LARGE
   * error for the same id, an event is dropped with a warning. The link is never torn down.
   */
  send(msg: Outgoing): void {
    let text = JSON.stringify(msg);
    const max = this.#config.linkMaxMessageBytes;
    // a UTF-16 unit is at most 3 bytes of UTF-8: short strings need no counting
    if (text.length * 3 > max && Buffer.byteLength(text) > max) {
      const bytes = Buffer.byteLength(text);
      if (msg.type !== 'response') {
        this.#log.warn(
          { code: 'MESSAGE_TOO_LARGE', event: msg.event, bytes, max },
          'event over the link size limit dropped',
        );
        return;
      }
      this.#log.warn(
        { code: 'MESSAGE_TOO_LARGE', id: msg.id, bytes, max },
        'answer over the link size limit refused',
      );
      msg = {
        ...errorResponse(
          msg.id,
          'MESSAGE_TOO_LARGE',
          `the answer (${bytes} bytes) is over the link's ${max}-byte limit`,
        ),
        ...(msg.agentId ? { agentId: msg.agentId } : {}),
        ...(msg.serverId ? { serverId: msg.serverId } : {}),
      };
      text = JSON.stringify(msg);
    }
    const ws = this.#ws;
    if (this.#ready && ws && ws.readyState === WebSocket.OPEN) {
      ws.send(text);
      this.#sent(msg);
      return;
    }
    this.#outbox.hold(msg);
  }

  /** What went out on the live link and must go again if the Panel never acks it. */
  #sent(msg: Outgoing): void {
    if (msg.type !== 'event') return;
    if (msg.event === 'server_log') this.#remember(msg as EventMessage<'server_log'>);
    else if (msg.event === 'operation_completed') this.#keepEnd(msg as EventMessage<'operation_completed'>);
  }

  #keepEnd(msg: EventMessage<'operation_completed'>): void {
    const id = msg.data.operationId;
    this.#ends.delete(id);
    this.#ends.set(id, { msg, order: this.#order++ });
    this.#fitEnds();
  }

  /** Over the cap the oldest end gives way: counted and logged (an older Panel: once per link). */
  #fitEnds(): void {
    const cap = this.#endsAcked === false ? KEPT_ENDS_UNACKED : KEPT_ENDS;
    let evicted = 0;
    let last: EventMessage<'operation_completed'>['data'] | undefined;
    for (const [id, e] of this.#ends) {
      if (this.#ends.size <= cap) break;
      this.#ends.delete(id);
      evicted++;
      last = e.msg.data;
    }
    if (evicted === 0 || !last) return;
    this.endsEvicted += evicted;
    const fields = {
      evicted,
      total: this.endsEvicted,
      kept: cap,
      operationId: last.operationId,
      serverId: last.serverId,
    };
    if (this.#endsAcked === false) {
      if (this.#endsUnackedLogged) return;
      this.#endsUnackedLogged = true;
      this.#log.warn(
        fields,
        'the Panel does not ack operation ends (an older release): only the latest are kept to send again after a reconnect',
      );
    } else {
      this.#log.warn(
        fields,
        'operation ends the Panel has not acked given way; a reconnect now will not send them again',
      );
    }
  }

  /** The Panel stored these ends (or had them already): they need not go again. */
  #endsStored(ids: readonly string[]): void {
    this.#endsAcked = true;
    for (const id of ids) this.#ends.delete(id);
  }

  #remember(msg: EventMessage<'server_log'>): void {
    const chars = msg.data.message.length;
    this.#recent.push({ msg, chars, order: this.#order++ });
    this.#recentChars += chars;
    let drop = 0;
    while (this.#recentChars > RECENT_CHARS && drop < this.#recent.length - 1) {
      this.#recentChars -= (this.#recent[drop] as { chars: number }).chars;
      drop++;
    }
    if (drop > 64 || drop * 2 > this.#recent.length) this.#recent = this.#recent.slice(drop);
    else if (drop > 0) this.#recent.splice(0, drop);
  }

  /**
   * The Panel stored these lines as published (and those before them, per server): they need
   * not go again after a reconnect. An ack of another epoch (an older run) changes nothing.
   */
  #acked(acks: readonly { serverId: string; epoch: string; seq: number }[]): void {
    const upTo = new Map<string, { epoch: string; seq: number }>();
    for (const a of acks) upTo.set(a.serverId, a);
    const kept: { msg: EventMessage<'server_log'>; chars: number; order: number }[] = [];
    let chars = 0;
    for (const r of this.#recent) {
      const a = upTo.get(r.msg.data.serverId);
      if (a && a.epoch === r.msg.data.epoch && (r.msg.data.seq ?? Number.POSITIVE_INFINITY) <= a.seq)
        continue;
      kept.push(r);
      chars += r.chars;
    }
    this.#recent = kept;
    this.#recentChars = chars;
  }

  /** The console lines and operation ends sent and not acked, in the order they went out. */
  #unacked(): Resent[] {
    if (this.#ends.size === 0) return this.#recent.map((r) => r.msg);
    const all: { msg: Resent; order: number }[] = [...this.#recent, ...this.#ends.values()];
    all.sort((a, b) => a.order - b.order);
    return all.map((r) => r.msg);
  }

  /** Operation ends sent and not acked yet (tests). */
  get unackedEnds(): number {
    return this.#ends.size;
  }

  /** Drops the current connection as if the network failed (tests). */
  dropConnection(): void {
    this.#ws?.terminate();
  }

  async #sleep(ms: number): Promise<void> {
    if (this.#stopped) return;
    await new Promise<void>((resolve) => {
      this.#wake = resolve;
      this.#sleepTimer = setTimeout(resolve, ms);
    });
    this.#wake = undefined;
  }

  async #run(): Promise<void> {
    this.#creds = await this.#store.load((problem) =>
      this.#log.warn(
        { file: this.#store.file, problem },
        `stored panel credentials unusable (${problem}); registering again`,
      ),
    );
    if (this.#creds) this.#scheduleRefresh();
    while (!this.#stopped) {
      try {
        if (!this.#creds) await this.#register();
      } catch (e) {
        const code = e instanceof CodedError ? e.code : 'AGENT_OFFLINE';
        if (code === 'PROTOCOL_INCOMPATIBLE') {
          // retrying soon cannot help: only an upgrade of one side does
          this.#attempt = 16;
          this.#log.error(
            { code, error: (e as Error).message, protocolVersion: PROTOCOL_VERSION },
            'the Panel does not speak this Agent protocol version; upgrade the Agent or the Panel',
          );
        }
        const delay = code === 'PROTOCOL_INCOMPATIBLE' ? incompatibleDelay() : backoffDelay(this.#attempt++);
        this.#log.warn(
          {
            code,
            err: e instanceof CodedError ? undefined : e,
            error: e instanceof CodedError ? e.message : undefined,
            retryInMs: delay,
          },
          'registration failed',
        );
        await this.#sleep(delay);
        continue;
      }
      // stop() may have come while registering: a connection opened now would never be closed
      if (this.#stopped || !this.#creds) break;
      const info = await this.#connect(this.#creds);
      if (this.#stopped) break;
      if (info.unauthorized) {
        this.#log.warn('panel refused our token; refreshing');
        await this.#reauthenticate();
        await this.#sleep(backoffDelay(Math.min(this.#attempt++, 2)));
        continue;
      }
      let delay: number;
      if (info.code >= 4400 && info.code < 4500 && /PROTOCOL_INCOMPATIBLE/.test(info.reason)) {
        this.#log.error(
          {
            code: 'PROTOCOL_INCOMPATIBLE',
            closeCode: info.code,
            reason: info.reason,
            protocolVersion: PROTOCOL_VERSION,
          },
          'the Panel does not speak this Agent protocol version; upgrade the Agent or the Panel',
        );
        this.#attempt = 16;
        delay = incompatibleDelay();
      } else {
        // an auth close (4401 UNAUTHENTICATED, 1008 AUTH_FAILED…) means the token is no good any more
        if (/AUTH_FAILED|UNAUTHENTICATED/.test(info.reason)) await this.#reauthenticate();
        // a link that held for a while starts the backoff over; one that flaps keeps backing off
        if (info.opened && info.lastedMs > STABLE_LINK_MS) this.#attempt = 0;
        delay = backoffDelay(this.#attempt++);
      }
      const fields = {
        closeCode: info.code,
        reason: info.reason,
        error: info.error,
        code: info.errorCode,
        url: info.url,
        retryInMs: delay,
      };
      if (info.opened) this.#log.info(fields, 'panel link closed');
      else this.#log.warn(fields, 'cannot connect to the panel');
      await this.#sleep(delay);
    }
  }

  async #registrationBody() {
    const { port, dockerVersion } = await this.#hooks.registration();
    return {
      name: this.#config.name ?? os.hostname(),
      hostname: os.hostname(),
      port,
      capabilities: {
        maxMemory: bytesToSize(os.totalmem()),
        maxCpuCores: Math.max(1, os.cpus().length),
        dockerVersion,
        supportedArchitectures: [dockerArch()],
      },
      protocolVersion: PROTOCOL_VERSION,
    };
  }

  async #post(pathname: string, headers: Record<string, string>, body: unknown): Promise<AgentCredentials> {
    const url = `${panelHttpBase(this.#config.panelUrl)}${pathname}`;
    let res: { status: number; json: unknown };
    try {
      res = await postJson(url, { [PROTOCOL_VERSION_HEADER]: String(PROTOCOL_VERSION), ...headers }, body, {
        agent: panelAgent(url, this.#pinned),
        timeoutMs: 15_000,
      });
    } catch (e) {
      if (e instanceof CodedError) throw e;
      throw new CodedError('AGENT_OFFLINE', `panel unreachable: ${(e as Error).message}`, { cause: e });
    }
    if (res.status === 401 || res.status === 403) {
      throw new CodedError('AUTH_FAILED', `panel refused ${pathname} (${res.status})`);
    }
    if (res.status < 200 || res.status > 299) {
      // a Panel of another release says so (400 PROTOCOL_INCOMPATIBLE, with which versions)
      const err = res.json as { code?: unknown; message?: unknown } | null;
      if (err && typeof err === 'object' && err.code === 'PROTOCOL_INCOMPATIBLE') {
        const why = typeof err.message === 'string' ? err.message.slice(0, 200) : '';
        throw new CodedError('PROTOCOL_INCOMPATIBLE', `panel refused ${pathname}: ${why}`);
      }
      throw new CodedError('AGENT_OFFLINE', `panel answered ${res.status} to ${pathname}`);
    }
    const parsed = RegisterResponse.safeParse(res.json);
    if (!parsed.success) throw new CodedError('INVALID_MESSAGE', `unexpected answer to ${pathname}`);
    return parsed.data.agent;
  }

  async #register(): Promise<void> {
    const body = await this.#registrationBody();
    const agent = await this.#post(
      '/api/agents/register',
      { authorization: `Bearer ${this.#config.agentSecret}` },
      body,
    );
    await this.#adopt(agent);
    this.#log.info({ agentId: agent.id }, 'registered with the panel');
  }

  async #adopt(agent: AgentCredentials): Promise<void> {
    if (this.#stopped) return;
    this.#creds = agent;
    await this.#store.save(agent);
    this.#scheduleRefresh();
  }

  async #refresh(): Promise<void> {
    const creds = this.#creds;
    if (!creds) return;
    const agent = await this.#post(
      '/api/agents/refresh',
      { [AGENT_ID_HEADER]: creds.id },
      { refreshToken: creds.refreshToken },
    );
    await this.#adopt(agent);
    this.#log.info({ agentId: agent.id }, 'token refreshed');
  }

  /** Refresh; when the refresh token is refused, register again with the secret. */
  async #reauthenticate(): Promise<void> {
    try {
      await this.#refresh();
    } catch (e) {
      if (e instanceof CodedError && (e.code === 'AUTH_FAILED' || e.code === 'INVALID_MESSAGE')) {
        this.#log.warn('refresh refused; registering again');
        this.#creds = null;
        await this.#store.clear();
        // if this fails the connect loop registers before its next attempt
        await this.#register().catch((err) => this.#log.warn({ err }, 'registration failed'));
      } else {
        this.#log.warn({ err: e }, 'refresh failed');
      }
    }
  }

  #scheduleRefresh(): void {
    clearTimeout(this.#refreshTimer);
    const exp = this.#creds?.expiresAt ? Date.parse(this.#creds.expiresAt) : Number.NaN;
    if (Number.isNaN(exp) || this.#stopped) return;
    const left = exp - Date.now();
    // refresh at 80% of the remaining lifetime, at most a minute before it ends
    const wait = Math.max(250, left - Math.min(60_000, Math.max(left * 0.2, 100)));
    this.#refreshTimer = setTimeout(() => {
      if (this.#stopped) return;
      this.#refreshing = this.#reauthenticate()
        .catch(() => undefined)
        .finally(() => {
          // on failure retry soon (the token may still be valid for a while)
          if (this.#creds?.expiresAt && Date.parse(this.#creds.expiresAt) <= exp) {
            this.#refreshTimer = setTimeout(() => this.#scheduleRefresh(), 2000);
            this.#refreshTimer.unref();
          }
        });
    }, wait);
    this.#refreshTimer.unref();
  }

  #connect(creds: AgentCredentials): Promise<CloseInfo> {
    const url = websocketUrlFor(this.#config.panelUrl, creds.websocketUrl);
    return new Promise((resolve) => {
      const info: CloseInfo = { opened: false, lastedMs: 0, unauthorized: false, code: 0, reason: '', url };
      let openedAt = 0;
      // the Panel may name any URL for the socket: it is held to the same rule as PANEL_URL
      if (isPlainUrl(url) && !isLoopbackUrl(url) && !this.#config.allowInsecure) {
        info.errorCode = 'CONFIG_INVALID';
        info.error = `refusing the unencrypted ${url} the Panel gave (set AGENT_ALLOW_INSECURE=1 to allow it)`;
        resolve(info);
        return;
      }
      const agent = panelAgent(url, this.#pinned);
      const ws = new WebSocket(url, {
        ...(agent ? { agent } : {}),
        headers: {
          authorization: `Bearer ${creds.token}`,
          [AGENT_ID_HEADER]: creds.id,
          [PROTOCOL_VERSION_HEADER]: String(PROTOCOL_VERSION),
        },
        handshakeTimeout: 15_000,
        maxPayload: 16 * 1024 * 1024,
      });
      this.#ws = ws;
      let lastSeen = Date.now();
      let deadTimer: NodeJS.Timeout | undefined;
      const rate = this.#config.commandRate;
      const bucket = new TokenBucket(rate, 2 * rate);
      const flood = { refused: 0, loggedAt: 0 };
      ws.on('unexpected-response', (_req, res) => {
        info.unauthorized = res.statusCode === 401 || res.statusCode === 403;
        info.code = res.statusCode ?? 0;
        info.reason = `upgrade refused (${res.statusCode})`;
        res.resume();
        ws.terminate();
      });
      ws.on('open', () => {
        info.opened = true;
        lastSeen = Date.now();
        openedAt = lastSeen;
        const hello = event('agent_hello', this.#hooks.hello(), creds.id);
        ws.send(JSON.stringify(hello));
        // whether this Panel acks ends is learnt from its first ping
        this.#endsAcked = undefined;
        this.#endsUnackedLogged = false;
        // (what the outbox holds passed the size check in send())
        for (const m of this.#outbox.drain((serverId, count, seq) =>
          event('server_log_dropped', { serverId, count, reason: 'disconnected', ...seq }, creds.id),
        )) {
          ws.send(JSON.stringify(m));
          this.#sent(m);
        }
        this.#ready = true;
        this.connections++;
        try {
          this.#hooks.onReady?.();
        } catch (err) {
          this.#log.error({ err }, 'onReady hook failed');
        }
        this.#log.info({ agentId: creds.id, url }, 'connected to the panel');
        const hb = this.#config.heartbeatIntervalMs;
        deadTimer = setInterval(
          () => {
            if (Date.now() - lastSeen > 3 * hb) {
              this.#log.warn({ missedMs: Date.now() - lastSeen }, 'three heartbeats missed: link is dead');
              ws.terminate();
            }
          },
          Math.max(50, Math.floor(hb / 2)),
        );
        deadTimer.unref();
      });
      ws.on('message', (data) => {
        lastSeen = Date.now();
        // never an unhandled rejection: one bad message must not take the Agent down
        this.#onMessage(ws, data.toString(), bucket, flood).catch((err) =>
          this.#log.error({ err }, 'handling a panel message failed'),
        );
      });
      ws.on('ping', () => {
        lastSeen = Date.now();
      });
      ws.on('error', (e) => {
        info.error = e.message;
        if (e instanceof CodedError) info.errorCode = e.code;
      });
      ws.on('close', (code, reason) => {
        clearInterval(deadTimer);
        // lines the Panel did not ack go again, whatever ended the link: a dead socket may hold
        // them unread, a Panel killed with kill -9 may have read them and not handled them; the
        // replica that gets them skips those published for sure by their numbers, and publishes
        // again, flagged `resent`, those a dead Panel may not have published (ConsoleMarks)
        // and so do the operation ends it did not ack (in the order they all went out)
        this.#outbox.requeue(this.#unacked());
        this.#recent = [];
        this.#recentChars = 0;
        this.#ends.clear();
        if (openedAt) info.lastedMs = Date.now() - openedAt;
        this.#ready = false;
        if (this.#ws === ws) this.#ws = null;
        if (!info.code) info.code = code;
        if (!info.reason) info.reason = reason.toString();
        resolve(info);
      });
    });
  }

  async #onMessage(
    ws: WebSocket,
    text: string,
    bucket: TokenBucket,
    flood: { refused: number; loggedAt: number },
  ): Promise<void> {
    const parsed = parseAgentInbound(text);
    if (parsed.ok && parsed.message.type === 'ping') {
      if (parsed.message.consoleAcks) this.#acked(parsed.message.consoleAcks);
      if (parsed.message.operationAcks) this.#endsStored(parsed.message.operationAcks);
      else if (this.#endsAcked === undefined) {
        // an older Panel: it never acks ends, so only the latest few are kept
        this.#endsAcked = false;
        this.#fitEnds();
      }
      const pong: PongMessage = {
        id: parsed.message.id,
        type: 'pong',
        timestamp: new Date().toISOString(),
        data: await this.#hooks.pong(),
      };
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(pong));
      return;
    }
    let res: ResponseMessage;
    if (!bucket.take()) {
      // refused before it runs; logged at most once a second so the flood does not flood the log
      flood.refused++;
      if (Date.now() - flood.loggedAt > 1000) {
        this.#log.warn({ code: 'RATE_LIMITED', refused: flood.refused }, 'command flood from the panel');
        flood.loggedAt = Date.now();
        flood.refused = 0;
      }
      const id = parsed.ok ? parsed.message.id : (parsed.id ?? 'unknown');
      res = errorResponse(id, 'RATE_LIMITED', 'too many commands; slow down');
    } else {
      res = parsed.ok
        ? await this.#hooks.onCommand(parsed.message)
        : errorResponse(parsed.id ?? 'unknown', parsed.code, parsed.message);
    }
    const out = this.#creds ? { ...res, agentId: this.#creds.id } : res;
    // the response goes out on whatever link is up by then (or waits in the outbox)
    this.send(out);
  }
}
