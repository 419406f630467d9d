/**
 * Registry credentials (issue 11 item 3): one row per registry host (migration 019_registries),
 * the password or token sealed with AES-256-GCM (lib/crypto `seal`) under
 * DATA_DIR/keys/registries.key. The password is write-only: answers carry `hasPassword` only,
 * and nothing here logs it. No key rotation: a lost or replaced key file makes the stored
 * passwords unreadable (they must be entered again).
 *
 * Hosts are normalised so that what an image reference names and what an admin typed compare
 * exactly: lowercased, no scheme or path, and Docker Hub's aliases (`index.docker.io`,
 * `registry-1.docker.io`, `registry.hub.docker.com`, no host at all) are `docker.io`.
 */
import { CodedError, DOCKER_HUB, normaliseRegistryHost, registryHostOf } from '@cap/protocol';
import type { Db } from '../../db/index.ts';
import { nowIso } from '../../db/index.ts';
import type { RegistriesTable } from '../../db/schema.ts';
import { seal, shortId, unseal } from '../../lib/crypto.ts';
import { isUniqueViolation } from '../../lib/db-errors.ts';
import { loadOrCreateKey } from '../../lib/private-files.ts';

/** What Docker itself sends as Docker Hub's `serveraddress`. */
const HUB_SERVER_ADDRESS = 'https://index.docker.io/v1/';

export const normaliseHost = normaliseRegistryHost;
export const hostOfImage = registryHostOf;

/** Docker's AuthConfig, as X-Registry-Auth and the Engine's `POST /auth` take it. */
export interface RegistryAuth {
  username: string;
  password: string;
  serveraddress: string;
}

/** X-Registry-Auth: base64url (with padding, as Go's URLEncoding decodes) of the AuthConfig JSON. */
export function registryAuthHeader(auth: RegistryAuth): string {
  return Buffer.from(JSON.stringify(auth)).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}

/**
 * X-Registry-Config (a build's base-image pulls): the same encoding of a map from each registry's
 * server address to its AuthConfig.
 */
export function registryConfigHeader(auths: readonly RegistryAuth[]): string {
  const map = Object.fromEntries(auths.map((a) => [a.serveraddress, a]));
  return Buffer.from(JSON.stringify(map)).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}

export interface Registry {
  id: string;
  name: string;
  host: string;
  username: string;
  hasPassword: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface RegistryInput {
  name: string;
  host: string;
  username: string;
  password?: string | undefined;
}

const view = (r: RegistriesTable): Registry => ({
  id: r.id,
  name: r.name,
  host: r.host,
  username: r.username,
  hasPassword: r.password_sealed !== null,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

function hostOrThrow(input: string): string {
  const h = normaliseHost(input);
  if (h === null)
    throw new CodedError(
      'VALIDATION_FAILED',
      'host must be a registry host[:port] (e.g. ghcr.io, 127.0.0.1:5000)',
      {
        location: 'host',
      },
    );
  return h;
}

export class RegistriesService {
  readonly #db: Db;
  readonly #dataDir: string;
  #key: Uint8Array | undefined;

  constructor(db: Db, dataDir: string) {
    this.#db = db;
    this.#dataDir = dataDir;
  }

  #k(): Uint8Array {
    this.#key ??= loadOrCreateKey(this.#dataDir, 'registries').key;
    return this.#key;
  }

  async list(): Promise<Registry[]> {
    const rows = await this.#db.selectFrom('registries').selectAll().orderBy('host').execute();
    return rows.map(view);
  }

  async #row(id: string): Promise<RegistriesTable> {
    const row = await this.#db.selectFrom('registries').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new CodedError('REGISTRY_NOT_FOUND', 'no such registry');
    return row;
  }

  async get(id: string): Promise<Registry> {
    return view(await this.#row(id));
  }

  async create(input: RegistryInput): Promise<Registry> {
    const at = nowIso();
    const row: RegistriesTable = {
      id: shortId('reg_'),
      name: input.name,
      host: hostOrThrow(input.host),
      username: input.username,
      password_sealed: input.password ? seal(this.#k(), input.password) : null,
      created_at: at,
      updated_at: at,
    };
    try {
      await this.#db.insertInto('registries').values(row).execute();
    } catch (e) {
      if (isUniqueViolation(e))
        throw new CodedError('CONFLICT', `a registry for ${row.host} exists`, { location: 'host' });
      throw e;
    }
    return view(row);
  }

  /** `password`: a string sets it, null removes it, absent keeps it. */
  async patch(
    id: string,
    p: {
      name?: string | undefined;
      host?: string | undefined;
      username?: string | undefined;
      password?: string | null | undefined;
    },
  ): Promise<Registry> {
    await this.#row(id);
    const set: Partial<RegistriesTable> = { updated_at: nowIso() };
    if (p.name !== undefined) set.name = p.name;
    if (p.host !== undefined) set.host = hostOrThrow(p.host);
    if (p.username !== undefined) set.username = p.username;
    if (p.password !== undefined) set.password_sealed = p.password ? seal(this.#k(), p.password) : null;
    try {
      await this.#db.updateTable('registries').set(set).where('id', '=', id).execute();
    } catch (e) {
      if (isUniqueViolation(e))
        throw new CodedError('CONFLICT', `a registry for ${set.host} exists`, { location: 'host' });
      throw e;
    }
    return this.get(id);
  }

  async delete(id: string): Promise<Registry> {
    const row = await this.#row(id);
    await this.#db.deleteFrom('registries').where('id', '=', id).execute();
    return view(row);
  }

  #auth(row: RegistriesTable): RegistryAuth {
    return {
      username: row.username,
      password: row.password_sealed === null ? '' : unseal(this.#k(), row.password_sealed),
      serveraddress: row.host === DOCKER_HUB ? HUB_SERVER_ADDRESS : row.host,
    };
  }

  /** The stored credentials of one registry (the test login). */
  async authOf(id: string): Promise<RegistryAuth> {
    return this.#auth(await this.#row(id));
  }

  /** Every registry's stored credentials (a build's FROM may name any of them). */
  async allAuths(): Promise<RegistryAuth[]> {
    const rows = await this.#db.selectFrom('registries').selectAll().orderBy('host').execute();
    return rows.map((r) => this.#auth(r));
  }

  /** The stored credentials for the registry an image reference names, exact host match. */
  async authForImage(ref: string): Promise<RegistryAuth | undefined> {
    const host = hostOfImage(ref);
    const row = await this.#db
      .selectFrom('registries')
      .selectAll()
      .where('host', '=', host)
      .executeTakeFirst();
    return row ? this.#auth(row) : undefined;
  }
}
