/**
 * Console throttle, as Wings does it: at most `lines` lines per `intervalMs` per server. Kept as
 * a token bucket (`lines` tokens, refilled at `lines` per `intervalMs`), so output that arrives
 * in bursts (the attach stream delivers big chunks at one instant) still gets the full rate.
 * What is over the limit is counted and reported at most once per interval.
 */
export class LineThrottle {
  readonly #lines: number;
  readonly #intervalMs: number;
  readonly #onDropped: (count: number) => void;
  readonly #now: () => number;
  #tokens: number;
  #last: number;
  #dropped = 0;
  #reportedAt: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: {
    lines: number;
    intervalMs: number;
    onDropped: (count: number) => void;
    now?: () => number;
  }) {
    this.#lines = opts.lines;
    this.#intervalMs = opts.intervalMs;
    this.#onDropped = opts.onDropped;
    this.#now = opts.now ?? (() => performance.now());
    this.#tokens = opts.lines;
    this.#last = this.#now();
    this.#reportedAt = this.#last;
  }

  /** true → deliver the line; false → it was dropped (and counted). */
  admit(): boolean {
    const now = this.#now();
    if (now > this.#last) {
      this.#tokens = Math.min(
        this.#lines,
        this.#tokens + ((now - this.#last) * this.#lines) / this.#intervalMs,
      );
      this.#last = now;
    }
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      // the drop report goes before the first line after it, once an interval has passed
      if (this.#dropped > 0 && now - this.#reportedAt >= this.#intervalMs) this.flush();
      return true;
    }
    this.#dropped++;
    if (!this.#timer) {
      const wait = Math.max(1, this.#reportedAt + this.#intervalMs - now);
      this.#timer = setTimeout(() => this.flush(), wait);
      this.#timer.unref();
    }
    return false;
  }

  /** Reports what was dropped so far (if anything). */
  flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#reportedAt = this.#now();
    if (this.#dropped > 0) {
      const n = this.#dropped;
      this.#dropped = 0;
      this.#onDropped(n);
    }
  }
}
