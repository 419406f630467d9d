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
import { type ApiKeyScope, parseServerIds } from '../api-keys/service.ts';
import type { UsersRepo } from '../users/repo.ts';
import { type PublicUser, Role, type UsersService } from '../users/service.ts';
import type { SessionsRepo } from './repo.ts';
import type { TwoFactorService } from './two-factor.ts';

export interface Principal {
  user: { id: string; email: string; role: Role };
  via: 'session' | 'key';
  sessionId?: string;
  /** the API key a key principal came with (its deletion closes that key's sockets) */
  apiKeyId?: string;
  csrfToken?: string;
  /** the user has TOTP 2FA on */
  twoFactor: boolean;
  /** an API key's scope: 'read' may only GET and subscribe (sessions are 'full') */
  scope: ApiKeyScope;
  /** an API key limited to these servers: others answer 404, lists show only these */
  serverIds?: readonly string[];
}

export type LoginResult =
  | { twoFactorRequired: false; user: Principal['user']; token: string; csrfToken: string }
  | { twoFactorRequired: true; ticket: string; expiresAt: string };

export interface SessionInfo {
  id: string;
  createdAt: string;
  lastSeenAt: string | null;
  ip: string | null;
  userAgent: string | null;
  expiresAt: string;
  current: boolean;
}
/** Between the password and the code: this long, this many wrong codes per ticket. */
export const LOGIN_TICKET_TTL_MS = 5 * 60_000;
export const LOGIN_TICKET_ATTEMPTS = 5;
/** last_seen_at is written at most this often per session */
const SEEN_EVERY_MS = 60_000;
/** The id shown for a session: a hash of its stored id (itself the hash of the cookie). */
export const sessionPublicId = (storedId: string): string => sha256(`session:${storedId}`).slice(0, 32);

const SETUP_KEY = 'setup_token_hash';
/** An address may try this many times the per-email budget a minute, over all emails. */
export const LOGIN_EMAILS_PER_IP = 4;

function isExpired(expiresAt: string | null): boolean {
  return expiresAt !== null && Date.parse(expiresAt) <= Date.now();
}

function principalUser(u: UsersTable): Principal['user'] {
  return { id: u.id, email: u.email, role: Role.parse(u.role) };
}

/** A fixed-window counter: `hit` counts one attempt and says whether it is within the limit. */
export interface Limiter {
  hit(key: string): boolean | Promise<boolean>;
}

/** Fixed-window counter per key (IP + email): enough to stop online guessing. */
export class WindowLimiter implements Limiter {
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
  readonly #twoFactor: TwoFactorService;
  readonly #ttlMs: number;
  readonly #limiter: Limiter;
  /** all emails from one address: password spraying across accounts is bounded too */
  readonly #ipLimiter: Limiter;

  constructor(deps: {
    users: UsersRepo;
    usersService: UsersService;
    sessions: SessionsRepo;
    keys: ApiKeysRepo;
    settings: SettingsRepo;
    twoFactor: TwoFactorService;
    sessionTtlMs: number;
    loginRatePerMin: number;
    /** counters shared by several replicas (default: in this process) */
    limiter?: (limit: number, windowMs: number) => Limiter;
  }) {
    this.#users = deps.users;
    this.#usersService = deps.usersService;
    this.#sessions = deps.sessions;
    this.#keys = deps.keys;
    this.#settings = deps.settings;
    this.#twoFactor = deps.twoFactor;
    this.#ttlMs = deps.sessionTtlMs;
    const limiter = deps.limiter ?? ((limit: number, windowMs: number) => new WindowLimiter(limit, windowMs));
    this.#limiter = limiter(deps.loginRatePerMin, 60_000);
    this.#ipLimiter = limiter(deps.loginRatePerMin * LOGIN_EMAILS_PER_IP, 60_000);
  }

  async #newSession(
    userId: string,
    from: { ip?: string; userAgent?: string } = {},
  ): Promise<{ token: string; csrfToken: string }> {
    const token = randomToken(32);
    const csrfToken = randomToken(24);
    const now = Date.now();
    await this.#sessions.insert({
      id: sha256(token),
      user_id: userId,
      csrf_token: csrfToken,
      created_at: new Date(now).toISOString(),
      expires_at: new Date(now + this.#ttlMs).toISOString(),
      last_seen_at: new Date(now).toISOString(),
      ip: from.ip ?? null,
      // a header the client picks: stored capped, shown as text
      user_agent: from.userAgent === undefined ? null : from.userAgent.slice(0, 256),
    });
    return { token, csrfToken };
  }

  /**
   * `previousToken` (the cookie the browser came with) is ended: a login always starts a fresh
   * session, so a token planted or left behind before it is never the authenticated one.
   * A user with 2FA gets a short-lived ticket instead of a session: `loginSecondFactor` takes it.
   */
  async login(
    email: string,
    password: string,
    ip: string,
    previousToken?: string,
    userAgent?: string,
  ): Promise<LoginResult> {
    const perEmail = await this.#limiter.hit(`${ip}|${email.toLowerCase()}`);
    if (!(await this.#ipLimiter.hit(ip)) || !perEmail) {
      throw new CodedError('RATE_LIMITED', 'too many login attempts; wait a minute');
    }
    const u = await this.#users.findByEmail(email);
    const ok = await verifyPassword(password, u?.password_hash ?? DUMMY_PASSWORD_HASH);
    if (!u || !ok) throw new CodedError('AUTH_FAILED', 'wrong email or password');
    if (u.totp_secret) {
      const ticket = randomToken(32);
      const now = Date.now();
      const expiresAt = new Date(now + LOGIN_TICKET_TTL_MS).toISOString();
      await this.#sessions.insertTicket({
        id: sha256(ticket),
        user_id: u.id,
        created_at: new Date(now).toISOString(),
        expires_at: expiresAt,
        attempts: 0,
      });
      return { twoFactorRequired: true, ticket, expiresAt };
    }
    if (previousToken) await this.#sessions.delete(sha256(previousToken));
    const s = await this.#newSession(u.id, { ip, ...(userAgent === undefined ? {} : { userAgent }) });
    return { twoFactorRequired: false, user: principalUser(u), ...s };
  }

  /**
   * The second login step: the ticket from `login` and a TOTP or recovery code. Wrong codes count
   * against the user's login budget (whatever ticket they come with) and the ticket's own
   * LOGIN_TICKET_ATTEMPTS; a ticket makes one session at most.
   */
  async loginSecondFactor(
    ticket: string,
    input: { code?: string; recoveryCode?: string },
    ip: string,
    previousToken?: string,
    userAgent?: string,
  ): Promise<{ user: Principal['user']; token: string; csrfToken: string; via: 'totp' | 'recovery' }> {
    const id = sha256(ticket);
    const t = await this.#sessions.findTicket(id, nowIso());
    if (!t) throw new CodedError('AUTH_FAILED', 'the login expired; enter your password again');
    const perUser = await this.#limiter.hit(`2fa|${t.user_id}`);
    if (!(await this.#ipLimiter.hit(`2fa|${ip}`)) || !perUser) {
      throw new CodedError('RATE_LIMITED', 'too many codes tried; wait a minute');
    }
    if (!(await this.#sessions.countTicketAttempt(id, LOGIN_TICKET_ATTEMPTS))) {
      await this.#sessions.deleteTicket(id);
      throw new CodedError('RATE_LIMITED', 'too many codes tried; enter your password again');
    }
    const via = await this.#twoFactor.verify(t.user_id, input);
    // one session per ticket, even for two right codes sent at once
    if (!(await this.#sessions.deleteTicket(id)))
      throw new CodedError('AUTH_FAILED', 'the login expired; enter your password again');
    const u = await this.#users.findById(t.user_id);
    if (!u) throw new CodedError('AUTH_FAILED', 'the login expired; enter your password again');
    if (previousToken) await this.#sessions.delete(sha256(previousToken));
    const s = await this.#newSession(u.id, { ip, ...(userAgent === undefined ? {} : { userAgent }) });
    return { user: principalUser(u), ...s, via };
  }

  /** Counts against the same budget as the login: a stolen session cannot guess codes fast. */
  async hitSecondFactorBudget(userId: string): Promise<void> {
    if (!(await this.#limiter.hit(`2fa|${userId}`)))
      throw new CodedError('RATE_LIMITED', 'too many codes tried; wait a minute');
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
    if (!(await this.#limiter.hit(`password|${userId}`)))
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

  async fromSessionToken(token: string, seen: { ip?: string } = {}): Promise<Principal | null> {
    const found = await this.#sessions.findValid(sha256(token), nowIso());
    if (!found) return null;
    const last = found.session.last_seen_at ? Date.parse(found.session.last_seen_at) : 0;
    if (Date.now() - last >= SEEN_EVERY_MS) {
      await this.#sessions.touch(found.session.id, nowIso(), seen.ip);
    }
    return {
      user: principalUser(found.user),
      via: 'session',
      sessionId: found.session.id,
      csrfToken: found.session.csrf_token,
      twoFactor: Boolean(found.user.totp_secret),
      scope: 'full',
    };
  }

  async fromApiKey(key: string): Promise<Principal | null> {
    if (!key.startsWith('cap_')) return null;
    const found = await this.#keys.findUserByHash(sha256(key));
    if (!found || isExpired(found.expiresAt)) return null;
    await this.#keys.touch(found.keyId, nowIso());
    const serverIds = parseServerIds(found.serverIds);
    return {
      user: principalUser(found.user),
      via: 'key',
      apiKeyId: found.keyId,
      twoFactor: Boolean(found.user.totp_secret),
      scope: found.scope === 'read' ? 'read' : 'full',
      ...(serverIds ? { serverIds } : {}),
    };
  }

  // --- one's own sessions ----------------------------------------------------------------

  async listSessions(userId: string, currentId?: string): Promise<SessionInfo[]> {
    const rows = await this.#sessions.listByUser(userId, nowIso());
    return rows.map((r) => ({
      id: sessionPublicId(r.id),
      createdAt: r.created_at,
      lastSeenAt: r.last_seen_at ?? null,
      ip: r.ip ?? null,
      userAgent: r.user_agent ?? null,
      expiresAt: r.expires_at,
      current: r.id === currentId,
    }));
  }

  /** Ends one of the user's own sessions by its public id (404 for anyone else's). */
  /** Ends one of the user's sessions by its listed id; returns the session's own id. */
  async revokeSession(userId: string, publicId: string): Promise<string> {
    const rows = await this.#sessions.listByUser(userId, nowIso());
    const row = rows.find((r) => safeEqual(sessionPublicId(r.id), publicId));
    if (!row) throw new CodedError('NOT_FOUND', 'no such session');
    await this.#sessions.delete(row.id);
    return row.id;
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
