/**
 * One server's disk limit across the writers that stream into its folder at the same time: SFTP
 * handles and file-API uploads. Each used to compare its own bytes with the room measured when it
 * began, so two parallel uploads that each fit could together pass the limit. Here every writer
 * charges the bytes it is about to add to one ledger per server, before they are written, and the
 * charge is refused (INSUFFICIENT_RESOURCES) when the usage measured plus every charge since would
 * pass the limit.
 *
 * The usage is walked (diskUsage) when a writer joins, as each SFTP open and upload did before; a
 * walk while others write cannot tell which of their bytes it saw, so the new figure is the walk
 * plus whatever was charged but not yet written when it began, plus every charge made while it
 * ran: it may count a byte twice for a while, never not at all. A writer reports the bytes that
 * reached the disk (`written`) and gives back what it charged but will never leave there
 * (`release`: a refused write, an upload removed on failure).
 */
import { CodedError } from '@cap/protocol';

export class DiskWriter {
  readonly #ledger: DiskLedger;
  /** charged, not yet reported written */
  pending = 0;
  /** charged in all (and not released) */
  charged = 0;
  closed = false;

  constructor(ledger: DiskLedger) {
    this.#ledger = ledger;
  }

  /** Takes `n` more bytes from the room left, or throws INSUFFICIENT_RESOURCES (nothing taken). */
  charge(n: number): void {
    this.#ledger.charge(this, n);
  }

  /** `n` of the bytes charged are on the disk now. */
  written(n: number): void {
    this.pending = Math.max(0, this.pending - n);
  }

  /** Gives back `n` bytes charged that will not be (or no longer are) on the disk. */
  release(n: number): void {
    this.#ledger.release(this, n);
  }

  close(): void {
    this.#ledger.leave(this);
  }
}

export class DiskLedger {
  readonly #limit: () => number;
  readonly #measure: () => Promise<number>;
  readonly #writers = new Set<DiskWriter>();
  /** the usage walked last, and the bytes charged (net of releases) counted on top of it */
  #base = 0;
  #added = 0;
  /** every byte ever charged: what was charged while a walk ran */
  #chargedEver = 0;
  #walks = 0;
  #landed = 0;

  /** `limit`: bytes, 0 for none; `measure`: a fresh walk of the folder */
  constructor(limit: () => number, measure: () => Promise<number>) {
    this.#limit = limit;
    this.#measure = measure;
  }

  /** A writer that joins (the folder is walked first, when there is a limit). */
  async join(): Promise<DiskWriter> {
    const w = new DiskWriter(this);
    if (this.#limit() > 0) await this.#walk();
    this.#writers.add(w);
    return w;
  }

  /** Bytes charged by live writers and not yet on the disk (for a check that walks the folder itself). */
  outstanding(): number {
    let n = 0;
    for (const w of this.#writers) n += w.pending;
    return n;
  }

  async #walk(): Promise<void> {
    const seq = ++this.#walks;
    const pendingBefore = this.outstanding();
    const chargedBefore = this.#chargedEver;
    const used = await this.#measure();
    // a walk begun later already landed: it is the better figure
    if (seq < this.#landed) return;
    this.#landed = seq;
    this.#base = used;
    this.#added = pendingBefore + (this.#chargedEver - chargedBefore);
  }

  charge(w: DiskWriter, n: number): void {
    if (w.closed) throw new CodedError('INVALID_STATE', 'the writer is closed');
    if (!Number.isSafeInteger(n) || n < 0) throw new CodedError('VALIDATION_FAILED', 'bad byte count');
    if (n === 0) return;
    const limit = this.#limit();
    if (limit > 0 && this.#base + this.#added + n > limit)
      throw new CodedError(
        'INSUFFICIENT_RESOURCES',
        `the write would take the server past its disk limit (${Math.max(0, this.#base + this.#added)} of ${limit} bytes used or being written)`,
      );
    this.#added += n;
    this.#chargedEver += n;
    w.pending += n;
    w.charged += n;
  }

  release(w: DiskWriter, n: number): void {
    const m = Math.min(Math.max(0, n), w.charged);
    w.charged -= m;
    w.pending = Math.max(0, w.pending - m);
    this.#added -= m;
  }

  leave(w: DiskWriter): void {
    w.closed = true;
    w.pending = 0;
    this.#writers.delete(w);
  }
}
