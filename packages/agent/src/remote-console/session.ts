/**
 * What every transport gives the managed console (managed.ts): one connection ("session") to the
 * game's remote console, authenticated once, then one command at a time. The sessions never
 * buffer more than they cap, and never throw out of an event handler: a hostile game server can
 * only close its own session.
 */
import { CodedError, REMOTE_CONSOLE_MAX_RESPONSE_BYTES } from '@cap/protocol';

export interface Target {
  host: string;
  port: number;
  password: string;
}

/** Why a session could not be made or ended. */
export class SessionError extends Error {
  readonly kind: 'wrong_password' | 'unreachable';
  constructor(kind: 'wrong_password' | 'unreachable', message: string) {
    super(message);
    this.kind = kind;
  }
}

export interface Session {
  /** Resolves once authenticated; rejects with a SessionError. */
  readonly ready: Promise<void>;
  /** One command; resolves with the response (capped), TIMEOUT when none comes. */
  exec(command: string, timeoutMs: number): Promise<string>;
  /** Called once when the session ends after `ready` (the server closed it, or garbage). */
  onClose(listener: (reason: string) => void): void;
  close(): void;
}

export type Dialer = (target: Target) => Session;

/** Bytes of text kept for one response: what is past the cap is dropped, with a marker. */
export class ResponseBuffer {
  #parts: Buffer[] = [];
  #bytes = 0;
  #cut = false;
  readonly #max: number;
  constructor(max = REMOTE_CONSOLE_MAX_RESPONSE_BYTES) {
    this.#max = max;
  }
  push(b: Buffer | string): void {
    const buf = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
    const room = this.#max - this.#bytes;
    if (room <= 0) {
      this.#cut ||= buf.length > 0;
      return;
    }
    const part = buf.length > room ? buf.subarray(0, room) : buf;
    if (buf.length > room) this.#cut = true;
    this.#parts.push(Buffer.from(part));
    this.#bytes += part.length;
  }
  get bytes(): number {
    return this.#bytes;
  }
  text(): string {
    // a cut may split a UTF-8 sequence: the decoder replaces the half character
    const s = Buffer.concat(this.#parts).toString('utf8');
    return this.#cut ? `${s}\n[response cut at ${this.#max} bytes]` : s;
  }
}

/** One command at a time on a session: a queue, each with its own timeout. */
export class CommandQueue {
  #tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(fn, fn);
    this.#tail = next.catch(() => undefined);
    return next;
  }
}

export function timeoutError(what: string): CodedError {
  return new CodedError('TIMEOUT', `${what}: no answer from the game's remote console`);
}

/** A command must be one line of printable text (no NUL: the protocols end strings with it). */
export function assertCommand(command: string): void {
  if (/[\r\n\0]/.test(command)) throw new CodedError('CONFIG_INVALID', 'a command is one line');
  if (command.length === 0) throw new CodedError('CONFIG_INVALID', 'an empty command');
}
