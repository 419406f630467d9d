/**
 * Who holds which /ws/client socket, so that a change of authority reaches open sockets at once:
 * a logout closes that session's sockets, a deleted user's and a password change's other
 * sessions' sockets close (4401), and a role change closes the user's sockets (1008) so the
 * browser reconnects with what the new role may see.
 */
import type { Role } from '../modules/users/service.ts';

export const CLOSE_UNAUTHENTICATED = 4401;
export const CLOSE_ROLE_CHANGED = 1008;

export interface ClientSocketEntry {
  userId: string;
  /** absent for API-key sockets */
  sessionId: string | undefined;
  /** the key of an API-key socket */
  apiKeyId?: string | undefined;
  role: Role;
  close(code: number, reason: string): void;
  /** the user's access to this server shrank or ended: drop its subscription at once */
  accessChanged?(serverId: string): void;
}

export class ClientSockets {
  readonly #byUser = new Map<string, Set<ClientSocketEntry>>();

  /** Registers an open socket; returns its removal. */
  add(e: ClientSocketEntry): () => void {
    let set = this.#byUser.get(e.userId);
    if (!set) {
      set = new Set();
      this.#byUser.set(e.userId, set);
    }
    set.add(e);
    return () => {
      const s = this.#byUser.get(e.userId);
      s?.delete(e);
      if (s && s.size === 0) this.#byUser.delete(e.userId);
    };
  }

  #close(userId: string, pick: (e: ClientSocketEntry) => boolean, code: number, reason: string): number {
    const set = this.#byUser.get(userId);
    if (!set) return 0;
    let n = 0;
    for (const e of [...set]) {
      if (!pick(e)) continue;
      set.delete(e);
      e.close(code, reason);
      n++;
    }
    if (set.size === 0) this.#byUser.delete(userId);
    return n;
  }

  /** A logout: the sockets opened with that session. */
  endSession(userId: string, sessionId: string): number {
    return this.#close(
      userId,
      (e) => e.sessionId === sessionId,
      CLOSE_UNAUTHENTICATED,
      'UNAUTHENTICATED: logged out',
    );
  }

  /** Sessions ended elsewhere ("log out other sessions"): every session socket but this one's; key sockets stay. */
  endOtherSessions(userId: string, keepSessionId: string | undefined): number {
    return this.#close(
      userId,
      (e) => e.sessionId !== undefined && e.sessionId !== keepSessionId,
      CLOSE_UNAUTHENTICATED,
      'UNAUTHENTICATED: session ended',
    );
  }

  /** A deleted API key: the sockets opened with it. */
  endKey(userId: string, apiKeyId: string): number {
    return this.#close(
      userId,
      (e) => e.apiKeyId === apiKeyId,
      CLOSE_UNAUTHENTICATED,
      'UNAUTHENTICATED: key deleted',
    );
  }

  /** A deleted user, or a password change (keeping the session that made it). */
  endUser(userId: string, keepSessionId?: string): number {
    return this.#close(
      userId,
      (e) => keepSessionId === undefined || e.sessionId !== keepSessionId,
      CLOSE_UNAUTHENTICATED,
      'UNAUTHENTICATED: session ended',
    );
  }

  /** A role change: sockets opened under another role are closed; a reconnect gets the new one. */
  roleChanged(userId: string, role: Role): number {
    return this.#close(userId, (e) => e.role !== role, CLOSE_ROLE_CHANGED, 'POLICY: role changed; reconnect');
  }

  /** A subuser removed or given fewer permissions, an owner replaced: their sockets drop the server. */
  accessChanged(userId: string, serverId: string): number {
    const set = this.#byUser.get(userId);
    if (!set) return 0;
    for (const e of set) e.accessChanged?.(serverId);
    return set.size;
  }

  count(userId: string): number {
    return this.#byUser.get(userId)?.size ?? 0;
  }
}
