/**
 * Image updates (issue 13 item 3). A check asks the server's node (`image_check`) for the digests
 * of the image its container runs and the registry's current digest of the same reference (the
 * Engine's `GET /distribution/{name}/json`, so the registry is reached from where it is pulled);
 * the result is stored (server_image_state). Checks run on their own every interval (a Panel-wide
 * setting, 6 h by default) and on demand. An update is one operation (`image_update_server`) the
 * Agent runs to its end: pull with per-layer progress → recreate → start if it ran → wait until
 * ready → roll back to the previous image when it is not; its outcome is stored, published as
 * `server.update` (webhooks) and written to the activity log.
 */
import {
  CodedError,
  ErrorCode,
  ImageCheckData,
  ImageUpdateData,
  type ImageUpdateOutcome,
  type PullLayer,
} from '@cap/protocol';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { EventBus } from '../../bus/index.ts';
import { type Db, nowIso } from '../../db/index.ts';
import type { ServerImageStateTable } from '../../db/schema.ts';
import type { SettingsRepo } from '../../db/settings-repo.ts';
import type { Periodic } from '../../lib/periodic.ts';
import type { AgentGateway } from '../../relay/agent-gateway.ts';
import type { OperationResult, OperationsService } from '../operations/service.ts';

export const DEFAULT_CHECK_INTERVAL_SECONDS = 6 * 3600;
export const MIN_CHECK_INTERVAL_SECONDS = 60;
export const MAX_CHECK_INTERVAL_SECONDS = 30 * 86_400;
export const DEFAULT_READY_TIMEOUT_SECONDS = 120;
const INTERVAL_KEY = 'image_check_interval_seconds';
/** how often the Panel looks for servers whose last check is older than the interval */
const SWEEP_MS = 60_000;

export const ImageUpdateOptions = z.object({
  /** how long the server has to be ready on the new image (its done pattern, else running) */
  readyTimeoutSeconds: z.number().int().min(5).max(3600).default(DEFAULT_READY_TIMEOUT_SECONDS),
  /** without a done pattern: how long it must stay running to count as ready */
  stableSeconds: z.number().int().min(1).max(600).default(10),
});
export type ImageUpdateOptions = z.infer<typeof ImageUpdateOptions>;

export const LastImageUpdate = z.object({
  operationId: z.string(),
  outcome: z.enum(['updated', 'unchanged', 'rolled_back', 'failed']),
  reason: z.string().optional(),
  code: z.string().optional(),
  imageId: z.string().nullable().optional(),
  previousImageId: z.string().nullable().optional(),
  at: z.string(),
});
export type LastImageUpdate = z.infer<typeof LastImageUpdate>;

export const ServerImageState = z
  .object({
    serverId: z.string(),
    /** the reference the server runs (repository:tag) */
    image: z.string().nullable(),
    /** the image ID its container runs */
    imageId: z.string().nullable(),
    localDigest: z.string().nullable(),
    remoteDigest: z.string().nullable(),
    /** the registry has a digest for the tag that the running image does not carry */
    updateAvailable: z.boolean(),
    checkedAt: z.string().nullable(),
    /** why the last check could not ask the registry */
    error: z.string().nullable(),
    lastUpdate: LastImageUpdate.nullable(),
    /** the update running now: its operation, stage and pull so far */
    running: z
      .object({
        operationId: z.string(),
        stage: z.string(),
        pull: z.object({
          layers: z.array(
            z.object({ id: z.string(), status: z.string(), current: z.number(), total: z.number() }),
          ),
          done: z.boolean(),
        }),
      })
      .nullable(),
  })
  .meta({ id: 'ServerImageState' });
export type ServerImageState = z.infer<typeof ServerImageState>;

/** The digest of `ref`'s repository among RepoDigests (`repo@sha256:…`); else the first one. */
export function localDigestOf(ref: string, digests: readonly string[]): string | null {
  const at = ref.indexOf('@');
  const noDigest = at >= 0 ? ref.slice(0, at) : ref;
  const colon = noDigest.lastIndexOf(':');
  const repo = colon > noDigest.lastIndexOf('/') ? noDigest.slice(0, colon) : noDigest;
  const mine = digests.find((d) => d.slice(0, d.indexOf('@')) === repo) ?? digests[0];
  if (!mine?.includes('@')) return null;
  return mine.slice(mine.indexOf('@') + 1);
}

interface Running {
  operationId: string;
  stage: string;
  layers: PullLayer[];
  done: boolean;
}

export class ImageUpdatesService {
  readonly #db: Db;
  readonly #gateway: AgentGateway;
  readonly #operations: OperationsService;
  readonly #bus: EventBus;
  readonly #log: Logger;
  readonly #periodic: Periodic;
  readonly #settings: SettingsRepo;
  readonly #nodeOf: (serverId: string) => Promise<string>;
  /** X-Registry-Auth for the server's image from the stored registry credentials (issue 11 item 3) */
  readonly #registryAuthOf: (serverId: string) => Promise<string | undefined>;
  /** serverId → the update running now in this process */
  readonly #running = new Map<string, Running>();
  #stop: (() => void)[] = [];

  constructor(deps: {
    db: Db;
    gateway: AgentGateway;
    operations: OperationsService;
    bus: EventBus;
    log: Logger;
    periodic: Periodic;
    settings: SettingsRepo;
    nodeOf: (serverId: string) => Promise<string>;
    registryAuthOf?: (serverId: string) => Promise<string | undefined>;
  }) {
    this.#db = deps.db;
    this.#gateway = deps.gateway;
    this.#operations = deps.operations;
    this.#bus = deps.bus;
    this.#log = deps.log;
    this.#periodic = deps.periodic;
    this.#settings = deps.settings;
    this.#nodeOf = deps.nodeOf;
    this.#registryAuthOf = deps.registryAuthOf ?? (async () => undefined);
    // the end is stored whichever way it comes (the Agent, the sweep, after a Panel restart)
    this.#operations.onEnd('image_update', (op, r) => this.#ended(op.server_id, op.id, op.actor_user_id, r));
  }

  init(): void {
    this.#stop.push(this.#periodic.every('image-checks', SWEEP_MS, () => this.checkDue()));
    this.#stop.push(
      this.#bus.subscribe('server.image_pull', (e) => {
        const r = this.#running.get(e.serverId);
        if (r && r.operationId === e.operationId) {
          r.layers = e.layers;
          r.done = e.done;
        }
      }),
      this.#bus.subscribe('operation', (e) => {
        const r = this.#running.get(e.serverId);
        if (r && r.operationId === e.operationId && e.success === undefined) r.stage = e.stage;
      }),
    );
  }

  close(): void {
    for (const s of this.#stop) s();
    this.#stop = [];
  }

  // ---- settings ----------------------------------------------------------------------------

  async intervalSeconds(): Promise<number> {
    const v = Number(await this.#settings.get(INTERVAL_KEY));
    return Number.isInteger(v) && v >= MIN_CHECK_INTERVAL_SECONDS && v <= MAX_CHECK_INTERVAL_SECONDS
      ? v
      : DEFAULT_CHECK_INTERVAL_SECONDS;
  }

  async setIntervalSeconds(v: number): Promise<void> {
    await this.#settings.set(INTERVAL_KEY, String(v));
  }

  // ---- reading -----------------------------------------------------------------------------

  async #row(serverId: string): Promise<ServerImageStateTable | undefined> {
    return this.#db
      .selectFrom('server_image_state')
      .selectAll()
      .where('server_id', '=', serverId)
      .executeTakeFirst();
  }

  async #upsert(serverId: string, patch: Partial<ServerImageStateTable> & { image: string }): Promise<void> {
    const existing = await this.#row(serverId);
    if (existing) {
      await this.#db.updateTable('server_image_state').set(patch).where('server_id', '=', serverId).execute();
      return;
    }
    await this.#db
      .insertInto('server_image_state')
      .values({
        server_id: serverId,
        image_id: null,
        local_digest: null,
        remote_digest: null,
        checked_at: null,
        error: null,
        last_update: null,
        ...patch,
      })
      .execute();
  }

  async get(serverId: string): Promise<ServerImageState> {
    const row = await this.#row(serverId);
    const r = this.#running.get(serverId);
    const last = row?.last_update ? LastImageUpdate.safeParse(JSON.parse(row.last_update)) : undefined;
    return {
      serverId,
      image: row?.image ?? null,
      imageId: row?.image_id ?? null,
      localDigest: row?.local_digest ?? null,
      remoteDigest: row?.remote_digest ?? null,
      updateAvailable: Boolean(
        row?.remote_digest && row.error === null && row.remote_digest !== row.local_digest,
      ),
      checkedAt: row?.checked_at ?? null,
      error: row?.error ?? null,
      lastUpdate: last?.success ? last.data : null,
      running: r
        ? { operationId: r.operationId, stage: r.stage, pull: { layers: r.layers, done: r.done } }
        : null,
    };
  }

  // ---- checking ----------------------------------------------------------------------------

  /** Asks the node; stores what it said (a registry that failed: `error`, the digests kept). */
  async check(serverId: string): Promise<ServerImageState> {
    const nodeId = await this.#nodeOf(serverId);
    if (!this.#gateway.isOnline(nodeId)) throw new CodedError('AGENT_OFFLINE', 'the node is offline');
    const registryAuth = await this.#registryAuthOf(serverId);
    const raw = await this.#gateway.request(nodeId, 'image_check', registryAuth ? { registryAuth } : {}, {
      serverId,
    });
    const d = ImageCheckData.parse(raw);
    const at = nowIso();
    if (d.remoteDigest === null) {
      await this.#upsert(serverId, {
        image: d.image,
        checked_at: at,
        error: d.error ?? 'the registry answered no digest',
      });
    } else {
      await this.#upsert(serverId, {
        image: d.image,
        image_id: d.imageId,
        local_digest: localDigestOf(d.image, d.localDigests),
        remote_digest: d.remoteDigest,
        checked_at: at,
        error: null,
      });
    }
    this.#log.info({ serverId, image: d.image, remote: d.remoteDigest, error: d.error }, 'image checked');
    return this.get(serverId);
  }

  /** The periodic part: every server whose last check is older than the interval (online nodes). */
  async checkDue(now = Date.now()): Promise<void> {
    const interval = (await this.intervalSeconds()) * 1000;
    const servers = await this.#db
      .selectFrom('servers')
      .leftJoin('server_image_state', 'server_image_state.server_id', 'servers.id')
      .select([
        'servers.id as id',
        'servers.node_id as node_id',
        'server_image_state.checked_at as checked_at',
      ])
      .execute();
    for (const s of servers) {
      if (s.checked_at && now - Date.parse(s.checked_at) < interval) continue;
      if (!this.#gateway.isOnline(s.node_id) || this.#running.has(s.id)) continue;
      await this.check(s.id).catch((e: Error) =>
        this.#log.warn({ serverId: s.id, err: e.message }, 'image check failed'),
      );
    }
  }

  // ---- updating ----------------------------------------------------------------------------

  /**
   * Starts the update; resolves with the operation once the Agent accepted it, and `done` with
   * its outcome (rejects with the code when it failed without a rollback).
   */
  async update(
    server: { id: string; node_id: string },
    actor: string | null,
    opts: ImageUpdateOptions,
  ): Promise<{ operationId: string; done: Promise<LastImageUpdate> }> {
    if (!this.#gateway.isOnline(server.node_id)) throw new CodedError('AGENT_OFFLINE', 'the node is offline');
    if (this.#running.has(server.id))
      throw new CodedError('SERVER_BUSY', 'an image update is running on this server');
    const registryAuth = await this.#registryAuthOf(server.id);
    const operationId = await this.#operations.open(server, 'image_update', actor);
    this.#running.set(server.id, { operationId, stage: 'requested', layers: [], done: false });
    const { end } = await this.#operations.waitFor(operationId);
    try {
      await this.#operations.start(
        server,
        'image_update',
        'image_update_server',
        {
          readyTimeoutSeconds: opts.readyTimeoutSeconds,
          stableSeconds: opts.stableSeconds,
          ...(registryAuth ? { registryAuth } : {}),
        },
        actor,
        { operationId },
      );
    } catch (e) {
      this.#running.delete(server.id);
      throw e;
    }
    const done = end.then(async (r) => {
      // not ended (its node offline past the grace): no outcome yet
      if (r.pending) throw new CodedError('AGENT_OFFLINE', r.message ?? 'the node went offline');
      const state = await this.get(server.id);
      const last = state.lastUpdate;
      if (!last || last.operationId !== operationId)
        throw new CodedError('INTERNAL_ERROR', 'the update ended without an outcome');
      if (last.outcome === 'failed') {
        const code = ErrorCode.safeParse(last.code);
        throw new CodedError(code.success ? code.data : 'INTERNAL_ERROR', last.reason ?? 'the update failed');
      }
      return last;
    });
    return { operationId, done };
  }

  async #ended(serverId: string, operationId: string, actor: string | null, r: OperationResult) {
    const running = this.#running.get(serverId);
    if (running?.operationId === operationId) this.#running.delete(serverId);
    const parsed = r.success ? ImageUpdateData.safeParse(r.data) : undefined;
    const outcome: ImageUpdateOutcome | 'failed' = parsed?.success
      ? parsed.data.outcome
      : r.success
        ? 'updated'
        : 'failed';
    const reason = parsed?.success ? parsed.data.reason : r.success ? undefined : r.message;
    const last: LastImageUpdate = {
      operationId,
      outcome,
      ...(reason ? { reason } : {}),
      ...(r.success || !r.code ? {} : { code: r.code }),
      ...(parsed?.success
        ? { imageId: parsed.data.imageId, previousImageId: parsed.data.previousImageId }
        : {}),
      at: nowIso(),
    };
    const row = await this.#row(serverId);
    await this.#upsert(serverId, { image: row?.image ?? '', last_update: JSON.stringify(last) });
    this.#bus.publish({
      kind: 'server.update',
      serverId,
      stage: outcome === 'failed' ? 'failed' : 'done',
      outcome,
      ...(reason ? { message: reason } : {}),
      ...(row?.image ? { image: row.image } : {}),
    });
    this.#bus.publish({
      kind: 'user_action',
      action: 'server.image_update',
      actor,
      ip: null,
      serverId,
      result: outcome === 'failed' ? (r.code ?? 'INTERNAL_ERROR') : 'ok',
      at: last.at,
      details: { operationId, outcome, ...(reason ? { reason: reason.slice(0, 500) } : {}) },
    });
    this.#log.info({ serverId, operationId, outcome, reason }, 'image update ended');
    // what runs now is known: check again (not awaited by the operation's end)
    if (outcome !== 'failed')
      void this.check(serverId).catch((e: Error) =>
        this.#log.debug({ serverId, err: e.message }, 'check after the update failed'),
      );
  }
}
