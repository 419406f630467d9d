/**
 * The console lines of one server, shared by the terminal (Console tab) and the preview
 * (Overview). A `reset` replaces everything (history on subscribe); `append` adds live lines.
 */
export type ConsoleEvent =
  | { kind: 'reset'; lines: readonly string[] }
  | { kind: 'append'; lines: readonly string[] };

export const CONSOLE_MAX_LINES = 2000;

export class ConsoleStore {
  private buf: string[] = [];
  private readonly listeners = new Set<(e: ConsoleEvent) => void>();
  version = 0;

  get lines(): readonly string[] {
    return this.buf;
  }

  reset(lines: readonly string[]): void {
    this.buf = lines.slice(-CONSOLE_MAX_LINES);
    this.emit({ kind: 'reset', lines: this.buf });
  }

  append(lines: readonly string[]): void {
    if (lines.length === 0) return;
    this.buf.push(...lines);
    if (this.buf.length > CONSOLE_MAX_LINES) this.buf.splice(0, this.buf.length - CONSOLE_MAX_LINES);
    this.emit({ kind: 'append', lines });
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
