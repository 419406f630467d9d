/**
 * The console lines of one server, shared by the terminal (Console tab) and the preview
 * (Overview). A `reset` replaces everything (history on subscribe); `append` adds live lines.
 * Numbered lines (`epoch`/`seq`: the last line's number, LinkSeq) flagged `resent` (sent again
 * after a lost link: perhaps shown already) are dropped when numbered at or below the last line
 * this console showed (same epoch); unflagged lines always show.
 */
export type ConsoleEvent =
  | { kind: 'reset'; lines: readonly string[] }
  | { kind: 'append'; lines: readonly string[] };

export const CONSOLE_MAX_LINES = 2000;

/** the numbering a `console` frame (or a `subscribed` history) carries */
export interface LineNumbering {
  epoch?: string | undefined;
  seq?: number | undefined;
  resent?: boolean | undefined;
}

export class ConsoleStore {
  private buf: string[] = [];
  private readonly listeners = new Set<(e: ConsoleEvent) => void>();
  /** the number of the last numbered line shown */
  private shown: { epoch: string; seq: number } | undefined;
  version = 0;
  /** re-sent lines dropped as shown already */
  resentDropped = 0;

  get lines(): readonly string[] {
    return this.buf;
  }

  /** `num`: the number of the history's last line, when the Panel knows it */
  reset(lines: readonly string[], num?: LineNumbering): void {
    this.buf = lines.slice(-CONSOLE_MAX_LINES);
    if (num) this.note(num, lines.length);
    this.emit({ kind: 'reset', lines: this.buf });
  }

  append(lines: readonly string[], num?: LineNumbering): void {
    if (num?.resent && this.shown && num.epoch === this.shown.epoch && this.valid(num, lines.length)) {
      const first = (num.seq as number) - lines.length + 1;
      if (first <= this.shown.seq) {
        const skip = Math.min(lines.length, this.shown.seq - first + 1);
        this.resentDropped += skip;
        lines = lines.slice(skip);
      }
    }
    if (num) this.note(num, lines.length);
    if (lines.length === 0) return;
    this.buf.push(...lines);
    if (this.buf.length > CONSOLE_MAX_LINES) this.buf.splice(0, this.buf.length - CONSOLE_MAX_LINES);
    this.emit({ kind: 'append', lines });
  }

  private valid(num: LineNumbering, n: number): boolean {
    return (
      typeof num.epoch === 'string' &&
      num.epoch.length > 0 &&
      typeof num.seq === 'number' &&
      Number.isSafeInteger(num.seq) &&
      num.seq >= n
    );
  }

  /** forward only within an epoch; a new epoch replaces */
  private note(num: LineNumbering, n: number): void {
    if (!this.valid(num, n)) return;
    const epoch = num.epoch as string;
    const seq = num.seq as number;
    if (!this.shown || this.shown.epoch !== epoch || this.shown.seq < seq) this.shown = { epoch, seq };
  }

  subscribe(fn: (e: ConsoleEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(e: ConsoleEvent): void {
    this.version += 1;
    for (const fn of this.listeners) fn(e);
  }
}

/** Up/down command history, as shells do: newest last, no consecutive duplicates. */
export class CommandHistory {
  private items: string[] = [];
  private cursor = 0;
  private readonly max: number;
  constructor(max = 100) {
    this.max = max;
  }
  push(cmd: string): void {
    if (cmd && this.items[this.items.length - 1] !== cmd) this.items.push(cmd);
    if (this.items.length > this.max) this.items.shift();
    this.cursor = this.items.length;
  }
  /** the previous command, or undefined at the oldest */
  up(): string | undefined {
    if (this.items.length === 0) return undefined;
    this.cursor = Math.max(0, this.cursor - 1);
    return this.items[this.cursor];
  }
  /** the next command, or '' past the newest */
  down(): string {
    this.cursor = Math.min(this.items.length, this.cursor + 1);
    return this.items[this.cursor] ?? '';
  }
}
