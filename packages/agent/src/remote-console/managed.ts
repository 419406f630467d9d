/**
 * A server's remote console over the run: connects when the server starts, reports its state
 * (connecting → authenticated, or wrong_password / unreachable), reconnects with backoff when the
 * game drops it, and goes `idle` when the server stops. Commands wait briefly for a connection
 * being made. The password is never logged or put in a message.
 */
import { CodedError, type RemoteConsoleState, type RemoteConsoleTransport } from '@cap/protocol';
import type { Logger } from 'pino';
import {
  assertCommand,
  CommandQueue,
  type Dialer,
  type Session,
  SessionError,
  type Target,
} from './session.ts';
import type { RemoteConsole, RemoteConsoleReply } from './types.ts';

export interface BackoffOptions {
  /** first retry after this many ms, doubled each failure up to maxMs */
  initialMs: number;
  maxMs: number;
  /** after a refused password (the game may ban repeated tries) */
  wrongPasswordMs: number;
}
export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000, wrongPasswordMs: 60_000 };
const DEFAULT_SEND_TIMEOUT_MS = 5000;
const MAX_SEND_TIMEOUT_MS = 60_000;

type Listener = (state: RemoteConsoleState, message?: string) => void;

abstract class StateHolder {
  #state: RemoteConsoleState = 'idle';
  #message: string | undefined;
  readonly #listeners = new Set<Listener>();
  protected readonly log: Logger;
  constructor(log: Logger) {
    this.log = log;
  }
  get state(): RemoteConsoleState {
    return this.#state;
  }
  get message(): string | undefined {
    return this.#message;
  }
  onState(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  protected setState(state: RemoteConsoleState, message?: string): void {
    if (state === this.#state && message === this.#message) return;
    this.#state = state;
    this.#message = message;
    for (const l of [...this.#listeners]) {
      try {
        l(state, message);
      } catch (err) {
        this.log.error({ err }, 'remote console listener failed');
      }
    }
  }
}

/** A remote console the Agent dials (every transport but stdin). */
export class ManagedRemoteConsole extends StateHolder implements RemoteConsole {
  readonly serverId: string;
  readonly transport: RemoteConsoleTransport;
  readonly #dial: Dialer;
  readonly #target: () => Promise<Target | string>;
  readonly #backoff: BackoffOptions;
  readonly #queue = new CommandQueue();
  #session: Session | null = null;
  #running = false;
  #generation = 0;
  #timer: NodeJS.Timeout | null = null;
  #failures = 0;
  #waiters = new Set<() => void>();
  #off = false;

  constructor(opts: {
    serverId: string;
    transport: RemoteConsoleTransport;
    dial: Dialer;
    /** where to connect and with what password, or why not (a message: the console stays idle) */
    target: () => Promise<Target | string>;
    log: Logger;
    backoff?: BackoffOptions;
  }) {
    super(opts.log.child({ remoteConsole: opts.transport }));
    this.serverId = opts.serverId;
    this.transport = opts.transport;
    this.#dial = opts.dial;
    this.#target = opts.target;
    this.#backoff = opts.backoff ?? DEFAULT_BACKOFF;
  }

  /**
   * The template names a remote console, but this server has it off (its password is empty, its
   * port is not published): commands go to stdin meanwhile.
   */
  get off(): boolean {
    return this.#off;
  }

  /** The server runs: connect (again). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#off = false;
    this.#failures = 0;
    const gen = ++this.#generation;
    this.setState('connecting');
    void this.#connect(gen);
  }

  /** The server stopped (or is gone): close and go idle. */
  stop(message?: string): void {
    this.#running = false;
    this.#generation++;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#session?.close();
    this.#session = null;
    this.setState('idle', message);
    this.#wake();
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  async #connect(gen: number): Promise<void> {
    let target: Target | string;
    try {
      target = await this.#target();
    } catch (err) {
      target = (err as Error).message;
    }
    if (gen !== this.#generation) return;
    if (typeof target === 'string') {
      // nothing to dial (no password: the game keeps it off): idle, commands go nowhere
      this.#running = false;
      this.#off = true;
      this.setState('idle', target);
      this.#wake();
      return;
    }
    let session: Session;
    try {
      session = this.#dial(target);
      await session.ready;
    } catch (err) {
      if (gen !== this.#generation) return;
      const kind = err instanceof SessionError ? err.kind : 'unreachable';
      const message = (err as Error).message.slice(0, 512);
      this.log.info({ state: kind, reason: message }, 'remote console not connected');
      this.setState(kind, message);
      this.#wake();
      this.#retry(gen, kind === 'wrong_password');
      return;
    }
    if (gen !== this.#generation) {
      session.close();
      return;
    }
    this.#session = session;
    this.#failures = 0;
    session.onClose((reason) => {
      // a UDP session has no connection to lose: close its socket whatever ended it
      session.close();
      if (gen !== this.#generation || this.#session !== session) return;
      this.#session = null;
      this.log.info({ reason: reason.slice(0, 512) }, 'remote console closed by the game');
      this.setState('connecting', reason.slice(0, 512));
      this.#retry(gen, false);
    });
    this.setState('authenticated');
    this.#wake();
  }

  #retry(gen: number, wrongPassword: boolean): void {
    if (!this.#running || gen !== this.#generation) return;
    const delay = wrongPassword
      ? this.#backoff.wrongPasswordMs
      : Math.min(this.#backoff.maxMs, this.#backoff.initialMs * 2 ** Math.min(this.#failures, 20));
    this.#failures++;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (gen === this.#generation) void this.#connect(gen);
    }, delay);
    this.#timer.unref?.();
  }

  /** Now, or within `ms`: resolves when the state is settled (not connecting), or at the timeout. */
  #settled(ms: number): Promise<void> {
    if (this.state !== 'connecting') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#waiters.add(done);
    });
  }

  async send(command: string, opts: { timeoutMs?: number } = {}): Promise<RemoteConsoleReply> {
    assertCommand(command);
    const t = opts.timeoutMs;
    const timeoutMs =
      typeof t === 'number' && Number.isFinite(t) && t > 0
        ? Math.min(t, MAX_SEND_TIMEOUT_MS)
        : DEFAULT_SEND_TIMEOUT_MS;
    if (!this.#running && this.state === 'idle')
      throw new CodedError(
        'NOT_RUNNING',
        this.message ? `the remote console is off: ${this.message}` : 'server is not running',
      );
    await this.#settled(timeoutMs);
    const session = this.#session;
    if (this.state === 'wrong_password')
      throw new CodedError('REMOTE_CONSOLE_AUTH_FAILED', 'the remote console refused the password');
    if (!session || this.state !== 'authenticated')
      throw new CodedError(
        'REMOTE_CONSOLE_UNAVAILABLE',
        `the remote console is ${this.state}${this.message ? `: ${this.message}` : ''}`,
      );
    return this.#queue.run(async () => {
      try {
        return { response: await session.exec(command, timeoutMs) };
      } catch (err) {
        // the session ended under the command (its onClose reconnects): say why, with a code
        if (err instanceof SessionError)
          throw new CodedError(
            err.kind === 'wrong_password' ? 'REMOTE_CONSOLE_AUTH_FAILED' : 'REMOTE_CONSOLE_UNAVAILABLE',
            err.kind === 'wrong_password'
              ? 'the remote console refused the password'
              : `the remote console closed: ${err.message.slice(0, 512)}`,
          );
        throw err;
      }
    });
  }
}

/** stdin: the container's console (no response); `authenticated` while it takes commands. */
export class StdinConsole extends StateHolder implements RemoteConsole {
  readonly serverId: string;
  readonly transport = 'stdin' as const;
  readonly off = false;
  readonly #write: (command: string) => void;
  constructor(serverId: string, write: (command: string) => void, log: Logger) {
    super(log);
    this.serverId = serverId;
    this.#write = write;
  }
  start(): void {
    this.setState('authenticated');
  }
  stop(): void {
    this.setState('idle');
  }
  async send(command: string): Promise<RemoteConsoleReply> {
    this.#write(command);
    return {};
  }
}
