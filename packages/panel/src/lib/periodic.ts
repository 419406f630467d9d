/**
 * The one seam for the Panel's periodic work that must happen once across the Panel, not once
 * per process: the schedules' tick, webhook deliveries, image checks, the failover watch, the
 * operation sweep and the hourly prunes. With one Panel (or SQLite) every process is the leader
 * (`SOLE_LEADER`); several replicas on PostgreSQL give `LocalPeriodic` a `PgLeaderLock`: each
 * round then runs only on the replica holding that job's advisory lock. (Work on what one replica
 * itself recorded — its metric and player-count buffers — runs on every replica, outside this.)
 */

/** Who may run a round of `name` now: a lease held by one replica at a time. */
export interface LeaderLock {
  isLeader(name: string): Promise<boolean>;
}

export interface Periodic {
  /**
   * Runs `fn` every `ms` while this process is the leader for `name`; a round never overlaps the
   * previous one (a slow round delays the next). Returns the stop function.
   */
  every(name: string, ms: number, fn: () => Promise<void>): () => void;
}

/** The single-process lock: always the leader. */
export const SOLE_LEADER: LeaderLock = { isLeader: async () => true };

export class LocalPeriodic implements Periodic {
  readonly #lock: LeaderLock;
  readonly #onError: (name: string, err: unknown) => void;
  constructor(opts: { lock?: LeaderLock; onError: (name: string, err: unknown) => void }) {
    this.#lock = opts.lock ?? SOLE_LEADER;
    this.#onError = opts.onError;
  }

  every(name: string, ms: number, fn: () => Promise<void>): () => void {
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      void (async () => {
        try {
          if (await this.#lock.isLeader(name)) await fn();
        } catch (e) {
          this.#onError(name, e);
        } finally {
          busy = false;
        }
      })();
    }, ms);
    timer.unref();
    return () => clearInterval(timer);
  }
}

/** What the lock needs of a PostgreSQL session (pg's Client). */
export interface PgSession {
  connect(): Promise<unknown>;
  query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
  end(): Promise<void>;
  on(event: 'error', fn: (err: Error) => void): unknown;
}

/**
 * The leader across Panel replicas sharing one PostgreSQL database (issue 15 item 1): a session
 * advisory lock per job name, held on a connection of its own. A replica is the leader for `name`
 * while its session holds `pg_try_advisory_lock(hashtextextended('<namespace>:<name>', 0))`; each
 * round checks the session still answers (a short query with a timeout), and a session that
 * errors, times out or ends counts as no lock at all (the server frees a dead session's locks:
 * a replica killed with `kill -9` gives them up as its socket closes). The next round then opens
 * a new session and tries again, so a replica that lost the database takes over later only if the
 * lock is free.
 */
export class PgLeaderLock implements LeaderLock {
  readonly #open: () => PgSession;
  readonly #namespace: string;
  readonly #onChange: (name: string, leader: boolean) => void;
  #session: PgSession | undefined;
  #connecting: Promise<PgSession> | undefined;
  /** job names whose lock this session holds */
  readonly #held = new Set<string>();
  #closed = false;
  /** fenced (lib/replicas.ts): no lock held or taken until unfenced */
  #fenced = false;
  /** one query at a time on the session (jobs ask concurrently) */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: {
    /** a new, unconnected session (e.g. `() => new pg.Client({ connectionString, query_timeout })`) */
    open: () => PgSession;
    /** several Panels on one database: each its own (the NATS prefix) */
    namespace?: string;
    /** told when this replica becomes or stops being the leader of a job */
    onChange?: (name: string, leader: boolean) => void;
  }) {
    this.#open = opts.open;
    this.#namespace = opts.namespace ?? 'cap';
    this.#onChange = opts.onChange ?? (() => undefined);
  }

  isLeader(name: string): Promise<boolean> {
    const round = this.#queue.then(() => this.#isLeader(name));
    this.#queue = round.catch(() => undefined);
    return round;
  }

  async #isLeader(name: string): Promise<boolean> {
    if (this.#closed || this.#fenced) return false;
    let session: PgSession;
    try {
      session = await this.#connect();
    } catch {
      return false;
    }
    try {
      if (this.#held.has(name)) {
        // the same session still answers: its locks are still ours
        await session.query('SELECT 1');
        return !this.#fenced;
      }
      const r = await session.query('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok', [
        `${this.#namespace}:${name}`,
      ]);
      const ok = r.rows[0]?.['ok'] === true && !this.#fenced;
      if (ok) {
        this.#held.add(name);
        this.#onChange(name, true);
      }
      return ok;
    } catch {
      this.#lost(session);
      return false;
    }
  }

  /** The jobs this replica leads now (as of the last rounds). */
  held(): string[] {
    return [...this.#held];
  }

  #connect(): Promise<PgSession> {
    if (this.#session) return Promise.resolve(this.#session);
    this.#connecting ??= (async () => {
      const s = this.#open();
      s.on('error', () => this.#lost(s));
      try {
        await s.connect();
      } catch (e) {
        await s.end().catch(() => undefined);
        throw e;
      } finally {
        this.#connecting = undefined;
      }
      if (this.#closed || this.#fenced) {
        await s.end().catch(() => undefined);
        throw new Error(this.#closed ? 'closed' : 'fenced');
      }
      this.#session = s;
      return s;
    })();
    return this.#connecting;
  }

  #lost(session: PgSession): void {
    if (this.#session !== session) return;
    this.#session = undefined;
    for (const name of this.#held) this.#onChange(name, false);
    this.#held.clear();
    void session.end().catch(() => undefined);
  }

  /**
   * Fenced (the replica lost the database for most of its TTL): every lock given up at once (the
   * session ended from this side; a round in flight answers false), none taken until unfenced.
   * Across a partition the server keeps the session until the survivors end it (lib/replicas.ts).
   */
  fence(on: boolean): void {
    this.#fenced = on;
    if (!on) return;
    const s = this.#session;
    if (s) this.#lost(s);
    // a connect in flight is ended as it completes (#connect checks #fenced)
  }

  /** Gives every lock up (the session ends). */
  async close(): Promise<void> {
    this.#closed = true;
    const s = this.#session ?? (await this.#connecting?.catch(() => undefined));
    this.#session = undefined;
    this.#held.clear();
    await s?.end().catch(() => undefined);
  }
}
