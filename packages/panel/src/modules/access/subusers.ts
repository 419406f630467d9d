/**
 * Subusers of a server: added by email with permissions, changed, removed. Managed by Panel
 * admins/owners, the server's owner, and subusers holding `user.create/update/delete`; nobody can
 * grant a permission they do not hold themselves (Pterodactyl's rule), change their own entry,
 * or make the server's owner a subuser. Every change is in the activity log (the routes' hook).
 */
import { CodedError } from '@cap/protocol';
import { z } from 'zod';
import { nowIso } from '../../db/index.ts';
import type { UsersRepo } from '../users/repo.ts';
import { type Permission, PermissionList, parsePermissions } from './permissions.ts';
import type { AccessRepo } from './repo.ts';
import type { Access, AccessService } from './service.ts';

export const Subuser = z
  .object({
    userId: z.string(),
    email: z.string(),
    permissions: z.array(z.string()),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'Subuser' });
export type Subuser = z.infer<typeof Subuser>;

export const AddSubuser = z.object({ email: z.email().max(254), permissions: PermissionList });
export const ChangeSubuser = z.object({ permissions: PermissionList });

/** The caller: who they are and what they hold on the server. */
export interface Manager {
  userId: string;
  access: Access;
}

function checkGrant(by: Manager, permissions: readonly Permission[]): void {
  const lacking = permissions.filter((p) => !by.access.permissions.has(p));
  if (lacking.length > 0)
    throw new CodedError('FORBIDDEN', `you cannot grant permissions you do not hold: ${lacking.join(', ')}`, {
      details: { missing: lacking },
    });
}

export class SubusersService {
  readonly #repo: AccessRepo;
  readonly #users: UsersRepo;
  readonly #access: AccessService;
  constructor(deps: { repo: AccessRepo; users: UsersRepo; access: AccessService }) {
    this.#repo = deps.repo;
    this.#users = deps.users;
    this.#access = deps.access;
  }

  async list(serverId: string): Promise<Subuser[]> {
    return (await this.#repo.listSubusers(serverId)).map((r) => ({
      userId: r.user_id,
      email: r.email,
      permissions: parsePermissions(r.permissions),
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    }));
  }

  async #one(serverId: string, userId: string): Promise<Subuser> {
    const found = (await this.list(serverId)).find((x) => x.userId === userId);
    if (!found) throw new CodedError('NOT_FOUND', 'no such subuser');
    return found;
  }

  async add(by: Manager, serverId: string, input: z.infer<typeof AddSubuser>): Promise<Subuser> {
    const user = await this.#users.findByEmail(input.email);
    if (!user) throw new CodedError('NOT_FOUND', 'no user with that email', { location: 'email' });
    if (user.id === by.userId) throw new CodedError('FORBIDDEN', 'you cannot add yourself as a subuser');
    if ((await this.#repo.ownerOf(serverId)) === user.id)
      throw new CodedError('CONFLICT', "the server's owner holds every permission already", {
        location: 'email',
      });
    checkGrant(by, input.permissions);
    if (await this.#repo.subuser(serverId, user.id))
      throw new CodedError('CONFLICT', 'that user is a subuser of this server already', {
        location: 'email',
      });
    const at = nowIso();
    await this.#repo.insertSubuser({
      server_id: serverId,
      user_id: user.id,
      permissions: JSON.stringify(input.permissions),
      created_at: at,
      updated_at: at,
    });
    return this.#one(serverId, user.id);
  }

  async update(by: Manager, serverId: string, userId: string, permissions: Permission[]): Promise<Subuser> {
    if (userId === by.userId) throw new CodedError('FORBIDDEN', 'you cannot change your own permissions');
    const row = await this.#repo.subuser(serverId, userId);
    if (!row) throw new CodedError('NOT_FOUND', 'no such subuser');
    checkGrant(by, permissions);
    await this.#repo.updateSubuser(serverId, userId, JSON.stringify(permissions), nowIso());
    const before = parsePermissions(row.permissions);
    if (before.some((p) => !permissions.includes(p))) this.#access.changed(userId, serverId);
    return this.#one(serverId, userId);
  }

  async remove(by: Manager, serverId: string, userId: string): Promise<void> {
    if (userId === by.userId) throw new CodedError('FORBIDDEN', 'you cannot remove yourself');
    if (!(await this.#repo.deleteSubuser(serverId, userId)))
      throw new CodedError('NOT_FOUND', 'no such subuser');
    this.#access.changed(userId, serverId);
  }

  /** A new owner (admins only): a subuser entry of theirs goes (they hold everything now). */
  async setOwner(serverId: string, ownerId: string): Promise<void> {
    const user = await this.#users.findById(ownerId);
    if (!user) throw new CodedError('VALIDATION_FAILED', 'no such user', { location: 'ownerId' });
    const before = await this.#repo.ownerOf(serverId);
    if (before === undefined) throw new CodedError('SERVER_NOT_FOUND', 'no such server');
    if (before === ownerId) return;
    await this.#repo.setOwner(serverId, ownerId);
    await this.#repo.deleteSubuser(serverId, ownerId);
    if (before) this.#access.changed(before, serverId);
  }
}
