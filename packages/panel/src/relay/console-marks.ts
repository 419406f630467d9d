/**
 * The console's high-water mark per server, shared by every replica (`console_marks`, migration
 * 032): the numbering (LinkSeq: the Agent's epoch, a line's seq) of the last line published.
 * The projection writes it before it publishes lines, so a line the Agent sends again after a
 * lost link (a Panel killed with what it had read unhandled, a replica cut off) is skipped by
 * whichever replica gets it: never shown twice, never handed to a webhook (an `origin` effect)
 * twice. Writes are grouped: while one is in flight the next marks gather and go together in
 * one upsert (a mark only moves forward within an epoch, so a late writer cannot move it back).
 * A write that fails or takes longer than WRITE_WAIT_MS lets the lines through anyway (the
 * console stays live through a database outage; such lines could be shown twice after a
 * failover, never lost).
 */
import { PostgresAdapter, sql } from 'kysely';
import type { Db } from '../db/index.ts';

export interface Mark {
  epoch: string;
  seq: number;
}

export interface MarksLogger {
  warn(obj: object, msg: string): void;
}

/** how long publishing waits for a mark's write before it goes on without it */
export const WRITE_WAIT_MS = 2_000;
/** rows per upsert (3 parameters each, far below SQLite's 32,766) and ids per read */
const CHUNK = 2_000;
/**
 * upserts in flight at once: the next turn's marks need not wait for the round trip of the one
 * before (each batch's rows go in server order, so two never wait on each other's row locks)
 */
const MAX_IN_FLIGHT = 2;

export class ConsoleMarks {
  readonly #db: Db;
  readonly #log: MarksLogger;
  #pending = new Map<string, Mark>();
  #waiters: (() => void)[] = [];
  #inFlight = 0;
  /**
   * in-flight writes past WRITE_WAIT_MS: when every slot holds one (the database not answering,
   * not refusing: a cut link), a new write waits for none (it is still stored when a slot frees)
   */
  #lateInFlight = 0;
  /** PostgreSQL: one statement of three arrays (unnest) instead of 3 parameters a row */
  readonly #pg: boolean;
  /** reads asked this turn: serverId → who waits for it */
  /** a batch is about to start (this turn's setImmediate) */
  #kicked = false;
  #reads = new Map<string, ((m: Mark | undefined) => void)[]>();
  #readTimer: NodeJS.Immediate | undefined;
  #warnedAt = 0;

  constructor(db: Db, log: MarksLogger) {
    this.#db = db;
    this.#log = log;
    this.#pg = db.getExecutor().adapter instanceof PostgresAdapter;
  }

  /**
   * The stored mark of a server (undefined: none, or the database did not answer). The reads of
   * one event-loop turn go together in one query (after a Panel restart every server's first
   * numbered line asks: 20,000 of them in the first second at scale).
   */
  load(serverId: string): Promise<Mark | undefined> {
    return new Promise((resolve) => {
      const waiting = this.#reads.get(serverId);
      if (waiting) waiting.push(resolve);
      else this.#reads.set(serverId, [resolve]);
      this.#readTimer ??= setImmediate(() => void this.#readBatch());
    });
  }

  async #readBatch(): Promise<void> {
    this.#readTimer = undefined;
    const batch = this.#reads;
    this.#reads = new Map();
    const ids = [...batch.keys()];
    const found = new Map<string, Mark>();
    try {
      for (let i = 0; i < ids.length; i += CHUNK) {
        const rows = await this.#db
          .selectFrom('console_marks')
          .select(['server_id', 'epoch', 'seq'])
          .where('server_id', 'in', ids.slice(i, i + CHUNK))
          .execute();
        for (const row of rows) {
          const seq = Number(row.seq);
          if (Number.isSafeInteger(seq) && seq > 0) found.set(row.server_id, { epoch: row.epoch, seq });
        }
      }
    } catch (err) {
      this.#warn(err, 'console mark not read');
    }
    for (const [id, waiters] of batch) for (const w of waiters) w(found.get(id));
  }

  /** Resolves once the mark is stored (or the write failed or took too long): never rejects. */
  write(serverId: string, mark: Mark): Promise<void> {
    this.#pending.set(serverId, mark);
    if (this.#lateInFlight >= MAX_IN_FLIGHT) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.#waiters.push(resolve);
      this.#kick();
    });
  }

  #kick(): void {
    if (this.#inFlight >= MAX_IN_FLIGHT || this.#pending.size === 0 || this.#kicked) return;
    this.#inFlight += 1;
    this.#kicked = true;
    // one turn's marks together (under load, the lines of many Agents)
    setImmediate(() => {
      this.#kicked = false;
      const batch = this.#pending;
      const waiters = this.#waiters;
      this.#pending = new Map();
      this.#waiters = [];
      let timer: NodeJS.Timeout | undefined;
      let wasLate = false;
      const late = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          this.#warn(new Error(`no answer in ${WRITE_WAIT_MS} ms`), 'console marks not written in time');
          wasLate = true;
          this.#lateInFlight += 1;
          // every slot stuck: the writes queued behind them would wait as long, let them through
          if (this.#lateInFlight >= MAX_IN_FLIGHT) {
            const queued = this.#waiters;
            this.#waiters = [];
            for (const w of queued) w();
          }
          resolve();
        }, WRITE_WAIT_MS);
      });
      const done = this.#store(batch).catch((err) => this.#warn(err, 'console marks not written'));
      void Promise.race([done, late]).then(() => {
        clearTimeout(timer);
        for (const w of waiters) w();
      });
      void done.finally(() => {
        if (wasLate) this.#lateInFlight -= 1;
        this.#inFlight -= 1;
        this.#kick();
      });
    });
  }

  async #store(batch: Map<string, Mark>): Promise<void> {
    const rows = [...batch]
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([server_id, m]) => ({ server_id, epoch: m.epoch, seq: m.seq }));
    for (let i = 0; i < rows.length; i += CHUNK) {
      const chunk = rows.slice(i, i + CHUNK);
      await this.#upsert(chunk).catch(async (err) => {
        // a server deleted meanwhile (its row gone: the foreign key) is no reason to fail the rest
        if (!/foreign key/i.test(String((err as Error).message))) throw err;
        for (const r of chunk) await this.#upsert([r]).catch(() => undefined);
      });
    }
  }

  async #upsert(rows: { server_id: string; epoch: string; seq: number }[]): Promise<void> {
    if (this.#pg) {
      // three parameters whatever the rows (a VALUES list of 6,000 is parsed and planned anew each time)
      await sql`insert into console_marks (server_id, epoch, seq)
        select * from unnest(${rows.map((r) => r.server_id)}::text[], ${rows.map((r) => r.epoch)}::text[], ${rows.map((r) => r.seq)}::bigint[])
        on conflict (server_id) do update set epoch = excluded.epoch, seq = excluded.seq
        where console_marks.epoch <> excluded.epoch or console_marks.seq < excluded.seq`.execute(this.#db);
      return;
    }
    await this.#db
      .insertInto('console_marks')
      .values(rows)
      .onConflict((oc) =>
        oc
          .column('server_id')
          .doUpdateSet({ epoch: sql`excluded.epoch`, seq: sql`excluded.seq` })
          // forward only within an epoch (a replica writing late cannot move it back)
          .where((eb) =>
            eb.or([
              eb('console_marks.epoch', '<>', sql<string>`excluded.epoch`),
              eb('console_marks.seq', '<', sql<number>`excluded.seq`),
            ]),
          ),
      )
      .execute();
  }

  #warn(err: unknown, msg: string): void {
    // at most one warning a minute (a database outage would log one per console message)
    if (Date.now() - this.#warnedAt < 60_000) return;
    this.#warnedAt = Date.now();
    this.#log.warn({ err: (err as Error)?.message ?? String(err) }, msg);
  }
}
