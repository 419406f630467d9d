/** Users' SSH public keys (user_ssh_keys): the SFTP login by key (issue 10 item 3). */
import { createHash } from 'node:crypto';
import { CodedError } from '@cap/protocol';
import { z } from 'zod';
import { type Db, nowIso } from '../../db/index.ts';
import type { UserSshKeysTable } from '../../db/schema.ts';
import { shortId } from '../../lib/crypto.ts';

/** The key types the Agent's SSH server verifies (ssh2). */
const KEY_TYPES = new Set([
  'ssh-ed25519',
  'ssh-rsa',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
]);
export const MAX_SSH_KEYS_PER_USER = 50;

export const SshKey = z
  .object({
    id: z.string(),
    name: z.string(),
    fingerprint: z.string(),
    publicKey: z.string(),
    createdAt: z.string(),
  })
  .meta({ id: 'SshKey' });
export type SshKey = z.infer<typeof SshKey>;

/**
 * An OpenSSH one-line public key (`ssh-ed25519 AAAA… comment`) checked and normalised to
 * `type base64` with its SHA256 fingerprint (as `ssh-keygen -lf` prints it); a coded error else.
 */
export function parsePublicKey(line: string): { publicKey: string; fingerprint: string } {
  const parts = line.trim().split(/\s+/);
  const [type, b64] = parts;
  if (!type || !b64 || !KEY_TYPES.has(type) || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64))
    throw new CodedError(
      'VALIDATION_FAILED',
      `not an OpenSSH public key (one of ${[...KEY_TYPES].join(', ')})`,
    );
  const blob = Buffer.from(b64, 'base64');
  // the blob starts with its own type as an SSH string: a key pasted under another type is refused
  const n = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  if (n !== type.length || blob.subarray(4, 4 + n).toString('latin1') !== type)
    throw new CodedError('VALIDATION_FAILED', 'the key data does not match its type');
  return { publicKey: `${type} ${blob.toString('base64')}`, fingerprint: fingerprintOf(blob) };
}

export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

function toPublic(r: UserSshKeysTable): SshKey {
  return {
    id: r.id,
    name: r.name,
    fingerprint: r.fingerprint,
    publicKey: r.public_key,
    createdAt: r.created_at,
  };
}

export class SshKeysService {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async list(userId: string): Promise<SshKey[]> {
    const rows = await this.#db
      .selectFrom('user_ssh_keys')
      .selectAll()
      .where('user_id', '=', userId)
      .orderBy('created_at')
      .execute();
    return rows.map(toPublic);
  }
  async add(userId: string, name: string, line: string): Promise<SshKey> {
    const { publicKey, fingerprint } = parsePublicKey(line);
    const existing = await this.list(userId);
    if (existing.some((k) => k.fingerprint === fingerprint))
      throw new CodedError('CONFLICT', 'that key is already on your account');
    if (existing.length >= MAX_SSH_KEYS_PER_USER)
      throw new CodedError('VALIDATION_FAILED', `at most ${MAX_SSH_KEYS_PER_USER} SSH keys per user`);
    const row: UserSshKeysTable = {
      id: shortId('k'),
      user_id: userId,
      name,
      fingerprint,
      public_key: publicKey,
      created_at: nowIso(),
    };
    await this.#db.insertInto('user_ssh_keys').values(row).execute();
    return toPublic(row);
  }
  async remove(userId: string, id: string): Promise<boolean> {
    const r = await this.#db
      .deleteFrom('user_ssh_keys')
      .where('user_id', '=', userId)
      .where('id', '=', id)
      .executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }
  /** Whether the user holds a key with this fingerprint. */
  async holds(userId: string, fingerprint: string): Promise<boolean> {
    const row = await this.#db
      .selectFrom('user_ssh_keys')
      .select(['id'])
      .where('user_id', '=', userId)
      .where('fingerprint', '=', fingerprint)
      .executeTakeFirst();
    return row !== undefined;
  }
}
