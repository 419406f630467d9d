/**
 * The one seam for the Panel's periodic work that must happen once across the Panel, not once
 * per process (today: the schedules' tick). With one Panel every process is the leader; a later
 * issue that runs several replicas behind NATS gives `LocalPeriodic` a `LeaderLock` (a NATS KV
 * lease, a PostgreSQL advisory lock): each round then runs only on the replica holding the lock.
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
