/**
 * A server's console: the game's attach stream (kept attached across Engine hiccups), commands
 * to its stdin, the Agent's own lines, and the one output path both the game's and the
 * installer's output go through: split into capped lines (console-lines.ts), then throttled
 * per server (throttle.ts) with the dropped lines counted and reported as `console_dropped`.
 */
import type { Duplex, Readable } from 'node:stream';
import { CodedError } from '@cap/protocol';
import { LineSplitter } from './console-lines.ts';
import type { Server } from './server.ts';
import { LineThrottle } from './throttle.ts';

/** One stream's lines into the server's throttle. */
export interface OutputSink {
  push(text: string): void;
  /** the unfinished line as a line (the stream ended) */
  flush(): void;
  /** forget the unfinished line (a new stream begins) */
  reset(): void;
}

export class ServerConsole {
  readonly #server: Server;
  readonly #throttle: LineThrottle;
  /** the game's output; every line is seen (the done pattern), the admitted ones are published */
  readonly #game: OutputSink;
  /** the console stream attached last (a start's, before its run is recorded) */
  #attached: Duplex | null = null;

  constructor(server: Server) {
    this.#server = server;
    const { config } = server.deps;
    this.#throttle = new LineThrottle({
      lines: config.logThrottleLines,
      intervalMs: config.logThrottleIntervalMs,
      onDropped: (count) =>
        server.events.publish('console_dropped', { serverId: server.id, count, reason: 'throttled' }),
    });
    this.#game = this.sink(
      (message) => server.events.publish('console', { serverId: server.id, message, stream: 'stdout' }),
      (line) => server.onConsoleLine(line),
    );
  }

  /**
   * A line sink for one output stream: lines are cut at the cap, every line goes to `seen`, and
   * the ones the throttle admits to `deliver`. The game's console and the installer's output both
   * come through here, so they share the line cap, the rate and the drop count.
   */
  sink(deliver: (line: string) => void, seen?: (line: string) => void): OutputSink {
    const lines = new LineSplitter((line) => {
      seen?.(line);
      if (this.#throttle.admit()) deliver(line);
    });
    return lines;
  }

  /** Reports the lines dropped so far (a stream ended). */
  flushDropped(): void {
    this.#throttle.flush();
  }

  /** Forgets the game's unfinished line (a new stream begins, or the run ended). */
  resetLines(): void {
    this.#game.reset();
  }

  attach(stream: Duplex): void {
    this.#attached = stream;
    stream.setEncoding?.('utf8');
    stream.on('data', (chunk: Buffer | string) => this.#game.push(chunk.toString()));
    stream.on('error', (e) => this.#server.log.debug({ err: e }, 'console stream error'));
    // a console lost while the game runs on (the Engine restarted, its socket dropped) comes back
    stream.on('close', () => void this.#reattach(stream));
  }

  async #reattach(lost: Duplex): Promise<void> {
    const server = this.#server;
    for (let attempt = 0; ; attempt++) {
      const run = server.run;
      if (!run || run.stream !== lost || run.watch.signal.aborted) return;
      await new Promise((r) => setTimeout(r, Math.min(30_000, 250 * 2 ** attempt)));
      if (server.run !== run || run.watch.signal.aborted) return;
      try {
        const st = await server.deps.env.inspect(run.containerId);
        if (!st?.running) return; // an exit: the exit watch reports it
        const stream = await server.deps.env.attach(run.containerId);
        if (server.run !== run) {
          stream.destroy();
          return;
        }
        run.stream = stream;
        this.resetLines();
        this.attach(stream);
        server.log.info({ action: 'console', attempt }, 'console attached again');
        return;
      } catch (e) {
        server.log.warn({ err: e, action: 'console', attempt }, 'console lost; attaching again');
      }
    }
  }

  /** Follows a stream (the installer's output) through `sink` until it ends or fails. */
  follow(stream: Readable, sink: OutputSink): Promise<void> {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => sink.push(chunk));
    return new Promise<void>((resolve) => {
      stream.on('end', () => {
        sink.flush();
        resolve();
      });
      stream.on('error', () => resolve());
    });
  }

  /** A line from the Agent itself in the server's console (Wings' "[Pterodactyl Daemon]" lines). */
  daemon(message: string): void {
    this.#server.events.publish('console', { serverId: this.#server.id, message, stream: 'daemon' });
  }

  sendCommand(command: string): void {
    if (/[\r\n]/.test(command)) throw new CodedError('CONFIG_INVALID', 'a command is one line');
    const server = this.#server;
    // the done line can be read between the container's start and the run's bookkeeping: the
    // console attached for the start takes commands already
    const stream = server.run?.stream ?? this.#attached;
    if (!stream || (server.status !== 'running' && server.status !== 'starting')) {
      throw new CodedError('NOT_RUNNING', 'server is not running');
    }
    // lost with the Engine and not back yet: say so rather than write into nothing
    if (stream.destroyed || !stream.writable) {
      throw new CodedError('DOCKER_ERROR', 'the console is not attached (Docker unreachable); retrying');
    }
    stream.write(`${command}\n`);
  }
}
