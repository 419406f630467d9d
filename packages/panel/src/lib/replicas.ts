/**
 * Which Panel replicas are alive (issue 15), in the shared PostgreSQL (`panel_replicas`, migration
 * 031): each replica writes its row every `heartbeatMs`, with the database's clock (replicas on
 * hosts whose clocks differ agree). A replica whose row is older than `ttlMs` is dead: a
 * `kill -9`, a power loss, or a replica that could not reach the database that long. Every beat
 * also removes the dead replicas' rows and their socket counts (`live_counts`), and ends their
 * PostgreSQL sessions (by the `application_name` in the row, migration 033): a replica cut off
 * by a partition keeps its sessions, and their advisory locks, on the server until TCP
 * keepalive notices (hours), so the survivors could not lead until then.
 *
 * Self-fencing: a replica whose own beat has not succeeded for `ttlMs - heartbeatMs` (measured
 * from the start of the last beat that succeeded, on this process's monotonic clock: before
 * the others can take it for dead), and that saw another replica alive at that beat (alone, no
 * one would take over what it gave up: it keeps its links, as one Panel does), fences itself (`onFence`: it gives up leading, closes its
 * links and sockets, answers 503 REPLICA_FENCED). On the first beat that succeeds again it takes
 * a fresh id (a new row; the old one is the others' to remove), tells `onRejoin` (its socket
 * counts are written again under the new id) and unfences (`onUnfence`).
 *
 * The database down for everyone (not this replica cut off): each replica says how long its own
 * beats have been failing (`DbHealthWord`), from its beat timer (the `say` hook, every beat, also
 * while a beat hangs; the Panel carries it on the event bus as `replica.health`, heard by the
 * other replicas only), and `heard` takes the others' word (hostile input: own properties, a
 * bounded base, a finite failing time; kept only for the peers of the last good beat). A
 * replica whose every peer of its last good beat is heard on NATS, fresh, failing the database
 * too does not fence (no one could take over what it gave up: as a lone replica, it keeps its
 * links, and console and commands keep flowing over NATS); once one of them is heard beating
 * again, or falls silent, the rule above holds. Back from such an outage, every row but its own
 * is stale by the database's clock: the first replica to beat again leaves them a TTL to beat
 * before it takes them for dead (else it would end their sessions and they would rejoin).
 *
 * A replica that finds its own row gone without having fenced (the others took it for dead: a
 * stall longer than the TTL, its own clock paused) does the same: a new id, `onRejoin`.
 */
import { sql } from 'kysely';
import type { Db } from '../db/index.ts';

export interface ReplicaLogger {
  warn(obj: object, msg: string): void;
}

/** The leader lock's session carries the replica's `pg_app` with this after it (lib/periodic.ts). */
export const LEADER_SESSION_SUFFIX = ':leader';

/** The database's clock in ms (PostgreSQL). */
export const dbNowMs = sql<string>`(extract(epoch from clock_timestamp()) * 1000)::bigint`;

export interface FenceListener {
  /** this replica fenced itself (its beats failed for the TTL less one beat) */
  fenced(info: { id: string; sinceOkMs: number }): void;
  /** a beat succeeded again: `id` is the fresh registry id */
  unfenced(info: { id: string; previousId: string; fencedMs: number }): void;
}

/** What a replica says of its own database beats to the others (`ReplicaRegistry.health`, the `say` hook). */
export interface DbHealthWord {
  /** the replica's process part of its id (what stays across fences) */
  base: string;
  /** how long its beats have been failing, ms (0: its last beat succeeded) */
  failingMs: number;
}

/** the longest base a word may carry (ours: `<pid>-<8 hex>`) */
const MAX_BASE = 200;
/** a failing time past a day is not a word of ours */
const MAX_FAILING_MS = 86_400_000;

/** The base of a registry id (`<base>` or `<base>.<generation>`). */
const baseOf = (id: string) => id.split('.')[0] ?? id;

export class ReplicaRegistry {
  readonly ttlMs: number;
  readonly #db: Db;
  readonly #heartbeatMs: number;
  readonly #log: ReplicaLogger;
  /** the process's part of every id; `#generation` counts the fresh ids taken */
  readonly #base: string;
  #generation = 0;
  #id: string;
  /** the `application_name` of this process's PostgreSQL sessions (written in the row) */
  readonly #pgApp: string | null;
  readonly #rejoin: (() => Promise<void>)[] = [];
  readonly #fence: FenceListener[] = [];
  readonly #say: ((word: DbHealthWord) => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #beating: Promise<void> | undefined;
  #closed = false;
  /** performance.now() at the start of the last beat that succeeded */
  #okAt = 0;
  /** performance.now() when this replica fenced itself (undefined: not fenced) */
  #fencedAt: number | undefined;
  /** other replicas alive at the last good beat: alone, fencing would hand nothing to anyone */
  #peers = 0;
  /** the bases of those peers */
  #peerBases: string[] = [];
  #peerSet: ReadonlySet<string> = new Set();
  /** the peers' last word: base → its failing ms and performance.now() it came (peers only: bounded) */
  readonly #word = new Map<string, { failingMs: number; at: number }>();
  /** performance.now() before which dead rows are not reaped (back from an outage of our own) */
  #reapFrom = 0;
  /** the outage-for-everyone hold is logged once per outage */
  #holding = false;
  /** performance.now() when the outage was last taken for everyone's */
  #heldAt = Number.NEGATIVE_INFINITY;

  constructor(opts: {
    db: Db;
    id: string;
    heartbeatMs: number;
    ttlMs: number;
    log: ReplicaLogger;
    /** the `application_name` its PostgreSQL sessions carry (the survivors end them once it is dead) */
    pgApp?: string;
    /**
     * told this replica's word every beat (from the beat timer, so also while a beat hangs on a
     * lost database), for the other replicas' `heard`; a throw is logged, never stops the beats
     */
    say?: (word: DbHealthWord) => void;
  }) {
    this.#db = opts.db;
    this.#base = opts.id;
    this.#id = opts.id;
    this.#heartbeatMs = opts.heartbeatMs;
    this.ttlMs = opts.ttlMs;
    this.#log = opts.log;
    this.#pgApp = opts.pgApp ?? null;
    this.#say = opts.say;
  }

  /** This replica's registry id now (a fresh one after each fence). */
  get id(): string {
    return this.#id;
  }

  get fenced(): boolean {
    return this.#fencedAt !== undefined;
  }

  /** Runs after this replica's row had to be written again (a fresh id: it was fenced or taken for dead). */
  onRejoin(fn: () => Promise<void>): void {
    this.#rejoin.push(fn);
  }

  onFence(l: FenceListener): void {
    this.#fence.push(l);
  }

  /** Writes this replica's row, then beats every `heartbeatMs` (and fences itself when they fail). */
  async start(): Promise<void> {
    await this.beat();
    this.#tell();
    this.#timer = setInterval(() => {
      this.#checkFence();
      this.#tell();
      this.#beating ??= this.beat()
        .catch((err: Error) => this.#log.warn({ err: err.message }, 'replica heartbeat failed'))
        .finally(() => {
          this.#beating = undefined;
        });
    }, this.#heartbeatMs);
    this.#timer.unref();
  }

  /** This beat's word to the others (`say`). */
  #tell(): void {
    if (!this.#say || this.#closed) return;
    try {
      this.#say(this.health());
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'replica health word not sent');
    }
  }

  /** What this replica says of its own database beats (`say`, every beat). */
  health(): DbHealthWord {
    // since the start of the last good beat: under two beats while they succeed
    const failingMs = this.#okAt === 0 ? 0 : Math.max(0, Math.round(performance.now() - this.#okAt));
    return { base: this.#base, failingMs };
  }

  /**
   * Another replica's word (off the bus: hostile input). Malformed (not an object, inherited or
   * mistyped fields, a base over 200 characters, a failing time not a finite number from 0 to a
   * day), our own, or from a replica that was not a peer at the last good beat (its word decides
   * nothing, and a flood of made-up bases cannot grow the map) is ignored; says whether it was taken.
   */
  heard(word: unknown): boolean {
    if (typeof word !== 'object' || word === null || Array.isArray(word)) return false;
    const base = Object.hasOwn(word, 'base') ? (word as { base: unknown }).base : undefined;
    const failingMs = Object.hasOwn(word, 'failingMs')
      ? (word as { failingMs: unknown }).failingMs
      : undefined;
    if (typeof base !== 'string' || base.length === 0 || base.length > MAX_BASE || base === this.#base)
      return false;
    if (
      typeof failingMs !== 'number' ||
      !Number.isFinite(failingMs) ||
      failingMs < 0 ||
      failingMs > MAX_FAILING_MS
    )
      return false;
    if (!this.#peerSet.has(base)) return false;
    this.#word.set(base, { failingMs, at: performance.now() });
    return true;
  }

  /** Every peer of the last good beat is heard, fresh, failing the database too. */
  #downForEveryone(): boolean {
    if (this.#peerBases.length === 0) return false;
    const now = performance.now();
    return this.#peerBases.every((b) => {
      const w = this.#word.get(b);
      return w !== undefined && now - w.at <= 3 * this.#heartbeatMs && w.failingMs >= 2 * this.#heartbeatMs;
    });
  }

  /** Fences this replica when its last good beat started longer than the TTL less one beat ago. */
  #checkFence(): void {
    if (this.#closed || this.fenced || this.#peers === 0) return;
    const sinceOkMs = performance.now() - this.#okAt;
    if (sinceOkMs < this.ttlMs - this.#heartbeatMs) return;
    if (this.#downForEveryone()) {
      if (!this.#holding)
        this.#log.warn(
          { replicaId: this.#id, sinceOkMs: Math.round(sinceOkMs), peers: this.#peerBases },
          'database down for every replica (their word on NATS): not fencing',
        );
      this.#holding = true;
      this.#heldAt = performance.now();
      return;
    }
    // the others back first (our connection still held in the outage): as long again to follow
    // before fencing (the others hold off taking us for dead a TTL after they are back)
    if (performance.now() - this.#heldAt < this.ttlMs - this.#heartbeatMs) return;
    this.#fencedAt = performance.now();
    this.#log.warn({ replicaId: this.#id, sinceOkMs: Math.round(sinceOkMs) }, 'replica fenced');
    for (const l of this.#fence) {
      try {
        l.fenced({ id: this.#id, sinceOkMs });
      } catch (err) {
        this.#log.warn({ err: (err as Error).message }, 'fence listener failed');
      }
    }
  }

  /** One beat: this replica's row refreshed (a new row with a fresh id after a fence or if gone); the dead ones' rows removed. */
  async beat(): Promise<void> {
    if (this.#closed) return;
    const startedAt = performance.now();
    let rejoin = this.fenced;
    if (!rejoin) {
      const updated = await this.#db
        .updateTable('panel_replicas')
        .set({ heartbeat_at: dbNowMs })
        .where('id', '=', this.#id)
        .executeTakeFirst();
      // gone: the others took this replica for dead (they may have failed what it ran)
      rejoin = Number(updated.numUpdatedRows) === 0 && this.#okAt !== 0;
      if (Number(updated.numUpdatedRows) === 0 && !rejoin) await this.#insert(this.#id);
    }
    if (rejoin) {
      const previousId = this.#id;
      const id = `${this.#base}.${++this.#generation}`;
      await this.#insert(id);
      this.#id = id;
      for (const fn of this.#rejoin) await fn();
      if (this.#closed) return;
      // a beat that started before the fence (answered late) does not unfence
      const fencedAt = this.#fencedAt;
      if (fencedAt !== undefined && startedAt > fencedAt) {
        this.#fencedAt = undefined;
        const fencedMs = performance.now() - fencedAt;
        this.#log.warn({ replicaId: id, previousId, fencedMs: Math.round(fencedMs) }, 'replica unfenced');
        for (const l of this.#fence) {
          try {
            l.unfenced({ id, previousId, fencedMs });
          } catch (err) {
            this.#log.warn({ err: (err as Error).message }, 'fence listener failed');
          }
        }
      }
    }
    // back from an outage of our own: the others' rows may be stale by the same outage
    if (this.#okAt !== 0 && startedAt - this.#okAt >= this.ttlMs - this.#heartbeatMs)
      this.#reapFrom = performance.now() + this.ttlMs;
    this.#okAt = Math.max(this.#okAt, startedAt);
    this.#holding = false;
    await this.#reap();
  }

  /** Other replicas alive as of the last good beat (none: a lost database does not fence this one). */
  get peers(): number {
    return this.#peers;
  }

  async #insert(id: string): Promise<void> {
    await this.#db
      .insertInto('panel_replicas')
      .values({ id, heartbeat_at: dbNowMs, pg_app: this.#pgApp })
      .onConflict((oc) => oc.column('id').doUpdateSet({ heartbeat_at: dbNowMs }))
      .execute();
  }

  /**
   * The dead replicas: their PostgreSQL sessions ended (those that began before it was dead: a
   * replica come back under a fresh id keeps its new ones), then their rows and counts removed.
   */
  async #reap(): Promise<void> {
    const cutoff = sql<string>`${dbNowMs} - ${this.ttlMs}`;
    const rows = await this.#db
      .selectFrom('panel_replicas')
      .select(['id', 'pg_app', 'heartbeat_at', sql<boolean>`heartbeat_at < ${cutoff}`.as('dead')])
      .execute();
    // not counting its own older rows (ids of earlier generations)
    const own = (id: string) => id === this.#base || id.startsWith(`${this.#base}.`);
    const holdOff = performance.now() < this.#reapFrom;
    // held off: a stale row counts as a peer (it may be beating again in a moment)
    const peers = rows.filter((r) => (holdOff || !r.dead) && !own(r.id));
    this.#peers = peers.length;
    this.#peerSet = new Set(peers.map((r) => baseOf(r.id)));
    this.#peerBases = [...this.#peerSet];
    // a word of a replica no longer a peer decides nothing
    for (const b of this.#word.keys()) if (!this.#peerSet.has(b)) this.#word.delete(b);
    const dead = holdOff ? [] : rows.filter((r) => r.dead);
    for (const r of dead) {
      // never this process's own sessions (an old row of ours, taken for dead while we stalled)
      if (!r.pg_app || r.pg_app === this.#pgApp || !r.pg_app.startsWith('cap-')) continue;
      try {
        // the victims chosen first (a planner may order the conditions of one WHERE as it likes)
        const ended = await sql<{ pid: number }>`
          WITH victims AS MATERIALIZED (
            SELECT pid FROM pg_stat_activity
            WHERE application_name IN (${r.pg_app}, ${`${r.pg_app}${LEADER_SESSION_SUFFIX}`})
              AND backend_start < to_timestamp(${(Number(r.heartbeat_at) + this.ttlMs) / 1000}::double precision)
          )
          SELECT pid FROM victims WHERE pg_terminate_backend(pid)`.execute(this.#db);
        if (ended.rows.length > 0)
          this.#log.warn(
            { replicaId: r.id, sessions: ended.rows.length },
            'dead replica: its database sessions ended',
          );
      } catch (err) {
        this.#log.warn({ replicaId: r.id, err: (err as Error).message }, 'dead replica sessions not ended');
      }
    }
    if (dead.length > 0)
      await this.#db
        .deleteFrom('panel_replicas')
        .where(
          'id',
          'in',
          dead.map((r) => r.id),
        )
        .where('heartbeat_at', '<', cutoff)
        .execute();
    await this.#db
      .deleteFrom('live_counts')
      .where('replica_id', 'not in', this.#db.selectFrom('panel_replicas').select('id'))
      .execute();
  }

  /** Of `ids`, those alive now (a row younger than the TTL). */
  async alive(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.#db
      .selectFrom('panel_replicas')
      .select('id')
      .where('id', 'in', [...new Set(ids)])
      .where('heartbeat_at', '>=', sql<string>`${dbNowMs} - ${this.ttlMs}`)
      .execute();
    return new Set(rows.map((r) => r.id));
  }

  /** Stops beating and leaves the rows, as a killed replica would (tests). */
  halt(): void {
    this.#closed = true;
    clearInterval(this.#timer);
  }

  /** Stops beating and removes this replica's row and counts (the others need not wait the TTL). */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#beating;
    await this.#db.deleteFrom('live_counts').where('replica_id', '=', this.#id).execute();
    await this.#db.deleteFrom('panel_replicas').where('id', '=', this.#id).execute();
  }
}
