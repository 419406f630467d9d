/**
 * SFTP logins on the Agents (issue 10 item 3): an Agent asks whether `<username>.<server id>`
 * may open that server with this password or key; the Panel checks the credential (rate-limited
 * per user and per address, as the web login), that the server is on the asking node, and that
 * the user holds `file.sftp` there (requireAccess), and answers the user's permissions on it.
 * When access shrinks or ends the Panel tells the Agents (`sftp_revoke`) to close the sessions.
 */
import { CodedError, type SftpAuthRequest, type SftpAuthResponse } from '@cap/protocol';
import type { Logger } from 'pino';
import type { Db } from '../../db/index.ts';
import { DUMMY_PASSWORD_HASH, verifyPassword } from '../../lib/crypto.ts';
import type { AgentGateway } from '../../relay/agent-gateway.ts';
import type { AccessService } from '../access/service.ts';
import { type Limiter, LOGIN_EMAILS_PER_IP, type Principal, WindowLimiter } from '../auth/service.ts';
import type { UsersRepo } from '../users/repo.ts';
import { Role } from '../users/service.ts';
import { parsePublicKey, type SshKeysService } from './ssh-keys.ts';

export class SftpService {
  readonly #db: Db;
  readonly #users: UsersRepo;
  readonly #keys: SshKeysService;
  readonly #access: AccessService;
  readonly #gateway: () => AgentGateway;
  readonly #log: Logger;
  readonly #perUser: Limiter;
  readonly #perIp: Limiter;

  constructor(deps: {
    db: Db;
    users: UsersRepo;
    keys: SshKeysService;
    access: AccessService;
    gateway: () => AgentGateway;
    log: Logger;
    loginRatePerMin: number;
    /** the counters (default: in this process; with replicas: the shared database's) */
    limiter?: (limit: number, windowMs: number) => Limiter;
  }) {
    this.#db = deps.db;
    this.#users = deps.users;
    this.#keys = deps.keys;
    this.#access = deps.access;
    this.#gateway = deps.gateway;
    this.#log = deps.log;
    const limiter = deps.limiter ?? ((limit, windowMs) => new WindowLimiter(limit, windowMs));
    this.#perUser = limiter(deps.loginRatePerMin, 60_000);
    this.#perIp = limiter(deps.loginRatePerMin * LOGIN_EMAILS_PER_IP, 60_000);
  }

  /** One SFTP login asked by node `nodeId`'s Agent; AUTH_FAILED (one message for every reason) else. */
  async authenticate(nodeId: string, body: SftpAuthRequest, agentIp: string): Promise<SftpAuthResponse> {
    const dot = body.username.lastIndexOf('.');
    const name = dot > 0 ? body.username.slice(0, dot) : '';
    const serverId = dot > 0 ? body.username.slice(dot + 1) : '';
    // both the client's address (as the Agent saw it) and the asking Agent's count
    const perIp = await this.#perIp.hit(`sftp|${agentIp}|${body.ip}`);
    const perUser = await this.#perUser.hit(`sftp|${name}`);
    if (!perIp || !perUser)
      throw new CodedError('RATE_LIMITED', 'too many SFTP login attempts; wait a minute');
    const denied = new CodedError('AUTH_FAILED', 'wrong username, password or key');
    const u = name ? await this.#users.findByUsername(name) : undefined;
    let ok = false;
    if (body.password !== undefined) {
      // a missing user costs the same hash as a wrong password
      ok = await verifyPassword(body.password, u?.password_hash ?? DUMMY_PASSWORD_HASH);
    } else if (body.publicKey !== undefined && u) {
      let fp: string | undefined;
      try {
        fp = parsePublicKey(body.publicKey).fingerprint;
      } catch {
        fp = undefined;
      }
      ok = fp !== undefined && (await this.#keys.holds(u.id, fp));
    }
    if (!u || !ok) throw denied;
    const server = await this.#db
      .selectFrom('servers')
      .select(['id', 'node_id'])
      .where('id', '=', serverId)
      .executeTakeFirst();
    if (!server || server.node_id !== nodeId) throw denied;
    const principal: Principal = {
      user: { id: u.id, email: u.email, role: Role.parse(u.role) },
      via: 'session',
      twoFactor: false,
      scope: 'full',
    };
    const access = await this.#access.accessOf(principal, serverId);
    if (!access) throw new CodedError('PERMISSION_DENIED', 'no SFTP access to this server');
    if (!access.permissions.has('file.sftp'))
      throw new CodedError('PERMISSION_DENIED', 'no SFTP access to this server');
    return { userId: u.id, serverId, permissions: [...access.permissions].sort() };
  }

  /**
   * Closes the user's SFTP sessions: on one server (its node is told), or on every node when
   * no server is named (the user was deleted, their password or role changed). Never throws.
   */
  async revoke(userId: string, serverId?: string): Promise<void> {
    try {
      let nodes: string[];
      if (serverId) {
        const row = await this.#db
          .selectFrom('servers')
          .select(['node_id'])
          .where('id', '=', serverId)
          .executeTakeFirst();
        nodes = row ? [row.node_id] : [];
      } else {
        nodes = (await this.#db.selectFrom('nodes').select(['id']).execute()).map((n) => n.id);
      }
      const gateway = this.#gateway();
      await Promise.all(
        nodes
          .filter((n) => gateway.isOnline(n))
          .map((n) =>
            gateway
              .request(n, 'sftp_revoke', serverId ? { userId, serverId } : { userId })
              .catch((err: Error) =>
                this.#log.warn({ nodeId: n, userId, err: err.message }, 'sftp_revoke failed'),
              ),
          ),
      );
    } catch (err) {
      this.#log.warn({ userId, err: (err as Error).message }, 'sftp revoke failed');
    }
  }
}
