/**
 * The file manager's archives (issue 10 items 1 and 2): compress entries of a folder into an
 * archive in it, decompress an archive of the server's files, and a folder streamed as an archive
 * made on the fly (a download). All go through the one archiver (../archive/archive.ts: walks and
 * writes through descriptors opened with O_NOFOLLOW, entry rules, caps) with the file API's rules
 * on top: every folder is resolved inside the server's root and opened, its descriptor proven
 * inside (operations.ts `openDirAt`), the template's file_denylist applies, and the disk quota
 * bounds what is written.
 *
 * - compress: a named entry on the denylist is refused (FILE_DENIED); denied entries under a named
 *   folder are left out of the archive. The archive is written to `.cap-compress-<random>` in the
 *   folder (O_EXCL|O_NOFOLLOW) and linked to its name only when complete (link(2) never replaces
 *   what is there: FILE_EXISTS); past the remaining quota it fails (INSUFFICIENT_RESOURCES) and
 *   the temporary file is removed: nothing partial is left. One a killed Agent left is removed at
 *   its next start (removeStaleCompressTemps).
 * - decompress: the format from the magic bytes; the archive is read whole first (checksums,
 *   entry rules, the denylist, caps = the remaining quota and FILE_DECOMPRESS_MAX_ENTRIES), so a
 *   bomb, a `../` entry, a link leading out or a denied entry fails before anything is written;
 *   then it is unpacked: existing regular files are replaced (unlinked, never written through),
 *   a link in the way of a directory is ARCHIVE_UNSAFE.
 * - a folder download: the archive streams as it is made (nothing buffered, no temporary file);
 *   denied entries are left out.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, lchown, link, lstat, open, readdir, realpath, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import {
  type ArchiveWriteFormat,
  CodedError,
  FILE_DECOMPRESS_MAX_ENTRIES,
  type FileCompressData,
  type FileDecompressData,
} from '@cap/protocol';
import {
  type ArchiveFormat,
  archiveFileStream,
  createArchive,
  DEFAULT_MAX_BYTES,
  extractArchive,
  verifyArchive,
} from '../archive/archive.ts';
import { chownTree } from './filesystem.ts';
import {
  checkName,
  createDirectory,
  type Denylist,
  type Owner,
  openDirAt,
  openParent,
  splitPath,
} from './operations.ts';

export type ArchiveProgress = (stage: string, message?: string) => void;

export interface ArchiveJob {
  /** the server's folder */
  root: string;
  deny: Denylist;
  owner: Owner;
  signal?: AbortSignal;
  progress?: ArchiveProgress;
  /** where a zip is spooled while it is read (it is read from its end); default the OS temp directory */
  tmpDir?: string;
}

const join = (rel: string, name: string) => (rel === '' ? name : `${rel}/${name}`);
const fdPath = (fh: FileHandle, name?: string) =>
  name === undefined ? `/proc/self/fd/${fh.fd}` : `/proc/self/fd/${fh.fd}/${name}`;

function mb(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** The archiver's progress as a stage message, at most once a second. */
function throttled(progress: ArchiveProgress | undefined, stage: string) {
  let last = 0;
  return (bytes: number, entries: number) => {
    const now = Date.now();
    if (!progress || now - last < 1000) return;
    last = now;
    progress(stage, `${mb(bytes)}, ${entries} entries`);
  };
}

/** `archive-<UTC yyyy-mm-dd-hhmmss>.<ext>` */
export function defaultArchiveName(format: ArchiveWriteFormat, now = new Date()): string {
  const iso = now.toISOString();
  return `archive-${iso.slice(0, 10)}-${iso.slice(11, 19).replace(/:/g, '')}.${format}`;
}

/** The archive format from its first bytes (gzip, zstd, zip, ustar), or null. */
export function sniffFormat(head: Buffer): ArchiveFormat | null {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'tar.gz';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'tar.zst';
  if (
    head.length >= 4 &&
    head[0] === 0x50 &&
    head[1] === 0x4b &&
    ((head[2] === 3 && head[3] === 4) || (head[2] === 5 && head[3] === 6))
  )
    return 'zip';
  if (head.length >= 262 && head.toString('latin1', 257, 262) === 'ustar') return 'tar';
  return null;
}

function tooBig(room: number): CodedError {
  return new CodedError(
    'INSUFFICIENT_RESOURCES',
    `the archive would take the server past its disk limit (${room} bytes left)`,
  );
}

/** Packs `names` of the folder `dirRel` into one archive in that folder (see the header). */
export async function compressFiles(
  job: ArchiveJob,
  p: { root: string; names: readonly string[]; format: ArchiveWriteFormat; name?: string | undefined },
  room: number,
): Promise<FileCompressData> {
  for (const n of p.names) checkName(n);
  const names = new Set(p.names);
  const name = p.name ?? defaultArchiveName(p.format);
  checkName(name);
  const dir = await openDirAt(job.root, splitPath(p.root));
  try {
    for (const n of names) {
      const st = await lstat(fdPath(dir.fh, n)).catch(() => null);
      if (!st) throw new CodedError('FILE_NOT_FOUND', `/${join(dir.rel, n)} does not exist`);
      job.deny.assert(join(dir.rel, n), st.isDirectory());
    }
    const target = join(dir.rel, name);
    job.deny.assert(target);
    if (await lstat(fdPath(dir.fh, name)).catch(() => null))
      throw new CodedError('FILE_EXISTS', `/${target} exists already`);
    if (room <= 0) throw tooBig(0);
    const tmp = fdPath(dir.fh, `.cap-compress-${randomBytes(8).toString('hex')}`);
    const out = await open(
      tmp,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o644,
    );
    let closed = false;
    job.progress?.('compressing');
    const { stream, done } = createArchive(fdPath(dir.fh), {
      format: p.format,
      ...(job.signal ? { signal: job.signal } : {}),
      // only the named entries of the folder, and nothing on the denylist under them
      filter: (rel, isDir) =>
        names.has(rel.split('/', 1)[0] as string) && !job.deny.denied(join(dir.rel, rel), isDir),
      onProgress: throttled(job.progress, 'compressing'),
    });
    done.catch(() => undefined);
    let size = 0;
    try {
      for await (const c of stream as AsyncIterable<Buffer>) {
        size += c.length;
        if (size > room) throw tooBig(room);
        await out.write(c);
      }
      const stats = await done;
      await out.sync();
      await out.close();
      closed = true;
      await link(tmp, fdPath(dir.fh, name)).catch((e) => {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST')
          throw new CodedError('FILE_EXISTS', `/${target} exists already`);
        throw e;
      });
      await unlink(tmp);
      await lchown(fdPath(dir.fh, name), job.owner.uid, job.owner.gid).catch(() => undefined);
      job.progress?.('done', `${mb(size)}, ${stats.entries} entries`);
      return { path: `/${target}`, size, entries: stats.entries, bytes: stats.bytes };
    } catch (e) {
      stream.destroy();
      if (!closed) await out.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
  } finally {
    await dir.fh.close();
  }
}

/** Unpacks an archive of the server's files (see the header); `room`: bytes the folder may still take. */
export async function decompressFile(
  job: ArchiveJob,
  p: { path: string; destination?: string | undefined },
  room: number,
  maxEntries = FILE_DECOMPRESS_MAX_ENTRIES,
): Promise<FileDecompressData> {
  const src = await openParent(job.root, p.path);
  let fh: FileHandle;
  let srcDir: string;
  try {
    const rel = join(src.rel, src.name);
    fh = await open(
      fdPath(src.fh, src.name),
      constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
    ).catch((e) => {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ELOOP') throw new CodedError('PATH_OUTSIDE_ROOT', 'the archive is a symbolic link');
      if (code === 'ENOENT') throw new CodedError('FILE_NOT_FOUND', `/${rel} does not exist`);
      throw e;
    });
    srcDir = src.rel;
    try {
      if (!(await fh.stat()).isFile())
        throw new CodedError('CONFIG_INVALID', `/${rel} is not a regular file`);
      job.deny.assert(rel);
    } catch (e) {
      await fh.close();
      throw e;
    }
  } finally {
    await src.fh.close();
  }
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    const format = sniffFormat(head.subarray(0, bytesRead));
    if (!format)
      throw new CodedError('ARCHIVE_INVALID', 'not an archive this Agent reads (tar.gz, tar.zst, tar, zip)');
    const destRel = p.destination ?? srcDir;
    const destParts = splitPath(destRel);
    if (p.destination !== undefined && destParts.length > 0)
      await createDirectory(job.root, destParts.join('/'), job.deny, true);
    const dest = await openDirAt(job.root, destParts);
    try {
      const common = {
        format,
        maxBytes: Number.isFinite(room) ? room : DEFAULT_MAX_BYTES,
        maxEntries,
        ...(job.signal ? { signal: job.signal } : {}),
        ...(job.tmpDir ? { tmpDir: job.tmpDir } : {}),
        check: (rel: string, type: string) => job.deny.assert(join(dest.rel, rel), type === 'directory'),
      };
      // each read opens the archive anew through its descriptor (the same file, whatever happens
      // to its name) and closes what it opened: a stream of the FileHandle itself would hold it open
      const read = (): Readable => archiveFileStream(fdPath(fh));
      job.progress?.('verifying');
      await verifyArchive(read(), { ...common, onProgress: throttled(job.progress, 'verifying') });
      job.progress?.('extracting');
      const destReal = await realpath(fdPath(dest.fh));
      const stats = await extractArchive(read(), destReal, {
        ...common,
        onProgress: throttled(job.progress, 'extracting'),
      });
      await chownTree(destReal, job.owner.uid, job.owner.gid);
      job.progress?.('done', `${mb(stats.bytes)}, ${stats.entries} entries`);
      return { destination: `/${dest.rel}`, bytes: stats.bytes, entries: stats.entries };
    } finally {
      await dest.fh.close();
    }
  } finally {
    await fh.close();
  }
}

/**
 * A folder as an archive made while it streams (a download): the folder resolved and proven
 * inside; its entries under its own name (`world/…`; the server's root: its entries at the top);
 * denied entries left out. Size unknown (the HTTP body is chunked).
 */
export async function openFolderArchive(
  root: string,
  rel: string,
  deny: Denylist,
  format: ArchiveWriteFormat,
): Promise<{ stream: Readable; name: string; close: () => Promise<void> }> {
  const real = await openDirAt(root, splitPath(rel));
  let dir = real;
  let only: string | null = null;
  try {
    deny.assert(real.rel, true);
    if (real.rel !== '') {
      only = path.posix.basename(real.rel);
      const parent = path.posix.dirname(real.rel);
      dir = await openDirAt(root, splitPath(parent === '.' ? '' : parent));
    }
  } finally {
    if (dir !== real) await real.fh.close();
  }
  try {
    const { stream, done } = createArchive(fdPath(dir.fh), {
      format,
      filter: (r, isDir) =>
        (only === null || r === only || r.startsWith(`${only}/`)) && !deny.denied(join(dir.rel, r), isDir),
    });
    done.catch(() => undefined);
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      stream.destroy();
      await dir.fh.close().catch(() => undefined);
    };
    stream.once('close', () => void close());
    return { stream, name: `${only ?? 'server'}.${format}`, close };
  } catch (e) {
    await dir.fh.close();
    throw e;
  }
}

/** Proof, when a ticket is issued, that the folder may be archived: its name. */
export async function folderArchiveName(
  root: string,
  rel: string,
  deny: Denylist,
  format: ArchiveWriteFormat,
): Promise<string> {
  const dir = await openDirAt(root, splitPath(rel));
  try {
    deny.assert(dir.rel, true);
    return `${dir.rel === '' ? 'server' : path.posix.basename(dir.rel)}.${format}`;
  } finally {
    await dir.fh.close();
  }
}

/** The name of a compress's temporary file (see compressFiles): exactly this, nothing else. */
export const COMPRESS_TEMP_NAME = /^\.cap-compress-[0-9a-f]{16}$/;
/** Entries looked at per server folder, at most, when sweeping (a bound on a huge tree). */
const SWEEP_MAX_ENTRIES = 2_000_000;

/**
 * A compress cut by the Agent's end (killed, the machine down) leaves its `.cap-compress-<hex>`
 * temporary file. At start, under each server's folder in `serversDir`, the regular files of
 * exactly that name last modified before `before` (the process's start: no compress of this
 * process can have made them) are removed. Links are never followed (neither into folders nor as
 * the file), and a file is removed only when its folder still resolves inside the server's.
 * Returns the paths removed.
 */
export async function removeStaleCompressTemps(serversDir: string, before: number): Promise<string[]> {
  const removed: string[] = [];
  const roots = await readdir(serversDir, { withFileTypes: true }).catch(() => []);
  for (const r of roots) {
    if (!r.isDirectory()) continue;
    const root = await realpath(path.join(serversDir, r.name)).catch(() => null);
    if (!root) continue;
    let seen = 0;
    const walk = async (dir: string): Promise<void> => {
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of entries) {
        if (++seen > SWEEP_MAX_ENTRIES) return;
        const p = path.join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.isFile() && COMPRESS_TEMP_NAME.test(e.name)) {
          const st = await lstat(p).catch(() => null);
          if (!st?.isFile() || st.mtimeMs >= before) continue;
          const real = await realpath(dir).catch(() => null);
          if (real === null || (real !== root && !real.startsWith(`${root}${path.sep}`))) continue;
          await unlink(path.join(real, e.name)).then(
            () => removed.push(p),
            () => undefined,
          );
        }
      }
    };
    await walk(root);
  }
  return removed;
}
