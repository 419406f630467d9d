/**
 * The Panel's private files: DATA_DIR is 0700, the SQLite database and its WAL/SHM are 0600, and
 * key material lives in DATA_DIR/keys (0700) as 0600 files, never in the database. Modes are set
 * on creation and repaired at every start, so an install from before is fixed too.
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { CodedError } from '@cap/protocol';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;
const KEY_BYTES = 32;

/** chmod when the mode is not already `mode` (a file we do not own is the operator's problem). */
function ensureMode(path: string, mode: number): void {
  if ((statSync(path).mode & 0o777) !== mode) chmodSync(path, mode);
}

/** A private directory: created 0700, repaired to 0700. */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  ensureMode(dir, PRIVATE_DIR_MODE);
}

/** The SQLite file exists as 0600 before SQLite opens it (SQLite gives WAL/SHM the same mode). */
export function preparePrivateDatabase(file: string): void {
  if (!existsSync(file)) closeSync(openSync(file, 'a', PRIVATE_FILE_MODE));
  securePrivateDatabase(file);
}

/** The SQLite file and whatever WAL/SHM files are there are 0600. */
export function securePrivateDatabase(file: string): void {
  for (const f of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`]) {
    if (existsSync(f)) ensureMode(f, PRIVATE_FILE_MODE);
  }
}

/**
 * DATA_DIR/keys/<name>.key: 32 random bytes (base64url) made on first use, 0600 in a 0700
 * directory. `created` says it was made now.
 */
export function loadOrCreateKey(dataDir: string, name: string): { key: Uint8Array; created: boolean } {
  const dir = join(dataDir, 'keys');
  ensurePrivateDir(dataDir);
  ensurePrivateDir(dir);
  const file = join(dir, `${name}.key`);
  let created = false;
  try {
    const fd = openSync(file, 'wx', PRIVATE_FILE_MODE);
    try {
      writeSync(fd, `${randomBytes(KEY_BYTES).toString('base64url')}\n`);
    } finally {
      closeSync(fd);
    }
    created = true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  ensureMode(file, PRIVATE_FILE_MODE);
  const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64url');
  if (key.length < KEY_BYTES)
    throw new CodedError(
      'CONFIG_INVALID',
      `${file} does not hold a ${KEY_BYTES}-byte key; remove it to make a new one`,
    );
  return { key, created };
}
