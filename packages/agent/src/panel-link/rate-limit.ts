/**
 * A token bucket: `ratePerSec` tokens a second, at most `burst` saved up. One per Panel
 * connection limits the commands a compromised or broken Panel can make the Agent run (Wings
 * CVE-2025-69199, websocket message flooding); commands over it are answered RATE_LIMITED, not run.
 */
export class TokenBucket {
  readonly #rate: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #last: number;

  constructor(ratePerSec: number, burst: number, now: () => number = () => performance.now()) {
    this.#rate = ratePerSec;
    this.#burst = burst;
    this.#now = now;
    this.#tokens = burst;
    this.#last = now();
  }

  /** Takes one token if there is one. */
  take(): boolean {
    const t = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((t - this.#last) / 1000) * this.#rate);
    this.#last = t;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
