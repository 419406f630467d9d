/**
 * The file manager's changes to a server's tree: stat, mkdir, rename/move, copy, delete, chmod and
 * search by name. Same rules as filesystem.ts: the directory an operation works in is resolved
 * inside the root and opened, and its descriptor proven to be inside (`/proc/self/fd/N`); the last
 * component is then named through that descriptor and never followed when it is a link. Walks
 * (copy, delete, search, the denylist scan) descend through directory descriptors opened with
 * O_NOFOLLOW, so a directory swapped for a link in the middle of a walk is not followed. No shell.
 */
import { constants, type Dirent, type Stats } from 'node:fs';
import {
  type FileHandle,
  lchown,
  lstat,
  mkdir,
  open,
  readdir,
  readlink,
  realpath,
  rename,
  rmdir,
  symlink,
  unlink,
} from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  CodedError,
  type FileEntry,
  SEARCH_FILES_MAX_RESULTS,
  SEARCH_FILES_MAX_VISITED,
} from '@cap/protocol';
import ignore, { type Ignore } from 'ignore';
import { openInside, resolveInside } from './filesystem.ts';

/** Linux NAME_MAX, in bytes. */
export const NAME_MAX_BYTES = 255;
/** How deep a walk (copy, delete, search) descends. */
export const WALK_MAX_DEPTH = 64;
/** Entries a copy, or a scan for denied files, visits at most. */
export const WALK_MAX_ENTRIES = SEARCH_FILES_MAX_VISITED;

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY;
const DIR_NOFOLLOW = DIR_FLAGS | constants.O_NOFOLLOW;

const fdPath = (fh: FileHandle, name?: string) =>
  name === undefined ? `/proc/self/fd/${fh.fd}` : `/proc/self/fd/${fh.fd}/${name}`;

/** Refuses a name that cannot be one component inside a directory. */
export function checkName(name: string): void {
  if (name.includes('\0')) throw new CodedError('PATH_OUTSIDE_ROOT', 'name contains a NUL byte');
  if (name === '..') throw new CodedError('PATH_OUTSIDE_ROOT', 'name leads outside the directory');
  if (name === '' || name === '.' || name.includes('/'))
    throw new CodedError('NAME_INVALID', `not a file name: ${JSON.stringify(name.slice(0, 64))}`);
  if (Buffer.byteLength(name, 'utf8') > NAME_MAX_BYTES)
    throw new CodedError('NAME_INVALID', `a name is at most ${NAME_MAX_BYTES} bytes`);
}

/**
 * The components of a path from the root (`\` read as `/`; empty and `.` components dropped).
 * `..` anywhere is PATH_OUTSIDE_ROOT (changes never walk up), NUL too; a long component NAME_INVALID.
 */
export function splitPath(rel: string): string[] {
  if (rel.includes('\0')) throw new CodedError('PATH_OUTSIDE_ROOT', 'path contains a NUL byte');
  const parts = rel
    .replace(/\\/g, '/')
    .split('/')
    .filter((p) => p !== '' && p !== '.');
  for (const p of parts) checkName(p);
  return parts;
}

/** The template's file_denylist (gitignore patterns, as Wings reads it). */
export class Denylist {
  readonly #ig: Ignore | null;
  constructor(patterns: readonly string[] | undefined) {
    const list = (patterns ?? []).map((p) => p.trim()).filter((p) => p !== '' && !p.startsWith('#'));
    this.#ig = list.length > 0 ? ignore().add(list) : null;
  }
  get empty(): boolean {
    return this.#ig === null;
  }
  /** `rel`: the real path from the root (`a/b.txt`, no leading slash). */
  denied(rel: string, isDir = false): boolean {
    if (!this.#ig || rel === '') return false;
    return this.#ig.ignores(isDir ? `${rel}/` : rel);
  }
  assert(rel: string, isDir = false): void {
    if (this.denied(rel, isDir))
      throw new CodedError('FILE_DENIED', `/${rel} is on the template's file denylist`);
  }
}

const NO_DENYLIST = new Denylist([]);

/** A directory opened inside the root, with its real path from the root ('' = the root). */
interface OpenDir {
  fh: FileHandle;
  rel: string;
}

function relOf(realRoot: string, real: string): string {
  return path.relative(realRoot, real).split(path.sep).join('/');
}

function join(rel: string, name: string): string {
  return rel === '' ? name : `${rel}/${name}`;
}

/** Opens the directory `parts` names (resolved as for reads; links inside the root allowed). */
export async function openDirAt(root: string, parts: string[]): Promise<OpenDir> {
  const realRoot = await realpath(root).catch((e) => {
    throw new CodedError('SERVER_NOT_FOUND', 'server directory missing', { cause: e });
  });
  const real = await resolveInside(root, parts.join('/'));
  const fh = await openInside(root, real, DIR_FLAGS);
  return { fh, rel: relOf(realRoot, real) };
}

/** The parent directory of `rel` opened, and the last name; the root itself is NAME_INVALID. */
export async function openParent(root: string, rel: string): Promise<OpenDir & { name: string }> {
  const parts = splitPath(rel);
  const name = parts.pop();
  if (name === undefined) throw new CodedError('NAME_INVALID', 'the path names the server root');
  return { ...(await openDirAt(root, parts)), name };
}

async function lstatOrNull(p: string): Promise<Stats | null> {
  try {
    return await lstat(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw e;
  }
}

export function entryOf(name: string, s: Stats): FileEntry {
  return {
    name,
    type: s.isDirectory() ? 'directory' : s.isFile() ? 'file' : s.isSymbolicLink() ? 'symlink' : 'other',
    size: s.size,
    mode: (s.mode & 0o7777).toString(8).padStart(4, '0'),
    modifiedAt: s.mtime.toISOString(),
  };
}

function fail(e: unknown, what: string): never {
  if (e instanceof CodedError) throw e;
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ELOOP') throw new CodedError('PATH_OUTSIDE_ROOT', 'path is a symbolic link', { cause: e });
  if (code === 'ENOENT') throw new CodedError('FILE_NOT_FOUND', 'no such file or directory', { cause: e });
  if (code === 'EEXIST' || code === 'ENOTEMPTY')
    throw new CodedError('FILE_EXISTS', 'the target exists already', { cause: e });
  if (code === 'ENOTDIR') throw new CodedError('CONFIG_INVALID', 'not a directory', { cause: e });
  if (code === 'EISDIR') throw new CodedError('CONFIG_INVALID', 'is a directory', { cause: e });
  if (code === 'EINVAL') throw new CodedError('CONFIG_INVALID', `cannot ${what} there`, { cause: e });
  if (code === 'ENAMETOOLONG') throw new CodedError('NAME_INVALID', 'path too long', { cause: e });
  throw new CodedError('INTERNAL_ERROR', `cannot ${what}`, { cause: e });
}

/** A directory opened with O_NOFOLLOW: a link is PATH_OUTSIDE_ROOT (Linux says ENOTDIR there). */
async function openDirNoFollow(p: string): Promise<FileHandle> {
  try {
    return await open(p, DIR_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR' && (await lstatOrNull(p))?.isSymbolicLink())
      throw new CodedError('PATH_OUTSIDE_ROOT', 'path is a symbolic link', { cause: e });
    return fail(e, 'open the directory');
  }
}

/** One entry (links not followed), with its path from the root. */
export async function statFile(root: string, rel: string): Promise<FileEntry & { path: string }> {
  const dir = await openParent(root, rel);
  try {
    const s = await lstat(fdPath(dir.fh, dir.name)).catch((e) => fail(e, 'stat'));
    return { ...entryOf(dir.name, s), path: `/${join(dir.rel, dir.name)}` };
  } finally {
    await dir.fh.close();
  }
}

/** A directory and its missing parents; each component is opened with O_NOFOLLOW (a link stops it). */
export async function createDirectory(
  root: string,
  rel: string,
  deny: Denylist = NO_DENYLIST,
  existingOk = false,
): Promise<{ path: string }> {
  const parts = splitPath(rel);
  if (parts.length === 0) throw new CodedError('NAME_INVALID', 'the path names the server root');
  let dir = await openDirAt(root, []);
  try {
    for (let i = 0; i < parts.length; i++) {
      const name = parts[i]!;
      const here = join(dir.rel, name);
      deny.assert(here, true);
      const last = i === parts.length - 1;
      let made = false;
      try {
        await mkdir(fdPath(dir.fh, name), 0o755);
        made = true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') fail(e, 'create the directory');
      }
      if (last && !made && !existingOk) throw new CodedError('FILE_EXISTS', `/${here} exists already`);
      const next = await openDirNoFollow(fdPath(dir.fh, name));
      await dir.fh.close();
      dir = { fh: next, rel: here };
    }
    return { path: `/${dir.rel}` };
  } finally {
    await dir.fh.close();
  }
}

/** Refuses when the entry at `p` (a directory: anything under it, bounded) is on the denylist. */
async function assertNotDenied(deny: Denylist, p: string, rel: string, st: Stats): Promise<void> {
  deny.assert(rel, st.isDirectory());
  if (deny.empty || !st.isDirectory()) return;
  let seen = 0;
  const walk = async (dirPath: string, dirRel: string, depth: number): Promise<void> => {
    if (depth > WALK_MAX_DEPTH) throw new CodedError('CONFIG_INVALID', 'the tree is too deep');
    const fh = await open(dirPath, DIR_NOFOLLOW).catch(() => null);
    if (!fh) return;
    try {
      for (const d of await readdir(fdPath(fh), { withFileTypes: true })) {
        if (++seen > WALK_MAX_ENTRIES)
          throw new CodedError('CONFIG_INVALID', 'the tree has too many entries');
        const r = join(dirRel, d.name);
        deny.assert(r, d.isDirectory());
        if (d.isDirectory()) await walk(fdPath(fh, d.name), r, depth + 1);
      }
    } finally {
      await fh.close();
    }
  };
  await walk(p, rel, 0);
}

/** Both ends of a rename or copy, checked: the source exists and is not denied, the target is new. */
interface SourceAndTarget {
  /** the source, as a path through its parent's descriptor */
  src: string;
  st: Stats;
  /** the source and the target, relative to the root */
  srcRel: string;
  target: string;
  /** the target, as a path through its parent's descriptor */
  dst: string;
}

async function withSourceAndTarget<T>(
  root: string,
  from: string,
  to: string,
  verb: string,
  deny: Denylist,
  fn: (e: SourceAndTarget) => Promise<T>,
): Promise<T> {
  const src = await openParent(root, from);
  try {
    const dst = await openParent(root, to);
    try {
      const s = fdPath(src.fh, src.name);
      const st = await lstat(s).catch((e) => fail(e, verb));
      const srcRel = join(src.rel, src.name);
      await assertNotDenied(deny, s, srcRel, st);
      const target = join(dst.rel, dst.name);
      deny.assert(target, st.isDirectory());
      const d = fdPath(dst.fh, dst.name);
      if (await lstatOrNull(d)) throw new CodedError('FILE_EXISTS', `/${target} exists already`);
      return await fn({ src: s, st, srcRel, target, dst: d });
    } finally {
      await dst.fh.close();
    }
  } finally {
    await src.fh.close();
  }
}

/** Renames or moves one entry (a link is moved as a link); `to` must not exist. */
export async function renameFile(
  root: string,
  from: string,
  to: string,
  deny: Denylist = NO_DENYLIST,
): Promise<{ paths: string[] }> {
  return withSourceAndTarget(root, from, to, 'rename', deny, async ({ src, dst, target }) => {
    await rename(src, dst).catch((e) => fail(e, 'rename'));
    return { paths: [`/${target}`] };
  });
}

/** Bytes in regular files under an entry (a walk through descriptors, bounded). */
async function treeBytes(p: string, st: Stats): Promise<number> {
  if (!st.isDirectory()) return st.isFile() ? st.size : 0;
  let total = 0;
  let seen = 0;
  const walk = async (dirPath: string, depth: number): Promise<void> => {
    if (depth > WALK_MAX_DEPTH) throw new CodedError('CONFIG_INVALID', 'the tree is too deep');
    const fh = await open(dirPath, DIR_NOFOLLOW).catch(() => null);
    if (!fh) return;
    try {
      for (const d of await readdir(fdPath(fh), { withFileTypes: true })) {
        if (++seen > WALK_MAX_ENTRIES)
          throw new CodedError('CONFIG_INVALID', 'the tree has too many entries');
        if (d.isDirectory()) await walk(fdPath(fh, d.name), depth + 1);
        else if (d.isFile()) total += (await lstatOrNull(fdPath(fh, d.name)))?.size ?? 0;
      }
    } finally {
      await fh.close();
    }
  };
  await walk(p, 0);
  return total;
}

/** Copies one regular file between descriptors: the source opened without following a link. */
async function copyOne(srcPath: string, dstPath: string): Promise<void> {
  const input = await open(srcPath, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = await input.stat();
    if (!st.isFile()) return; // swapped meanwhile: skipped
    const output = await open(
      dstPath,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      st.mode & 0o777,
    );
    await pipeline(input.createReadStream({ autoClose: false }), output.createWriteStream());
  } finally {
    await input.close();
  }
}

/** The uid/gid what the file API creates is given to (the game's user). */
export interface Owner {
  uid: number;
  gid: number;
}

async function copyTree(srcPath: string, dstPath: string, depth: number, own?: Owner): Promise<void> {
  await copyEntry(srcPath, dstPath, depth, own);
  // dstPath is named through a descriptor and lchown follows no link
  if (own) await lchown(dstPath, own.uid, own.gid).catch(() => undefined);
}

async function copyEntry(srcPath: string, dstPath: string, depth: number, own?: Owner): Promise<void> {
  if (depth > WALK_MAX_DEPTH) throw new CodedError('CONFIG_INVALID', 'the tree is too deep');
  const st = await lstatOrNull(srcPath);
  if (!st) return;
  if (st.isFile()) return copyOne(srcPath, dstPath);
  if (st.isSymbolicLink()) {
    // copied as the link it is (reads through it are refused as anywhere else)
    return symlink(await readlink(srcPath), dstPath);
  }
  if (!st.isDirectory()) return; // FIFOs, sockets, devices are not copied
  const src = await open(srcPath, DIR_NOFOLLOW);
  try {
    await mkdir(dstPath, st.mode & 0o777);
    const dst = await open(dstPath, DIR_NOFOLLOW);
    try {
      for (const d of await readdir(fdPath(src)))
        await copyTree(fdPath(src, d), fdPath(dst, d), depth + 1, own);
    } finally {
      await dst.close();
    }
  } finally {
    await src.close();
  }
}

/**
 * Copies a file or a directory tree; `to` must not exist. `room(bytes)` is asked first with the
 * bytes it will write (the disk quota) and throws to refuse.
 */
export async function copyFile(
  root: string,
  from: string,
  to: string,
  room: (bytes: number) => Promise<void>,
  deny: Denylist = NO_DENYLIST,
  own?: Owner,
): Promise<{ paths: string[] }> {
  return withSourceAndTarget(root, from, to, 'copy', deny, async ({ src, st, srcRel, target, dst }) => {
    if (st.isDirectory() && `${target}/`.startsWith(`${srcRel}/`))
      throw new CodedError('CONFIG_INVALID', 'cannot copy a directory into itself');
    await room(await treeBytes(src, st));
    await copyTree(src, dst, 0, own).catch((e) => fail(e, 'copy'));
    return { paths: [`/${target}`] };
  });
}

/** Removes `name` in the directory `parent` (a path through a descriptor), never following a link. */
async function removeEntry(parent: string, name: string, depth: number): Promise<void> {
  const p = `${parent}/${name}`;
  const st = await lstatOrNull(p);
  if (!st) return;
  if (!st.isDirectory()) return unlink(p);
  if (depth > WALK_MAX_DEPTH) throw new CodedError('CONFIG_INVALID', 'the tree is too deep');
  let dir: FileHandle;
  try {
    dir = await open(p, DIR_NOFOLLOW);
  } catch (e) {
    // swapped for a link (or a file) since the lstat: that one is removed, not followed
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOTDIR') return unlink(p);
    throw e;
  }
  try {
    for (const d of await readdir(fdPath(dir))) await removeEntry(fdPath(dir), d, depth + 1);
  } finally {
    await dir.close();
  }
  await rmdir(p);
}

/** Deletes entries (files, links, whole directories) of one directory. */
export async function deleteFiles(
  root: string,
  dirRel: string,
  names: readonly string[],
  deny: Denylist = NO_DENYLIST,
): Promise<{ paths: string[] }> {
  for (const n of names) checkName(n);
  const dir = await openDirAt(root, splitPath(dirRel));
  const done: string[] = [];
  try {
    // every entry is checked before any is removed
    const found: string[] = [];
    for (const n of names) {
      const p = fdPath(dir.fh, n);
      const st = await lstatOrNull(p);
      if (!st) throw new CodedError('FILE_NOT_FOUND', `/${join(dir.rel, n)} does not exist`);
      await assertNotDenied(deny, p, join(dir.rel, n), st);
      found.push(n);
    }
    for (const n of found) {
      await removeEntry(fdPath(dir.fh), n, 0).catch((e) => fail(e, 'delete'));
      done.push(`/${join(dir.rel, n)}`);
    }
    return { paths: done };
  } finally {
    await dir.fh.close();
  }
}

/** Sets permission bits on a file or directory through a descriptor opened without following a link. */
export async function chmodFile(
  root: string,
  rel: string,
  mode: number,
  deny: Denylist = NO_DENYLIST,
): Promise<FileEntry & { path: string }> {
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o1777)
    throw new CodedError('VALIDATION_FAILED', 'mode must be permission bits (no setuid/setgid)');
  const dir = await openParent(root, rel);
  try {
    const p = fdPath(dir.fh, dir.name);
    const fh = await open(p, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((e) =>
      fail(e, 'chmod'),
    );
    try {
      const st = await fh.stat();
      if (!st.isFile() && !st.isDirectory())
        throw new CodedError('CONFIG_INVALID', 'not a file or directory');
      deny.assert(join(dir.rel, dir.name), st.isDirectory());
      await fh.chmod(mode);
      return { ...entryOf(dir.name, await fh.stat()), path: `/${join(dir.rel, dir.name)}` };
    } finally {
      await fh.close();
    }
  } finally {
    await dir.fh.close();
  }
}

/**
 * Entries whose name contains `query` (case-insensitive) under `rel`, depth first through
 * descriptors (links not descended); at most `limit` matches and SEARCH_FILES_MAX_VISITED entries.
 */
export async function searchFiles(
  root: string,
  rel: string,
  query: string,
  limit = 100,
): Promise<{ matches: (FileEntry & { path: string })[]; truncated: boolean }> {
  const q = query.toLowerCase();
  const max = Math.min(Math.max(1, Math.floor(limit)), SEARCH_FILES_MAX_RESULTS);
  const start = await openDirAt(root, splitPath(rel));
  const matches: (FileEntry & { path: string })[] = [];
  let seen = 0;
  let truncated = false;
  const walk = async (fh: FileHandle, dirRel: string, depth: number): Promise<void> => {
    let names: Dirent[];
    try {
      names = await readdir(fdPath(fh), { withFileTypes: true });
    } catch {
      return;
    }
    names.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const d of names) {
      if (truncated) return;
      if (++seen > SEARCH_FILES_MAX_VISITED) {
        truncated = true;
        return;
      }
      const r = join(dirRel, d.name);
      if (d.name.toLowerCase().includes(q)) {
        const st = await lstatOrNull(fdPath(fh, d.name));
        if (st) matches.push({ ...entryOf(d.name, st), path: `/${r}` });
        if (matches.length >= max) {
          truncated = true;
          return;
        }
      }
      if (d.isDirectory() && depth < WALK_MAX_DEPTH) {
        const sub = await open(fdPath(fh, d.name), DIR_NOFOLLOW).catch(() => null);
        if (!sub) continue;
        try {
          await walk(sub, r, depth + 1);
        } finally {
          await sub.close();
        }
      }
    }
  };
  try {
    await walk(start.fh, start.rel, 0);
  } finally {
    await start.fh.close();
  }
  return { matches, truncated };
}
