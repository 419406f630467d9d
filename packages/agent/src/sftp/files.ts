/**
 * What SFTP does to a server's files, under the file API's rules (filesystem.ts): every path is
 * resolved inside the server's root, `..` and symlinks leading out are refused, and every
 * descriptor opened is checked again by where it really points. New entries are made through
 * their parent's descriptor (`/proc/self/fd/N/name`) with O_NOFOLLOW, so a parent swapped for a
 * link after the check cannot lead outside. Links are never created or followed at the last part.
 */
import { constants, type Stats } from 'node:fs';
import {
  type FileHandle,
  lstat,
  mkdir,
  open,
  readdir,
  readlink,
  realpath,
  rename,
  rmdir,
  unlink,
} from 'node:fs/promises';
import path from 'node:path';
import { CodedError } from '@cap/protocol';
import { resolveInside } from '../filesystem/filesystem.ts';

function inside(root: string, p: string): boolean {
  return p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

/** `p` (absolute or relative to the SFTP root `/`) as a clean virtual path: `/`, `/a/b`. */
export function virtualPath(p: string): string {
  if (p.includes('\0')) throw new CodedError('PATH_OUTSIDE_ROOT', 'path contains a NUL byte');
  if (Buffer.byteLength(p) > 4096) throw new CodedError('PATH_OUTSIDE_ROOT', 'path too long');
  return path.posix.resolve('/', p.replace(/\\/g, '/'));
}

async function checkFd(root: string, fh: FileHandle): Promise<void> {
  const realRoot = await realpath(root);
  const where = await readlink(`/proc/self/fd/${fh.fd}`).catch(() => null);
  if (where === null || !inside(realRoot, where)) {
    await fh.close();
    throw new CodedError('PATH_OUTSIDE_ROOT', 'path leads outside the server directory');
  }
}

async function openChecked(root: string, real: string, flags: number, mode?: number): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(real, flags | constants.O_NOFOLLOW | constants.O_NONBLOCK, mode);
  } catch (e) {
    throw codedFs(e);
  }
  await checkFd(root, fh);
  return fh;
}

/** An fs error as a coded one (ELOOP: the last part is a link). */
export function codedFs(e: unknown): CodedError {
  if (e instanceof CodedError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ELOOP') return new CodedError('PATH_OUTSIDE_ROOT', 'path is a symbolic link', { cause: e });
  if (code === 'ENOENT' || code === 'ENOTDIR')
    return new CodedError('FILE_NOT_FOUND', 'no such file or directory', { cause: e });
  if (code === 'EEXIST') return new CodedError('CONFLICT', 'already exists', { cause: e });
  if (code === 'ENOTEMPTY') return new CodedError('INVALID_STATE', 'directory not empty', { cause: e });
  if (code === 'EISDIR' || code === 'ENXIO')
    return new CodedError('CONFIG_INVALID', 'not a regular file', { cause: e });
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new CodedError('INSUFFICIENT_RESOURCES', 'no space left', { cause: e });
  return new CodedError('INTERNAL_ERROR', 'file operation failed', { cause: e });
}

/** An existing entry's real path (symlinks inside the root are followed, as in the file API). */
export async function existing(root: string, virt: string): Promise<string> {
  return resolveInside(root, virt.slice(1));
}

/** The parent directory of a (new) entry, opened and checked, and the entry's name. */
export async function parentOf(
  root: string,
  virt: string,
): Promise<{ dir: FileHandle; name: string; at: string }> {
  const name = path.posix.basename(virt);
  if (virt === '/' || name === '' || name === '.' || name === '..')
    throw new CodedError('PATH_OUTSIDE_ROOT', 'path must name an entry inside the server directory');
  const parent = await existing(root, path.posix.dirname(virt));
  const dir = await openChecked(root, parent, constants.O_RDONLY | constants.O_DIRECTORY);
  return { dir, name, at: `/proc/self/fd/${dir.fd}/${name}` };
}

/** lstat of an entry named through its parent (null: none). */
export async function entryStat(at: string): Promise<Stats | null> {
  return lstat(at).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw codedFs(e);
  });
}

export async function openRead(root: string, virt: string): Promise<FileHandle> {
  const fh = await openChecked(root, await existing(root, virt), constants.O_RDONLY);
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close();
    throw new CodedError('CONFIG_INVALID', 'not a regular file');
  }
  return fh;
}

/**
 * Opens a file for writing through its parent (never a link, never anything but a regular file);
 * `created` says whether it is new. The mode is the client's, without setuid/setgid/sticky.
 */
export async function openWrite(
  root: string,
  virt: string,
  opts: { create: boolean; exclusive: boolean; truncate: boolean; append: boolean; mode: number },
  may: (created: boolean) => void,
): Promise<{ fh: FileHandle; created: boolean }> {
  const { dir, at } = await parentOf(root, virt);
  try {
    const before = await entryStat(at);
    if (before && !before.isFile())
      throw before.isSymbolicLink()
        ? new CodedError('PATH_OUTSIDE_ROOT', 'path is a symbolic link')
        : new CodedError('CONFIG_INVALID', 'not a regular file');
    if (!before && !opts.create) throw new CodedError('FILE_NOT_FOUND', 'no such file');
    may(before === null);
    let flags = constants.O_WRONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
    if (opts.create) flags |= constants.O_CREAT;
    if (opts.exclusive) flags |= constants.O_EXCL;
    if (opts.append) flags |= constants.O_APPEND;
    let fh: FileHandle;
    try {
      fh = await open(at, flags, opts.mode & 0o777);
    } catch (e) {
      throw codedFs(e);
    }
    await checkFd(root, fh);
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      throw new CodedError('CONFIG_INVALID', 'not a regular file');
    }
    if (st.mode & 0o7000) await fh.chmod(st.mode & 0o777);
    if (opts.truncate) await fh.truncate(0);
    return { fh, created: before === null };
  } finally {
    await dir.close();
  }
}

/** A directory's names (read through its checked descriptor), capped. */
export async function listDir(
  root: string,
  virt: string,
  max = 100_000,
): Promise<{ fh: FileHandle; names: string[] }> {
  const fh = await openChecked(root, await existing(root, virt), constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    const names = (await readdir(`/proc/self/fd/${fh.fd}`)).slice(0, max);
    return { fh, names };
  } catch (e) {
    await fh.close();
    throw codedFs(e);
  }
}

export async function makeDir(root: string, virt: string, mode: number): Promise<void> {
  const { dir, at } = await parentOf(root, virt);
  try {
    await mkdir(at, mode & 0o777).catch((e) => {
      throw codedFs(e);
    });
  } finally {
    await dir.close();
  }
}

/** Removes a file or an empty directory (never what a link points to: the link itself goes). */
export async function remove(root: string, virt: string, kind: 'file' | 'dir'): Promise<void> {
  const { dir, at } = await parentOf(root, virt);
  try {
    const st = await entryStat(at);
    if (!st) throw new CodedError('FILE_NOT_FOUND', 'no such file or directory');
    if (kind === 'dir' && !st.isDirectory()) throw new CodedError('CONFIG_INVALID', 'not a directory');
    if (kind === 'file' && st.isDirectory()) throw new CodedError('CONFIG_INVALID', 'is a directory');
    await (kind === 'dir' ? rmdir(at) : unlink(at)).catch((e) => {
      throw codedFs(e);
    });
  } finally {
    await dir.close();
  }
}

/** Renames inside the root; an existing target is refused (SFTP v3). */
export async function renameInside(root: string, from: string, to: string): Promise<void> {
  const a = await parentOf(root, from);
  try {
    const b = await parentOf(root, to);
    try {
      if (!(await entryStat(a.at))) throw new CodedError('FILE_NOT_FOUND', 'no such file or directory');
      if (await entryStat(b.at)) throw new CodedError('CONFLICT', 'the target exists');
      await rename(a.at, b.at).catch((e) => {
        throw codedFs(e);
      });
    } finally {
      await b.dir.close();
    }
  } finally {
    await a.dir.close();
  }
}

/** An existing entry's lstat (after resolving links inside the root). */
export async function statInside(root: string, virt: string): Promise<Stats> {
  return lstat(await existing(root, virt)).catch((e) => {
    throw codedFs(e);
  });
}

/** chmod (without setuid/setgid) and times on an existing file or directory, through a checked descriptor. */
export async function setAttrs(
  root: string,
  virt: string,
  attrs: { mode?: number; atime?: number; mtime?: number },
): Promise<void> {
  const fh = await openChecked(root, await existing(root, virt), constants.O_RDONLY);
  try {
    await applyAttrs(fh, attrs);
  } finally {
    await fh.close();
  }
}

export async function applyAttrs(fh: FileHandle, attrs: { mode?: number; atime?: number; mtime?: number }) {
  if (attrs.mode !== undefined) await fh.chmod(attrs.mode & 0o1777);
  if (attrs.atime !== undefined && attrs.mtime !== undefined) await fh.utimes(attrs.atime, attrs.mtime);
}
