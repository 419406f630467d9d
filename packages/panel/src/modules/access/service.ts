/**
 * Per-server access: the one `requireAccess(principal, permission, serverId)` every
 * /api/servers/:id… route (through its `config.access`, see http/auth.ts) and every /ws/client
 * message goes through.
 *
 * Who holds what on a server:
 * - Panel owners and admins: every permission on every server, hidden values included;
 * - the server's owner (any user): every permission on it, hidden values included (never the
 *   admin-only actions: build limits, image, ports, owner, deletion);
 * - a subuser: the permissions stored for them on that server;
 * - a spectator: the read-only ones (READ_ONLY_PERMISSIONS) on every server, no hidden values;
 * - anyone else (a `user` on a server that is not theirs): the server does not exist for them.
 * An API key holds what its user holds, narrowed by its own limits: a read-only key keeps only
 * the read-only permissions, a key limited to some servers sees only those.
 *
 * A server the caller may not see answers 404 SERVER_NOT_FOUND (never 403: that would tell it
 * exists); one seen without the permission answers 403 FORBIDDEN naming the missing permission.
 */
import { CodedError } from '@cap/protocol';
import { canSeeServer } from '../../http/auth.ts';
import type { Principal } from '../auth/service.ts';
import { hasRank } from '../users/service.ts';
import { PERMISSIONS, type Permission, parsePermissions, READ_ONLY_PERMISSIONS } from './permissions.ts';
import type { AccessRepo } from './repo.ts';

/** What a route or message needs: a permission (all of a list), only seeing the server, or an admin. */
export type Need = Permission | readonly Permission[] | null | 'admin';

export interface Access {
  serverId: string;
  /** a Panel admin or owner */
  admin: boolean;
  /** the server's owner */
  owner: boolean;
  /** may see the values of variables that are not user_viewable (admins and the server's owner) */
  seesHidden: boolean;
  permissions: ReadonlySet<Permission>;
}

const ALL: ReadonlySet<Permission> = new Set(PERMISSIONS);
const READ_ONLY: ReadonlySet<Permission> = new Set(READ_ONLY_PERMISSIONS);

/** The principal's permissions narrowed by its API key's scope. */
function scoped(p: Principal, perms: Iterable<Permission>): ReadonlySet<Permission> {
  const out = new Set<Permission>();
  for (const x of perms) if (p.scope !== 'read' || READ_ONLY.has(x)) out.add(x);
  return out;
}

export function isPanelAdmin(p: Principal): boolean {
  return hasRank(p.user.role, 'admin');
}

/** The permissions of a `Need` that `access` lacks (empty: it may). */
export function missing(access: Access, need: Need): string[] {
  if (need === null) return [];
  if (need === 'admin') return access.admin ? [] : ['admin'];
  const list: readonly Permission[] = typeof need === 'string' ? [need] : need;
  return list.filter((x) => !access.permissions.has(x));
}

/** 403 FORBIDDEN naming what `access` lacks of `need`; else `access`. */
export function assertHolds(access: Access, need: Need): Access {
  const lacking = missing(access, need);
  if (lacking.length > 0)
    throw new CodedError(
      'FORBIDDEN',
      lacking[0] === 'admin'
        ? 'needs the admin role'
        : `needs the ${lacking.join(', ')} permission${lacking.length > 1 ? 's' : ''} on this server`,
      { details: { missing: lacking } },
    );
  return access;
}

export class AccessService {
  readonly #repo: AccessRepo;
  readonly #changed = new Set<(userId: string, serverId: string) => void>();
  constructor(repo: AccessRepo) {
    this.#repo = repo;
  }

  /** Called when a user's access to a server shrank or ended (sockets drop their subscription). */
  onChange(fn: (userId: string, serverId: string) => void): void {
    this.#changed.add(fn);
  }
  changed(userId: string, serverId: string): void {
    for (const fn of this.#changed) fn(userId, serverId);
  }

  #of(
    p: Principal,
    serverId: string,
    ownerId: string | null,
    subuserPerms: readonly Permission[] | undefined,
  ): Access | undefined {
    if (!canSeeServer(p, serverId)) return undefined;
    const admin = isPanelAdmin(p);
    const owner = ownerId !== null && ownerId === p.user.id;
    if (admin || owner) return { serverId, admin, owner, seesHidden: true, permissions: scoped(p, ALL) };
    const perms = new Set<Permission>(subuserPerms ?? []);
    if (p.user.role === 'spectator') for (const x of READ_ONLY) perms.add(x);
    else if (subuserPerms === undefined) return undefined;
    return { serverId, admin: false, owner: false, seesHidden: false, permissions: scoped(p, perms) };
  }

  /** The caller's access to the server; undefined when it may not see it (or it does not exist). */
  async accessOf(p: Principal, serverId: string): Promise<Access | undefined> {
    const ownerId = await this.#repo.ownerOf(serverId);
    if (ownerId === undefined) return undefined;
    const sub =
      isPanelAdmin(p) || ownerId === p.user.id ? undefined : await this.#repo.subuser(serverId, p.user.id);
    return this.#of(p, serverId, ownerId, sub ? parsePermissions(sub.permissions) : undefined);
  }

  /**
   * The one check: 404 SERVER_NOT_FOUND when the caller may not see the server, 403 FORBIDDEN
   * naming what it lacks; else its access (for what the answer may show).
   */
  async requireAccess(p: Principal, need: Need, serverId: string): Promise<Access> {
    const access = await this.accessOf(p, serverId);
    if (!access) throw new CodedError('SERVER_NOT_FOUND', 'no such server');
    return assertHolds(access, need);
  }

  /** The caller's access to every server it may see (one query per kind, not per server). */
  async accessMany(p: Principal): Promise<Map<string, Access>> {
    const out = new Map<string, Access>();
    const owners = await this.#repo.owners();
    const needSubusers = !isPanelAdmin(p);
    const subs = new Map<string, Permission[]>();
    if (needSubusers)
      for (const row of await this.#repo.subuserOf(p.user.id))
        subs.set(row.server_id, parsePermissions(row.permissions));
    for (const [id, ownerId] of owners) {
      const a = this.#of(p, id, ownerId, subs.get(id));
      if (a) out.set(id, a);
    }
    return out;
  }
}
