/** The `activity` table: who did what, from where, on which server, with what result. */
import type { Db } from '../../db/index.ts';
import type { ActivityTable } from '../../db/schema.ts';

export interface ActivityFilter {
  serverId?: string;
  actor?: string;
  /** an action name or its prefix: `server.power` finds `server.power.stop` */
  action?: string;
  result?: string;
  /** ISO times, inclusive */
  since?: string;
  until?: string;
}

export class ActivityRepo {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async insert(row: ActivityTable): Promise<void> {
    await this.#db.insertInto('activity').values(row).execute();
  }
  /** Newest first; `limit + 1` rows are read so the caller knows whether there is more. */
  list(f: ActivityFilter, offset: number, limit: number): Promise<ActivityTable[]> {
    let q = this.#db.selectFrom('activity').selectAll();
    if (f.serverId !== undefined) q = q.where('server_id', '=', f.serverId);
    if (f.actor !== undefined) q = q.where('actor_user_id', '=', f.actor);
    if (f.result !== undefined) q = q.where('result', '=', f.result);
    if (f.since !== undefined) q = q.where('at', '>=', f.since);
    if (f.until !== undefined) q = q.where('at', '<=', f.until);
    if (f.action !== undefined) {
      // the name itself or a dotted child (`server.power` → `server.power.stop`, not `server.powerx`);
      // substr, not LIKE: the prefix's % and _ stay literal on both databases
      const prefix = `${f.action}.`;
      q = q.where((eb) =>
        eb.or([
          eb('action', '=', f.action as string),
          eb(eb.fn('substr', [eb.ref('action'), eb.val(1), eb.val(prefix.length)]), '=', prefix),
        ]),
      );
    }
    return q.orderBy('at', 'desc').orderBy('id', 'desc').offset(offset).limit(limit).execute();
  }
  async pruneBefore(iso: string): Promise<number> {
    const r = await this.#db.deleteFrom('activity').where('at', '<', iso).executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}
