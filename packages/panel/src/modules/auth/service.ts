/**
 * Sessions, API-key authentication, login rate limiting and the first-run setup.
 * The setup token is printed once per boot and only its hash is kept.
 */
import { CodedError } from '@cap/protocol';
import { nowIso } from '../../db/index.ts';
import type { UsersTable } from '../../db/schema.ts';
import type { SettingsRepo } from '../../db/settings-repo.ts';
import {
  DUMMY_PASSWORD_HASH,
  hashPassword,
  randomToken,
  safeEqual,
  sha256,
  verifyPassword,
} from '../../lib/crypto.ts';
import type { ApiKeysRepo } from '../api-keys/repo.ts';
import type { UsersRepo } from '../users/repo.ts';
import { type PublicUser, Role, type UsersService } from '../users/service.ts';
import type { SessionsRepo } from './repo.ts';

export interface Principal {
  user: { id: string; email: string; role: Role };
  via: 'session' | 'key';
  sessionId?: string;
  csrfToken?: string;
}

const SETUP_KEY = 'setup_token_hash';
/** An address may try this many times the per-email budget a minute, over all emails. */
export const LOGIN_EMAILS_PER_IP = 4;

function isExpired(expiresAt: string | null): boolean {
  return expiresAt !== null && Date.parse(expiresAt) <= Date.now();
}

function principalUser(u: UsersTable): Principal['user'] {
  return { id: u.id, email: u.email, role: Role.parse(u.role) };
}

/** Fixed-window counter per key (IP + email): enough to stop online guessing. */
class WindowLimiter {
  readonly #hits = new Map<string, { start: number; n: number }>();
  readonly #limit: number;
  readonly #windowMs: number;
  constructor(limit: number, windowMs: number) {
    this.#limit = limit;
    this.#windowMs = windowMs;
  }
  hit(key: string, now = Date.now()): boolean {
    const h = this.#hits.get(key);
    if (!h || now - h.start >= this.#windowMs) {
      if (this.#hits.size > 10_000) this.#prune(now);
      this.#hits.set(key, { start: now, n: 1 });
      return true;
    }
    h.n += 1;
    return h.n <= this.#limit;
  }
  #prune(now: number) {
    for (const [k, v] of this.#hits) if (now - v.start >= this.#windowMs) this.#hits.delete(k);
  }
}

export class AuthService {
  readonly #users: UsersRepo;
  readonly #usersService: UsersService;
  readonly #sessions: SessionsRepo;
  readonly #keys: ApiKeysRepo;
  readonly #settings: SettingsRepo;
  readonly #ttlMs: number;
  readonly #limiter: WindowLimiter;
  /** all emails from one address: password spraying across accounts is bounded too */
  readonly #ipLimiter: WindowLimiter;

  constructor(deps: {
    users: UsersRepo;
    usersService: UsersService;
    sessions: SessionsRepo;
    keys: ApiKeysRepo;
    settings: SettingsRepo;
    sessionTtlMs: number;
    loginRatePerMin: number;
  }) {
    this.#users = deps.users;
    this.#usersService = deps.usersService;
    this.#sessions = deps.sessions;
    this.#keys = deps.keys;
    this.#settings = deps.settings;
    this.#ttlMs = deps.sessionTtlMs;
    this.#limiter = new WindowLimiter(deps.loginRatePerMin, 60_000);
    this.#ipLimiter = new WindowLimiter(deps.loginRatePerMin * LOGIN_EMAILS_PER_IP, 60_000);
  }

  async #newSession(userId: string): Promise<{ token: string; csrfToken: string }> {
    const token = randomToken(32);
    const csrfToken = randomToken(24);
    const now = Date.now();
    await this.#sessions.insert({
      id: sha256(token),
      user_id: userId,
      csrf_token: csrfToken,
      created_at: new Date(now).toISOString(),
      expires_at: new Date(now + this.#ttlMs).toISOString(),
    });
    return { token, csrfToken };
  }

  /**
   * `previousToken` (the cookie the browser came with) is ended: a login always starts a fresh
   * session, so a token planted or left behind before it is never the authenticated one.
   */
  async login(
    email: string,
    password: string,
    ip: string,
    previousToken?: string,
  ): Promise<{ user: Principal['user']; token: string; csrfToken: string }> {
    const perEmail = this.#limiter.hit(`${ip}|${email.toLowerCase()}`);
    if (!this.#ipLimiter.hit(ip) || !perEmail) {
      throw new CodedError('RATE_LIMITED', 'too many login attempts; wait a minute');
    }
    const u = await this.#users.findByEmail(email);
    const ok = await verifyPassword(password, u?.password_hash ?? DUMMY_PASSWORD_HASH);
    if (!u || !ok) throw new CodedError('AUTH_FAILED', 'wrong email or password');
    if (previousToken) await this.#sessions.delete(sha256(previousToken));
    const s = await this.#newSession(u.id);
    return { user: principalUser(u), ...s };
  }

  /**
   * A user changes their own password: the current one is required (a stolen session alone
   * cannot lock the owner out), and every other session of the user ends.
   */
  async changeOwnPassword(
    userId: string,
    currentPassword: string,
    newPassword: string,
    keepSessionId?: string,
    opts: { keepApiKeys?: boolean } = {},
  ): Promise<void> {
    await this.verifyOwnPassword(userId, currentPassword);
    await this.#users.update(userId, {
      password_hash: await hashPassword(newPassword),
      updated_at: nowIso(),
    });
    await this.endSessionsOf(userId, keepSessionId, opts);
  }

  /**
   * The user's own password, for what a session alone must not do (mint API keys, change it).
   * Guesses count against the login budget of that user.
   */
  async verifyOwnPassword(userId: string, password: string): Promise<void> {
    if (!this.#limiter.hit(`password|${userId}`))
      throw new CodedError('RATE_LIMITED', 'too many password attempts; wait a minute');
    const u = await this.#users.findById(userId);
    if (!u || !(await verifyPassword(password, u.password_hash))) {
      throw new CodedError('AUTH_FAILED', 'the current password is wrong');
    }
  }

  /**
   * After a password change: every session of the user ends except `keepSessionId`, and their
   * API keys are revoked unless `keepApiKeys` (a key minted by a thief dies with the password).
   */
  async endSessionsOf(
    userId: string,
    keepSessionId?: string,
    opts: { keepApiKeys?: boolean } = {},
  ): Promise<void> {
    await this.#sessions.deleteByUser(userId, keepSessionId);
    if (!opts.keepApiKeys) await this.#keys.deleteByUser(userId);
  }

  async logout(sessionId: string): Promise<void> {
    await this.#sessions.delete(sessionId);
  }

  async fromSessionToken(token: string): Promise<Principal | null> {
    const found = await this.#sessions.findValid(sha256(token), nowIso());
    if (!found) return null;
    return {
      user: principalUser(found.user),
      via: 'session',
      sessionId: found.session.id,
      csrfToken: found.session.csrf_token,
    };
  }

  async fromApiKey(key: string): Promise<Principal | null> {
    if (!key.startsWith('cap_')) return null;
    const found = await this.#keys.findUserByHash(sha256(key));
    if (!found || isExpired(found.expiresAt)) return null;
    await this.#keys.touch(found.keyId, nowIso());
    return { user: principalUser(found.user), via: 'key' };
  }

  /** True for a key that exists but has expired (the auth hook answers AUTH_FAILED for it). */
  async isExpiredApiKey(key: string): Promise<boolean> {
    if (!key.startsWith('cap_')) return false;
    const found = await this.#keys.findUserByHash(sha256(key));
    return found !== undefined && isExpired(found.expiresAt);
  }

  async pruneSessions(): Promise<void> {
    await this.#sessions.deleteExpired(nowIso());
  }

  // --- first run --------------------------------------------------------------------------

  async setupRequired(): Promise<boolean> {
    return (await this.#users.count()) === 0;
  }

  /**
   * On boot: create the owner from ADMIN_EMAIL/ADMIN_PASSWORD, or, with no users, mint a
   * one-time setup token (returned for printing; only its hash is stored).
   */
  async bootstrap(admin: { email?: string; password?: string }): Promise<{ setupToken?: string }> {
    if (!(await this.setupRequired())) {
      await this.#settings.delete(SETUP_KEY);
      return {};
    }
    if (admin.email && admin.password) {
      await this.#usersService.create(null, { email: admin.email, password: admin.password, role: 'owner' });
      return {};
    }
    const setupToken = randomToken(24);
    await this.#settings.set(SETUP_KEY, sha256(setupToken));
    return { setupToken };
  }

  async completeSetup(
    token: string,
    email: string,
    password: string,
  ): Promise<{ user: PublicUser; token: string; csrfToken: string }> {
    const stored = await this.#settings.get(SETUP_KEY);
    if (!(await this.setupRequired()) || !stored) {
      throw new CodedError('INVALID_STATE', 'setup is already complete');
    }
    if (!safeEqual(sha256(token), stored)) throw new CodedError('AUTH_FAILED', 'invalid setup token');
    // parallel requests with the right token: only the one that consumes it creates the owner
    if (!(await this.#settings.take(SETUP_KEY, stored)))
      throw new CodedError('INVALID_STATE', 'setup is already complete');
    const user = await this.#usersService.create(null, { email, password, role: 'owner' });
    const s = await this.#newSession(user.id);
    return { user, ...s };
  }
}
