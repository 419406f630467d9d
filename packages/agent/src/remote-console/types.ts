/**
 * A running server's console, whatever carries it (issue 12): the container's stdin, or a remote
 * console the Agent dials (Source RCON, Quake 3 rcon, Teeworlds econ, OpenTTD admin port).
 * `ServerManager.remoteConsole(serverId)` gives the one of a server; player tracking sends its
 * list commands (`status`, `list`, `clients`) through it and parses the response.
 */
import type { RemoteConsoleState, RemoteConsoleTransport } from '@cap/protocol';

export type { RemoteConsoleState, RemoteConsoleTransport } from '@cap/protocol';

export interface RemoteConsoleReply {
  /** the game's answer, when the transport gives one (never for stdin); capped in size */
  response?: string;
}

export interface RemoteConsole {
  readonly serverId: string;
  readonly transport: RemoteConsoleTransport;
  /** `idle` while the server does not run; `authenticated` when commands are taken */
  readonly state: RemoteConsoleState;
  /**
   * One command (one line). Waits up to `timeoutMs` (default 5 s) for a connection still being
   * made. Fails with a CodedError: NOT_RUNNING, REMOTE_CONSOLE_AUTH_FAILED,
   * REMOTE_CONSOLE_UNAVAILABLE, TIMEOUT (no answer), CONFIG_INVALID (not one line).
   */
  send(command: string, opts?: { timeoutMs?: number }): Promise<RemoteConsoleReply>;
  /** Called on every state change; returns the unsubscribe. */
  onState(listener: (state: RemoteConsoleState, message?: string) => void): () => void;
}
