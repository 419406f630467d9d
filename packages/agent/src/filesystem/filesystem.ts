/**
 * A server's files, confined to its own directory. Every path is resolved, then realpath'd, and
 * must stay inside the (realpath'd) root: `..` and symlinks that point out are refused. What is
 * read is then opened without following a last link and checked again by where the descriptor
 * really points, so a directory swapped for a link after the check (a TOCTOU race run by the game
 * server, which owns the tree) cannot lead a read outside.
 */
import { createHash } from 'node:crypto';
import { constants, type Dirent, type Stats } from 'node:fs';
import { type FileHandle, lchown, lstat, open, readdir, readlink, realpath } from 'node:fs/promises';
import path from 'node:path';
import { CodedError, type FileEntry, LINK_MAX_MESSAGE_BYTES, LIST_FILES_DEFAULT_LIMIT } from '@cap/protocol';

export const MAX_FILE_BYTES = 1024 * 1024;

function inside(root: string, p: string): boolean {
  return p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

/** The real path of `rel` under `root`, or a coded error. */
export async function resolveInside(root: string, rel: string): Promise<string> {
  if (rel.includes('\0')) throw new CodedError('PATH_OUTSIDE_ROOT', 'path contains a NUL byte');
  const realRoot = await realpath(root).catch((e) => {
    throw new CodedError('SERVER_NOT_FOUND', 'server directory missing', { cause: e });
  });
  const target = path.resolve(realRoot, `./${rel.replace(/^\/+/, '')}`);
  if (!inside(realRoot, target))
    throw new CodedError('PATH_OUTSIDE_ROOT', 'path is outside the server directory');
  let real: string;
  try {
    real = await realpath(target);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new CodedError('FILE_NOT_FOUND', 'no such file or directory', { cause: e });
    }
    if (code === 'ENAMETOOLONG') throw new CodedError('CONFIG_INVALID', 'path too long', { cause: e });
    throw new CodedError('INTERNAL_ERROR', 'cannot resolve path', { cause: e });
  }
  if (!inside(realRoot, real))
    throw new CodedError('PATH_OUTSIDE_ROOT', 'path leads outside the server directory');
  return real;
}

/** Opens a resolved path and proves the descriptor is inside the root (see the header). */
export async function openInside(root: string, real: string, flags: number): Promise<FileHandle> {
  const realRoot = await realpath(root);
  let fh: FileHandle;
  try {
    fh = await open(real, flags | constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new CodedError('PATH_OUTSIDE_ROOT', 'path is a symbolic link', { cause: e });
    if (code === 'ENOENT') throw new CodedError('FILE_NOT_FOUND', 'no such file or directory', { cause: e });
    if (code === 'ENOTDIR') throw new CodedError('CONFIG_INVALID', 'not a directory', { cause: e });
    throw new CodedError('INTERNAL_ERROR', 'cannot open path', { cause: e });
  }
  const where = await readlink(`/proc/self/fd/${fh.fd}`).catch(() => null);
  if (where === null || !inside(realRoot, where)) {
    await fh.close();
    throw new CodedError('PATH_OUTSIDE_ROOT', 'path leads outside the server directory');
  }
  return fh;
}

function display(root: string, real: string): string {
  const r = path.relative(root, real);
  return `/${r.split(path.sep).join('/')}`.replace(/\/$/, '') || '/';
}

/** Directories first, then by name (UTF-16 code units, as `Array.prototype.sort`). */
function byDirThenName(a: Dirent, b: Dirent): number {
  const da = a.isDirectory() ? 0 : 1;
  const db = b.isDirectory() ? 0 : 1;
  if (da !== db) return da - db;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Directories first still, each kind in reverse name order. */
function reverseWithinKind(all: Dirent[]): Dirent[] {
  const dirs = all.filter((d) => d.isDirectory()).reverse();
  const rest = all.filter((d) => !d.isDirectory()).reverse();
  return [...dirs, ...rest];
}

/**
 * Sorted listings of the last few directories paged through, keyed by the directory's identity
 * and change times: adding, removing or renaming an entry changes the directory's mtime, so a
 * cached listing is never stale, and paging through 70k names reads and sorts them once.
 */
const LISTING_CACHE_ENTRIES = 4;
const LISTING_CACHE_MS = 30_000;
const listings = new Map<string, { at: number; names: Dirent[] }>();

async function sortedNames(dir: FileHandle, fdPath: string): Promise<Dirent[]> {
  const st = await dir.stat({ bigint: true });
  const key = `${st.dev}:${st.ino}:${st.mtimeNs}:${st.ctimeNs}`;
  const now = Date.now();
  for (const [k, v] of listings) if (now - v.at > LISTING_CACHE_MS) listings.delete(k);
  const hit = listings.get(key);
  if (hit) return hit.names;
  const names = (await readdir(fdPath, { withFileTypes: true })).sort(byDirThenName);
  // not kept when the directory changed during the read, or changed so recently that another
  // change within the same clock tick (inode times are coarse) could leave the times as they are
  const after = await dir.stat({ bigint: true });
  const settled =
    Number(after.mtimeNs / 1_000_000n) < now - 1000 && Number(after.ctimeNs / 1_000_000n) < now - 1000;
  if (settled && after.mtimeNs === st.mtimeNs && after.ctimeNs === st.ctimeNs) {
    if (listings.size >= LISTING_CACHE_ENTRIES) listings.delete(listings.keys().next().value as string);
    listings.set(key, { at: now, names });
  }
  return names;
}

export interface ListPage {
  path: string;
  entries: FileEntry[];
  total: number;
  offset: number;
  limit: number;
}

/**
 * One page of a directory, sorted directories first and then by name, with the directory's
 * total. Only names and types are read for the whole directory (no stat per entry); only the
 * page's entries are stat'ed, so a folder of 70k files costs a name list, not 70k stats.
 */
export async function listFiles(
  root: string,
  rel: string,
  page: { offset?: number; limit?: number; sort?: 'name' | 'size' | 'modified'; order?: 'asc' | 'desc' } = {},
): Promise<ListPage> {
  const offset = page.offset ?? 0;
  const limit = page.limit ?? LIST_FILES_DEFAULT_LIMIT;
  const sort = page.sort ?? 'name';
  const desc = page.order === 'desc';
  const real = await resolveInside(root, rel);
  const dir = await openInside(root, real, constants.O_RDONLY | constants.O_DIRECTORY);
  // read through the descriptor: the directory checked is the one listed
  const fdPath = `/proc/self/fd/${dir.fd}`;
  const entries: FileEntry[] = [];
  let total = 0;
  try {
    let all = await sortedNames(dir, fdPath);
    total = all.length;
    let stats: (Stats | null)[];
    let wanted: Dirent[];
    if (sort === 'name') {
      if (desc) all = reverseWithinKind(all);
      wanted = all.slice(offset, offset + limit);
      stats = await Promise.all(
        wanted.map((d) => lstat(path.join(fdPath, d.name)).catch(() => null)), // null: vanished meanwhile
      );
    } else {
      // size and time need every entry's stat (in chunks: a huge folder does not open 70k at once)
      const every: (Stats | null)[] = [];
      for (let i = 0; i < all.length; i += 256)
        every.push(
          ...(await Promise.all(
            all.slice(i, i + 256).map((d) => lstat(path.join(fdPath, d.name)).catch(() => null)),
          )),
        );
      const key = (s: Stats | null) => (s === null ? -1 : sort === 'size' ? s.size : s.mtimeMs);
      const order = all.map((d, i) => ({ d, s: every[i] ?? null }));
      order.sort((a, b) => {
        const da = a.d.isDirectory() ? 0 : 1;
        const db = b.d.isDirectory() ? 0 : 1;
        if (da !== db) return da - db;
        const k = key(a.s) - key(b.s);
        if (k !== 0) return desc ? -k : k;
        return a.d.name < b.d.name ? -1 : a.d.name > b.d.name ? 1 : 0;
      });
      const pageOf = order.slice(offset, offset + limit);
      wanted = pageOf.map((e) => e.d);
      stats = pageOf.map((e) => e.s);
    }
    wanted.forEach((d, i) => {
      const s = stats[i];
      if (!s) return;
      entries.push({
        name: d.name,
        type: s.isDirectory() ? 'directory' : s.isFile() ? 'file' : s.isSymbolicLink() ? 'symlink' : 'other',
        size: s.size,
        mode: (s.mode & 0o7777).toString(8).padStart(4, '0'),
        modifiedAt: s.mtime.toISOString(),
      });
    });
  } finally {
    await dir.close();
  }
  return { path: display(await realpath(root), real), entries, total, offset, limit };
}

/** The size of a regular file under `root` (resolved as for reads), or 0 when there is none. */
export async function fileSizeInside(root: string, rel: string): Promise<number> {
  try {
    const fh = await openInside(
      root,
      await resolveInside(root, rel),
      constants.O_RDONLY | constants.O_NONBLOCK,
    );
    try {
      const st = await fh.stat();
      return st.isFile() ? st.size : 0;
    } finally {
      await fh.close();
    }
  } catch {
    return 0;
  }
}

export async function getFile(
  root: string,
  rel: string,
  maxBytes = MAX_FILE_BYTES,
  deny?: { assert(rel: string): void },
): Promise<{
  path: string;
  size: number;
  encoding: 'utf8' | 'base64';
  content: string;
  sha256: string;
  modifiedAt: string;
}> {
  const real = await resolveInside(root, rel);
  deny?.assert(
    path
      .relative(await realpath(root), real)
      .split(path.sep)
      .join('/'),
  );
  const fh = await openInside(root, real, constants.O_RDONLY | constants.O_NONBLOCK);
  let buf: Buffer;
  let modifiedAt: string;
  try {
    const st = await fh.stat();
    modifiedAt = st.mtime.toISOString();
    if (!st.isFile()) throw new CodedError('CONFIG_INVALID', 'not a regular file');
    if (st.size > maxBytes) throw new CodedError('FILE_TOO_LARGE', `file is larger than ${maxBytes} bytes`);
    buf = await fh.readFile();
  } finally {
    await fh.close();
  }
  // it may have grown since the stat
  if (buf.length > maxBytes) throw new CodedError('FILE_TOO_LARGE', `file is larger than ${maxBytes} bytes`);
  const text = buf.toString('utf8');
  // text whose JSON escaping would blow past the link's message limit (control characters are
  // six bytes each there) goes as base64, which is at most 4/3 of the bytes
  const isText =
    !buf.includes(0) &&
    Buffer.from(text, 'utf8').equals(buf) &&
    Buffer.byteLength(JSON.stringify(text)) <= LINK_MAX_MESSAGE_BYTES / 2;
  return {
    path: display(await realpath(root), real),
    size: buf.length,
    encoding: isText ? 'utf8' : 'base64',
    content: isText ? text : buf.toString('base64'),
    sha256: createHash('sha256').update(buf).digest('hex'),
    modifiedAt,
  };
}

/** Bytes used under a directory (symlinks not followed). */
export async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile())
        total += await lstat(p).then(
          (s) => s.size,
          () => 0,
        );
    }
  }
  return total;
}

const DIR_NOFOLLOW = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

const SETID_BITS = 0o6000;

/**
 * Clears setuid/setgid on a regular file, through a descriptor opened without following a link
 * (a file swapped for a link after the lstat is never chmod'ed through it).
 */
async function stripSetId(p: string): Promise<void> {
  const fh = await open(p, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(
    () => null,
  );
  if (!fh) return;
  try {
    const st = await fh.stat();
    if (st.isFile() && (st.mode & SETID_BITS) !== 0) await fh.chmod(st.mode & 0o777 & ~SETID_BITS);
  } finally {
    await fh.close();
  }
}

/**
 * Gives a server's tree to the uid/gid its game runs as (Wings chowns after install) and clears
 * every setuid/setgid bit on its files, whoever owns them (an install script runs as root and may
 * leave a setuid binary in the folder). lchown, and no descent through links: a symlink planted in
 * the tree never makes us chown or chmod outside it. The walk goes through directory descriptors
 * (`/proc/self/fd/N/name`), so a directory the game swaps for a link while we walk (a TOCTOU race)
 * is not followed either. Only entries with another owner are chowned, so a second pass over a
 * large world is just a walk.
 */
export async function chownTree(root: string, uid: number, gid: number): Promise<void> {
  const give = async (p: string) => {
    const st = await lstat(p).catch(() => null); // null: vanished meanwhile
    if (st && (st.uid !== uid || st.gid !== gid)) await lchown(p, uid, gid).catch(() => undefined);
    if (st?.isFile() && (st.mode & SETID_BITS) !== 0) await stripSetId(p).catch(() => undefined);
    return st;
  };
  const visitDir = async (dirPath: string): Promise<void> => {
    // O_NOFOLLOW: if the last component became a link since the lstat, it is not descended
    const dir = await open(dirPath, DIR_NOFOLLOW).catch(() => null);
    if (!dir) return;
    try {
      const base = `/proc/self/fd/${dir.fd}`;
      for (const name of await readdir(base).catch(() => [] as string[])) {
        const st = await give(`${base}/${name}`);
        if (st?.isDirectory()) await visitDir(`${base}/${name}`);
      }
    } finally {
      await dir.close();
    }
  };
  if ((await give(root))?.isDirectory()) await visitDir(root);
}

/**
 * Gives one file (a rewritten config file) and the directories above it inside `root` to the
 * game's user, through directory descriptors: a component that is (or becomes) a link stops it.
 */
export async function chownPathInside(root: string, rel: string, uid: number, gid: number): Promise<void> {
  const parts = path.posix
    .normalize(rel.replace(/\\/g, '/').replace(/^\/+/, ''))
    .split('/')
    .filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.includes('..')) return;
  let dir = await open(root, DIR_NOFOLLOW);
  try {
    for (let i = 0; i < parts.length; i++) {
      const p = `/proc/self/fd/${dir.fd}/${parts[i]}`;
      await lchown(p, uid, gid).catch(() => undefined);
      if (i === parts.length - 1) return;
      const next = await open(p, DIR_NOFOLLOW).catch(() => null);
      if (!next) return;
      await dir.close();
      dir = next;
    }
  } finally {
    await dir.close();
  }
}

/**
 * Creates or replaces one file under `root` with `content` (utf8): the parent directory must exist
 * and is resolved as for reads; the file itself is opened through the parent's descriptor with
 * O_NOFOLLOW|O_NONBLOCK (a link is PATH_OUTSIDE_ROOT, a FIFO never blocks us), and only a regular
 * file is truncated and written.
 */
export interface WriteCheck {
  /** the file must still have these bytes (sha256, hex), else FILE_CHANGED */
  expectedSha256?: string | undefined;
  /** the file must still have this mtime (ISO, as listed), else FILE_CHANGED */
  expectedModifiedAt?: string | undefined;
  /** the file must not exist (FILE_EXISTS) */
  createOnly?: boolean | undefined;
  deny?: { assert(rel: string): void } | undefined;
}

async function sha256Of(fh: FileHandle): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of fh.createReadStream({ start: 0, autoClose: false })) h.update(chunk as Buffer);
  return h.digest('hex');
}

export async function writeFileInside(
  root: string,
  rel: string,
  content: string,
  check: WriteCheck = {},
): Promise<{ path: string; size: number; sha256: string; modifiedAt: string }> {
  if (rel.includes('\0')) throw new CodedError('PATH_OUTSIDE_ROOT', 'path contains a NUL byte');
  const clean = rel.replace(/\\/g, '/').replace(/\/+$/, '');
  const name = path.posix.basename(clean);
  if (name === '' || name === '.' || name === '..')
    throw new CodedError(
      name === '..' ? 'PATH_OUTSIDE_ROOT' : 'CONFIG_INVALID',
      'path must name a file inside the server directory',
    );
  if (Buffer.byteLength(name, 'utf8') > 255)
    throw new CodedError('NAME_INVALID', 'a name is at most 255 bytes');
  const parentReal = await resolveInside(root, path.posix.dirname(clean));
  check.deny?.assert(
    path
      .relative(await realpath(root), path.join(parentReal, name))
      .split(path.sep)
      .join('/'),
  );
  const dir = await openInside(root, parentReal, constants.O_RDONLY | constants.O_DIRECTORY);
  const data = Buffer.from(content, 'utf8');
  const checked = check.expectedSha256 !== undefined || check.expectedModifiedAt !== undefined;
  let fh: FileHandle;
  let modifiedAt: string;
  try {
    // a checked write never creates the file: it must be the one the editor read
    const create = checked ? 0 : constants.O_CREAT | (check.createOnly ? constants.O_EXCL : 0);
    // O_RDWR: a checked write hashes the bytes through the same descriptor it writes
    fh = await open(
      `/proc/self/fd/${dir.fd}/${name}`,
      (checked ? constants.O_RDWR : constants.O_WRONLY) |
        create |
        constants.O_NOFOLLOW |
        constants.O_NONBLOCK,
      0o644,
    ).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ELOOP')
        throw new CodedError('PATH_OUTSIDE_ROOT', 'path is a symbolic link', { cause: e });
      if (e.code === 'EISDIR' || e.code === 'ENXIO')
        throw new CodedError('CONFIG_INVALID', 'not a regular file', { cause: e });
      if (e.code === 'EEXIST') throw new CodedError('FILE_EXISTS', 'the file exists already', { cause: e });
      if (e.code === 'ENOENT' && checked)
        throw new CodedError('FILE_CHANGED', 'the file was deleted since it was read', { cause: e });
      throw new CodedError('INTERNAL_ERROR', 'cannot open path', { cause: e });
    });
  } finally {
    await dir.close();
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new CodedError('CONFIG_INVALID', 'not a regular file');
    if (
      check.expectedModifiedAt !== undefined &&
      st.mtime.toISOString() !== new Date(check.expectedModifiedAt).toISOString()
    )
      throw new CodedError(
        'FILE_CHANGED',
        `the file changed since it was read (modified ${st.mtime.toISOString()})`,
      );
    if (check.expectedSha256 !== undefined && (await sha256Of(fh)) !== check.expectedSha256)
      throw new CodedError('FILE_CHANGED', 'the file changed since it was read (its contents differ)');
    // a file written through the API is never setuid/setgid (root writing keeps those bits)
    if (st.mode & 0o6000) await fh.chmod(st.mode & 0o1777);
    await fh.truncate(0);
    await fh.write(data, 0, data.length, 0);
    modifiedAt = (await fh.stat()).mtime.toISOString();
  } finally {
    await fh.close();
  }
  const shown = display(await realpath(root), path.join(parentReal, name));
  return {
    path: shown,
    size: data.length,
    sha256: createHash('sha256').update(data).digest('hex'),
    modifiedAt,
  };
}
