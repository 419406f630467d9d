/**
 * Agent credentials: registration with the node's AGENT_SECRET (seed 003), a 24 h HS256 JWT,
 * and single-use rotating refresh tokens. A replayed refresh token revokes them all.
 */
import { CodedError, type RegisterRequest, type RegisterResponse } from '@cap/protocol';
import { jwtVerify, SignJWT } from 'jose';
import type { Logger } from 'pino';
import { nowIso } from '../../db/index.ts';
import type { SettingsRepo } from '../../db/settings-repo.ts';
import { randomToken, sha256 } from '../../lib/crypto.ts';
import { loadOrCreateKey } from '../../lib/private-files.ts';
import type { NodesRepo } from '../nodes/repo.ts';
import type { RefreshTokensRepo } from './repo.ts';

const TOKEN_TTL_S = 24 * 3600;
const REFRESH_TTL_MS = 30 * 24 * 3600 * 1000;
/** where installs from before kept the signing key, in plain text (removed at start) */
const LEGACY_KEY_SETTING = 'agent_jwt_key';
/** DATA_DIR/keys/agent-jwt.key (0600) */
const KEY_FILE = 'agent-jwt';
const ISSUER = 'ctrl-alt-play-panel';
const AUDIENCE = 'ctrl-alt-play-agent';
/** the node's token generation when the JWT was issued; a registration starts a new one */
const VERSION_CLAIM = 'tv';

export class AgentsService {
  readonly #nodes: NodesRepo;
  readonly #tokens: RefreshTokensRepo;
  readonly #settings: SettingsRepo;
  readonly #publicUrl: () => string;
  readonly #dataDir: string;
  readonly #log: Logger | undefined;
  #key: Uint8Array | undefined;
  /** nodes whose Agent runs in this process (`up`): the URL it dials instead of the public one */
  readonly #localUrls = new Map<string, string>();

  constructor(deps: {
    nodes: NodesRepo;
    tokens: RefreshTokensRepo;
    settings: SettingsRepo;
    /** read per use: with PORT=0 it is known only after listening */
    publicUrl: () => string;
    /** the key file lives in DATA_DIR/keys, with SQLite and PostgreSQL alike */
    dataDir: string;
    log?: Logger;
  }) {
    this.#dataDir = deps.dataDir;
    this.#log = deps.log;
    this.#nodes = deps.nodes;
    this.#tokens = deps.tokens;
    this.#settings = deps.settings;
    this.#publicUrl = deps.publicUrl;
  }

  /**
   * Loads (or makes) the signing key file and removes a plain-text key left in the settings table
   * by an older install. That key counts as leaked: a new one is made, so tokens signed with it
   * are refused (Agents get new ones with their refresh tokens, or register again).
   */
  async init(): Promise<void> {
    const { key, created } = loadOrCreateKey(this.#dataDir, KEY_FILE);
    this.#key = key;
    if ((await this.#settings.get(LEGACY_KEY_SETTING)) !== undefined) {
      await this.#settings.delete(LEGACY_KEY_SETTING);
      this.#log?.warn(
        { keyFile: `keys/${KEY_FILE}.key`, created },
        'removed the plain-text Agent JWT key from the settings table; Agents refresh their tokens',
      );
    }
  }

  async #signingKey(): Promise<Uint8Array> {
    if (!this.#key) await this.init();
    if (!this.#key) throw new CodedError('INTERNAL_ERROR', 'no signing key');
    return this.#key;
  }

  /**
   * The Agent of `nodeId` runs beside the Panel (`ctrl-alt-play up`) and reaches it at `url`
   * (loopback): its websocketUrl is that one, not PANEL_URL's (which it may not reach, and which
   * it refuses when it is plain http on another host).
   */
  setLocalAgentUrl(nodeId: string, url: string): void {
    this.#localUrls.set(nodeId, url.replace(/\/+$/, ''));
  }

  async #issue(nodeId: string, tokenVersion: number): Promise<RegisterResponse> {
    const exp = Math.floor(Date.now() / 1000) + TOKEN_TTL_S;
    const token = await new SignJWT({ [VERSION_CLAIM]: tokenVersion })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(nodeId)
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(exp)
      .sign(await this.#signingKey());
    const refreshToken = `car_${randomToken(32)}`;
    await this.#tokens.insert({
      id: sha256(refreshToken),
      node_id: nodeId,
      created_at: nowIso(),
      expires_at: new Date(Date.now() + REFRESH_TTL_MS).toISOString(),
      used_at: null,
    });
    return {
      success: true,
      agent: {
        id: nodeId,
        token,
        websocketUrl: `${(this.#localUrls.get(nodeId) ?? this.#publicUrl()).replace(/^http/, 'ws')}/ws/agents`,
        refreshToken,
        expiresAt: new Date(exp * 1000).toISOString(),
      },
    };
  }

  /** The node whose AGENT_SECRET the Bearer is (checked before the registration body is read). */
  async authenticateSecret(secret: string | undefined, agentIdHint?: string): Promise<string> {
    if (!secret) throw new CodedError('AUTH_FAILED', 'missing agent secret');
    const node = await this.#nodes.findBySecretHash(sha256(secret));
    if (!node || (agentIdHint && agentIdHint !== node.id)) {
      throw new CodedError('AUTH_FAILED', 'invalid agent secret');
    }
    return node.id;
  }

  /**
   * For a node whose secret was checked. Registering again revokes everything issued before: the
   * older refresh tokens are deleted and the token generation moves on, so older JWTs are refused.
   */
  async register(nodeId: string, body: RegisterRequest): Promise<RegisterResponse> {
    const node = { id: nodeId };
    await this.#tokens.revokeAll(node.id);
    const version = await this.#nodes.bumpTokenVersion(node.id);
    await this.#nodes.update(node.id, {
      hostname: body.hostname,
      capabilities: JSON.stringify({ ...body.capabilities, port: body.port, name: body.name }),
      ...(body.protocolVersion === undefined ? {} : { protocol_version: body.protocolVersion }),
    });
    return this.#issue(node.id, version);
  }

  async refresh(agentId: string | undefined, refreshToken: string): Promise<RegisterResponse> {
    const row = await this.#tokens.find(sha256(refreshToken));
    if (!row || !agentId || row.node_id !== agentId)
      throw new CodedError('AUTH_FAILED', 'invalid refresh token');
    if (row.used_at !== null || !(await this.#tokens.markUsed(row.id, nowIso()))) {
      // A replay means the token leaked: drop every refresh token of this agent.
      await this.#tokens.revokeAll(row.node_id);
      throw new CodedError('AUTH_FAILED', 'refresh token reused; all refresh tokens revoked');
    }
    if (row.expires_at <= nowIso()) throw new CodedError('AUTH_FAILED', 'refresh token expired');
    const node = await this.#nodes.findById(row.node_id);
    if (!node) throw new CodedError('AUTH_FAILED', 'invalid refresh token');
    return this.#issue(row.node_id, Number(node.token_version));
  }

  /** The node id a valid agent JWT is for: signed by us, unexpired, of the node's current generation. */
  async verify(token: string): Promise<string> {
    let sub: string;
    let version: unknown;
    try {
      const { payload } = await jwtVerify(token, await this.#signingKey(), {
        issuer: ISSUER,
        audience: AUDIENCE,
        algorithms: ['HS256'],
      });
      if (!payload.sub) throw new Error('no subject');
      sub = payload.sub;
      version = Object.hasOwn(payload, VERSION_CLAIM) ? payload[VERSION_CLAIM] : undefined;
    } catch (e) {
      throw new CodedError('AUTH_FAILED', 'invalid agent token', { cause: e });
    }
    const node = await this.#nodes.findById(sub);
    if (!node || typeof version !== 'number' || version !== Number(node.token_version))
      throw new CodedError('AUTH_FAILED', 'agent token revoked by a later registration');
    return sub;
  }
}
