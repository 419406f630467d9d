/**
 * A server's files, confined to its own directory. Every path is resolved, then realpath'd, and
 * must stay inside the (realpath'd) root: `..` and symlinks that point out are refused.
 */
import { lchown, lstat, readdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { CodedError, type FileEntry } from '@cap/protocol';

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
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new CodedError('FILE_NOT_FOUND', 'no such file or directory', { cause: e });
    }
    throw new CodedError('INTERNAL_ERROR', 'cannot resolve path', { cause: e });
  }
  if (!inside(realRoot, real))
    throw new CodedError('PATH_OUTSIDE_ROOT', 'path leads outside the server directory');
  return real;
}

function display(root: string, real: string): string {
  const r = path.relative(root, real);
  return `/${r.split(path.sep).join('/')}`.replace(/\/$/, '') || '/';
}

export async function listFiles(root: string, rel: string): Promise<{ path: string; entries: FileEntry[] }> {
  const real = await resolveInside(root, rel);
  const st = await stat(real);
  if (!st.isDirectory()) throw new CodedError('CONFIG_INVALID', 'not a directory');
  const names = await readdir(real);
  const entries: FileEntry[] = [];
  for (const name of names.sort()) {
    try {
      const s = await lstat(path.join(real, name));
      entries.push({
        name,
        type: s.isDirectory() ? 'directory' : s.isFile() ? 'file' : s.isSymbolicLink() ? 'symlink' : 'other',
        size: s.size,
        mode: (s.mode & 0o7777).toString(8).padStart(4, '0'),
        modifiedAt: s.mtime.toISOString(),
      });
    } catch {
      // vanished between readdir and lstat
    }
  }
  return { path: display(await realpath(root), real), entries };
}

export async function getFile(
  root: string,
  rel: string,
  maxBytes = MAX_FILE_BYTES,
): Promise<{ path: string; size: number; encoding: 'utf8' | 'base64'; content: string }> {
  const real = await resolveInside(root, rel);
  const st = await stat(real);
  if (!st.isFile()) throw new CodedError('CONFIG_INVALID', 'not a regular file');
  if (st.size > maxBytes) throw new CodedError('FILE_TOO_LARGE', `file is larger than ${maxBytes} bytes`);
  const buf = await readFile(real);
  const text = buf.toString('utf8');
  const isText = !buf.includes(0) && Buffer.from(text, 'utf8').equals(buf);
  return {
    path: display(await realpath(root), real),
    size: buf.length,
    encoding: isText ? 'utf8' : 'base64',
    content: isText ? text : buf.toString('base64'),
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

/**
 * Gives a server's tree to the uid/gid its game runs as (Wings chowns after install). lchown, and
 * no descent through links: a symlink planted in the tree never makes us chown outside it. Only
 * entries with another owner are touched, so a second pass over a large world is just a walk.
 */
export async function chownTree(root: string, uid: number, gid: number): Promise<void> {
  const visit = async (p: string): Promise<void> => {
    let st: Awaited<ReturnType<typeof lstat>>;
    try {
      st = await lstat(p);
    } catch {
      return; // vanished meanwhile
    }
    if (st.uid !== uid || st.gid !== gid) await lchown(p, uid, gid).catch(() => undefined);
    if (!st.isDirectory()) return;
    const names = await readdir(p).catch(() => [] as string[]);
    for (const name of names) await visit(path.join(p, name));
  };
  await visit(root);
}
