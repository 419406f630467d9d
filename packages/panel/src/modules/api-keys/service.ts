import { CodedError } from '@cap/protocol';
import { z } from 'zod';
import { nowIso } from '../../db/index.ts';
import { randomToken, sha256, shortId } from '../../lib/crypto.ts';
import type { ApiKeysRepo } from './repo.ts';

export const ApiKeyInfo = z.object({
  id: z.string(),
  name: z.string(),
  createdAt: z.string(),
  lastUsedAt: z.string().nullable(),
});
export type ApiKeyInfo = z.infer<typeof ApiKeyInfo>;

export class ApiKeysService {
  readonly #repo: ApiKeysRepo;
  constructor(repo: ApiKeysRepo) {
    this.#repo = repo;
  }
  async list(userId: string): Promise<ApiKeyInfo[]> {
    return (await this.#repo.listByUser(userId)).map((k) => ({
      id: k.id,
      name: k.name,
      createdAt: k.created_at,
      lastUsedAt: k.last_used_at,
    }));
  }
  /** Returns the key once; only its hash is stored. */
  async create(userId: string, name: string): Promise<{ id: string; name: string; key: string }> {
    const key = `cap_${randomToken(32)}`;
    const id = shortId('k');
    await this.#repo.insert({
      id,
      user_id: userId,
      name,
      key_hash: sha256(key),
      created_at: nowIso(),
      last_used_at: null,
    });
    return { id, name, key };
  }
  async delete(userId: string, id: string): Promise<void> {
    if (!(await this.#repo.deleteOwned(userId, id))) throw new CodedError('NOT_FOUND', 'no such API key');
  }
}
