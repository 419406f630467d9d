/**
 * Splits a container's output into lines, for the game console and the installer alike. A line
 * is cut at `maxChars` with a visible marker (`… [truncated N bytes]`), and the unfinished line is
 * bounded too: what is past the cap is counted, never kept, so a container printing megabytes
 * without a newline costs the Agent at most `maxChars` of memory.
 */
export const MAX_LINE_CHARS = 8 * 1024;

export function truncationMarker(bytes: number): string {
  return `… [truncated ${bytes} bytes]`;
}

export class LineSplitter {
  readonly #onLine: (line: string) => void;
  readonly #max: number;
  #partial = '';
  /** bytes of the current line dropped past the cap */
  #over = 0;

  constructor(onLine: (line: string) => void, maxChars = MAX_LINE_CHARS) {
    this.#onLine = onLine;
    this.#max = maxChars;
  }

  push(text: string): void {
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl < 0) {
        this.#append(text, start, text.length);
        return;
      }
      this.#append(text, start, nl);
      this.#end();
      start = nl + 1;
    }
  }

  /** The unfinished line, if any, as a line (the stream ended). */
  flush(): void {
    if (this.#partial || this.#over) this.#end();
  }

  /** Forgets the unfinished line (a new stream begins). */
  reset(): void {
    this.#partial = '';
    this.#over = 0;
  }

  #append(text: string, from: number, to: number): void {
    if (from >= to) return;
    const room = this.#max - this.#partial.length;
    if (to - from <= room) {
      this.#partial += text.slice(from, to);
      return;
    }
    if (room > 0) this.#partial += text.slice(from, from + room);
    const rest = text.slice(from + Math.max(0, room), to);
    // carriage returns are dropped from lines anyway (TTY output ends lines with \r\n)
    let crs = 0;
    for (let i = rest.indexOf('\r'); i >= 0; i = rest.indexOf('\r', i + 1)) crs++;
    this.#over += Buffer.byteLength(rest) - crs;
  }

  #end(): void {
    let line = this.#partial.includes('\r') ? this.#partial.replace(/\r/g, '') : this.#partial;
    if (this.#over > 0) line += truncationMarker(this.#over);
    this.#partial = '';
    this.#over = 0;
    this.#onLine(line);
  }
}
