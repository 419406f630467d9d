/**
 * The console lines' numbering (LinkSeq in the protocol: per server, `seq` of a message's last
 * line, within one Agent process's `epoch`), checked where lines arrive: on the Agent link (the
 * projection) and off the bus (the live relay, every replica). A number passed already means a
 * line had already (skipped); a jump means lines that never came, counted exactly so the console
 * can say `console_dropped` with that count. Lines without a number (an older Agent) pass as
 * they are. One entry per server, bounded (a flood of ids off the bus cannot grow it for ever).
 */
const MAX_SERVERS = 100_000;

export class LineNumbers {
  readonly #last = new Map<string, { epoch: string; seq: number }>();

  /**
   * `n` lines numbered `seq - n + 1 … seq`: how many at their front were had already (`skip`)
   * and how many before them never came (`gap`).
   */
  take(serverId: string, epoch: unknown, seq: unknown, n: number): { skip: number; gap: number } {
    if (
      typeof epoch !== 'string' ||
      epoch.length === 0 ||
      epoch.length > 64 ||
      typeof seq !== 'number' ||
      !Number.isSafeInteger(seq) ||
      seq < 1 ||
      !Number.isSafeInteger(n) ||
      n < 0 ||
      n > seq
    )
      return { skip: 0, gap: 0 };
    const first = seq - n + 1;
    const last = this.#last.get(serverId);
    let skip = 0;
    let gap = 0;
    if (last && last.epoch === epoch) {
      if (seq <= last.seq) return { skip: n, gap: 0 };
      if (first <= last.seq) skip = last.seq - first + 1;
      else gap = first - last.seq - 1;
    }
    this.#last.delete(serverId); // re-inserted: the map's order is the order of use
    this.#last.set(serverId, { epoch, seq });
    if (this.#last.size > MAX_SERVERS) {
      const oldest = this.#last.keys().next().value;
      if (oldest !== undefined) this.#last.delete(oldest);
    }
    return { skip, gap };
  }

  /**
   * Starts from a stored mark (another process's, ConsoleMarks) unless newer is known here;
   * true when it did.
   */
  seed(serverId: string, mark: { epoch: string; seq: number }): boolean {
    const last = this.#last.get(serverId);
    if (last && last.epoch === mark.epoch && last.seq >= mark.seq) return false;
    this.#last.set(serverId, { epoch: mark.epoch, seq: mark.seq });
    return true;
  }

  forget(serverId: string): void {
    this.#last.delete(serverId);
  }
}
