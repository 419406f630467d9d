/**
 * Console throttle, as Wings does it: at most `lines` lines per `intervalMs` window per server;
 * what is over the limit is counted and reported once when the window closes.
 */
export class LineThrottle {
  readonly #lines: number;
  readonly #intervalMs: number;
  readonly #onDropped: (count: number) => void;
  readonly #now: () => number;
  #windowStart = 0;
  #count = 0;
  #dropped = 0;
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
    this.#now = opts.now ?? Date.now;
  }

  /** true → deliver the line; false → it was dropped (and counted). */
  admit(): boolean {
    const now = this.#now();
    if (now - this.#windowStart >= this.#intervalMs) {
      this.flush();
      this.#windowStart = now;
      this.#count = 0;
    }
    this.#count++;
    if (this.#count <= this.#lines) return true;
    this.#dropped++;
    if (!this.#timer) {
      const wait = Math.max(1, this.#windowStart + this.#intervalMs - now);
      this.#timer = setTimeout(() => this.flush(), wait);
      this.#timer.unref();
    }
    return false;
  }

  /** Reports what was dropped so far (if anything). */
  flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#dropped > 0) {
      const n = this.#dropped;
      this.#dropped = 0;
      this.#onDropped(n);
    }
  }
}
