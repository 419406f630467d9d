/**
 * Players (issue 12 item 2). From the Agents' `players_update` (bus `server.players`): who is
 * online now (kept in memory, with when each joined), join/leave sessions by name in
 * `player_sessions`, and a per-minute count history in `player_buckets` (average online over the
 * minute's samples, its peak and the capacity), sampled every minute for each tracked server
 * (the Agent sends only changes, so a quiet minute repeats the count), kept 7 days and
 * downsampled on read like metrics. A server that stops running or goes away closes its sessions.
 */
import { randomUUID } from 'node:crypto';
import type { PlayerEntry } from '@cap/protocol';
import { z } from 'zod';
import type { PlayerBucketsTable } from '../../db/schema.ts';
import { bucketAt, downsample, RETENTION_MS, SERIES_RANGES, SeriesRange } from '../../lib/bucket-series.ts';
import type { PlayersRepo } from './repo.ts';

export { BUCKET_MS, RETENTION_MS } from '../../lib/bucket-series.ts';

export const PlayersRange = SeriesRange;
export type PlayersRange = SeriesRange;

export const PlayersBucket = z.object({
  t: z.string(),
  /** average players online over the bucket */
  online: z.number(),
  /** the most online at once */
  peak: z.number(),
  /** player slots (the last known) */
  capacity: z.number(),
});
export type PlayersBucket = z.infer<typeof PlayersBucket>;

export const OnlinePlayer = z.object({
  name: z.string(),
  /** the game's id of the player, when its list gives one (kick/ban use it before the name) */
  id: z.string().optional(),
  score: z.number().optional(),
  bot: z.boolean().optional(),
  spectator: z.boolean().optional(),
  /** when this Panel saw them join (ISO 8601) */
  joinedAt: z.string(),
  /** seconds online since joinedAt */
  onlineSeconds: z.number(),
});
export const CurrentPlayers = z.object({
  /** whether the server reports players (its template tracks them and a query answered) */
  tracked: z.boolean(),
  online: z.number(),
  max: z.number(),
  players: z.array(OnlinePlayer),
  updatedAt: z.string().nullable(),
  /**
   * which player commands the template declares (POST …/players/kick, …/players/ban), and whether
   * they work only with a player's id (players listed without one cannot be kicked that way)
   */
  commands: z
    .object({
      kick: z.boolean(),
      ban: z.boolean(),
      needsId: z.object({ kick: z.boolean(), ban: z.boolean() }),
    })
    .optional(),
});
export type CurrentPlayers = z.infer<typeof CurrentPlayers>;

interface Open {
  id: string;
  joinedAt: number;
}
interface Current {
  online: number;
  max: number;
  list: PlayerEntry[];
  updatedAt: number;
  /** name → the open sessions of that name (two players may share one) */
  sessions: Map<string, Open[]>;
  /** the minute being sampled */
  bucket: PlayerBucketsTable | null;
}

export class PlayersService {
  readonly #repo: PlayersRepo;
  readonly #current = new Map<string, Current>();
  #done: PlayerBucketsTable[] = [];
  #writes: Promise<void> = Promise.resolve();
  readonly #onError: (err: unknown, what: string) => void;
  readonly #onChange: (serverId: string) => void;

  constructor(
    repo: PlayersRepo,
    opts: { onError?: (err: unknown, what: string) => void; onChange?: (serverId: string) => void } = {},
  ) {
    this.#repo = repo;
    this.#onError = opts.onError ?? (() => undefined);
    this.#onChange = opts.onChange ?? (() => undefined);
  }

  /** One write after another; a failed one is reported and the chain goes on. */
  #write(what: string, fn: () => Promise<void>): Promise<void> {
    this.#writes = this.#writes.then(fn).catch((err: unknown) => this.#onError(err, what));
    return this.#writes;
  }

  /** Writes done (tests, shutdown). */
  settled(): Promise<void> {
    return this.#writes;
  }

  /** Sessions left open by the last run (a crash, a restart) are closed at its start. */
  async init(now = Date.now()): Promise<void> {
    const open = await this.#repo.openSessions();
    if (open.length)
      await this.#repo.leave(
        open.map((o) => o.id),
        now,
      );
  }

  #sample(c: Current, serverId: string, now: number): void {
    const b = bucketAt(c.bucket, now, this.#done, (t) => ({
      server_id: serverId,
      t,
      samples: 0,
      online: 0,
      peak: 0,
      capacity: 0,
    }));
    c.bucket = b;
    const n = b.samples + 1;
    b.online += (c.online - b.online) / n;
    b.peak = Math.max(b.peak, c.online);
    b.capacity = c.max;
    b.samples = n;
  }

  /** An Agent's report: the current list, sessions opened and closed, this minute's sample. */
  update(serverId: string, d: { online: number; max: number; list: PlayerEntry[] }, now = Date.now()): void {
    let c = this.#current.get(serverId);
    if (!c) {
      c = { online: 0, max: 0, list: [], updatedAt: now, sessions: new Map(), bucket: null };
      this.#current.set(serverId, c);
    }
    c.online = d.online;
    c.max = d.max;
    c.list = d.list;
    c.updatedAt = now;
    // the names now, counted (a name twice is two players)
    const want = new Map<string, number>();
    for (const p of d.list) want.set(p.name, (want.get(p.name) ?? 0) + 1);
    const left: string[] = [];
    for (const [name, open] of c.sessions) {
      const keep = want.get(name) ?? 0;
      while (open.length > keep) left.push((open.pop() as Open).id);
      if (open.length === 0) c.sessions.delete(name);
    }
    const joined: { id: string; name: string }[] = [];
    for (const [name, n] of want) {
      let open = c.sessions.get(name);
      if (!open) {
        open = [];
        c.sessions.set(name, open);
      }
      while (open.length < n) {
        const id = randomUUID();
        open.push({ id, joinedAt: now });
        joined.push({ id, name });
      }
    }
    if (left.length || joined.length)
      void this.#write('player sessions', async () => {
        if (left.length) await this.#repo.leave(left, now);
        for (const j of joined)
          await this.#repo.join({
            id: j.id,
            server_id: serverId,
            name: j.name,
            joined_at: now,
            left_at: null,
          });
      });
    this.#sample(c, serverId, now);
    this.#onChange(serverId);
  }

  /** The server stopped, was deleted or its node went away: everyone left. */
  end(serverId: string, now = Date.now(), forget = false): void {
    const c = this.#current.get(serverId);
    if (!c) return;
    const ids = [...c.sessions.values()].flat().map((o) => o.id);
    if (ids.length) void this.#write('player sessions', () => this.#repo.leave(ids, now));
    if (c.bucket) this.#done.push(c.bucket);
    this.#current.delete(serverId);
    if (forget) this.#done = this.#done.filter((b) => b.server_id !== serverId);
    this.#onChange(serverId);
  }

  /** Every minute: a sample of each tracked server (its count holds until it changes), then a write. */
  tick(now = Date.now()): Promise<void> {
    for (const [serverId, c] of this.#current) this.#sample(c, serverId, now);
    return this.flush();
  }

  /** Writes the finished minutes (all: the open ones too, at shutdown). */
  flush(all = false): Promise<void> {
    const rows = this.#done;
    this.#done = [];
    if (all) for (const c of this.#current.values()) if (c.bucket) rows.push({ ...c.bucket });
    if (!rows.length) return this.#writes;
    return this.#write('player history', () => this.#repo.upsertBuckets(rows));
  }

  prune(now = Date.now()): Promise<void> {
    return this.#write('player prune', () => this.#repo.pruneBefore(now - RETENTION_MS));
  }

  current(serverId: string, now = Date.now()): CurrentPlayers {
    const c = this.#current.get(serverId);
    if (!c) return { tracked: false, online: 0, max: 0, players: [], updatedAt: null };
    // the k-th player of a name gets the k-th session of that name
    const seen = new Map<string, number>();
    const players = c.list.map((p) => {
      const k = seen.get(p.name) ?? 0;
      seen.set(p.name, k + 1);
      const joinedAt = c.sessions.get(p.name)?.[k]?.joinedAt ?? c.updatedAt;
      return {
        ...p,
        joinedAt: new Date(joinedAt).toISOString(),
        onlineSeconds: Math.max(0, Math.floor((now - joinedAt) / 1000)),
      };
    });
    return {
      tracked: true,
      online: c.online,
      max: c.max,
      players,
      updatedAt: new Date(c.updatedAt).toISOString(),
    };
  }

  async history(serverId: string, range: PlayersRange, now = Date.now()): Promise<PlayersBucket[]> {
    const { span, step } = SERIES_RANGES[range];
    const from = now - span;
    await this.#writes;
    const rows = await this.#repo.buckets(serverId, from);
    const open = this.#current.get(serverId)?.bucket;
    return downsample(
      rows,
      [...this.#done, ...(open ? [open] : [])],
      { serverId, from, step },
      {
        start: (t) => ({ t, n: 0, online: 0, peak: 0, capacity: 0 }),
        add: (acc, r) => {
          acc.n += 1;
          acc.online += r.online;
          acc.peak = Math.max(acc.peak, r.peak);
          acc.capacity = r.capacity;
        },
        emit: (acc): PlayersBucket => ({
          t: new Date(acc.t).toISOString(),
          online: acc.online / acc.n,
          peak: acc.peak,
          capacity: acc.capacity,
        }),
      },
    );
  }
}
