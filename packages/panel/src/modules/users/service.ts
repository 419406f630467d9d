/** Users and the rules about who may manage whom (admins never manage owners). */
import { CodedError } from '@cap/protocol';
import { z } from 'zod';
import { nowIso } from '../../db/index.ts';
import { usernameFromEmail } from '../../db/migrations.ts';
import { hashPassword, shortId } from '../../lib/crypto.ts';
import type { UsersRepo } from './repo.ts';

/**
 * Panel roles, lowest first. `user` sees only the servers it owns or is a subuser of (with the
 * permissions held there); `spectator` is a global read-only role (every server, read-only
 * permissions, never hidden values); `admin` manages everything but owners; `owner` everything.
 */
export const Role = z.enum(['owner', 'admin', 'spectator', 'user']);
export type Role = z.infer<typeof Role>;
export const roleRank: Record<Role, number> = { user: 0, spectator: 1, admin: 2, owner: 3 };
/** The role is at least `min`. */
export function hasRank(role: Role, min: Role): boolean {
  return roleRank[role] >= roleRank[min];
}

/** The SFTP login's first part (`<username>.<server id>`): 1–32 of [a-z0-9_.-], not starting with . _ - */
export const Username = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_.-]{0,31}$/, 'must be 1–32 of [a-z0-9_.-], starting with a letter or digit');
export const PublicUser = z.object({
  id: z.string(),
  email: z.string(),
  username: z.string(),
  role: Role,
  createdAt: z.string(),
});
export type PublicUser = z.infer<typeof PublicUser>;

export interface Actor {
  id: string;
  role: Role;
}

function validUsername(s: string): string {
  const r = Username.safeParse(s);
  if (!r.success)
    throw new CodedError('VALIDATION_FAILED', `username ${r.error.issues[0]?.message ?? 'invalid'}`);
  return r.data;
}

function toPublic(u: {
  id: string;
  email: string;
  username: string;
  role: string;
  created_at: string;
}): PublicUser {
  return {
    id: u.id,
    email: u.email,
    username: u.username,
    role: Role.parse(u.role),
    createdAt: u.created_at,
  };
}

export class UsersService {
  readonly #repo: UsersRepo;
  /**
   * Role changes and deletes run one at a time: "is this the last owner?" then the write must not
   * interleave with another, or two owners removing each other at once leave none.
   */
  #serial: Promise<unknown> = Promise.resolve();
  constructor(repo: UsersRepo) {
    this.#repo = repo;
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#serial.then(fn, fn);
    this.#serial = run.catch(() => undefined);
    return run;
  }

  async list(): Promise<PublicUser[]> {
    return (await this.#repo.list()).map(toPublic);
  }

  async get(id: string): Promise<PublicUser | undefined> {
    const u = await this.#repo.findById(id);
    return u ? toPublic(u) : undefined;
  }

  async create(
    actor: Actor | null,
    input: { email: string; password: string; role: Role; username?: string },
  ): Promise<PublicUser> {
    if (actor && input.role === 'owner' && actor.role !== 'owner') {
      throw new CodedError('FORBIDDEN', 'only an owner may create owners');
    }
    const email = input.email.toLowerCase();
    if (await this.#repo.findByEmail(email))
      throw new CodedError('CONFLICT', 'a user with that email exists');
    let username: string;
    if (input.username !== undefined) {
      username = validUsername(input.username);
      if (await this.#repo.findByUsername(username))
        throw new CodedError('CONFLICT', 'a user with that username exists');
    } else {
      const base = usernameFromEmail(email);
      username = base;
      for (let i = 2; await this.#repo.findByUsername(username); i++) username = `${base.slice(0, 28)}${i}`;
    }
    const now = nowIso();
    const row = {
      id: shortId('u'),
      email,
      username,
      password_hash: await hashPassword(input.password),
      role: input.role,
      created_at: now,
      updated_at: now,
    };
    await this.#repo.insert(row);
    return toPublic(row);
  }

  update(
    actor: Actor,
    id: string,
    patch: { role?: Role; password?: string; username?: string },
  ): Promise<PublicUser> {
    return this.#exclusive(() => this.#update(actor, id, patch));
  }

  /** A user changes their own username (the account page). */
  setUsername(id: string, username: string): Promise<PublicUser> {
    return this.#exclusive(async () => {
      const u = await this.#repo.findById(id);
      if (!u) throw new CodedError('NOT_FOUND', 'no such user');
      const name = await this.#freeUsername(username, id);
      await this.#repo.update(id, { username: name, updated_at: nowIso() });
      return toPublic({ ...u, username: name });
    });
  }

  async #freeUsername(username: string, self: string): Promise<string> {
    const name = validUsername(username);
    const other = await this.#repo.findByUsername(name);
    if (other && other.id !== self) throw new CodedError('CONFLICT', 'a user with that username exists');
    return name;
  }

  async #update(
    actor: Actor,
    id: string,
    patch: { role?: Role; password?: string; username?: string },
  ): Promise<PublicUser> {
    const u = await this.#repo.findById(id);
    if (!u) throw new CodedError('NOT_FOUND', 'no such user');
    if (actor.role !== 'owner' && (u.role === 'owner' || patch.role === 'owner')) {
      throw new CodedError('FORBIDDEN', 'only an owner may manage owners');
    }
    if (
      u.role === 'owner' &&
      patch.role &&
      patch.role !== 'owner' &&
      (await this.#repo.count('owner')) <= 1
    ) {
      throw new CodedError('INVALID_STATE', 'the last owner cannot be demoted');
    }
    const set: { role?: string; password_hash?: string; username?: string; updated_at: string } = {
      updated_at: nowIso(),
    };
    if (patch.role) set.role = patch.role;
    if (patch.username !== undefined) set.username = await this.#freeUsername(patch.username, id);
    if (patch.password) set.password_hash = await hashPassword(patch.password);
    await this.#repo.update(id, set);
    return toPublic({
      ...u,
      ...(patch.role ? { role: patch.role } : {}),
      ...(set.username ? { username: set.username } : {}),
    });
  }

  delete(actor: Actor, id: string): Promise<void> {
    return this.#exclusive(() => this.#delete(actor, id));
  }

  async #delete(actor: Actor, id: string): Promise<void> {
    const u = await this.#repo.findById(id);
    if (!u) throw new CodedError('NOT_FOUND', 'no such user');
    if (actor.role !== 'owner' && u.role === 'owner') {
      throw new CodedError('FORBIDDEN', 'only an owner may manage owners');
    }
    if (u.role === 'owner' && (await this.#repo.count('owner')) <= 1) {
      throw new CodedError('INVALID_STATE', 'the last owner cannot be deleted');
    }
    await this.#repo.delete(id);
  }
}
