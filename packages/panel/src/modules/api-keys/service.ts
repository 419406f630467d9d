import { CodedError } from '@cap/protocol';
import { z } from 'zod';
import { randomToken, sha256, shortId } from '../../lib/crypto.ts';
import type { ApiKeysRepo } from './repo.ts';

export const ApiKeyScope = z.enum(['full', 'read']);
export type ApiKeyScope = z.infer<typeof ApiKeyScope>;
/** At most this many servers per key. */
export const MAX_KEY_SERVERS = 100;
const ServerIdList = z.array(z.string().min(1).max(64)).min(1).max(MAX_KEY_SERVERS);

/** The stored JSON list, or undefined for "no limit" (a corrupt value limits to nothing). */
export function parseServerIds(raw: string | null | undefined): readonly string[] | undefined {
  if (raw === null || raw === undefined) return undefined;
  try {
    const r = ServerIdList.safeParse(JSON.parse(raw));
    return r.success ? Object.freeze([...r.data]) : [];
  } catch {
    return [];
  }
}

export const ApiKeyInfo = z.object({
  id: z.string(),
  name: z.string(),
  /** full: everything the user may do; read: GET requests and live subscriptions only */
  scope: ApiKeyScope,
  /** null: every server the user may see; else only these (others answer 404) */
  serverIds: z.array(z.string()).nullable(),
  createdAt: z.string(),
  lastUsedAt: z.string().nullable(),
  /** null: never expires */
  expiresAt: z.string().nullable(),
});
export type ApiKeyInfo = z.infer<typeof ApiKeyInfo>;

/** The longest a key may live: ten years. */
export const MAX_KEY_DAYS = 3650;

export const CreateApiKey = z
  .object({
    name: z.string().min(1).max(100),
    /** your password: a session alone (a stolen cookie) cannot mint a key */
    currentPassword: z.string().min(1).max(256),
    /** when the key stops working (ISO 8601, in the future) */
    expiresAt: z.iso.datetime({ offset: true }).optional(),
    /** or: days from now */
    expiresInDays: z.number().int().min(1).max(MAX_KEY_DAYS).optional(),
    /** default full */
    scope: ApiKeyScope.optional(),
    /** limit the key to these servers (each must exist) */
    serverIds: ServerIdList.optional(),
  })
  .refine((b) => b.expiresAt === undefined || b.expiresInDays === undefined, {
    message: 'give expiresAt or expiresInDays, not both',
    path: ['expiresAt'],
  });
export type CreateApiKey = z.infer<typeof CreateApiKey>;

export class ApiKeysService {
  readonly #repo: ApiKeysRepo;
  constructor(repo: ApiKeysRepo) {
    this.#repo = repo;
  }
  async list(userId: string): Promise<ApiKeyInfo[]> {
    return (await this.#repo.listByUser(userId)).map((k) => ({
      id: k.id,
      name: k.name,
      scope: k.scope === 'read' ? ('read' as const) : ('full' as const),
      serverIds: parseServerIds(k.server_ids)?.slice() ?? null,
      createdAt: k.created_at,
      lastUsedAt: k.last_used_at,
      expiresAt: k.expires_at,
    }));
  }
  /** Returns the key once; only its hash is stored. The caller checked the password. */
  async create(
    userId: string,
    name: string,
    expiry: { expiresAt?: string; expiresInDays?: number } = {},
    limits: { scope?: ApiKeyScope; serverIds?: readonly string[] } = {},
  ): Promise<{
    id: string;
    name: string;
    key: string;
    expiresAt: string | null;
    scope: ApiKeyScope;
    serverIds: string[] | null;
  }> {
    const now = Date.now();
    let expiresAt: string | null = null;
    if (expiry.expiresInDays !== undefined) {
      expiresAt = new Date(now + expiry.expiresInDays * 86_400_000).toISOString();
    } else if (expiry.expiresAt !== undefined) {
      const t = Date.parse(expiry.expiresAt);
      if (!Number.isFinite(t) || t <= now || t > now + MAX_KEY_DAYS * 86_400_000)
        throw new CodedError('VALIDATION_FAILED', `expiresAt must be in the next ${MAX_KEY_DAYS} days`, {
          location: 'expiresAt',
        });
      expiresAt = new Date(t).toISOString();
    }
    const key = `cap_${randomToken(32)}`;
    const id = shortId('k');
    await this.#repo.insert({
      id,
      user_id: userId,
      name,
      key_hash: sha256(key),
      created_at: new Date(now).toISOString(),
      last_used_at: null,
      expires_at: expiresAt,
      scope: limits.scope ?? 'full',
      server_ids: limits.serverIds ? JSON.stringify([...new Set(limits.serverIds)]) : null,
    });
    return {
      id,
      name,
      key,
      expiresAt,
      scope: limits.scope ?? 'full',
      serverIds: limits.serverIds ? [...new Set(limits.serverIds)] : null,
    };
  }
  async delete(userId: string, id: string): Promise<void> {
    if (!(await this.#repo.deleteOwned(userId, id))) throw new CodedError('NOT_FOUND', 'no such API key');
  }
}
