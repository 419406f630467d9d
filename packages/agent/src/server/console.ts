/**
 * A server's console: the game's attach stream (kept attached across Engine hiccups), commands
 * to its stdin, the Agent's own lines, and the one output path both the game's and the
 * installer's output go through: split into capped lines (console-lines.ts), then throttled
 * per server (throttle.ts) with the dropped lines counted and reported as `console_dropped`.
 */
import { closeSync, constants, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
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

/** The mark's record (fixed size, written in place) and the most of the last line it keeps. */
const MARK_BYTES = 2048; // 200 units JSON-escaped (\u001b: 6 each) and the time fit
const MARK_TAIL = 200;
/** after the log read, the time the attach's copies of its last lines take to arrive */
const GAP_SETTLE_MS = 300;
/** an entry stamped this long before the attach was asked for is not in the attach */
const GAP_SKEW_MS = 50;
/** the most of the attach's output held back while the gap is read (UTF-16 units) */
const HOLD_MAX = 4 * 1024 * 1024;

interface ConsoleMark {
  /** ms since the epoch (the Agent's clock: the Engine's, on its host) */
  at: number;
  /** the end of the last whole line handed on */
  tail: string;
}

export class ServerConsole {
  readonly #server: Server;
  readonly #throttle: LineThrottle;
  /** the game's output; every line is seen (the done pattern), the admitted ones are published */
  readonly #game: OutputSink;
  /** the console stream attached last (a start's, before its run is recorded) */
  #attached: Duplex | null = null;
  /** the game's output handed on: the end of its last whole line and when (see `markFile`) */
  #mark: ConsoleMark | null | undefined;
  #markFd: number | null = null;
  /** the last bytes handed on (to find the end of the last whole line) */
  #handed = '';
  /** the mark's record, reused (filled with spaces, the JSON written over it) */
  readonly #rec = Buffer.alloc(MARK_BYTES);
  /** the game's output of this event-loop turn, handed on together at its end (`#hand`) */
  #pending: string[] = [];
  #turn: NodeJS.Immediate | undefined;

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
    // this turn's output goes through the throttle first: its drops are in this report
    this.#hand();
    this.#throttle.flush();
  }

  /** Forgets the game's unfinished line (a new stream begins, or the run ended). */
  resetLines(): void {
    // what the old stream gave this turn goes on first, as it would have
    this.#hand();
    this.#game.reset();
  }

  /**
   * Beside the server's definition: the end of the last whole line of the game's output handed on
   * (its last 200 characters) and the time it was, so an Agent started again (after a kill -9
   * too) or a console attached again after an Engine restart reads what the game printed
   * meanwhile from the container's log, from exactly there. Written (one fixed-size `pwrite`,
   * whole or not at all when the process dies) before the output is handed on: what was handed
   * on is never read again. The output of one event-loop turn is handed on together at its end,
   * after one write of the mark for all of it (a flood's reads come many to a turn).
   */
  get markFile(): string {
    return path.join(this.#server.deps.serversDir, `${this.#server.id}.console`);
  }

  #loadMark(): ConsoleMark | null {
    if (this.#mark !== undefined) return this.#mark;
    this.#mark = null;
    try {
      const v = JSON.parse(readFileSync(this.markFile, 'utf8').trim()) as unknown;
      if (
        v &&
        typeof v === 'object' &&
        Number.isFinite((v as ConsoleMark).at) &&
        typeof (v as ConsoleMark).tail === 'string'
      )
        this.#mark = { at: (v as ConsoleMark).at, tail: (v as ConsoleMark).tail.slice(-MARK_TAIL) };
    } catch {
      // none (or torn by a power loss): the gap is not read back
    }
    return this.#mark;
  }

  /** Forgets the mark (the server is deleted). */
  removeMark(): void {
    this.#hand();
    if (this.#markFd !== null) closeSync(this.#markFd);
    this.#markFd = null;
    rmSync(this.markFile, { force: true });
  }

  /** The game's output, handed on at the end of this turn (`#hand`). */
  #take(text: string): void {
    this.#pending.push(text);
    this.#turn ??= setImmediate(() => this.#hand());
  }

  /** This turn's output handed on: the mark first (see markFile), then the line path. */
  #hand(): void {
    clearImmediate(this.#turn);
    this.#turn = undefined;
    if (this.#pending.length === 0) return;
    const text = this.#pending.length === 1 ? (this.#pending[0] as string) : this.#pending.join('');
    this.#pending = [];
    this.#handed = (this.#handed + text.slice(-4 * MARK_TAIL)).slice(-4 * MARK_TAIL);
    const nl = this.#handed.lastIndexOf('\n');
    if (nl >= 0 && !this.#server.deleted) {
      const mark = { at: Date.now(), tail: this.#handed.slice(Math.max(0, nl + 1 - MARK_TAIL), nl + 1) };
      this.#mark = mark;
      try {
        // never truncated: the record is written whole over the last one
        this.#markFd ??= openSync(this.markFile, constants.O_WRONLY | constants.O_CREAT, 0o600);
        const rec = this.#rec.fill(0x20);
        rec.write(JSON.stringify(mark));
        writeSync(this.#markFd, rec, 0, MARK_BYTES, 0);
      } catch (e) {
        this.#server.log.debug({ err: e }, 'console mark not saved');
      }
    }
    this.#game.push(text);
  }

  /**
   * `gap`: the stream was attached to a container that ran while no console of this Agent read
   * it (an Agent start, an Engine restart). Its output is held back until what the game printed
   * since the mark is read from the container's log and handed on, the lines the attach has too
   * left out.
   */
  attach(stream: Duplex, gap?: { containerId: string; requestedAt: number }): void {
    this.#attached = stream;

    stream.setEncoding?.('utf8');
    let held: string[] | null = gap ? [] : null;
    let heldBytes = 0;
    stream.on('data', (chunk: Buffer | string) => {
      const text = chunk.toString();
      if (held && heldBytes + text.length <= HOLD_MAX) {
        held.push(text);
        heldBytes += text.length;
        return;
      }
      if (held) {
        // too much held back (a flood while the log is read): on with it; the gap is counted
        this.#take(held.join(''));
        held = null;
      }
      this.#take(text);
    });
    stream.on('error', (e) => this.#server.log.debug({ err: e }, 'console stream error'));
    // a console lost while the game runs on (the Engine restarted, its socket dropped) comes back
    stream.on('close', () => void this.#reattach(stream));
    if (gap)
      void this.#readGap(gap.containerId, gap.requestedAt, () => held?.join('') ?? '')
        .catch((e) => {
          this.#server.log.warn({ err: e, action: 'console' }, 'the console log was not read back');
          return '';
        })
        .then((before) => {
          if (!held) {
            // the attach's output went on already: the gap's lines are counted, not sent late
            const count = before.split('\n').length - 1;
            if (count > 0)
              this.#server.events.publish('console_dropped', {
                serverId: this.#server.id,
                count,
                reason: 'overloaded',
              });
            return;
          }
          const rest = held.join('');
          held = null;
          if (before) this.#take(before);
          if (rest) this.#take(rest);
        });
  }

  /**
   * What the game printed after the mark and before the attach's first byte, from the log:
   * from the mark's tail (found near its time; else the entries after its time), the lines the
   * attach has as well (its first bytes, at the end of the log read) cut off. Lines past the
   * read's cap are reported dropped.
   */
  async #readGap(id: string, requestedAt: number, attached: () => string): Promise<string> {
    const server = this.#server;
    const mark = this.#loadMark();
    const env = server.deps.env;
    if (!mark || !env.consoleLog) return '';
    const log = await env.consoleLog(id, mark.at - 2000);
    if (!log) return '';
    // the attach's lines printed up to the log read arrive meanwhile
    await new Promise((r) => setTimeout(r, GAP_SETTLE_MS));
    const { entries } = log;
    const starts: number[] = [];
    let text = '';
    for (const e of entries) {
      starts.push(text.length);
      text += e.text;
    }
    const endOf = (i: number) => (i + 1 < starts.length ? (starts[i + 1] as number) : text.length);
    const markNs = BigInt(Math.floor(mark.at)) * 1_000_000n;
    const dist = (ns: bigint) => (ns > markNs ? ns - markNs : markNs - ns);
    // the first entry of the gap: after the one the mark's tail ends, the closest to the mark's time
    let first = -1;
    let best: bigint | null = null;
    if (mark.tail)
      entries.forEach((e, i) => {
        const end = endOf(i);
        if (end < mark.tail.length || !text.startsWith(mark.tail, end - mark.tail.length)) return;
        const d = dist(e.ns);
        if (best === null || d < best) {
          best = d;
          first = i + 1;
        }
      });
    if (first < 0) {
      first = entries.findIndex((e) => e.ns > markNs);
      if (first < 0) first = entries.length;
    }
    const from = first < entries.length ? (starts[first] as number) : text.length;
    let gap = text.slice(from);
    // the end: the entries stamped from shortly before the attach was asked for may be in the
    // attach too; the longest run of them ending the log that the attach begins with is cut off
    const reqNs = BigInt(Math.floor(requestedAt - GAP_SKEW_MS)) * 1_000_000n;
    let ov = entries.findIndex((e, i) => i >= first && e.ns >= reqNs);
    if (ov < 0) ov = entries.length;
    const maxK = Math.min(
      1024 * 1024,
      text.length - (ov < entries.length ? (starts[ov] as number) : text.length),
    );
    const att = attached();
    for (let k = Math.min(att.length, maxK); k > 0; k--) {
      if (att.charCodeAt(k - 1) !== 10) continue;
      if (gap.endsWith(att.slice(0, k))) {
        gap = gap.slice(0, gap.length - k);
        break;
      }
    }
    if (log.over > 0)
      server.events.publish('console_dropped', {
        serverId: server.id,
        count: log.over,
        reason: 'overloaded',
      });
    if (gap)
      server.log.info(
        { action: 'console', bytes: gap.length },
        'console: printed while unread, read back from the log',
      );
    return gap;
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
        const requestedAt = Date.now();
        const stream = await server.deps.env.attach(run.containerId);
        if (server.run !== run) {
          stream.destroy();
          return;
        }
        run.stream = stream;
        this.resetLines();
        this.attach(stream, { containerId: run.containerId, requestedAt });
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
    // after what the game printed before it (held for this turn's end, #take)
    this.#hand();
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
