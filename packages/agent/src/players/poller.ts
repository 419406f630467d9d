/**
 * Polls every running server that tracks players, each at its template's interval (±10 %
 * jitter, the first poll within a few seconds of the start), at most `concurrency` queries at a
 * time, each cut at `timeoutMs` whether or not the query honours it: a server that never answers,
 * answers garbage or throws holds one slot for one timeout and nothing else. A result goes out
 * (`publish`) only when it differs from the last one sent, and all of them again after the
 * Panel link reconnects (`resendAll`). A server that stops running is sent once more with nobody
 * online, and forgotten.
 */
import type { EventData, PlayerEntry } from '@cap/protocol';
import { normalise, type PlayersResult, type QueryFn } from './query.ts';

export interface PollTarget {
  serverId: string;
  query: string;
  host: string;
  port: number;
  intervalMs: number;
}

interface State {
  target: PollTarget;
  nextAt: number;
  running: boolean;
  last: PlayersResult | null;
  failures: number;
  /** `pending` until the first answer; `unavailable` while queries fail (the last result stays) */
  state: PlayersState;
}

export type PlayersState = 'pending' | 'ok' | 'unavailable';

export interface PollerOptions {
  /** the servers to poll now (running, with a query and a published port) */
  targets: () => PollTarget[];
  query: QueryFn;
  publish: (data: EventData<'players_update'>) => void;
  /** a failed query (logged at debug, and at warn on the first failure in a row) */
  onError?: (serverId: string, err: unknown, inARow: number) => void;
  concurrency?: number;
  timeoutMs?: number;
  /** how often due servers are looked for */
  tickMs?: number;
  now?: () => number;
  random?: () => number;
}

function sameList(a: PlayerEntry[], b: PlayerEntry[]): boolean {
  if (a.length !== b.length) return false;
  return a.every(
    (p, i) =>
      p.name === b[i]!.name &&
      p.id === b[i]!.id &&
      p.score === b[i]!.score &&
      p.bot === b[i]!.bot &&
      p.spectator === b[i]!.spectator,
  );
}

export function sameResult(a: PlayersResult | null, b: PlayersResult): boolean {
  return a !== null && a.online === b.online && a.max === b.max && sameList(a.list, b.list);
}

export class PlayerPoller {
  readonly #o: Required<Omit<PollerOptions, 'onError'>> & Pick<PollerOptions, 'onError'>;
  readonly #states = new Map<string, State>();
  #inflight = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(opts: PollerOptions) {
    this.#o = {
      concurrency: 4,
      timeoutMs: 5000,
      tickMs: 1000,
      now: Date.now,
      random: Math.random,
      ...opts,
    };
  }

  start(): void {
    this.#stopped = false;
    clearInterval(this.#timer);
    this.#timer = setInterval(() => this.tick(), this.#o.tickMs);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  /** Queries in flight now (for tests). */
  get inflight(): number {
    return this.#inflight;
  }

  /** The last result of a server, as get_status carries it (names only, seed 003). */
  snapshot(serverId: string): { online: number; max: number; list: string[] } | undefined {
    const last = this.#states.get(serverId)?.last;
    return last ? { online: last.online, max: last.max, list: last.list.map((p) => p.name) } : undefined;
  }

  /** Whether the server's last poll answered (`unavailable`: it failed, nothing was published). */
  stateOf(serverId: string): PlayersState | undefined {
    return this.#states.get(serverId)?.state;
  }

  /** Every last result again (after the Panel link reconnected). */
  resendAll(): void {
    for (const [serverId, s] of this.#states) if (s.last) this.#o.publish({ serverId, ...s.last });
  }

  /** One look for due servers; returns the queries it started (the loop calls it every tickMs). */
  tick(): Promise<void>[] {
    if (this.#stopped) return [];
    const now = this.#o.now();
    let targets: PollTarget[];
    try {
      targets = this.#o.targets();
    } catch (e) {
      this.#o.onError?.('', e, 1);
      return [];
    }
    const seen = new Set<string>();
    for (const t of targets) {
      seen.add(t.serverId);
      const s = this.#states.get(t.serverId);
      const changed =
        s && (s.target.query !== t.query || s.target.host !== t.host || s.target.port !== t.port);
      if (!s || changed) {
        // the first poll soon after the start, spread over up to 5 s (or the interval if shorter)
        const first = now + this.#o.random() * Math.min(5000, t.intervalMs);
        this.#states.set(t.serverId, {
          target: t,
          nextAt: first,
          running: false,
          last: s?.last ?? null,
          failures: 0,
          state: 'pending',
        });
      } else s.target = t;
    }
    for (const [serverId, s] of this.#states) {
      if (seen.has(serverId)) continue;
      this.#states.delete(serverId);
      // gone (stopped, deleted, its query removed): nobody is online any more
      if (s.last && (s.last.online > 0 || s.last.list.length > 0))
        this.#o.publish({ serverId, online: 0, max: s.last.max, list: [] });
    }
    const started: Promise<void>[] = [];
    const due = [...this.#states.values()]
      .filter((s) => !s.running && s.nextAt <= now)
      .sort((a, b) => a.nextAt - b.nextAt);
    for (const s of due) {
      if (this.#inflight >= this.#o.concurrency) break;
      started.push(this.#poll(s));
    }
    return started;
  }

  async #poll(s: State): Promise<void> {
    s.running = true;
    this.#inflight += 1;
    const t = s.target;
    let timer: NodeJS.Timeout | undefined;
    try {
      const answer = await Promise.race([
        this.#o.query({
          serverId: t.serverId,
          query: t.query,
          host: t.host,
          port: t.port,
          timeoutMs: this.#o.timeoutMs,
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${this.#o.timeoutMs} ms`)),
            this.#o.timeoutMs,
          );
        }),
      ]);
      const result = normalise(answer);
      s.failures = 0;
      s.state = 'ok';
      // still the same server and target (not stopped or changed meanwhile)
      if (this.#states.get(t.serverId) !== s || this.#stopped) return;
      if (!sameResult(s.last, result)) {
        s.last = result;
        this.#o.publish({ serverId: t.serverId, ...result });
      }
    } catch (e) {
      s.failures += 1;
      s.state = 'unavailable';
      this.#o.onError?.(t.serverId, e, s.failures);
    } finally {
      clearTimeout(timer);
      this.#inflight -= 1;
      s.running = false;
      const jitter = 0.9 + 0.2 * this.#o.random();
      s.nextAt = this.#o.now() + t.intervalMs * jitter;
    }
  }
}
