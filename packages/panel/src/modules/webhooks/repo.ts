/** The `webhooks` and `webhook_deliveries` tables (migration 023_webhooks). */
import type { Db } from '../../db/index.ts';
import type { WebhookDeliveriesTable, WebhooksTable } from '../../db/schema.ts';

/** deliveries kept per webhook (older finished ones are pruned) */
export const DELIVERIES_KEPT = 100;

export class WebhooksRepo {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  list(serverId: string | null): Promise<WebhooksTable[]> {
    const q = this.#db.selectFrom('webhooks').selectAll();
    return (serverId === null ? q.where('server_id', 'is', null) : q.where('server_id', '=', serverId))
      .orderBy('created_at')
      .orderBy('id')
      .execute();
  }
  enabled(): Promise<WebhooksTable[]> {
    return this.#db.selectFrom('webhooks').selectAll().where('enabled', '=', 1).execute();
  }
  find(serverId: string | null, id: string): Promise<WebhooksTable | undefined> {
    const q = this.#db.selectFrom('webhooks').selectAll().where('id', '=', id);
    return (
      serverId === null ? q.where('server_id', 'is', null) : q.where('server_id', '=', serverId)
    ).executeTakeFirst();
  }
  byId(id: string): Promise<WebhooksTable | undefined> {
    return this.#db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst();
  }
  async insert(row: WebhooksTable): Promise<void> {
    await this.#db.insertInto('webhooks').values(row).execute();
  }
  async update(id: string, patch: Partial<Omit<WebhooksTable, 'id' | 'server_id' | 'kind'>>): Promise<void> {
    await this.#db.updateTable('webhooks').set(patch).where('id', '=', id).execute();
  }
  async delete(id: string): Promise<void> {
    await this.#db.deleteFrom('webhooks').where('id', '=', id).execute();
  }
  async serverName(serverId: string): Promise<string | undefined> {
    return (await this.#db.selectFrom('servers').select('name').where('id', '=', serverId).executeTakeFirst())
      ?.name;
  }

  async insertDelivery(row: WebhookDeliveriesTable): Promise<void> {
    await this.#db.insertInto('webhook_deliveries').values(row).execute();
  }
  delivery(id: string): Promise<WebhookDeliveriesTable | undefined> {
    return this.#db.selectFrom('webhook_deliveries').selectAll().where('id', '=', id).executeTakeFirst();
  }
  /** newest first */
  deliveries(webhookId: string, limit: number): Promise<WebhookDeliveriesTable[]> {
    return this.#db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('webhook_id', '=', webhookId)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
  }
  due(nowIso: string, limit: number): Promise<WebhookDeliveriesTable[]> {
    return this.#db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('state', '=', 'pending')
      .where('next_attempt_at', '<=', nowIso)
      .orderBy('next_attempt_at')
      .limit(limit)
      .execute();
  }
  /** Takes a due delivery for one attempt (a lease until `until`); false when another took it. */
  async lease(id: string, from: string, until: string): Promise<boolean> {
    const r = await this.#db
      .updateTable('webhook_deliveries')
      .set({ next_attempt_at: until })
      .where('id', '=', id)
      .where('state', '=', 'pending')
      .where('next_attempt_at', '=', from)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }
  async updateDelivery(
    id: string,
    patch: Partial<Omit<WebhookDeliveriesTable, 'id' | 'webhook_id'>>,
  ): Promise<void> {
    await this.#db.updateTable('webhook_deliveries').set(patch).where('id', '=', id).execute();
  }
  async prune(webhookId: string): Promise<void> {
    const old = await this.#db
      .selectFrom('webhook_deliveries')
      .select('id')
      .where('webhook_id', '=', webhookId)
      .where('state', '!=', 'pending')
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .offset(DELIVERIES_KEPT)
      .limit(1000)
      .execute();
    if (old.length > 0)
      await this.#db
        .deleteFrom('webhook_deliveries')
        .where(
          'id',
          'in',
          old.map((r) => r.id),
        )
        .execute();
  }
}
