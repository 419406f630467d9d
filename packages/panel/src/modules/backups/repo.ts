/** The `backups` table (migration 014_backups): the Panel's record of each server's backups. */
import { BackupRecord, ErrorCode } from '@cap/protocol';
import { z } from 'zod';
import type { Db } from '../../db/index.ts';
import type { BackupsTable } from '../../db/schema.ts';

/** Where a backup's archive lives: on its node (the Agent's AGENT_BACKUP_DIR) or in object storage. */
export const BackupStorage = z.enum(['node', 's3']);
export type BackupStorage = z.infer<typeof BackupStorage>;

/** A backup as the Panel answers it: the Agent's record plus who made it and where it is kept. */
/**
 * A completed node backup's move to the object store (PANEL_BACKUP_STORAGE=s3), while it is not
 * done: `pending` (waiting for its node, running, or waiting `nextAttemptAt` after a failed
 * attempt) or `failed` (the attempts ran out; the backup stays on its node, and the move is tried
 * again when its node next connects).
 */
export const BackupUpload = z.object({
  state: z.enum(['pending', 'failed']),
  /** attempts made so far */
  attempts: z.number().int(),
  nextAttemptAt: z.string().nullable(),
  /** the last attempt's error */
  error: z.object({ code: ErrorCode, message: z.string() }).nullable(),
});
export type BackupUpload = z.infer<typeof BackupUpload>;

export const PanelBackup = BackupRecord.extend({
  createdBy: z.object({ id: z.string(), username: z.string() }).nullable(),
  storage: BackupStorage,
  /** set while a move to S3 is outstanding (see BackupUpload); null otherwise */
  upload: BackupUpload.nullable(),
});
export type PanelBackup = z.infer<typeof PanelBackup>;

export type BackupRow = BackupsTable & { creator_username?: string | null };

const num = (v: number | string | null): number | null => (v === null ? null : Number(v));

export function toPanelBackup(r: BackupRow): PanelBackup {
  return {
    backupId: r.id,
    serverId: r.server_id,
    name: r.name,
    format: r.format === 'tar.gz' ? 'tar.gz' : 'tar.zst',
    state: r.state === 'completed' ? 'completed' : r.state === 'failed' ? 'failed' : 'pending',
    size: num(r.size),
    sha256: r.sha256,
    bytes: num(r.bytes),
    entries: num(r.entries),
    locked: Number(r.locked) === 1,
    createdAt: r.created_at,
    completedAt: r.completed_at,
    ...(r.error_code
      ? { error: { code: r.error_code as never, message: (r.error_message ?? '').slice(0, 4096) } }
      : {}),
    createdBy: r.created_by ? { id: r.created_by, username: r.creator_username ?? '' } : null,
    storage: r.storage === 's3' ? 's3' : 'node',
    upload: null,
  };
}

/** The columns an Agent record sets on a row. */
export function fromRecord(
  b: BackupRecord,
): Pick<
  BackupsTable,
  | 'name'
  | 'format'
  | 'state'
  | 'size'
  | 'sha256'
  | 'bytes'
  | 'entries'
  | 'locked'
  | 'completed_at'
  | 'error_code'
  | 'error_message'
> {
  return {
    name: b.name,
    format: b.format,
    state: b.state,
    size: b.size,
    sha256: b.sha256,
    bytes: b.bytes,
    entries: b.entries,
    locked: b.locked ? 1 : 0,
    completed_at: b.completedAt,
    error_code: b.error?.code ?? null,
    error_message: b.error?.message ?? null,
  };
}

export class BackupsRepo {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async insert(row: BackupsTable): Promise<void> {
    await this.#db.insertInto('backups').values(row).execute();
  }
  #select() {
    return this.#db
      .selectFrom('backups')
      .leftJoin('users', 'users.id', 'backups.created_by')
      .selectAll('backups')
      .select('users.username as creator_username');
  }
  find(serverId: string, id: string): Promise<BackupRow | undefined> {
    return this.#select()
      .where('backups.server_id', '=', serverId)
      .where('backups.id', '=', id)
      .executeTakeFirst();
  }
  findByOperation(operationId: string): Promise<BackupRow | undefined> {
    return this.#select().where('backups.operation_id', '=', operationId).executeTakeFirst();
  }
  /** newest first */
  page(serverId: string, offset: number, limit: number): Promise<BackupRow[]> {
    return this.#select()
      .where('backups.server_id', '=', serverId)
      .orderBy('backups.created_at', 'desc')
      .orderBy('backups.id', 'desc')
      .offset(offset)
      .limit(limit)
      .execute();
  }
  all(serverId: string): Promise<BackupsTable[]> {
    return this.#db.selectFrom('backups').selectAll().where('server_id', '=', serverId).execute();
  }
  async count(serverId: string, states?: string[]): Promise<number> {
    let q = this.#db
      .selectFrom('backups')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('server_id', '=', serverId);
    if (states) q = q.where('state', 'in', states);
    const r = await q.executeTakeFirst();
    return Number(r?.n ?? 0);
  }
  async update(id: string, patch: Partial<Omit<BackupsTable, 'id' | 'server_id'>>): Promise<void> {
    await this.#db.updateTable('backups').set(patch).where('id', '=', id).execute();
  }
  async delete(id: string): Promise<void> {
    await this.#db.deleteFrom('backups').where('id', '=', id).execute();
  }
}
