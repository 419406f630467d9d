/** The `operations` table: what was asked of an Agent, and what became of it. */
import { z } from 'zod';
import type { Db } from '../../db/index.ts';
import type { OperationsTable } from '../../db/schema.ts';

export const OperationKind = z.enum([
  'create',
  'start',
  'stop',
  'restart',
  'kill',
  'reinstall',
  'update',
  'backup',
  'restore',
  'compress',
  'decompress',
  /** a server moved to another node (modules/transfers); its Agent steps run as `transfer_step` */
  'transfer',
  'transfer_step',
  'image_update',
]);
export type OperationKind = z.infer<typeof OperationKind>;

export const Operation = z.object({
  id: z.string(),
  kind: z.string(),
  serverId: z.string(),
  nodeId: z.string(),
  actorUserId: z.string().nullable(),
  /** requested → accepted → the Agent's steps (stopping, killing, starting, running…) → completed | failed */
  stage: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
  finishedAt: z.string().nullable(),
  /** null while it runs */
  success: z.boolean().nullable(),
  errorCode: z.string().nullable(),
  errorMessage: z.string().nullable(),
});
export type Operation = z.infer<typeof Operation>;

export function toOperation(r: OperationsTable): Operation {
  return {
    id: r.id,
    kind: r.kind,
    serverId: r.server_id,
    nodeId: r.node_id,
    actorUserId: r.actor_user_id,
    stage: r.stage,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    finishedAt: r.finished_at,
    success: r.success === null ? null : Number(r.success) === 1,
    errorCode: r.error_code,
    errorMessage: r.error_message,
  };
}

export class OperationsRepo {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async insert(row: OperationsTable): Promise<void> {
    await this.#db.insertInto('operations').values(row).execute();
  }
  findById(id: string): Promise<OperationsTable | undefined> {
    return this.#db.selectFrom('operations').selectAll().where('id', '=', id).executeTakeFirst();
  }
  listByServer(serverId: string, limit: number): Promise<OperationsTable[]> {
    return this.#db
      .selectFrom('operations')
      .selectAll()
      .where('server_id', '=', serverId)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
  }
  listOpen(nodeId?: string): Promise<OperationsTable[]> {
    let q = this.#db.selectFrom('operations').selectAll().where('finished_at', 'is', null);
    if (nodeId !== undefined) q = q.where('node_id', '=', nodeId);
    return q.execute();
  }
  /** A step of an open operation; `onlyFrom` = only when its stage is still that one. Returns whether a row changed. */
  async setStage(id: string, stage: string, at: string, onlyFrom?: string): Promise<boolean> {
    let q = this.#db
      .updateTable('operations')
      .set({ stage, updated_at: at })
      .where('id', '=', id)
      .where('finished_at', 'is', null);
    if (onlyFrom !== undefined) q = q.where('stage', '=', onlyFrom);
    const r = await q.executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }
  /** Closes an open operation (once: a closed one is left as it is). Returns whether it was open. */
  async finish(
    id: string,
    result: { success: boolean; code?: string; message?: string },
    at: string,
  ): Promise<boolean> {
    const r = await this.#db
      .updateTable('operations')
      .set({
        stage: result.success ? 'completed' : 'failed',
        updated_at: at,
        finished_at: at,
        success: result.success ? 1 : 0,
        error_code: result.code ?? null,
        error_message: result.message?.slice(0, 4096) ?? null,
      })
      .where('id', '=', id)
      .where('finished_at', 'is', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }
}
