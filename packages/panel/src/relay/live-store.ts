/**
 * What the Panel knows live (not in the database), behind one seam: each server's last status
 * and stats, its console and install rings, players, hidden values to redact, who watches it
 * (subscriber sinks and counts). Socket limits per user and server are relay/socket-limits.ts. Today's implementation is the
 * in-memory `LiveState` (relay/live-state.ts); a later one can keep the same over a shared store
 * for several Panel replicas. Frames to watchers go out through `publish` / `publishAll`.
 */
import type {
  ClientMessage,
  PlayerEntry,
  RemoteConsoleState,
  RemoteConsoleTransport,
  ResourceSnapshot,
  ServerStatus,
} from '@cap/protocol';

export type Sink = (msg: ClientMessage) => void;

/** Console lines' numbering: `seq` the last line's (LinkSeq), `resent` some were perhaps shown already. */
export interface ConsoleNumbering {
  epoch: string;
  seq: number;
  resent?: boolean;
}

export interface InstallRecord {
  lines: string[];
  /** undefined while the install runs */
  success?: boolean;
  exitCode?: number;
}

export interface Players {
  online: number;
  max: number;
  list: PlayerEntry[];
}

/** A server's console transport and its state (issue 12). */
export interface RemoteConsoleStatus {
  transport: RemoteConsoleTransport;
  state: RemoteConsoleState;
  message?: string;
}

/**
 * What one replica knows of a server that another started later lacks (issue 15): the console
 * ring, the last install's output, the last stats, players and remote console state.
 */
export interface LiveSnapshot {
  history: string[];
  install?: InstallRecord;
  stats?: ResourceSnapshot;
  players?: Players;
  remoteConsole?: RemoteConsoleStatus;
  /** the hidden values held besides the stored ones (holdSecrets), oldest first: the ring may
   * hold lines printed with them */
  held?: { key: string; values: string[] }[];
}

export interface LiveStore {
  status(serverId: string): ServerStatus | undefined;
  /** Sets the status; returns the previous one (undefined: not known yet). */
  setStatus(serverId: string, status: ServerStatus): ServerStatus | undefined;
  stats(serverId: string): ResourceSnapshot | null;
  /** Keeps the sample and sends it to the server's watchers as a `stats` frame. */
  setStats(serverId: string, stats: ResourceSnapshot): void;
  players(serverId: string): Players | undefined;
  setPlayers(serverId: string, players: Players): void;
  /** The last state of the server's remote console the Agent reported (for pages opened later). */
  remoteConsole(serverId: string): RemoteConsoleStatus | undefined;
  setRemoteConsole(serverId: string, status: RemoteConsoleStatus): void;

  /** The console ring (oldest first). */
  history(serverId: string): string[];
  /** The number of the ring's last line (LinkSeq), when it has one (lines of an older Agent, a restored ring: none). */
  historyMark(serverId: string): { epoch: string; seq: number } | undefined;
  /**
   * Appends to the ring and sends the lines to watchers, batched, in order; never drops
   * unreported. `num`: the lines' numbering (the last one's, LinkSeq) and whether some are sent
   * again after a lost link (`resent`): a watcher's `console` frame carries them.
   */
  appendConsole(serverId: string, lines: string[], num?: ConsoleNumbering): void;
  /** Lines lost before they reached the Panel: reported after the lines already pending, in order. */
  consoleDropped(serverId: string, count: number, reason: string): void;

  install(serverId: string): InstallRecord | undefined;
  /** Appends install output; returns the lines as kept (cut to the line cap). */
  appendInstall(serverId: string, lines: string[]): string[];
  completeInstall(serverId: string, success: boolean, exitCode: number | undefined): void;

  /** Values of the server's hidden variables, redacted from what spectators get. */
  setSecrets(serverId: string, secrets: readonly string[]): void;
  /** The values redacted now: those set, and those held (longest first). */
  secrets(serverId: string): readonly string[];
  /**
   * Values redacted besides the set ones until released (an update's new and old values while it
   * runs: relay/secrets-sync.ts). Per server at most MAX_HELD_SECRETS holds; past it the oldest goes.
   */
  holdSecrets(serverId: string, key: string, values: readonly string[]): void;
  releaseSecrets(serverId: string, key: string): void;

  /** A frame to the server's watchers, in publish order. */
  publish(serverId: string, msg: ClientMessage): void;
  /** A frame to every open client socket. */
  publishAll(msg: ClientMessage): void;
  subscribe(serverId: string, sink: Sink): void;
  unsubscribe(serverId: string, sink: Sink): void;
  subscriberCount(serverId: string): number;
  addGlobal(sink: Sink): void;
  removeGlobal(sink: Sink): void;

  /** The server's rings and last values, as kept here (for a replica that did not see them). */
  snapshot(serverId: string): LiveSnapshot;
  /** Replaces the rings and sets the values given by the holder's `snapshot` (what it lacks stays). */
  restore(serverId: string, snap: LiveSnapshot): void;

  /** Everything about a deleted server. */
  forget(serverId: string): void;
  close(): void;
}
