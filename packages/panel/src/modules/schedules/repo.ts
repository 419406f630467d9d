/** The `schedules` and `schedule_runs` tables (migration 022_schedules). */
import type { Db } from '../../db/index.ts';
import type { ScheduleRunsTable, SchedulesTable } from '../../db/schema.ts';
import { isUniqueViolation } from '../../lib/db-errors.ts';

/** Runs kept per schedule (older ones are pruned when a new one is claimed). */
export const RUNS_KEPT = 50;

export class SchedulesRepo {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }

  list(serverId: string): Promise<SchedulesTable[]> {
    return this.#db
      .selectFrom('schedules')
      .selectAll()
      .where('server_id', '=', serverId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
  }
  find(serverId: string, id: string): Promise<SchedulesTable | undefined> {
    return this.#db
      .selectFrom('schedules')
      .selectAll()
      .where('server_id', '=', serverId)
      .where('id', '=', id)
      .executeTakeFirst();
  }
  byId(id: string): Promise<SchedulesTable | undefined> {
    return this.#db.selectFrom('schedules').selectAll().where('id', '=', id).executeTakeFirst();
  }
  async count(serverId: string): Promise<number> {
    const r = await this.#db
      .selectFrom('schedules')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('server_id', '=', serverId)
      .executeTakeFirst();
    return Number(r?.n ?? 0);
  }
  /** enabled schedules whose next slot is at or before `nowIso` */
  due(nowIso: string): Promise<SchedulesTable[]> {
    return this.#db
      .selectFrom('schedules')
      .selectAll()
      .where('enabled', '=', 1)
      .where('next_run_at', 'is not', null)
      .where('next_run_at', '<=', nowIso)
      .orderBy('next_run_at')
      .limit(500)
      .execute();
  }
  async insert(row: SchedulesTable): Promise<void> {
    await this.#db.insertInto('schedules').values(row).execute();
  }
  async update(id: string, patch: Partial<Omit<SchedulesTable, 'id' | 'server_id'>>): Promise<void> {
    await this.#db.updateTable('schedules').set(patch).where('id', '=', id).execute();
  }
  /** Moves the next slot on only if it is still `from` (another round may have moved it). */
  async advance(id: string, from: string, to: string | null): Promise<boolean> {
    const r = await this.#db
      .updateTable('schedules')
      .set({ next_run_at: to })
      .where('id', '=', id)
      .where('next_run_at', '=', from)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }
  async delete(id: string): Promise<void> {
    await this.#db.deleteFrom('schedules').where('id', '=', id).execute();
  }

  /** Claims a slot: false when a run for it exists already (it happened, or is happening). */
  async claim(row: ScheduleRunsTable): Promise<boolean> {
    try {
      await this.#db.insertInto('schedule_runs').values(row).execute();
    } catch (e) {
      if (isUniqueViolation(e)) return false;
      throw e;
    }
    const old = await this.#db
      .selectFrom('schedule_runs')
      .select('id')
      .where('schedule_id', '=', row.schedule_id)
      .orderBy('started_at', 'desc')
      .orderBy('id', 'desc')
      .offset(RUNS_KEPT)
      .limit(1000)
      .execute();
    if (old.length > 0)
      await this.#db
        .deleteFrom('schedule_runs')
        .where(
          'id',
          'in',
          old.map((r) => r.id),
        )
        .where('state', '!=', 'running')
        .execute();
    return true;
  }
  run(id: string): Promise<ScheduleRunsTable | undefined> {
    return this.#db.selectFrom('schedule_runs').selectAll().where('id', '=', id).executeTakeFirst();
  }
  /** newest first */
  runs(scheduleId: string, limit: number): Promise<ScheduleRunsTable[]> {
    return this.#db
      .selectFrom('schedule_runs')
      .selectAll()
      .where('schedule_id', '=', scheduleId)
      .orderBy('started_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
  }
  running(): Promise<ScheduleRunsTable[]> {
    return this.#db.selectFrom('schedule_runs').selectAll().where('state', '=', 'running').execute();
  }
  async runningOf(scheduleId: string): Promise<ScheduleRunsTable | undefined> {
    return this.#db
      .selectFrom('schedule_runs')
      .selectAll()
      .where('schedule_id', '=', scheduleId)
      .where('state', '=', 'running')
      .executeTakeFirst();
  }
  async updateRun(
    id: string,
    patch: Partial<Omit<ScheduleRunsTable, 'id' | 'schedule_id' | 'server_id' | 'slot'>>,
  ): Promise<void> {
    await this.#db.updateTable('schedule_runs').set(patch).where('id', '=', id).execute();
  }
}
