/**
 * The console's marks per server, shared by every replica (`console_marks`, migrations 032 and
 * 034), in the numbering of the lines (LinkSeq: the Agent's epoch, a line's seq):
 * - `seq`, the intent: the last line a replica is about to publish, written before it publishes;
 * - `shown`: the highest seq (same epoch) whose publish completed.
 * A line the Agent sends again after a lost link (a Panel killed with what it had read unhandled,
 * a replica cut off) is, for whichever replica gets it: skipped at seq <= shown (published for
 * sure); published again and flagged `resent` at shown < seq <= intent (the process that wrote
 * the intent may have died before it published: skipping those lost them); new above the intent.
 * Writes are grouped: while one is in flight the next marks gather and go together in one
 * upsert; a server's `shown` rides along in its intent's row, the others' go together every
 * SHOWN_IDLE_MS (rows, not statements, are what costs at 20,000 servers). Both only move forward
 * within an epoch (a late writer cannot move them back). The projection stores intents ahead of
 * its lines (servers/projection.ts, INTENT_AHEAD), so most lines need no write before they go.
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

/** A stored mark: the intent (`seq`) and the highest seq whose publish completed (`shown`, ≤ seq; 0: none). */
export interface StoredMark extends Mark {
  shown: number;
}

interface Row {
  server_id: string;
  epoch: string;
  seq: number;
  shown: number;
}

export interface MarksLogger {
  warn(obj: object, msg: string): void;
}

/** how long publishing waits for a mark's write before it goes on without it */
export const WRITE_WAIT_MS = 2_000;
/** how often the `shown` of servers with no intent written meanwhile are stored, together */
export const SHOWN_IDLE_MS = 3_000;
/** rows per upsert (4 parameters each, far below SQLite's 32,766) and ids per read */
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
  /** published since the last write took them: serverId → the highest seq of its epoch */
  #shown = new Map<string, Mark>();
  #shownTimer: NodeJS.Timeout | undefined;
  /** the shown timer fired: the next write takes every `shown` */
  #shownDue = false;
  #waiters: ((stored: boolean) => void)[] = [];
  #inFlight = 0;
  /**
   * in-flight writes past WRITE_WAIT_MS: when every slot holds one (the database not answering,
   * not refusing: a cut link), a new write waits for none (it is still stored when a slot frees)
   */
  #lateInFlight = 0;
  /** PostgreSQL: one statement of four arrays (unnest) instead of 3 parameters a row */
  readonly #pg: boolean;
  /** reads asked this turn: serverId → who waits for it */
  /** a batch is about to start (this turn's setImmediate) */
  #kicked = false;
  #reads = new Map<string, ((m: StoredMark | undefined) => void)[]>();
  #readTimer: NodeJS.Immediate | undefined;
  #warnedAt = 0;

  readonly #shownIdleMs: number;

  constructor(db: Db, log: MarksLogger, opts: { shownIdleMs?: number } = {}) {
    this.#db = db;
    this.#log = log;
    this.#shownIdleMs = opts.shownIdleMs ?? SHOWN_IDLE_MS;
    this.#pg = db.getExecutor().adapter instanceof PostgresAdapter;
  }

  /**
   * The stored mark of a server (undefined: none, or the database did not answer). The reads of
   * one event-loop turn go together in one query (after a Panel restart every server's first
   * numbered line asks: 20,000 of them in the first second at scale).
   */
  load(serverId: string): Promise<StoredMark | undefined> {
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
    const found = new Map<string, StoredMark>();
    try {
      for (let i = 0; i < ids.length; i += CHUNK) {
        const rows = await this.#db
          .selectFrom('console_marks')
          .select(['server_id', 'epoch', 'seq', 'shown'])
          .where('server_id', 'in', ids.slice(i, i + CHUNK))
          .execute();
        for (const row of rows) {
          const seq = Number(row.seq);
          let shown = Number(row.shown);
          if (!Number.isSafeInteger(shown) || shown < 0 || shown > seq) shown = 0;
          if (Number.isSafeInteger(seq) && seq > 0)
            found.set(row.server_id, { epoch: row.epoch, seq, shown });
        }
      }
    } catch (err) {
      this.#warn(err, 'console mark not read');
    }
    for (const [id, waiters] of batch) for (const w of waiters) w(found.get(id));
  }

  /**
   * Resolves once the mark is stored (true), or the write failed or took too long (false: the
   * caller goes on without it, and writes again next time): never rejects.
   */
  write(serverId: string, mark: Mark): Promise<boolean> {
    this.#pending.set(serverId, mark);
    // all slots stuck: stored when one frees (#kick after it), nobody waits for it
    if (this.#lateInFlight >= MAX_IN_FLIGHT) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      this.#waiters.push(resolve);
      this.#kick();
    });
  }

  /**
   * Lines up to `mark.seq` were published: stored with the next write (no statement of its own
   * unless none comes within SHOWN_IDLE_MS). Forward only within an epoch; a new epoch replaces.
   */
  shown(serverId: string, mark: Mark): void {
    const had = this.#shown.get(serverId);
    if (had && had.epoch === mark.epoch && had.seq >= mark.seq) return;
    // kept as given (the caller's object, never changed here: no copy on the hot path)
    this.#shown.set(serverId, mark);
    this.#shownTimer ??= setTimeout(() => {
      this.#shownTimer = undefined;
      this.#shownDue = true;
      this.#kick();
    }, this.#shownIdleMs).unref();
  }

  #kick(): void {
    if (this.#inFlight >= MAX_IN_FLIGHT || this.#kicked) return;
    if (this.#pending.size === 0 && !(this.#shownDue && this.#shown.size > 0)) return;
    this.#inFlight += 1;
    this.#kicked = true;
    // one turn's marks together (under load, the lines of many Agents)
    setImmediate(() => {
      this.#kicked = false;
      const batch = this.#pending;
      const waiters = this.#waiters;
      this.#pending = new Map();
      this.#waiters = [];
      let shown: Map<string, Mark>;
      if (this.#shownDue) {
        // every shown, together
        shown = this.#shown;
        this.#shown = new Map();
        this.#shownDue = false;
        if (this.#shownTimer) clearTimeout(this.#shownTimer);
        this.#shownTimer = undefined;
      } else {
        // only those of the servers written anyway (in their own rows: no row more)
        shown = new Map();
        if (this.#shown.size > 0)
          for (const id of batch.keys()) {
            const s = this.#shown.get(id);
            if (s === undefined) continue;
            shown.set(id, s);
            this.#shown.delete(id);
          }
      }
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
            for (const w of queued) w(false);
          }
          resolve();
        }, WRITE_WAIT_MS);
      });
      const done = this.#store(batch, shown).then(
        () => true,
        (err) => {
          this.#warn(err, 'console marks not written');
          return false;
        },
      );
      void Promise.race([done, late.then(() => false)]).then((stored) => {
        clearTimeout(timer);
        for (const w of waiters) w(stored);
      });
      void done.finally(() => {
        if (wasLate) this.#lateInFlight -= 1;
        this.#inFlight -= 1;
        this.#kick();
      });
    });
  }

  async #store(batch: Map<string, Mark>, shown: Map<string, Mark>): Promise<void> {
    const rows: Row[] = [];
    for (const [server_id, m] of batch) {
      const s = shown.get(server_id);
      // a shown of an older epoch is moot once the Agent numbers anew
      rows.push({ server_id, epoch: m.epoch, seq: m.seq, shown: s && s.epoch === m.epoch ? s.seq : 0 });
    }
    // published, no intent since: the row's intent is at least that far (forward only keeps a higher one)
    for (const [server_id, s] of shown)
      if (!batch.has(server_id)) rows.push({ server_id, epoch: s.epoch, seq: s.seq, shown: s.seq });
    rows.sort((a, b) => (a.server_id < b.server_id ? -1 : a.server_id > b.server_id ? 1 : 0));
    for (let i = 0; i < rows.length; i += CHUNK) {
      const chunk = rows.slice(i, i + CHUNK);
      await this.#upsert(chunk).catch(async (err) => {
        // a server deleted meanwhile (its row gone: the foreign key) is no reason to fail the rest
        if (!/foreign key/i.test(String((err as Error).message))) throw err;
        for (const r of chunk) await this.#upsert([r]).catch(() => undefined);
      });
    }
  }

  async #upsert(rows: Row[]): Promise<void> {
    if (this.#pg) {
      // four parameters whatever the rows (a VALUES list of 8,000 is parsed and planned anew each
      // time); both marks forward only within an epoch (a replica writing late cannot move them back)
      await sql`insert into console_marks (server_id, epoch, seq, shown)
        select * from unnest(${rows.map((r) => r.server_id)}::text[], ${rows.map((r) => r.epoch)}::text[], ${rows.map((r) => r.seq)}::bigint[], ${rows.map((r) => r.shown)}::bigint[])
        on conflict (server_id) do update set epoch = excluded.epoch,
          seq = case when console_marks.epoch = excluded.epoch then greatest(console_marks.seq, excluded.seq) else excluded.seq end,
          shown = case when console_marks.epoch = excluded.epoch then greatest(console_marks.shown, excluded.shown) else excluded.shown end
        where console_marks.epoch <> excluded.epoch or console_marks.seq < excluded.seq
          or console_marks.shown < excluded.shown`.execute(this.#db);
      return;
    }
    await this.#db
      .insertInto('console_marks')
      .values(rows)
      .onConflict((oc) =>
        oc
          .column('server_id')
          .doUpdateSet({
            epoch: sql`excluded.epoch`,
            seq: sql`case when console_marks.epoch = excluded.epoch then max(console_marks.seq, excluded.seq) else excluded.seq end`,
            shown: sql`case when console_marks.epoch = excluded.epoch then max(console_marks.shown, excluded.shown) else excluded.shown end`,
          })
          // forward only within an epoch (a replica writing late cannot move them back)
          .where((eb) =>
            eb.or([
              eb('console_marks.epoch', '<>', sql<string>`excluded.epoch`),
              eb('console_marks.seq', '<', sql<number>`excluded.seq`),
              eb('console_marks.shown', '<', sql<number>`excluded.shown`),
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
