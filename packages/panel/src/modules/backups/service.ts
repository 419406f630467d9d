/**
 * Backups in the Panel (issue 10 item 4). The archive is made, kept, restored and deleted by the
 * Agent (`backup_*` actions, packages/agent/src/backups/); the Panel keeps its own record of each
 * (table `backups`) for who made it, where it lives and the limit, and keeps it in sync with the
 * Agent's: a create's end (whatever way it arrives) reads the Agent's records back (retention's
 * deletions are mirrored then), and so does the node's every connect (deletions behind the
 * Panel's back, a Panel restart); a list call serves the table alone.
 *
 * - create: the server's backup limit is checked (locked and pending ones count; failed ones
 *   not): 409 BACKUP_LIMIT_REACHED. The template's `backup.commandsBefore/After` go along.
 *   An operation of kind `backup`; the Agent runs one backup or restore at a time per server.
 * - restore: an operation of kind `restore` (stages verifying → stopping → deleting → extracting
 *   → starting → done, the Agent's).
 * - download: a single-use ticket from the Agent: `url` straight to the Agent's HTTP API when the
 *   node has a transfer URL and is connected, else (and always as `relayUrl`) the Panel's relay
 *   (`/api/transfers/<ticket>`), with the backup's sha256 as `x-checksum-sha256`.
 * - a deleted server: the Agent removes its backups with it (delete_server), the rows go by the
 *   foreign key (ON DELETE CASCADE).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  BACKUP_LIST_MAX_LIMIT,
  type BackupFormat,
  BackupListData,
  BackupRecord,
  CodedError,
  CreateTransferData,
  ErrorCode,
  isCodedError,
} from '@cap/protocol';
import type { Logger } from 'pino';
import type { Db } from '../../db/index.ts';
import { nowIso } from '../../db/index.ts';
import type { OperationsTable, ServersTable } from '../../db/schema.ts';
import type { AgentGateway } from '../../relay/agent-gateway.ts';
import type { TransferRelay } from '../files/relay.ts';
import { relayUrlOf, type TransferLinks } from '../files/transfer-links.ts';
import type { OperationResult, OperationsService } from '../operations/service.ts';
import type { TemplatesService } from '../templates/service.ts';
import {
  type BackupRow,
  type BackupStorage,
  BackupsRepo,
  type BackupUpload,
  fromRecord,
  type PanelBackup,
  toPanelBackup,
} from './repo.ts';
import { deleteNodeCopy, importBackup, offloadBackup } from './s3-offload.ts';
import { PRESIGN_MAX_SECONDS, type S3Store } from './s3-store.ts';

/** How long a download link lives (seconds). */
export const BACKUP_LINK_TTL_SECONDS = 300;
/** Pages of the Agent's list read per reconcile, at most (100 records a page). */
const RECONCILE_MAX_PAGES = 100;

export interface CreateBackupInput {
  name?: string | undefined;
  format?: BackupFormat | undefined;
  ignore?: string[] | undefined;
  locked?: boolean | undefined;
  /** keep only the newest N completed unlocked backups after this one succeeded */
  retain?: number | undefined;
}

function operationError(r: OperationResult, fallback: string): CodedError {
  return new CodedError(
    ErrorCode.safeParse(r.code).success ? (r.code as ErrorCode) : 'INTERNAL_ERROR',
    r.message ?? fallback,
  );
}

export class BackupsService {
  readonly #db: Db;
  readonly #repo: BackupsRepo;
  readonly #gateway: AgentGateway;
  readonly #operations: OperationsService;
  readonly #templates: TemplatesService;
  readonly #links: TransferLinks;
  /** the Panel's relay (S3 moves and relayed S3 downloads) */
  readonly #relay: TransferRelay;
  readonly #log: Logger;
  /** PANEL_BACKUP_STORAGE=s3: completed backups are moved here from their node */
  readonly #s3: S3Store | undefined;
  readonly #s3Downloads: 'presign' | 'relay';
  /** moves to S3 running or waiting to retry, by backupId: `first` settles after the first attempt */
  readonly #offloads = new Map<string, { run: Promise<void>; first: Promise<void> }>();
  /** the state of each outstanding move (shown as a backup's `upload`); `busy` while an attempt runs */
  readonly #uploads = new Map<string, BackupUpload & { busy: boolean }>();
  readonly #uploadPolicy: { attempts: number; retryMs: number };
  /** the reconcile running or queued last, by serverId */
  readonly #reconciling = new Map<string, Promise<void>>();
  /** ends the waits between attempts when the Panel stops */
  readonly #closing = new AbortController();

  constructor(deps: {
    db: Db;
    gateway: AgentGateway;
    operations: OperationsService;
    templates: TemplatesService;
    /** transfer tickets' URLs (direct to the Agent or relayed), files/transfer-links.ts */
    links: TransferLinks;
    relay: TransferRelay;
    log: Logger;
    s3?: S3Store | undefined;
    s3Downloads?: 'presign' | 'relay';
    /** moves to S3: attempts, and the wait before the first retry (doubling, at most 10 min) */
    upload?: { attempts: number; retryMs: number } | undefined;
  }) {
    this.#uploadPolicy = deps.upload ?? { attempts: 5, retryMs: 5000 };
    this.#s3 = deps.s3;
    this.#s3Downloads = deps.s3Downloads ?? 'presign';
    this.#db = deps.db;
    this.#repo = new BackupsRepo(deps.db);
    this.#gateway = deps.gateway;
    this.#operations = deps.operations;
    this.#templates = deps.templates;
    this.#links = deps.links;
    this.#relay = deps.relay;
    this.#log = deps.log.child({ component: 'backups' });
    this.#operations.onEnd('backup', (op, r) => this.#created(op, r));
  }

  async #server(id: string): Promise<ServersTable> {
    const row = await this.#db.selectFrom('servers').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new CodedError('SERVER_NOT_FOUND', `no server ${id}`);
    return row;
  }

  async #row(serverId: string, backupId: string): Promise<BackupRow> {
    const row = await this.#repo.find(serverId, backupId);
    if (!row) throw new CodedError('BACKUP_NOT_FOUND', `no backup ${backupId} for server ${serverId}`);
    return row;
  }

  async #get(serverId: string, backupId: string): Promise<PanelBackup> {
    return this.#view(await this.#row(serverId, backupId));
  }

  /** A row as answered: with its outstanding move to S3, if any. */
  #view(row: BackupRow): PanelBackup {
    const b = toPanelBackup(row);
    if (!this.#s3 || b.storage !== 'node' || b.state !== 'completed') return b;
    const u = this.#uploads.get(b.backupId);
    // not (yet) seen by this process: it moves when its node connects
    const upload = u
      ? { state: u.state, attempts: u.attempts, nextAttemptAt: u.nextAttemptAt, error: u.error }
      : { state: 'pending' as const, attempts: 0, nextAttemptAt: null, error: null };
    return { ...b, upload };
  }

  /** The Panel stops: moves waiting for a retry stop waiting (their node's next connect resumes them). */
  close(): void {
    this.#closing.abort();
  }

  /**
   * A node connected (also the first time after the Panel started): the table is reconciled with
   * its Agent's records, server by server (what changed while the Panel did not hear from it:
   * deletions behind its back, a Panel restart), then the moves to S3 still outstanding resume.
   */
  async nodeConnected(nodeId: string): Promise<void> {
    const servers = await this.#db.selectFrom('servers').selectAll().where('node_id', '=', nodeId).execute();
    for (const server of servers) {
      if (!this.#gateway.isOnline(nodeId)) return;
      await this.reconcile(server).catch((e: unknown) =>
        this.#log.warn({ serverId: server.id, err: (e as Error).message }, 'backup reconcile failed'),
      );
    }
    await this.resumeUploads(nodeId);
  }

  /**
   * Moves to S3 of the node's completed backups still on it resume (pending ones, and failed ones
   * get a new set of attempts).
   */
  async resumeUploads(nodeId: string): Promise<void> {
    if (!this.#s3) return;
    const rows = await this.#db
      .selectFrom('backups')
      .select('id')
      .where('node_id', '=', nodeId)
      .where('storage', '=', 'node')
      .where('state', '=', 'completed')
      .execute();
    for (const r of rows) this.#settle(r.id);
  }

  /**
   * A page of the server's backups, newest first, from the database alone (the Agent is not asked:
   * the table is reconciled when a backup operation ends and when the node connects).
   */
  async list(serverId: string, page: { offset: number; limit: number }) {
    const server = await this.#server(serverId);
    const [rows, total] = await Promise.all([
      this.#repo.page(serverId, page.offset, page.limit),
      this.#repo.count(serverId),
    ]);
    return {
      backups: rows.map((r) => this.#view(r)),
      total,
      offset: page.offset,
      limit: page.limit,
      backupLimit: server.backup_limit ?? null,
    };
  }

  /** The Agent's records of the server, every page. */
  async #agentRecords(server: ServersTable): Promise<BackupRecord[]> {
    const out: BackupRecord[] = [];
    for (let i = 0; i < RECONCILE_MAX_PAGES; i++) {
      const page = BackupListData.parse(
        await this.#gateway.request(
          server.node_id,
          'backup_list',
          { offset: out.length, limit: BACKUP_LIST_MAX_LIMIT },
          { serverId: server.id },
        ),
      );
      out.push(...page.backups);
      if (page.backups.length === 0 || out.length >= page.total) break;
    }
    return out;
  }

  /**
   * The table made to match the Agent's records of the server's node-stored backups: each row
   * takes the Agent's state; rows the Agent no longer has (retention, a deletion elsewhere) go,
   * unless still pending (their create may not have reached the Agent yet: its end decides);
   * records the Panel never had (made through the Agent's own API) are added, with no creator.
   */
  reconcile(server: ServersTable): Promise<void> {
    // one at a time per server: two (a connect's, an operation's end) interleaved could write an
    // older read of the Agent's records over a newer one
    const prev = this.#reconciling.get(server.id) ?? Promise.resolve();
    const next = prev.then(() => this.#reconcileNow(server));
    const tail = next.catch(() => undefined);
    this.#reconciling.set(server.id, tail);
    void tail.then(() => {
      if (this.#reconciling.get(server.id) === tail) this.#reconciling.delete(server.id);
    });
    return next;
  }

  async #reconcileNow(server: ServersTable): Promise<void> {
    const records = await this.#agentRecords(server);
    const byId = new Map(records.map((b) => [b.backupId, b]));
    const rows = await this.#repo.all(server.id);
    const known = new Set<string>();
    for (const row of rows) {
      known.add(row.id);
      if (row.storage !== 'node') continue;
      const rec = byId.get(row.id);
      if (rec) {
        const next = fromRecord(rec);
        // written only when something changed (a list call reads far more often than it changes)
        const same = (Object.keys(next) as (keyof typeof next)[]).every(
          (k) => String(row[k] ?? '') === String(next[k] ?? ''),
        );
        if (!same) await this.#repo.update(row.id, next);
        if (rec.state === 'completed' && row.state !== 'completed') this.#settle(row.id);
      } else if (row.state !== 'pending') {
        await this.#repo.delete(row.id);
        this.#log.info({ serverId: server.id, backupId: row.id }, 'backup gone from the node; row removed');
      }
    }
    for (const rec of records) {
      if (known.has(rec.backupId)) continue;
      await this.#repo.insert({
        id: rec.backupId,
        server_id: server.id,
        node_id: server.node_id,
        storage: 'node',
        created_by: null,
        operation_id: null,
        created_at: rec.createdAt,
        ...fromRecord(rec),
      });
    }
  }

  /**
   * The one seam deciding where a completed backup lives: on its node, or (PANEL_BACKUP_STORAGE=s3)
   * in the object store. The move runs in the background (it must not hold up the node's event
   * stream, whose end hook calls this): the node's copy streams through the Panel into a multipart
   * upload checked against the sha256, the row becomes `s3`, then the node copy is deleted. A
   * failed attempt is retried after a wait doubling from `upload.retryMs`, `upload.attempts` times
   * at most; meanwhile the backup stays on its node with `upload` pending, then failed. A node gone
   * offline ends the attempts (its next connect resumes them, see resumeUploads).
   */
  #settle(backupId: string): BackupStorage {
    const store = this.#s3;
    if (!store) return 'node';
    if (this.#offloads.has(backupId)) return 's3';
    const { attempts, retryMs } = this.#uploadPolicy;
    let firstDone!: () => void;
    const first = new Promise<void>((r) => {
      firstDone = r;
    });
    const run = (async () => {
      for (let attempt = 1; ; attempt++) {
        const row = await this.#repo.find(await this.#serverOf(backupId), backupId);
        if (row?.storage !== 'node' || row.state !== 'completed') {
          this.#uploads.delete(backupId);
          return;
        }
        const prev = this.#uploads.get(backupId);
        const state = {
          state: 'pending' as const,
          attempts: attempt - 1,
          nextAttemptAt: null,
          error: prev?.error ?? null,
          busy: true,
        };
        this.#uploads.set(backupId, state);
        try {
          await this.#moveOnce(store, row);
          return;
        } catch (e) {
          const error = {
            code: isCodedError(e) ? e.code : ('STORAGE_ERROR' as const),
            message: (e as Error).message.slice(0, 4096),
          };
          const online = this.#gateway.isOnline(row.node_id);
          const last = attempt >= attempts || this.#closing.signal.aborted;
          this.#log.warn(
            { backupId, attempt, of: attempts, code: error.code, err: error.message },
            last || !online
              ? 'backup not moved to S3; it stays on its node'
              : 'backup not moved to S3; retrying',
          );
          if (last || !online) {
            this.#uploads.set(backupId, {
              state: last ? 'failed' : 'pending',
              attempts: attempt,
              nextAttemptAt: null,
              error,
              busy: false,
            });
            return;
          }
          const wait = Math.min(retryMs * 2 ** (attempt - 1), 600_000);
          this.#uploads.set(backupId, {
            state: 'pending',
            attempts: attempt,
            nextAttemptAt: new Date(Date.now() + wait).toISOString(),
            error,
            busy: false,
          });
          firstDone();
          const waited = await sleep(wait, true, { signal: this.#closing.signal, ref: false }).catch(
            () => false,
          );
          if (!waited) return;
        }
      }
    })()
      .catch((e: unknown) => {
        // the row went (a deletion) or the database failed: nothing outstanding to show
        this.#uploads.delete(backupId);
        if (!(isCodedError(e) && e.code === 'BACKUP_NOT_FOUND'))
          this.#log.error({ backupId, err: (e as Error).message }, 'backup move to S3 failed');
      })
      .finally(() => {
        this.#offloads.delete(backupId);
        firstDone();
      });
    this.#offloads.set(backupId, { run, first });
    return 's3';
  }

  /** One attempt of a move to S3 (see #settle). */
  async #moveOnce(store: S3Store, row: BackupRow): Promise<void> {
    const backupId = row.id;
    const w = { nodeId: row.node_id, serverId: row.server_id };
    const rec = toPanelBackup(row);
    const put = await offloadBackup({ gateway: this.#gateway, transfers: this.#relay, store }, w, rec, {
      keepNodeCopy: true,
    });
    // the row first: a reconcile must not take the node copy's going for a deletion
    await this.#repo.update(backupId, { storage: 's3' });
    this.#uploads.delete(backupId);
    await deleteNodeCopy(this.#gateway, w, rec).catch((e: unknown) =>
      this.#log.warn({ backupId, err: (e as Error).message }, 'node copy not deleted after the offload'),
    );
    this.#log.info(
      { serverId: w.serverId, backupId, size: put.size, parts: put.parts },
      'backup moved to S3',
    );
  }

  async #serverOf(backupId: string): Promise<string> {
    const row = await this.#db
      .selectFrom('backups')
      .select('server_id')
      .where('id', '=', backupId)
      .executeTakeFirst();
    if (!row) throw new CodedError('BACKUP_NOT_FOUND', `no backup ${backupId}`);
    return row.server_id;
  }

  #key(row: BackupRow): string {
    return this.#s3!.keyOf(row.server_id, row.id, row.format === 'tar.gz' ? 'tar.gz' : 'tar.zst');
  }

  /** A backup operation ended (Agent, sweep or reconcile): the row takes the Agent's record. */
  async #created(op: OperationsTable, r: OperationResult): Promise<void> {
    const row = await this.#repo.findByOperation(op.id);
    if (!row) return;
    const server = await this.#server(op.server_id).catch(() => null);
    if (server && this.#gateway.isOnline(server.node_id)) {
      await this.reconcile(server).catch((e: unknown) =>
        this.#log.warn({ serverId: op.server_id, err: (e as Error).message }, 'backup reconcile failed'),
      );
    }
    const after = await this.#repo.find(op.server_id, row.id);
    // the Agent never recorded it (cut before it began, TIMEOUT, OPERATION_LOST): failed here
    if (after && after.state === 'pending' && !r.success)
      await this.#repo.update(row.id, {
        state: 'failed',
        completed_at: nowIso(),
        error_code: r.code ?? 'INTERNAL_ERROR',
        error_message: (r.message ?? 'the backup failed').slice(0, 4096),
      });
    this.#log.info(
      { serverId: op.server_id, backupId: row.id, success: r.success, code: r.code },
      'backup ended',
    );
  }

  /**
   * Starts a backup: refused past the server's limit (BACKUP_LIMIT_REACHED, nothing recorded) or
   * by the Agent (SERVER_BUSY while another backup or restore runs: the row goes again).
   */
  async create(
    serverId: string,
    input: CreateBackupInput,
    actor: string | null,
  ): Promise<{ operationId: string; backupId: string; done: Promise<PanelBackup> }> {
    const server = await this.#server(serverId);
    if (!this.#gateway.isOnline(server.node_id)) throw new CodedError('AGENT_OFFLINE', 'the node is offline');
    const limit = server.backup_limit ?? null;
    if (limit !== null) {
      const held = await this.#repo.count(serverId, ['pending', 'completed']);
      if (held >= limit)
        throw new CodedError(
          'BACKUP_LIMIT_REACHED',
          limit === 0
            ? 'this server may not have backups (its backup limit is 0)'
            : `this server holds ${held} of its ${limit} backups (locked ones count); delete one first`,
          { details: { limit, held } },
        );
    }
    const template = server.template_id
      ? await this.#templates.template(server.template_id).catch(() => undefined)
      : undefined;
    const commands = template?.backup;
    const backupId = randomUUID();
    const format = input.format ?? 'tar.zst';
    await this.#repo.insert({
      id: backupId,
      server_id: serverId,
      node_id: server.node_id,
      name: input.name ?? null,
      format,
      state: 'pending',
      size: null,
      sha256: null,
      bytes: null,
      entries: null,
      locked: input.locked ? 1 : 0,
      storage: 'node',
      created_by: actor,
      operation_id: null,
      created_at: nowIso(),
      completed_at: null,
      error_code: null,
      error_message: null,
    });
    let operationId: string;
    try {
      operationId = await this.#operations.start(
        server,
        'backup',
        'backup_create',
        {
          backupId,
          format,
          ignore: input.ignore ?? [],
          locked: input.locked ?? false,
          commandsBefore: commands?.commandsBefore ?? [],
          commandsAfter: commands?.commandsAfter ?? [],
          commandWaitSeconds: 2,
          ...(input.name === undefined ? {} : { name: input.name }),
          ...(input.retain === undefined ? {} : { retain: input.retain }),
        },
        actor,
      );
    } catch (e) {
      await this.#repo.delete(backupId);
      throw e;
    }
    await this.#repo.update(backupId, { operation_id: operationId });
    const { end } = await this.#operations.waitFor(operationId);
    const done = end.then(async (r) => {
      if (!r.success) throw operationError(r, 'the backup failed');
      // the first attempt of the move to S3 (a failed one is retried in the background: `upload`)
      await this.#offloads.get(backupId)?.first;
      if (input.retain !== undefined) await this.#retain(serverId, input.retain);
      return this.#get(serverId, backupId);
    });
    return { operationId, backupId, done };
  }

  /**
   * Retention across storages: the Agent's `retain` sees only the backups on its node, so with
   * S3 the Panel keeps the newest N completed unlocked backups of the server wherever they are
   * and deletes the others (objects and rows; locked ones always kept). Best effort: a failed
   * delete is logged and retried by the next retained create.
   */
  async #retain(serverId: string, keep: number): Promise<void> {
    if (!this.#s3) return;
    const rows = (await this.#repo.all(serverId))
      .filter((r) => r.state === 'completed' && Number(r.locked) !== 1)
      .sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0));
    for (const row of rows.slice(keep)) {
      await this.delete(serverId, row.id).catch((e: unknown) =>
        this.#log.warn({ serverId, backupId: row.id, err: (e as Error).message }, 'retention delete failed'),
      );
    }
  }

  /**
   * Restores a completed backup as an operation (`restore`); `done` resolves at its end. A backup in
   * S3 streams back to its node first as the operation's stage `importing` ("<sent> of <total>"),
   * then `backup_restore` runs on the imported copy (deleted again at the end either way).
   */
  async restore(
    serverId: string,
    backupId: string,
    truncate: boolean,
    actor: string | null,
  ): Promise<{ operationId: string; done: Promise<void> }> {
    const server = await this.#server(serverId);
    const row = await this.#row(serverId, backupId);
    if (row.state !== 'completed')
      throw new CodedError('INVALID_STATE', `backup ${backupId} is ${row.state}, not completed`);
    if (!this.#gateway.isOnline(server.node_id)) throw new CodedError('AGENT_OFFLINE', 'the node is offline');
    if (row.storage !== 's3') {
      const operationId = await this.#operations.start(
        server,
        'restore',
        'backup_restore',
        { backupId, truncate },
        actor,
      );
      return { operationId, done: this.#restoreEnd(operationId, () => Promise.resolve()) };
    }
    const store = this.#s3;
    if (!store)
      throw new CodedError('STORAGE_ERROR', 'this backup is in S3, and PANEL_BACKUP_STORAGE is not s3');
    const w = { nodeId: server.node_id, serverId };
    const operationId = await this.#operations.open(server, 'restore', actor);
    const dropCopy = () =>
      deleteNodeCopy(this.#gateway, w, { ...toPanelBackup(row), locked: false }).catch((e: unknown) =>
        this.#log.warn(
          { backupId, err: (e as Error).message },
          'imported copy not deleted after the restore',
        ),
      );
    // a waiter before anything can end it
    const done = this.#restoreEnd(operationId, dropCopy);
    void (async () => {
      const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;
      await this.#operations.step(operationId, 'importing', `0.0 MB of ${mb(Number(row.size ?? 0))}`);
      // the object streams back to its node first (verified there), then restores as any
      await importBackup(
        { gateway: this.#gateway, transfers: this.#relay, store },
        w,
        toPanelBackup(row),
        (sent, total) =>
          void this.#operations
            .step(operationId, 'importing', `${mb(sent)} of ${mb(total)}`)
            .catch(() => undefined),
      ).catch(async (e: unknown) => {
        // a copy left by an earlier restore whose cleanup failed: used when it is the same archive
        if (!(isCodedError(e) && e.code === 'CONFLICT')) throw e;
        const onNode = (await this.#agentRecords(server)).find((b) => b.backupId === backupId);
        if (onNode?.state !== 'completed' || onNode.sha256 !== row.sha256) throw e;
      });
      await this.#operations.start(server, 'restore', 'backup_restore', { backupId, truncate }, actor, {
        operationId,
      });
    })().catch(async (e: unknown) => {
      // (a refused backup_restore was closed by start already; finish closes an operation once)
      await this.#operations.finish(operationId, {
        success: false,
        code: isCodedError(e) ? e.code : 'INTERNAL_ERROR',
        message: (e as Error).message,
      });
    });
    return { operationId, done };
  }

  /** A restore operation's end: `after` runs, then a failure rejects. */
  #restoreEnd(operationId: string, after: () => Promise<unknown>): Promise<void> {
    const done = this.#operations.waitFor(operationId).then(({ end }) =>
      end.then(async (r) => {
        // not ended (its node offline past the grace): what follows the end waits for it
        if (!r.pending) await after();
        if (!r.success) throw operationError(r, 'the restore failed');
      }),
    );
    done.catch(() => undefined);
    return done;
  }

  async lock(serverId: string, backupId: string, locked: boolean): Promise<PanelBackup> {
    const server = await this.#server(serverId);
    const row = await this.#row(serverId, backupId);
    if (row.storage === 's3') {
      await this.#repo.update(backupId, { locked: locked ? 1 : 0 });
      return this.#get(serverId, backupId);
    }
    const rec = BackupRecord.parse(
      await this.#gateway.request(server.node_id, 'backup_lock', { backupId, locked }, { serverId }),
    );
    await this.#repo.update(backupId, fromRecord(rec));
    return this.#get(serverId, backupId);
  }

  /** Deletes a backup on the node and its row; a locked one is 409 INVALID_STATE (unlock it first). */
  async delete(serverId: string, backupId: string): Promise<void> {
    const server = await this.#server(serverId);
    const row = await this.#row(serverId, backupId);
    if (Number(row.locked) === 1)
      throw new CodedError('INVALID_STATE', `backup ${backupId} is locked; unlock it first`);
    if (row.state === 'pending') throw new CodedError('SERVER_BUSY', `backup ${backupId} is being made`);
    if (row.storage === 's3') {
      if (!this.#s3)
        throw new CodedError('STORAGE_ERROR', 'this backup is in S3, and PANEL_BACKUP_STORAGE is not s3');
      await this.#s3.delete(this.#key(row));
      await this.#repo.delete(backupId);
      return;
    }
    if (this.#uploads.get(backupId)?.busy)
      throw new CodedError('SERVER_BUSY', `backup ${backupId} is being moved to S3; try again shortly`);
    try {
      await this.#gateway.request(server.node_id, 'backup_delete', { backupId }, { serverId });
    } catch (e) {
      // gone from the node already: the row goes too
      if (!(isCodedError(e) && e.code === 'BACKUP_NOT_FOUND')) throw e;
    }
    await this.#repo.delete(backupId);
  }

  /**
   * A short-lived, single-use link to a completed backup's archive: the Agent issues the ticket,
   * the bytes come from the Agent directly (`url`, when the node has a transfer URL) or through the
   * Panel's relay (`relayUrl`; the Agent dials out, so nodes behind NAT work).
   */
  async downloadLink(
    serverId: string,
    backupId: string,
  ): Promise<{
    url: string;
    relayUrl: string;
    expiresAt: string;
    size: number;
    name: string;
    sha256: string;
  }> {
    const server = await this.#server(serverId);
    const row = await this.#row(serverId, backupId);
    if (row.state !== 'completed' || !row.sha256)
      throw new CodedError('INVALID_STATE', `backup ${backupId} is ${row.state}, not completed`);
    if (row.storage === 's3') return this.#s3Link(row, row.sha256);
    const data = CreateTransferData.parse(
      await this.#gateway.request(
        server.node_id,
        'create_transfer',
        { direction: 'download', backupId, ttlSeconds: BACKUP_LINK_TTL_SECONDS },
        { serverId },
      ),
    );
    const sha256 = data.sha256 ?? row.sha256;
    const size = data.size;
    if (size === null) throw new CodedError('INTERNAL_ERROR', 'the Agent gave a backup ticket no size');
    const urls = await this.#links.issue(data.ticket, {
      nodeId: server.node_id,
      serverId,
      direction: 'download',
      size,
      name: data.name,
      expiresAt: Date.parse(data.expiresAt),
      sha256,
    });
    return {
      ...urls,
      expiresAt: data.expiresAt,
      size,
      name: data.name,
      sha256,
    };
  }

  /** A download of an object-stored backup: a presigned GET, or a Panel ticket streaming from S3. */
  async #s3Link(
    row: BackupRow,
    sha256: string,
  ): Promise<{
    url: string;
    relayUrl: string;
    expiresAt: string;
    size: number;
    name: string;
    sha256: string;
  }> {
    const store = this.#s3;
    if (!store)
      throw new CodedError('STORAGE_ERROR', 'this backup is in S3, and PANEL_BACKUP_STORAGE is not s3');
    const name = `${row.server_id}-${row.id}.${row.format}`;
    const size = Number(row.size ?? 0);
    const ttl = Math.min(BACKUP_LINK_TTL_SECONDS, PRESIGN_MAX_SECONDS);
    const expiresAt = new Date(Date.now() + ttl * 1000).toISOString();
    if (this.#s3Downloads === 'presign') {
      // the bucket is the only place it is: no relay to fall back on
      const url = await store.presignGet(this.#key(row), { expiresInSeconds: ttl, filename: name });
      return {
        url,
        relayUrl: url,
        expiresAt,
        size,
        name,
        sha256,
      };
    }
    const ticket = randomBytes(32).toString('base64url');
    this.#relay.remember(ticket, {
      nodeId: row.node_id,
      serverId: row.server_id,
      direction: 'download',
      size,
      name,
      expiresAt: Date.parse(expiresAt),
      sha256,
      s3Key: this.#key(row),
    });
    const url = relayUrlOf(ticket);
    return { url, relayUrl: url, expiresAt, size, name, sha256 };
  }

  /**
   * A server is being deleted: its backups in object storage go (the node's go with
   * delete_server, the rows by the foreign key). Best effort: a failure is logged, not fatal.
   */
  async forgetServer(serverId: string): Promise<void> {
    if (!this.#s3) return;
    for (const row of await this.#repo.all(serverId)) {
      if (row.storage !== 's3') continue;
      await this.#s3
        .delete(this.#key(row))
        .catch((e: unknown) =>
          this.#log.warn(
            { serverId, backupId: row.id, err: (e as Error).message },
            'S3 object not deleted with its server',
          ),
        );
    }
  }
}
