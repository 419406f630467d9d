/**
 * What the Panel knows live about each server (status, last stats, console ring, players) and
 * who is watching it. Console lines are batched per server (~50 ms) into one `console` message.
 */
import type { ClientMessage, ResourceSnapshot, ServerStatus } from '@cap/protocol';

export const CONSOLE_HISTORY_LINES = 150;
/** the tail of the last install kept for pages opened after it (the create → detail navigation) */
export const INSTALL_HISTORY_LINES = 500;

export interface InstallRecord {
  lines: string[];
  /** undefined while the install runs */
  success?: boolean;
  exitCode?: number;
}
const BATCH_MS = 50;

export type Sink = (msg: ClientMessage) => void;

interface Entry {
  status: ServerStatus | undefined;
  stats: ResourceSnapshot | null;
  console: string[];
  pending: string[];
  timer: NodeJS.Timeout | undefined;
  players: { online: number; max: number; list: string[] } | undefined;
  install: InstallRecord | undefined;
  sinks: Set<Sink>;
}

export class LiveState {
  readonly #servers = new Map<string, Entry>();
  readonly #global = new Set<Sink>();
  readonly #batchMs: number;

  constructor(opts: { batchMs?: number } = {}) {
    this.#batchMs = opts.batchMs ?? BATCH_MS;
  }

  #entry(serverId: string): Entry {
    let e = this.#servers.get(serverId);
    if (!e) {
      e = {
        status: undefined,
        stats: null,
        console: [],
        pending: [],
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
    return [...(this.#servers.get(serverId)?.console ?? [])];
  }
  players(serverId: string) {
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
  setPlayers(serverId: string, players: { online: number; max: number; list: string[] }): void {
    this.#entry(serverId).players = players;
  }

  install(serverId: string): InstallRecord | undefined {
    const rec = this.#servers.get(serverId)?.install;
    return rec ? { ...rec, lines: [...rec.lines] } : undefined;
  }
  /** output after a finished install belongs to a new run */
  appendInstall(serverId: string, lines: string[]): void {
    const e = this.#entry(serverId);
    if (!e.install || e.install.success !== undefined) e.install = { lines: [] };
    e.install.lines.push(...lines);
    if (e.install.lines.length > INSTALL_HISTORY_LINES)
      e.install.lines.splice(0, e.install.lines.length - INSTALL_HISTORY_LINES);
  }
  completeInstall(serverId: string, success: boolean, exitCode: number | undefined): void {
    const e = this.#entry(serverId);
    if (!e.install || e.install.success !== undefined) e.install = { lines: [] };
    e.install.success = success;
    if (exitCode !== undefined) e.install.exitCode = exitCode;
  }

  appendConsole(serverId: string, lines: string[]): void {
    const e = this.#entry(serverId);
    e.console.push(...lines);
    if (e.console.length > CONSOLE_HISTORY_LINES)
      e.console.splice(0, e.console.length - CONSOLE_HISTORY_LINES);
    if (e.sinks.size === 0) return;
    e.pending.push(...lines);
    if (e.pending.length > CONSOLE_HISTORY_LINES)
      e.pending.splice(0, e.pending.length - CONSOLE_HISTORY_LINES);
    if (!e.timer) {
      e.timer = setTimeout(() => {
        e.timer = undefined;
        const batch = e.pending;
        e.pending = [];
        if (batch.length) this.publish(serverId, { type: 'console', serverId, lines: batch });
      }, this.#batchMs);
    }
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

  forget(serverId: string): void {
    const e = this.#servers.get(serverId);
    if (e?.timer) clearTimeout(e.timer);
    this.#servers.delete(serverId);
  }

  close(): void {
    for (const e of this.#servers.values()) if (e.timer) clearTimeout(e.timer);
  }
}
