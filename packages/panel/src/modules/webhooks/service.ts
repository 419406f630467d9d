/**
 * Webhooks (issue 13 item 2): a bus subscriber turns every event into one delivery row per
 * webhook that asked for it (Panel-wide hooks get every server's; a server's hook only that
 * server's); deliveries are sent from the table by a round every second (through the `Periodic`
 * seam) and right after they are made, and retried with exponential backoff: 5 attempts at most,
 * the n-th retry after PANEL_WEBHOOK_RETRY_BASE_MS × 2^(n-1) (≤ 10 min; a 429's Retry-After is
 * honoured up to that), for no answer, a timeout, 408, 429 and 5xx; other answers end it
 * (2xx delivered; 3xx failed: redirects are not followed; 4xx failed). Rows outlive a restart.
 *
 * Discord hooks get an embed made when the event happens (a crash carries the console's last
 * lines then, hidden values replaced). JSON hooks get `{ id, webhookId, event, timestamp, data }`
 * signed: `X-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`, `X-Webhook-Timestamp`
 * (unix seconds, also in the body, so the signature covers it), `X-Webhook-Id`, `X-Webhook-Event`.
 * URLs and secrets are sealed at rest (DATA_DIR/keys/webhooks.key), shown once, never logged.
 *
 * Console lines are delivered at least once: lines a Panel killed between storing their mark and
 * publishing them may have been delivered are published again after the Agent re-sends them,
 * flagged `resent` (ConsoleMarks), and their data's serverId, epoch and seq (the last line's
 * number) let a receiver drop a repeat. At most once would lose them instead, silently.
 *
 * Across replicas: a replica turns the events that arise on it (its Agents') into deliveries, from
 * its own copy of the enabled hooks. A change made through any replica is published
 * (`webhooks.changed`) and every other replica reloads its copy when it hears it (ms over NATS);
 * a reload every RESYNC_MS on every replica catches a change missed while the broker was away.
 */
import { randomUUID } from 'node:crypto';
import { CodedError } from '@cap/protocol';
import type { Logger } from 'pino';
import type { DomainEvent, EventBus } from '../../bus/index.ts';
import type { WebhookDeliveriesTable, WebhooksTable } from '../../db/schema.ts';
import { hmac, randomToken, seal, unseal } from '../../lib/crypto.ts';
import type { Periodic } from '../../lib/periodic.ts';
import { loadOrCreateKey } from '../../lib/private-files.ts';
import { redact } from '../../lib/redact.ts';
import type { LiveStore } from '../../relay/live-store.ts';
import { DISCORD_EVENTS, discordBody, discordTest } from './discord.ts';
import { DELIVERIES_KEPT, type WebhooksRepo } from './repo.ts';
import {
  BUS_EVENT_KINDS,
  type CreateWebhook,
  type PatchWebhook,
  type Webhook,
  type WebhookDelivery,
} from './schemas.ts';
import { displayOf, parseTarget, post, resolveTarget } from './target.ts';

export const MAX_ATTEMPTS = 5;
const MAX_BACKOFF_MS = 10 * 60_000;
const LEASE_MS = 60_000;
/** every replica reloads its hooks this often besides on every change (a missed event heals) */
export const RESYNC_MS = 30_000;
/** events per second per webhook beyond which new ones are dropped (and counted in the log) */
export const EVENTS_PER_SECOND = 20;
const CONSOLE_LINES = 25;
const KNOWN = new Set<string>(BUS_EVENT_KINDS);
const DISCORD = new Set<string>(DISCORD_EVENTS);

export interface WebhooksDeps {
  repo: WebhooksRepo;
  live: LiveStore;
  bus: EventBus;
  log: Logger;
  periodic: Periodic;
  dataDir: string;
  allowPrivate: boolean;
  retryBaseMs: number;
  now?: () => number;
}

const iso = (ms: number) => new Date(ms).toISOString();
const eventsOf = (r: WebhooksTable): string[] =>
  (JSON.parse(r.events) as string[]).filter((e) => KNOWN.has(e));

export function toWebhook(r: WebhooksTable): Webhook {
  return {
    id: r.id,
    serverId: r.server_id,
    name: r.name,
    kind: r.kind === 'discord' ? 'discord' : 'json',
    url: r.url_display,
    events: eventsOf(r) as Webhook['events'],
    enabled: Number(r.enabled) === 1,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export function toDelivery(r: WebhookDeliveriesTable): WebhookDelivery {
  return {
    id: r.id,
    webhookId: r.webhook_id,
    event: r.event,
    state: r.state === 'delivered' ? 'delivered' : r.state === 'failed' ? 'failed' : 'pending',
    attempts: Number(r.attempts),
    lastStatus: r.last_status === null ? null : Number(r.last_status),
    lastError: r.last_error,
    nextAttemptAt: r.state === 'pending' ? r.next_attempt_at : null,
    createdAt: r.created_at,
    deliveredAt: r.delivered_at,
    log: JSON.parse(r.log),
  };
}

export class WebhooksService {
  readonly #repo: WebhooksRepo;
  readonly #live: LiveStore;
  readonly #bus: EventBus;
  readonly #log: Logger;
  readonly #periodic: Periodic;
  readonly #dataDir: string;
  readonly #allowPrivate: boolean;
  readonly #retryBaseMs: number;
  readonly #now: () => number;
  #key: Uint8Array | undefined;
  /** enabled webhooks with their event filter (reloaded after every change, on any replica) */
  #hooks: { row: WebhooksTable; events: ReadonlySet<string> }[] = [];
  /** reloads started, and the latest one whose answer is in #hooks (an older answer never wins) */
  #loads = 0;
  #loaded = 0;
  /** per server: the players last seen (joins and leaves are the difference) */
  readonly #players = new Map<string, Set<string>>();
  /** per webhook: events this second (rate cap) */
  readonly #rate = new Map<string, { second: number; n: number; dropped: number }>();
  readonly #inFlight = new Set<string>();
  readonly #stops: (() => void)[] = [];
  #closed = false;

  constructor(deps: WebhooksDeps) {
    this.#repo = deps.repo;
    this.#live = deps.live;
    this.#bus = deps.bus;
    this.#log = deps.log;
    this.#periodic = deps.periodic;
    this.#dataDir = deps.dataDir;
    this.#allowPrivate = deps.allowPrivate;
    this.#retryBaseMs = deps.retryBaseMs;
    this.#now = deps.now ?? Date.now;
  }

  #k(): Uint8Array {
    this.#key ??= loadOrCreateKey(this.#dataDir, 'webhooks').key;
    return this.#key;
  }

  async init(): Promise<void> {
    await this.#reload();
    const reload = () => void this.#reload().catch((err: Error) => this.#reloadFailed(err));
    this.#stops.push(
      this.#bus.subscribe('*', (e) => this.#onEvent(e)),
      // another replica changed a hook, or deleted a server (its hooks went with it)
      this.#bus.subscribe('webhooks.changed', reload, 'others'),
      this.#bus.subscribe('server.deleted', reload, 'others'),
      this.#periodic.every('webhooks', 1000, () => this.deliverDue()),
    );
    // not the leader's job: every replica keeps its own copy
    const resync = setInterval(reload, RESYNC_MS);
    resync.unref();
    this.#stops.push(() => clearInterval(resync));
  }

  close(): void {
    this.#closed = true;
    for (const stop of this.#stops.splice(0)) stop();
  }

  async #reload(): Promise<void> {
    const n = ++this.#loads;
    const rows = await this.#repo.enabled();
    // a reload started later read the table later: its answer is at least as new
    if (n < this.#loaded) return;
    this.#loaded = n;
    this.#hooks = rows.map((row) => ({ row, events: new Set(eventsOf(row)) }));
  }

  #reloadFailed(err: Error): void {
    this.#log.warn({ err: err.message }, 'webhooks not reloaded (the next change or resync tries again)');
  }

  /** This replica's copy is up to date; the others reload theirs. */
  async #changed(webhookId: string): Promise<void> {
    await this.#reload();
    this.#bus.publish({ kind: 'webhooks.changed', webhookId });
  }

  // ---- CRUD -----------------------------------------------------------------------------------

  async list(serverId: string | null): Promise<Webhook[]> {
    return (await this.#repo.list(serverId)).map(toWebhook);
  }
  async get(serverId: string | null, id: string): Promise<Webhook> {
    return toWebhook(await this.#row(serverId, id));
  }

  #checkEvents(kind: string, events: readonly string[]): void {
    if (kind === 'discord')
      for (const e of events)
        if (!DISCORD.has(e))
          throw new CodedError(
            'VALIDATION_FAILED',
            `a Discord webhook carries ${DISCORD_EVENTS.join(', ')}; not ${e} (use a JSON webhook)`,
            { location: 'events' },
          );
  }

  async #checkUrl(raw: string): Promise<URL> {
    const url = parseTarget(raw);
    await resolveTarget(url, this.#allowPrivate);
    return url;
  }

  async create(
    serverId: string | null,
    input: CreateWebhook,
    actor: string | null,
  ): Promise<Webhook & { secret: string | null }> {
    this.#checkEvents(input.kind, input.events);
    const url = await this.#checkUrl(input.url);
    const secret = input.kind === 'json' ? `whsec_${randomToken(32)}` : null;
    const now = iso(this.#now());
    const id = randomUUID();
    await this.#repo.insert({
      id,
      server_id: serverId,
      name: input.name,
      kind: input.kind,
      url: seal(this.#k(), url.href),
      url_display: displayOf(url),
      secret: secret === null ? null : seal(this.#k(), secret),
      events: JSON.stringify([...new Set(input.events)]),
      enabled: input.enabled ? 1 : 0,
      created_by: actor,
      created_at: now,
      updated_at: now,
    });
    await this.#changed(id);
    return { ...(await this.get(serverId, id)), secret };
  }

  async patch(serverId: string | null, id: string, input: PatchWebhook): Promise<Webhook> {
    const row = await this.#row(serverId, id);
    if (input.events) this.#checkEvents(row.kind, input.events);
    const url = input.url === undefined ? undefined : await this.#checkUrl(input.url);
    await this.#repo.update(id, {
      ...(input.name === undefined ? {} : { name: input.name }),
      ...(url ? { url: seal(this.#k(), url.href), url_display: displayOf(url) } : {}),
      ...(input.events ? { events: JSON.stringify([...new Set(input.events)]) } : {}),
      ...(input.enabled === undefined ? {} : { enabled: input.enabled ? 1 : 0 }),
      updated_at: iso(this.#now()),
    });
    await this.#changed(id);
    return this.get(serverId, id);
  }

  async delete(serverId: string | null, id: string): Promise<void> {
    await this.#row(serverId, id);
    await this.#repo.delete(id);
    await this.#changed(id);
  }

  async deliveries(serverId: string | null, id: string, limit: number): Promise<WebhookDelivery[]> {
    await this.#row(serverId, id);
    return (await this.#repo.deliveries(id, Math.min(limit, DELIVERIES_KEPT))).map(toDelivery);
  }

  /** "Send test": a `webhook.test` delivery, attempted at once; answers after that attempt. */
  async test(serverId: string | null, id: string): Promise<WebhookDelivery> {
    const row = await this.#row(serverId, id);
    const at = iso(this.#now());
    const payload =
      row.kind === 'discord'
        ? JSON.stringify(discordTest(row.name, at))
        : JSON.stringify({ kind: 'webhook.test', message: `Webhook “${row.name}” works.` });
    const deliveryId = await this.#enqueue(row, 'webhook.test', payload, false);
    await this.#attempt(deliveryId);
    const d = await this.#repo.delivery(deliveryId);
    if (!d) throw new CodedError('WEBHOOK_NOT_FOUND', 'the webhook was deleted meanwhile');
    return toDelivery(d);
  }

  async #row(serverId: string | null, id: string): Promise<WebhooksTable> {
    const row = id.length <= 64 ? await this.#repo.find(serverId, id) : undefined;
    if (!row) throw new CodedError('WEBHOOK_NOT_FOUND', 'no such webhook here');
    return row;
  }

  // ---- events → deliveries --------------------------------------------------------------------

  #playersDiff(e: Extract<DomainEvent, { kind: 'server.players' }>): { joined: string[]; left: string[] } {
    const before = this.#players.get(e.serverId);
    const now = new Set(e.list.map((p) => p.name));
    this.#players.set(e.serverId, now);
    if (!before) return { joined: [], left: [] };
    return {
      joined: [...now].filter((p) => !before.has(p)),
      left: [...before].filter((p) => !now.has(p)),
    };
  }

  async #onEvent(e: DomainEvent): Promise<void> {
    if (this.#closed) return;
    const diff = e.kind === 'server.players' ? this.#playersDiff(e) : undefined;
    if (e.kind === 'server.deleted') {
      this.#players.delete(e.serverId);
      // its hooks went with it (foreign key); the cache follows
      setTimeout(() => void this.#reload().catch((err: Error) => this.#reloadFailed(err)), 1000).unref();
    }
    const serverId = 'serverId' in e && typeof e.serverId === 'string' ? e.serverId : undefined;
    const hooks = this.#hooks
      .filter((h) => (h.row.server_id === null || h.row.server_id === serverId) && h.events.has(e.kind))
      .map((h) => h.row);
    if (hooks.length === 0) return;
    let discord: string | undefined | null = null;
    for (const h of hooks) {
      if (!this.#allow(h.id)) continue;
      if (h.kind === 'discord') {
        if (discord === null) discord = await this.#discordPayload(e, serverId, diff);
        if (discord === undefined) continue;
        await this.#enqueue(h, e.kind, discord, true);
      } else {
        // a server's hook may be a subuser's who gets hidden values redacted (webhook.create
        // does not mean seeing them): the console's text redacted as for a spectator; a
        // Panel-wide hook is an admin's
        const body = h.server_id !== null && serverId ? redactedEvent(e, this.#live.secrets(serverId)) : e;
        await this.#enqueue(h, e.kind, JSON.stringify(body), true);
      }
    }
  }

  async #discordPayload(
    e: DomainEvent,
    serverId: string | undefined,
    diff: { joined: string[]; left: string[] } | undefined,
  ): Promise<string | undefined> {
    const name = serverId ? ((await this.#repo.serverName(serverId)) ?? serverId) : 'Panel';
    const secrets = serverId ? this.#live.secrets(serverId) : [];
    const lines = serverId
      ? this.#live
          .history(serverId)
          .slice(-CONSOLE_LINES)
          .map((l) => redact(l, secrets))
      : [];
    const body = discordBody(e, {
      serverName: name,
      lastLines: lines,
      ...(diff ?? {}),
      at: iso(this.#now()),
    });
    return body ? JSON.stringify(body) : undefined;
  }

  #allow(hookId: string): boolean {
    const second = Math.floor(this.#now() / 1000);
    let r = this.#rate.get(hookId);
    if (!r || r.second !== second) {
      if (r && r.dropped > 0)
        this.#log.warn({ webhookId: hookId, dropped: r.dropped }, 'webhook events dropped over the rate cap');
      r = { second, n: 0, dropped: 0 };
      this.#rate.set(hookId, r);
    }
    if (r.n >= EVENTS_PER_SECOND) {
      r.dropped++;
      return false;
    }
    r.n++;
    return true;
  }

  async #enqueue(h: WebhooksTable, event: string, payload: string, kick: boolean): Promise<string> {
    const id = randomUUID();
    const now = iso(this.#now());
    await this.#repo.insertDelivery({
      id,
      webhook_id: h.id,
      event,
      payload,
      state: 'pending',
      attempts: 0,
      next_attempt_at: now,
      last_status: null,
      last_error: null,
      log: '[]',
      created_at: now,
      delivered_at: null,
    });
    await this.#repo.prune(h.id);
    if (kick)
      void this.#attempt(id).catch((err: Error) =>
        this.#log.warn({ err: err.message }, 'webhook attempt failed'),
      );
    return id;
  }

  // ---- sending --------------------------------------------------------------------------------

  /** One round: every due delivery gets one attempt (tests call it; the tick does every second). */
  async deliverDue(): Promise<void> {
    if (this.#closed) return;
    const due = await this.#repo.due(iso(this.#now()), 20);
    await Promise.all(due.map((d) => this.#attempt(d.id)));
  }

  async #attempt(deliveryId: string): Promise<void> {
    if (this.#inFlight.has(deliveryId)) return;
    this.#inFlight.add(deliveryId);
    try {
      const d = await this.#repo.delivery(deliveryId);
      if (d?.state !== 'pending' || d.next_attempt_at === null) return;
      if (Date.parse(d.next_attempt_at) > this.#now()) return;
      if (!(await this.#repo.lease(d.id, d.next_attempt_at, iso(this.#now() + LEASE_MS)))) return;
      const hook = await this.#repo.byId(d.webhook_id);
      if (!hook) return;
      await this.#send(d, hook);
    } finally {
      this.#inFlight.delete(deliveryId);
    }
  }

  async #send(d: WebhookDeliveriesTable, hook: WebhooksTable): Promise<void> {
    const attempts = Number(d.attempts) + 1;
    const log: { at: string; status: number | null; error: string | null }[] = JSON.parse(d.log);
    const at = iso(this.#now());
    let status: number | null = null;
    let error: string | null = null;
    let retry = false;
    let retryAfterMs: number | undefined;
    try {
      const url = parseTarget(unseal(this.#k(), hook.url));
      // resolved and checked again at every attempt: a name may point elsewhere since
      await resolveTarget(url, this.#allowPrivate);
      const timestamp = Math.floor(this.#now() / 1000);
      let body: string;
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'user-agent': 'Ctrl-Alt-Play-Webhook/1',
      };
      if (hook.kind === 'discord') body = d.payload;
      else {
        body = `{"id":${JSON.stringify(d.id)},"webhookId":${JSON.stringify(hook.id)},"event":${JSON.stringify(d.event)},"timestamp":${timestamp},"data":${d.payload}}`;
        const secret = hook.secret ? unseal(this.#k(), hook.secret) : '';
        headers['x-signature-256'] = `sha256=${hmac(Buffer.from(secret), body)}`;
        headers['x-webhook-timestamp'] = String(timestamp);
        headers['x-webhook-id'] = d.id;
        headers['x-webhook-event'] = d.event;
      }
      const res = await post(url, this.#allowPrivate, body, headers);
      status = res.status;
      if (status >= 200 && status < 300) error = null;
      else if (status >= 300 && status < 400) error = `redirect (${status}) not followed`;
      else {
        error = `answered ${status}${res.body ? `: ${res.body.slice(0, 200)}` : ''}`;
        retry = status === 408 || status === 429 || status >= 500;
        const ra = Number(res.headers['retry-after']);
        if (status === 429 && Number.isFinite(ra) && ra >= 0)
          retryAfterMs = Math.min(ra * 1000, MAX_BACKOFF_MS);
      }
    } catch (e) {
      const err = e as CodedError;
      const refused = err.code === 'WEBHOOK_TARGET_REFUSED' || err.code === 'URL_NOT_ALLOWED';
      error = refused ? `WEBHOOK_TARGET_REFUSED: ${err.message}` : (err.message ?? String(e));
      // a refused target stays refused; no answer (refused connection, timeout) is retried
      retry = !refused;
    }
    log.push({ at, status, error: error === null ? null : error.slice(0, 500) });
    const delivered = status !== null && status >= 200 && status < 300;
    const again = !delivered && retry && attempts < MAX_ATTEMPTS;
    const wait = retryAfterMs ?? Math.min(this.#retryBaseMs * 2 ** (attempts - 1), MAX_BACKOFF_MS);
    await this.#repo.updateDelivery(d.id, {
      attempts,
      state: delivered ? 'delivered' : again ? 'pending' : 'failed',
      next_attempt_at: again ? iso(this.#now() + wait) : null,
      last_status: status,
      last_error: error === null ? null : error.slice(0, 500),
      log: JSON.stringify(log.slice(-MAX_ATTEMPTS * 2)),
      delivered_at: delivered ? iso(this.#now()) : null,
    });
    if (!delivered)
      this.#log.warn(
        { webhookId: hook.id, deliveryId: d.id, attempts, status, retry: again },
        'webhook delivery did not succeed',
      );
  }
}

/** The event with the hidden values redacted from the console text it carries. */
function redactedEvent(e: DomainEvent, secrets: readonly string[]): DomainEvent {
  if (!secrets.length) return e;
  if (e.kind === 'server.console') return { ...e, lines: e.lines.map((l) => redact(l, secrets)) };
  if (e.kind === 'server.install' && e.lines) return { ...e, lines: e.lines.map((l) => redact(l, secrets)) };
  if (e.kind === 'server.feature') return { ...e, line: redact(e.line, secrets) };
  return e;
}
