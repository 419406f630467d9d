/**
 * What the Panel knows live about each server (status, last stats, console ring, players) and
 * who is watching it. Console lines are batched per server into one `console` message per turn of
 * the event loop (setImmediate): a flood costs one message per tick, a single line waits ~0 ms.
 * No line is dropped unreported: past the pending cap, the oldest pending lines are dropped and
 * their exact count goes out first as `console_dropped`.
 */
import type { ClientMessage, ResourceSnapshot, ServerStatus } from '@cap/protocol';
import { secretValues } from '../lib/redact.ts';
import type {
  ConsoleNumbering,
  InstallRecord,
  LiveSnapshot,
  LiveStore,
  Players,
  RemoteConsoleStatus,
  Sink,
} from './live-store.ts';

export type { InstallRecord, Sink } from './live-store.ts';

export const CONSOLE_HISTORY_LINES = 150;
/** the console ring is bounded by bytes too (UTF-16 code units, ~bytes), whatever the line count */
export const CONSOLE_HISTORY_BYTES = 256 * 1024;
/** the tail of the last install kept for pages opened after it (the create → detail navigation) */
export const INSTALL_HISTORY_LINES = 500;
export const INSTALL_HISTORY_BYTES = 512 * 1024;
/** a line longer than this is cut: the Agent's cut (8 KiB) plus room for its marker, so a line
 * the Agent cut passes as it is; this guards the Panel against an Agent that does not cut */
export const MAX_LINE_CHARS = 8 * 1024 + 64;
/** lines waiting for the next tick, per server: past this, the oldest are dropped and counted */
export const MAX_PENDING_LINES = 50_000;
export const MAX_PENDING_CHARS = 8 * 1024 * 1024;
/** holds of extra hidden values per server (LiveStore.holdSecrets): past it the oldest goes */
export const MAX_HELD_SECRETS = 32;

/** A line cut to `max` characters with a visible marker saying how much was cut. */
export function capLine(line: string, max = MAX_LINE_CHARS): string {
  if (line.length <= max) return line;
  return `${line.slice(0, max)}… [truncated ${Buffer.byteLength(line.slice(max))} bytes]`;
}

/** Lines with a bound on count and on total characters; the oldest go first. */
export class LineRing {
  readonly #maxLines: number;
  readonly #maxChars: number;
  #lines: string[] = [];
  #chars = 0;
  constructor(maxLines: number, maxChars: number) {
    this.#maxLines = maxLines;
    this.#maxChars = maxChars;
  }
  push(lines: readonly string[]): void {
    // only the tail can survive: skip what would be evicted at once
    let start = Math.max(0, lines.length - this.#maxLines);
    for (let i = start; i < lines.length; i++) {
      const l = lines[i] as string;
      this.#lines.push(l);
      this.#chars += l.length;
    }
    start = Math.max(0, this.#lines.length - this.#maxLines);
    let drop = start;
    let chars = this.#chars;
    for (let i = 0; i < start; i++) chars -= (this.#lines[i] as string).length;
    while (drop < this.#lines.length - 1 && chars > this.#maxChars) {
      chars -= (this.#lines[drop] as string).length;
      drop++;
    }
    if (drop > 0) this.#lines.splice(0, drop);
    this.#chars = chars;
  }
  get chars(): number {
    return this.#chars;
  }
  get length(): number {
    return this.#lines.length;
  }
  toArray(): string[] {
    return [...this.#lines];
  }
}

interface InstallEntry {
  ring: LineRing;
  success?: boolean;
  exitCode?: number;
}

interface Entry {
  status: ServerStatus | undefined;
  stats: ResourceSnapshot | null;
  console: LineRing;
  pending: string[];
  pendingChars: number;
  /** pending lines dropped over the cap, reported before the next batch */
  pendingDropped: number;
  /**
   * the numbering of the last pending line (undefined: unnumbered lines pending); `pendingResent`:
   * some pending lines are sent again. A batch holds one run of numbers: an epoch change, a jump
   * or unnumbered lines flush it first.
   */
  pendingNum: { epoch: string; seq: number } | undefined;
  pendingResent: boolean;
  /** the numbering of the ring's last line */
  consoleMark: { epoch: string; seq: number } | undefined;
  timer: NodeJS.Immediate | undefined;
  players: Players | undefined;
  install: InstallEntry | undefined;
  sinks: Set<Sink>;
}

/** Today's `LiveStore`: in this process's memory. */
export class LiveState implements LiveStore {
  readonly #servers = new Map<string, Entry>();
  readonly #global = new Set<Sink>();
  /** per server: values of its hidden variables, redacted from what spectators get */
  readonly #secrets = new Map<string, readonly string[]>();
  /** per server: values held besides those (key → values, oldest first) */
  readonly #held = new Map<string, Map<string, readonly string[]>>();
  /** per server with holds: the set values and the held ones, longest first */
  readonly #merged = new Map<string, readonly string[]>();
  /** per server: its remote console's last reported state */
  readonly #remoteConsoles = new Map<string, RemoteConsoleStatus>();
  /** console lines dropped over the pending cap since start (each reported to subscribers) */
  droppedLines = 0;

  #entry(serverId: string): Entry {
    let e = this.#servers.get(serverId);
    if (!e) {
      e = {
        status: undefined,
        stats: null,
        console: new LineRing(CONSOLE_HISTORY_LINES, CONSOLE_HISTORY_BYTES),
        pending: [],
        pendingChars: 0,
        pendingDropped: 0,
        pendingNum: undefined,
        pendingResent: false,
        consoleMark: undefined,
        timer: undefined,
        players: undefined,
        install: undefined,
        sinks: new Set(),
      };
      this.#servers.set(serverId, e);
    }
    return e;
  }

  status(serverId: string): ServerStatus | undefined {
    return this.#servers.get(serverId)?.status;
  }
  stats(serverId: string): ResourceSnapshot | null {
    return this.#servers.get(serverId)?.stats ?? null;
  }
  history(serverId: string): string[] {
    return this.#servers.get(serverId)?.console.toArray() ?? [];
  }
  historyMark(serverId: string): { epoch: string; seq: number } | undefined {
    return this.#servers.get(serverId)?.consoleMark;
  }
  players(serverId: string): Players | undefined {
    return this.#servers.get(serverId)?.players;
  }

  setStatus(serverId: string, status: ServerStatus): ServerStatus | undefined {
    const e = this.#entry(serverId);
    const prev = e.status;
    e.status = status;
    if (status !== 'running' && status !== 'starting' && e.stats) e.stats = { ...e.stats, uptime: 0 };
    return prev;
  }
  setStats(serverId: string, stats: ResourceSnapshot): void {
    this.#entry(serverId).stats = stats;
    this.publish(serverId, { type: 'stats', serverId, stats });
  }
  setPlayers(serverId: string, players: Players): void {
    this.#entry(serverId).players = players;
  }
  remoteConsole(serverId: string): RemoteConsoleStatus | undefined {
    return this.#remoteConsoles.get(serverId);
  }
  setRemoteConsole(serverId: string, status: RemoteConsoleStatus): void {
    this.#remoteConsoles.set(serverId, status);
  }

  install(serverId: string): InstallRecord | undefined {
    const rec = this.#servers.get(serverId)?.install;
    if (!rec) return undefined;
    return {
      lines: rec.ring.toArray(),
      ...(rec.success === undefined ? {} : { success: rec.success }),
      ...(rec.exitCode === undefined ? {} : { exitCode: rec.exitCode }),
    };
  }
  #installRun(e: Entry): InstallEntry {
    // output after a finished install belongs to a new run
    if (!e.install || e.install.success !== undefined)
      e.install = { ring: new LineRing(INSTALL_HISTORY_LINES, INSTALL_HISTORY_BYTES) };
    return e.install;
  }
  /** Appends install output (lines are cut to MAX_LINE_CHARS); returns the lines as kept. */
  appendInstall(serverId: string, lines: string[]): string[] {
    const capped = lines.map((l) => capLine(l));
    this.#installRun(this.#entry(serverId)).ring.push(capped);
    return capped;
  }
  completeInstall(serverId: string, success: boolean, exitCode: number | undefined): void {
    const rec = this.#installRun(this.#entry(serverId));
    rec.success = success;
    if (exitCode !== undefined) rec.exitCode = exitCode;
  }

  appendConsole(serverId: string, lines: string[], num?: ConsoleNumbering): void {
    const e = this.#entry(serverId);
    const capped = lines.map((l) => capLine(l));
    e.console.push(capped);
    const mark = num ? { epoch: num.epoch, seq: num.seq } : undefined;
    e.consoleMark = mark;
    if (e.sinks.size === 0) return;
    // one run of numbers per frame (its lines are seq - n + 1 … seq): else what is pending goes first
    const p = e.pendingNum;
    const follows = p && mark ? p.epoch === mark.epoch && p.seq === mark.seq - capped.length : p === mark;
    if (e.pending.length > 0 && !follows) this.#flush(serverId, e);
    e.pendingNum = mark;
    if (num?.resent) e.pendingResent = true;
    for (const l of capped) {
      e.pending.push(l);
      e.pendingChars += l.length;
    }
    if (e.pending.length > MAX_PENDING_LINES || e.pendingChars > MAX_PENDING_CHARS) {
      let drop = Math.max(0, e.pending.length - MAX_PENDING_LINES);
      let chars = e.pendingChars;
      for (let i = 0; i < drop; i++) chars -= (e.pending[i] as string).length;
      while (drop < e.pending.length && chars > MAX_PENDING_CHARS)
        chars -= (e.pending[drop++] as string).length;
      e.pending.splice(0, drop);
      e.pendingChars = chars;
      e.pendingDropped += drop;
      this.droppedLines += drop;
    }
    if (!e.timer) e.timer = setImmediate(() => this.#flush(serverId, e));
  }

  #flush(serverId: string, e: Entry): void {
    if (e.timer) clearImmediate(e.timer);
    e.timer = undefined;
    if (e.pendingDropped > 0) {
      const count = e.pendingDropped;
      e.pendingDropped = 0;
      this.publish(serverId, { type: 'console_dropped', serverId, count, reason: 'overloaded' });
    }
    const batch = e.pending;
    const num = e.pendingNum;
    const resent = e.pendingResent;
    e.pending = [];
    e.pendingChars = 0;
    e.pendingResent = false;
    if (batch.length)
      this.publish(serverId, {
        type: 'console',
        serverId,
        lines: batch,
        ...(num ? { epoch: num.epoch, seq: num.seq } : {}),
        ...(resent ? { resent: true } : {}),
      });
  }

  /** Lines lost before they reached the Panel: sent after the lines already pending, in order. */
  consoleDropped(serverId: string, count: number, reason: string): void {
    const e = this.#servers.get(serverId);
    if (!e) return;
    this.#flush(serverId, e);
    this.publish(serverId, { type: 'console_dropped', serverId, count, reason });
  }

  setSecrets(serverId: string, secrets: readonly string[]): void {
    if (secrets.length) this.#secrets.set(serverId, secrets);
    else this.#secrets.delete(serverId);
    this.#merge(serverId);
  }
  secrets(serverId: string): readonly string[] {
    return this.#merged.get(serverId) ?? this.#secrets.get(serverId) ?? [];
  }
  holdSecrets(serverId: string, key: string, values: readonly string[]): void {
    let held = this.#held.get(serverId);
    if (!held) {
      held = new Map();
      this.#held.set(serverId, held);
    }
    held.delete(key);
    held.set(key, [...values]);
    while (held.size > MAX_HELD_SECRETS) held.delete(held.keys().next().value as string);
    this.#merge(serverId);
  }
  releaseSecrets(serverId: string, key: string): void {
    const held = this.#held.get(serverId);
    if (!held?.delete(key)) return;
    if (held.size === 0) this.#held.delete(serverId);
    this.#merge(serverId);
  }
  #merge(serverId: string): void {
    const held = this.#held.get(serverId);
    if (!held) {
      this.#merged.delete(serverId);
      return;
    }
    const all = [...(this.#secrets.get(serverId) ?? [])];
    for (const values of held.values()) all.push(...values);
    this.#merged.set(serverId, secretValues(all));
  }

  publish(serverId: string, msg: ClientMessage): void {
    const e = this.#servers.get(serverId);
    if (!e) return;
    for (const sink of e.sinks) sink(msg);
  }
  publishAll(msg: ClientMessage): void {
    for (const sink of this.#global) sink(msg);
  }

  subscribe(serverId: string, sink: Sink): void {
    this.#entry(serverId).sinks.add(sink);
  }
  unsubscribe(serverId: string, sink: Sink): void {
    this.#servers.get(serverId)?.sinks.delete(sink);
  }
  subscriberCount(serverId: string): number {
    return this.#servers.get(serverId)?.sinks.size ?? 0;
  }
  addGlobal(sink: Sink): void {
    this.#global.add(sink);
  }
  removeGlobal(sink: Sink): void {
    this.#global.delete(sink);
  }

  snapshot(serverId: string): LiveSnapshot {
    const e = this.#servers.get(serverId);
    const install = this.install(serverId);
    const rc = this.#remoteConsoles.get(serverId);
    const held = this.#held.get(serverId);
    return {
      history: e?.console.toArray() ?? [],
      ...(held ? { held: [...held].map(([key, values]) => ({ key, values: [...values] })) } : {}),
      ...(install ? { install } : {}),
      ...(e?.stats ? { stats: e.stats } : {}),
      ...(e?.players ? { players: e.players } : {}),
      ...(rc ? { remoteConsole: rc } : {}),
    };
  }

  restore(serverId: string, snap: LiveSnapshot): void {
    const e = this.#entry(serverId);
    const ring = new LineRing(CONSOLE_HISTORY_LINES, CONSOLE_HISTORY_BYTES);
    ring.push(snap.history.map((l) => capLine(l)));
    e.console = ring;
    e.consoleMark = undefined;
    if (snap.install) {
      const run: InstallEntry = { ring: new LineRing(INSTALL_HISTORY_LINES, INSTALL_HISTORY_BYTES) };
      run.ring.push(snap.install.lines.map((l) => capLine(l)));
      if (snap.install.success !== undefined) run.success = snap.install.success;
      if (snap.install.exitCode !== undefined) run.exitCode = snap.install.exitCode;
      e.install = run;
    }
    if (snap.stats) e.stats = snap.stats;
    if (snap.players) e.players = snap.players;
    if (snap.remoteConsole) this.#remoteConsoles.set(serverId, snap.remoteConsole);
    // (added to those held here; one whose release reached this replica before the answer stays
    // held: redacting a value once too often is the safe side)
    for (const h of snap.held ?? []) this.holdSecrets(serverId, h.key, h.values);
  }

  forget(serverId: string): void {
    const e = this.#servers.get(serverId);
    if (e?.timer) clearImmediate(e.timer);
    this.#servers.delete(serverId);
    this.#secrets.delete(serverId);
    this.#held.delete(serverId);
    this.#merged.delete(serverId);
    this.#remoteConsoles.delete(serverId);
  }

  close(): void {
    for (const e of this.#servers.values()) if (e.timer) clearImmediate(e.timer);
  }
}
