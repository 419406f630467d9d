/**
 * The one archiver of the Agent: server files (backups, compress/decompress in the file manager)
 * and, through the same code, Docker volumes (a volume is a directory on the host too).
 *
 * - create(root): a stream, never the archive in memory. The tree is walked through directory
 *   descriptors (`/proc/self/fd/N/name`, O_NOFOLLOW at every step), so a directory or file the game
 *   swaps for a link while we walk is never followed: a link is archived as a link, and only when
 *   extract would accept it (see paths.ts); sockets, FIFOs and devices are left out.
 * - extract(stream, root): every entry's path is checked (no `..`, not absolute), every parent is
 *   opened with O_NOFOLLOW from the root's descriptor (a link made by an earlier entry, or planted
 *   by the game, is never written through: ARCHIVE_UNSAFE), files are created O_EXCL|O_NOFOLLOW
 *   after what was there is unlinked, links and hardlinks must stay inside; total bytes and entry
 *   counts are capped (ARCHIVE_TOO_LARGE, checked against each header before a byte is written).
 * - verify(stream): the same read with nothing written: checksums (gzip CRC, zstd frame checksum,
 *   tar header checksums, zip CRC-32 per entry), structure, the entry rules; sha256 of the input.
 *
 * Levels: zstd 3 (zstd's own default: the knee of its speed/ratio curve, the `tar | zstd -3` the
 * issue measures) and gzip 6 (zlib's and GNU gzip's default, so `tar czf` is the fair comparison;
 * 9 costs about twice the time for 1–3 % less).
 */
import { createHash } from 'node:crypto';
import {
  close,
  closeSync,
  constants,
  createWriteStream,
  type Dirent,
  fchmodSync,
  fstatSync,
  futimesSync,
  linkSync,
  lstatSync,
  mkdirSync,
  open,
  openSync,
  read,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  type Stats,
  symlinkSync,
  unlinkSync,
  write,
  writeSync,
} from 'node:fs';
import { lutimes, mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { CodedError, isCodedError } from '@cap/protocol';
import ignore from 'ignore';
import { Header, type HeaderData, Pax } from 'tar';
import yauzl from 'yauzl';
import yazl from 'yazl';
import { entryParts, linkStaysInside } from './paths.ts';
import { encodeUstar, TYPE_DIRECTORY, TYPE_FILE, TYPE_HARDLINK, TYPE_SYMLINK } from './tar-header.ts';
import { ChunkQueue, readTar } from './tar-reader.ts';

export const ARCHIVE_FORMATS = ['tar.gz', 'tar.zst', 'tar', 'zip'] as const;
export type ArchiveFormat = (typeof ARCHIVE_FORMATS)[number];
export const ZSTD_LEVEL = 3;
export const GZIP_LEVEL = 6;
/** Caps when the caller names none (a restore passes the server's disk limit). */
export const DEFAULT_MAX_BYTES = 64 * 1024 ** 3;
export const DEFAULT_MAX_ENTRIES = 2_000_000;

const READ_CHUNK = 1024 * 1024;
/** decompressed bytes read ahead of the entry being written */
const READ_AHEAD = 8 * 1024 * 1024;
/** the size of the chunks handed to the compressor and of the compressor's own output chunks */
const OUT_CHUNK = 1024 * 1024;
const DIR_NOFOLLOW = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
/** a zip symlink's target is its body: more than PATH_MAX is not a target */
const LINK_BODY_MAX = 4096;

export interface ArchiveStats {
  /** bytes of file data (uncompressed) */
  bytes: number;
  /** entries: files, directories, links */
  entries: number;
  /** what create left out: links pointing outside, sockets, FIFOs, devices, vanished entries */
  skipped: number;
}

interface Common {
  signal?: AbortSignal;
  /** after each entry: file bytes and entries so far */
  onProgress?: (bytes: number, entries: number) => void;
}
export interface CreateOptions extends Common {
  format: ArchiveFormat;
  /** lines in `.pteroignore` (gitignore) syntax: matching paths are left out */
  ignore?: readonly string[];
  /** override the compression level (zstd 1–19, gzip and zip 1–9) */
  level?: number;
  /** entries (path from the root, no leading slash) it returns false for are left out, with what is under them */
  filter?: (rel: string, isDir: boolean) => boolean;
}
export interface ReadOptions extends Common {
  format: ArchiveFormat;
  maxBytes?: number;
  maxEntries?: number;
  /** where a zip is spooled (it is read from its end); default the OS temp directory */
  tmpDir?: string;
  /** called with each entry's path (checked: no `..`, not absolute) before it is read or written; throw to refuse */
  check?: (rel: string, type: 'file' | 'directory' | 'symlink' | 'hardlink' | 'other') => void;
  /** (tar) a link pointing outside is read as `other` (left out) instead of refused: for a tree's own tar (repackArchive of a volume) */
  dropLinksOut?: boolean;
}
export interface VerifyResult extends ArchiveStats {
  /** sha256 (hex) and size of the archive as read */
  sha256: string;
  archiveBytes: number;
}

function aborted(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return isCodedError(r) ? r : new CodedError('OPERATION_SUPERSEDED', 'the archive operation was aborted');
}

function invalid(e: unknown): CodedError {
  if (isCodedError(e)) return e;
  const msg = (e as Error)?.message ?? String(e);
  return new CodedError('ARCHIVE_INVALID', `corrupt or truncated archive: ${msg}`, { cause: e });
}

// ---------------------------------------------------------------------------------------------
// create

interface TreeEntry {
  rel: string;
  /** a hardlink only from repackTar (its linkpath: a path from the root) */
  kind: 'file' | 'directory' | 'symlink' | 'hardlink';
  mode: number;
  uid: number;
  gid: number;
  /** Stats' mtimeMs (a Date only where one is needed: zip, node-tar's Header) */
  mtimeMs: number;
  size: number;
  linkpath?: string;
  /** an open regular file (O_NOFOLLOW, through its parent's descriptor); the consumer closes it */
  fd?: number;
  /** or the file's data as it comes (repackTar: exactly `size` bytes) */
  body?: Body;
}

/**
 * Lets the event loop run between bursts of synchronous file-system calls. Metadata calls and
 * small reads are synchronous on purpose: each takes microseconds from the page cache, while an
 * async call costs a threadpool round trip (and contends with the compressor for that pool): 20k
 * small files took 13 s async, a fraction of a second this way. Large files are read async.
 */
function pacer(everyMs = 4): () => Promise<void> | undefined {
  let last = performance.now();
  return () => {
    const now = performance.now();
    if (now - last < everyMs) return undefined;
    last = now;
    return new Promise<void>((r) => setImmediate(r));
  };
}

/**
 * The process umask from /proc (never set to read it: a file another thread creates meanwhile
 * would get the wrong bits); null when unknown.
 */
function currentUmask(): number | null {
  try {
    const m = /^Umask:\s+([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m?.[1] ? Number.parseInt(m[1], 8) : null;
  } catch {
    return null;
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/**
 * The tree under `root`, depth first, names sorted; see the header for why through descriptors.
 * One level of generator and an explicit stack (nested `yield*` costs a promise per level per
 * entry), and the entry types from readdir (no lstat but for links and unknown types).
 */
async function* walkTree(
  root: string,
  ignoreLines: readonly string[],
  stats: ArchiveStats,
  signal: AbortSignal | undefined,
  filter?: (rel: string, isDir: boolean) => boolean,
): AsyncGenerator<TreeEntry> {
  const lines = ignoreLines.filter((l) => l.length <= 4096 && l.trim() !== '');
  const ig = lines.length > 0 ? ignore({ allowRelativePaths: true }).add(lines) : null;
  const pace = pacer();
  interface Level {
    fd: number;
    rel: string;
    names: Dirent[];
    next: number;
  }
  const list = (fd: number): Dirent[] =>
    readdirSync(`/proc/self/fd/${fd}`, { withFileTypes: true }).sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    );
  const top = openSync(await realpath(root), DIR_NOFOLLOW);
  const stack: Level[] = [];
  try {
    stack.push({ fd: top, rel: '', names: list(top), next: 0 });
    while (stack.length > 0) {
      const level = stack[stack.length - 1] as Level;
      const d = level.names[level.next++];
      if (!d) {
        stack.pop();
        if (level.fd !== top) closeQuietly(level.fd);
        continue;
      }
      if (signal?.aborted) throw aborted(signal);
      const wait = pace();
      if (wait) await wait;
      const name = d.name;
      const rel = level.rel ? `${level.rel}/${name}` : name;
      const p = `/proc/self/fd/${level.fd}/${name}`;
      let isDir = d.isDirectory();
      let isFile = d.isFile();
      let isLink = d.isSymbolicLink();
      const unknownType =
        !isDir &&
        !isFile &&
        !isLink &&
        !d.isBlockDevice() &&
        !d.isCharacterDevice() &&
        !d.isFIFO() &&
        !d.isSocket();
      if (unknownType) {
        // DT_UNKNOWN on some file systems: ask
        const st = lstatSync(p, { throwIfNoEntry: false });
        isDir = st?.isDirectory() ?? false;
        isFile = st?.isFile() ?? false;
        isLink = st?.isSymbolicLink() ?? false;
      }
      if (ig?.ignores(isDir ? `${rel}/` : rel)) continue;
      if (filter && !filter(rel, isDir)) continue;
      if (isDir || isFile) {
        let fd: number;
        try {
          // O_NOFOLLOW: a link swapped in since the listing fails (ELOOP / ENOTDIR), never followed
          if (isDir && stack.length >= 256) throw new Error('too deep');
          fd = openSync(
            p,
            isDir ? DIR_NOFOLLOW : constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
          );
        } catch {
          stats.skipped++;
          continue;
        }
        const st = fstatSync(fd);
        // mtimeMs, not mtime: Stats' date getters define a property on each Stats (slow in V8);
        // one object literal per entry, no spread
        const mode = st.mode & 0o7777;
        if (st.isDirectory() && isDir) {
          // on the stack before the yield: a consumer that stops here (return/throw) has it closed
          // by the finally below, as is one whose listing fails
          let names: Dirent[];
          try {
            names = list(fd);
          } catch (err) {
            closeQuietly(fd);
            throw err;
          }
          stack.push({ fd, rel, names, next: 0 });
          yield { rel, kind: 'directory', mode, uid: st.uid, gid: st.gid, mtimeMs: st.mtimeMs, size: 0 };
        } else if (st.isFile() && isFile) {
          yield { rel, kind: 'file', mode, uid: st.uid, gid: st.gid, mtimeMs: st.mtimeMs, size: st.size, fd };
        } else {
          // swapped for another kind of entry meanwhile
          closeQuietly(fd);
          stats.skipped++;
        }
      } else if (isLink) {
        let target: string | null = null;
        let st: Stats | undefined;
        try {
          target = readlinkSync(p);
          st = lstatSync(p, { throwIfNoEntry: false });
        } catch {
          // vanished
        }
        if (target === null || !st || !linkStaysInside(rel.split('/'), target)) {
          stats.skipped++;
          continue;
        }
        yield {
          rel,
          uid: st.uid,
          gid: st.gid,
          mtimeMs: st.mtimeMs,
          kind: 'symlink',
          mode: 0o777,
          size: 0,
          linkpath: target,
        };
      } else {
        stats.skipped++;
      }
    }
  } finally {
    for (const l of stack) if (l.fd !== top) closeQuietly(l.fd);
    closeQuietly(top);
  }
}

/** Files up to this size are read in one synchronous call. */
const SMALL_FILE = 256 * 1024;

/** Reads exactly `size` bytes (a file that shrank meanwhile is padded with zeros, as GNU tar does). */
async function* fileChunks(fd: number, size: number): AsyncGenerator<Buffer> {
  let pos = 0;
  while (pos < size) {
    const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, size - pos));
    const bytesRead =
      size <= SMALL_FILE
        ? readSync(fd, buf, 0, buf.length, pos)
        : await new Promise<number>((res, rej) =>
            read(fd, buf, 0, buf.length, pos, (e, n) => (e ? rej(e) : res(n))),
          );
    if (bytesRead === 0) {
      buf.fill(0);
      pos += buf.length;
      yield buf;
      continue;
    }
    pos += bytesRead;
    yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
  }
}

/** How many OUT_CHUNK buffers the compressed tar stream cycles through (4 MiB in all). */
const POOL_BUFFERS = 4;

/**
 * Where the tar stream goes, in buffers of OUT_CHUNK bytes that the packer fills and hands over.
 *
 * In front of a compressor the buffers are reused: zlib and zstd copy what they take into their
 * own window, and a chunk's write callback comes only once the compressor is done with it (the
 * Transform calls it when `_transform` has consumed the chunk), so the buffer goes back to the pool
 * then. A fresh 1 MiB buffer per chunk cost a mark-compact every ~60 MB of external memory (about
 * 2 s of GC in 500 MB) and a page fault per 4 KiB of each new buffer. The pool also bounds what is
 * in flight: the packer waits for a free buffer, which comes as fast as the compressor goes.
 *
 * Uncompressed, the consumer may keep what it is given (a write stream's queue, an HTTP body,
 * an S3 part), so every buffer is new and `drain` is the backpressure.
 */
class TarSink {
  /** what the packer gets when the stream was closed under it (the consumer's error is the real one) */
  readonly closed = new CodedError('INTERNAL_ERROR', 'the archive stream was closed');
  readonly #head: Transform;
  readonly #pooled: boolean;
  readonly #free: Buffer[] = [];
  #made = 0;
  #waiter: { resolve: (b: Buffer) => void; reject: (e: unknown) => void } | null = null;
  #failure: unknown;

  constructor(head: Transform, pooled: boolean) {
    this.#head = head;
    this.#pooled = pooled;
    // a destroyed head never calls back what it held: whoever waits is let go
    head.once('close', () => this.#fail(this.closed));
  }

  #fail(e: unknown): void {
    if (this.#failure !== undefined) return;
    this.#failure = e;
    const w = this.#waiter;
    this.#waiter = null;
    w?.reject(e);
  }

  /** A buffer to fill (OUT_CHUNK bytes). */
  take(): Buffer | Promise<Buffer> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (!this.#pooled) return Buffer.allocUnsafe(OUT_CHUNK);
    const b = this.#free.pop();
    if (b) return b;
    if (this.#made < POOL_BUFFERS) {
      this.#made++;
      // not from Node's small-buffer pool (this one is reused whole)
      return Buffer.allocUnsafeSlow(OUT_CHUNK);
    }
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  /** Hands over `buf[0, n)`; the packer does not touch `buf` again. */
  put(buf: Buffer, n: number): Promise<void> | undefined {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const view = n === buf.length ? buf : buf.subarray(0, n);
    if (this.#pooled) {
      this.#head.write(view, (err) => {
        // after a failure the buffer may still be in the compressor's hands: never reused
        if (err) return this.#fail(err);
        const w = this.#waiter;
        if (w) {
          this.#waiter = null;
          w.resolve(buf);
        } else this.#free.push(buf);
      });
      return undefined;
    }
    if (this.#head.write(view)) return undefined;
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        this.#head.off('drain', done);
        this.#head.off('close', done);
        if (this.#failure !== undefined) reject(this.#failure);
        else resolve();
      };
      this.#head.on('drain', done);
      this.#head.on('close', done);
    });
  }
}

/**
 * An entry's header through node-tar (what encodeUstar leaves to it: long or non-ASCII paths and
 * links, numbers past their octal fields): the pax extended header first when node-tar needs one,
 * as node-tar's own Pack, then the ustar block (`block`, all zeros on entry).
 */
function nodeTarHeader(e: TreeEntry, entryPath: string, size: number, block: Buffer): Buffer {
  // set field by field: Header's constructor copies an object through entries/filter/assign
  const h = new Header();
  h.path = entryPath;
  h.mode = e.mode;
  h.uid = e.uid;
  h.gid = e.gid;
  h.size = size;
  h.mtime = new Date(e.mtimeMs);
  h.type =
    e.kind === 'file'
      ? 'File'
      : e.kind === 'directory'
        ? 'Directory'
        : e.kind === 'hardlink'
          ? 'Link'
          : 'SymbolicLink';
  h.uname = '';
  h.gname = '';
  if (e.linkpath !== undefined) h.linkpath = e.linkpath;
  if (!h.encode(block, 0)) return block;
  const data: HeaderData = {
    path: entryPath,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    size,
    mtime: h.mtime,
    type: h.type as HeaderData['type'],
    uname: '',
    gname: '',
    ...(e.linkpath !== undefined ? { linkpath: e.linkpath } : {}),
  };
  return Buffer.concat([new Pax(data).encode(), block]);
}

/**
 * The tar stream (headers by encodeUstar, else node-tar's Header and Pax) written straight into the sink's
 * buffers: headers, small files and large files alike fill each buffer to the end, so every
 * chunk but the last is OUT_CHUNK bytes and no file data is copied. Files up to SMALL_FILE are
 * read with one synchronous call (page cache: microseconds, see `pacer`), larger ones with
 * async reads straight into the buffer, as large as the buffer's free space (up to 1 MiB).
 */
async function packTar(
  entries: AsyncIterable<TreeEntry>,
  sink: TarSink,
  stats: ArchiveStats,
  opts: CreateOptions,
): Promise<void> {
  let buf = await sink.take();
  let off = 0;
  /** hands the full buffer over and takes the next */
  const next = async () => {
    const wait = sink.put(buf, off);
    if (wait) await wait;
    const b = sink.take();
    buf = b instanceof Promise ? await b : b;
    off = 0;
  };
  /** copies `src` in, across buffers */
  const copyIn = async (src: Buffer) => {
    for (let done = 0; done < src.length; ) {
      if (off === buf.length) await next();
      const n = src.copy(buf, off, done);
      off += n;
      done += n;
    }
  };
  /** `n` zero bytes, across buffers */
  const zeros = async (n: number) => {
    while (n > 0) {
      if (off === buf.length) await next();
      const k = Math.min(n, buf.length - off);
      buf.fill(0, off, off + k);
      off += k;
      n -= k;
    }
  };
  const block = Buffer.alloc(512);
  for await (const e of entries) {
    if (opts.signal?.aborted) throw aborted(opts.signal);
    try {
      const size = e.kind === 'file' ? e.size : 0;
      const entryPath = e.kind === 'directory' ? `${e.rel}/` : e.rel;
      block.fill(0);
      const type =
        e.kind === 'file'
          ? TYPE_FILE
          : e.kind === 'directory'
            ? TYPE_DIRECTORY
            : e.kind === 'hardlink'
              ? TYPE_HARDLINK
              : TYPE_SYMLINK;
      const header = encodeUstar(block, entryPath, type, e.mode, e.uid, e.gid, size, e.mtimeMs, e.linkpath)
        ? block
        : nodeTarHeader(e, entryPath, size, block);
      // no promise per header when it fits (it nearly always does: the stream stays 512-aligned)
      if (buf.length - off >= header.length) off += header.copy(buf, off);
      else await copyIn(header);
      if (e.fd !== undefined && size > 0) {
        const fd = e.fd;
        const sync = size <= SMALL_FILE;
        for (let pos = 0; pos < size; ) {
          if (off === buf.length) await next();
          if (opts.signal?.aborted) throw aborted(opts.signal);
          const want = Math.min(size - pos, buf.length - off);
          const target = buf;
          const at = off;
          const n = sync
            ? readSync(fd, target, at, want, pos)
            : await new Promise<number>((res, rej) =>
                read(fd, target, at, want, pos, (err, got) => (err ? rej(err) : res(got))),
              );
          if (n === 0) {
            // shrank meanwhile: zeros, as GNU tar
            await zeros(size - pos);
            break;
          }
          off += n;
          pos += n;
        }
        const pad = (512 - (size % 512)) % 512;
        if (buf.length - off >= pad) {
          buf.fill(0, off, off + pad);
          off += pad;
        } else await zeros(pad);
      } else if (e.body !== undefined && size > 0) {
        let got = 0;
        await e.body(async (c) => {
          got += c.length;
          if (got > size) throw new CodedError('ARCHIVE_INVALID', `${e.rel} has more data than its size`);
          await copyIn(c);
        });
        if (got !== size) throw new CodedError('ARCHIVE_INVALID', `${e.rel} has less data than its size`);
        await zeros((512 - (size % 512)) % 512);
      }
    } finally {
      if (e.fd !== undefined) closeQuietly(e.fd);
    }
    stats.entries++;
    stats.bytes += e.size;
    opts.onProgress?.(stats.bytes, stats.entries);
  }
  // the end: two zero blocks
  await zeros(1024);
  const wait = sink.put(buf, off);
  if (wait) await wait;
}

function compressor(format: ArchiveFormat, level?: number): Transform | null {
  if (format === 'tar.gz') return zlib.createGzip({ level: level ?? GZIP_LEVEL, chunkSize: OUT_CHUNK });
  if (format === 'tar.zst')
    return zlib.createZstdCompress({
      chunkSize: OUT_CHUNK,
      params: {
        [zlib.constants.ZSTD_c_compressionLevel]: level ?? ZSTD_LEVEL,
        // a checksum over the content: verify() then proves the data, not just the framing
        [zlib.constants.ZSTD_c_checksumFlag]: 1,
      },
    });
  return null;
}

function decompressor(format: ArchiveFormat): Transform | null {
  if (format === 'tar.gz') return zlib.createGunzip({ chunkSize: OUT_CHUNK });
  if (format === 'tar.zst') return zlib.createZstdDecompress({ chunkSize: OUT_CHUNK });
  return null;
}

/**
 * The archive of `root` as a stream; `done` settles with the counts once the last byte is out
 * (or with the error the stream was destroyed with). Consume the stream, or destroy it.
 */
export function createArchive(
  root: string,
  opts: CreateOptions,
): { stream: Readable; done: Promise<ArchiveStats> } {
  const stats: ArchiveStats = { bytes: 0, entries: 0, skipped: 0 };
  const walk = walkTree(root, opts.ignore ?? [], stats, opts.signal, opts.filter);
  const out = new PassThrough({ highWaterMark: 1024 * 1024 });
  let done: Promise<ArchiveStats>;
  if (opts.format === 'zip') {
    done = zipTo(walk, out, stats, opts);
  } else {
    const comp = compressor(opts.format, opts.level);
    const head = comp ?? new PassThrough({ highWaterMark: 2 * OUT_CHUNK });
    const piped = pipeline(head, out);
    const sink = new TarSink(head, comp !== null);
    const packed = packTar(walk, sink, stats, opts).then(
      () => {
        head.end();
      },
      (e: unknown) => {
        head.destroy(e as Error);
        throw e;
      },
    );
    piped.catch(() => undefined);
    // the packer's own error (the pipeline's is then its echo), unless the stream was closed
    // under it: then the pipeline's (the consumer's) error
    done = packed
      .catch((e: unknown) => (e === sink.closed ? piped.then(() => Promise.reject(e)) : Promise.reject(e)))
      .then(() => piped)
      .then(() => stats);
  }
  done.catch((e) => out.destroy(e));
  return { stream: out, done };
}

async function zipTo(
  walk: AsyncGenerator<TreeEntry>,
  out: PassThrough,
  stats: ArchiveStats,
  opts: CreateOptions,
): Promise<ArchiveStats> {
  const zip = new yazl.ZipFile();
  let zipError: ((e: Error) => void) | undefined;
  const failed = new Promise<never>((_, reject) => {
    zipError = reject;
  });
  failed.catch(() => undefined);
  zip.on('error', (e: Error) => zipError?.(e));
  const written = pipeline(zip.outputStream, out);
  written.catch(() => undefined);
  const level = opts.level ?? GZIP_LEVEL;
  try {
    for await (const e of walk) {
      const o = { mtime: new Date(e.mtimeMs), mode: e.mode };
      try {
        if (e.kind === 'directory') zip.addEmptyDirectory(e.rel, { ...o, mode: 0o40000 | e.mode });
        else if (e.kind === 'symlink')
          zip.addBuffer(Buffer.from(e.linkpath ?? ''), e.rel, { ...o, mode: 0o120777, compress: false });
        else if (e.size === 0) zip.addBuffer(Buffer.alloc(0), e.rel, { ...o, mode: 0o100000 | e.mode });
        else {
          const fd = e.fd!;
          // one file at a time: the walk waits until yazl has read this one (bounded descriptors)
          const read = new Promise<void>((resolve, reject) => {
            zip.addReadStreamLazy(
              e.rel,
              { ...o, mode: 0o100000 | e.mode, size: e.size, compressionLevel: level },
              (cb: (err: Error | null, stream: NodeJS.ReadableStream) => void) => {
                const rs = Readable.from(fileChunks(fd, e.size), { objectMode: false });
                rs.once('end', () => resolve());
                rs.once('error', reject);
                cb(null, rs);
              },
            );
          });
          await Promise.race([read, failed]);
        }
      } finally {
        if (e.fd !== undefined) closeQuietly(e.fd);
      }
      stats.entries++;
      stats.bytes += e.size;
      opts.onProgress?.(stats.bytes, stats.entries);
    }
    zip.end();
    await Promise.race([written, failed]);
    return stats;
  } catch (e) {
    (zip.outputStream as Readable).destroy(e as Error);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// reading (shared by extract and verify)

interface ArchiveEntry {
  parts: string[];
  type: 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';
  size: number;
  mode: number;
  /** numeric owner, when the archive carries one (a tar) */
  uid?: number | undefined;
  gid?: number | undefined;
  mtime: Date | undefined;
  /** symlink target, or the (checked) parts of a hardlink's target as a path */
  linkpath?: string;
  linkParts?: string[];
  /** file data, counted against the byte cap as it comes */
  body: Body;
}

/** Checks an entry's path and links; throws ARCHIVE_UNSAFE. */
function checkEntry(
  rawPath: string,
  type: ArchiveEntry['type'],
  linkpath: string | undefined,
): { parts: string[]; linkParts?: string[] } {
  const parts = entryParts(rawPath);
  if (type === 'symlink') {
    if (linkpath === undefined || !linkStaysInside(parts, linkpath))
      throw new CodedError(
        'ARCHIVE_UNSAFE',
        `link ${JSON.stringify(rawPath.slice(0, 200))} points outside the root (${JSON.stringify((linkpath ?? '').slice(0, 200))})`,
      );
  }
  if (type === 'hardlink') {
    const lp = linkpath ?? '';
    let linkParts: string[];
    try {
      linkParts = entryParts(lp);
    } catch {
      throw new CodedError(
        'ARCHIVE_UNSAFE',
        `hard link ${JSON.stringify(rawPath.slice(0, 200))} points outside the root (${JSON.stringify(lp.slice(0, 200))})`,
      );
    }
    if (linkParts.length === 0) throw new CodedError('ARCHIVE_UNSAFE', 'hard link to the root');
    return { parts, linkParts };
  }
  return { parts };
}

class Caps {
  bytes = 0;
  entries = 0;
  readonly maxBytes: number;
  readonly maxEntries: number;
  constructor(opts: ReadOptions) {
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    this.maxEntries = opts.maxEntries ?? DEFAULT_MAX_ENTRIES;
  }
  entry(size: number): void {
    if (++this.entries > this.maxEntries)
      throw new CodedError('ARCHIVE_TOO_LARGE', `the archive has more than ${this.maxEntries} entries`);
    if (this.bytes + size > this.maxBytes) this.tooBig();
  }
  add(n: number): void {
    this.bytes += n;
    if (this.bytes > this.maxBytes) this.tooBig();
  }
  tooBig(): never {
    throw new CodedError('ARCHIVE_TOO_LARGE', `the archive unpacks to more than ${this.maxBytes} bytes`);
  }
}

/**
 * An entry's data: each chunk, in order, to `fn` (awaited when it returns a promise); settles when
 * the data ends or with the first error (the byte cap, an abort, the archive's, `fn`'s).
 */
type Body = (fn: (c: Buffer) => void | Promise<void>) => Promise<void>;

function iterBody(chunks: AsyncIterable<Buffer>): Body {
  return async (fn) => {
    for await (const c of chunks) {
      const r = fn(c);
      if (r) await r;
    }
  };
}

async function* counted(
  body: AsyncIterable<Buffer>,
  caps: Caps,
  signal?: AbortSignal,
): AsyncGenerator<Buffer> {
  for await (const c of body) {
    if (signal?.aborted) throw aborted(signal);
    caps.add(c.length);
    yield c;
  }
}

const TAR_TYPES: ReadonlyMap<string, ArchiveEntry['type']> = new Map([
  ['File', 'file'],
  ['OldFile', 'file'],
  ['ContiguousFile', 'file'],
  ['Directory', 'directory'],
  ['GNUDumpDir', 'directory'],
  ['SymbolicLink', 'symlink'],
  ['Link', 'hardlink'],
]);

/** Calls `handle` for each entry in order, one at a time; rejects with the first failure. */
async function readEntries(
  input: Readable,
  opts: ReadOptions,
  seen: ((c: Buffer) => void) | null,
  handle: (e: ArchiveEntry) => Promise<void>,
): Promise<void> {
  if (opts.signal?.aborted) throw aborted(opts.signal);
  /** `seen` as a stage of a pipe */
  const tapOf = (f: (c: Buffer) => void) =>
    new Transform({
      transform(c: Buffer, _enc, cb) {
        f(c);
        cb(null, c);
      },
    });
  if (opts.format === 'zip') return readZip(input, opts, seen ? tapOf(seen) : null, handle);
  const caps = new Caps(opts);
  const dec = decompressor(opts.format);
  const signal = opts.signal;
  let s: Readable = input;
  let tap: Transform | null = null;
  if (dec && input instanceof ArchiveFileStream) {
    // the file's buffers reused (see ArchiveFileStream)
    input.feed(dec, seen);
    s = dec;
  } else {
    if (seen) {
      tap = tapOf(seen);
      s = s.pipe(tap);
    }
    if (dec) s = s.pipe(dec);
  }
  // read-ahead: the decompressor (in the threadpool) goes on while the entries before are
  // written, instead of waiting for the reader's next read (bounded: READ_AHEAD bytes)
  const q = new ChunkQueue(s, READ_AHEAD);
  let failure: unknown;
  const fail = (e: unknown) => {
    if (failure !== undefined) return;
    failure = e;
    q.fail(e);
    input.unpipe();
    input.destroy();
    tap?.destroy();
    dec?.destroy();
  };
  const onAbort = () => fail(aborted(signal!));
  signal?.addEventListener('abort', onAbort, { once: true });
  input.on('error', (e) => fail(e));
  // an input destroyed before its end (a closed upload) never ends the pipe: a failure, not a hang
  input.on('close', () => {
    if (!input.readableEnded) fail(invalid(new Error('the input was closed before its end')));
  });
  tap?.on('error', (e) => fail(e));
  dec?.on('error', (e) => fail(invalid(e)));
  try {
    await readTar(
      q,
      async (entry, raw) => {
        let type = TAR_TYPES.get(entry.type) ?? 'other';
        const size = type === 'file' ? entry.size : 0;
        let checked: ReturnType<typeof checkEntry>;
        try {
          checked = checkEntry(entry.path, type, entry.linkpath);
        } catch (e) {
          if (!opts.dropLinksOut || (type !== 'symlink' && type !== 'hardlink')) throw e;
          // a link out of the root, left out (as create leaves it out)
          checked = { parts: entryParts(entry.path) };
          type = 'other';
        }
        caps.entry(size);
        await handle({
          ...checked,
          type,
          size,
          mode: entry.mode ?? (type === 'directory' ? 0o755 : 0o644),
          uid: entry.uid,
          gid: entry.gid,
          mtime: entry.mtime,
          ...(entry.linkpath !== undefined ? { linkpath: entry.linkpath } : {}),
          // counted against the byte cap before `fn` sees a byte
          body: (fn) =>
            raw((c) => {
              if (signal?.aborted) throw aborted(signal);
              caps.add(c.length);
              return fn(c);
            }),
        });
      },
      () => {
        if (signal?.aborted) throw aborted(signal);
      },
    );
  } catch (e) {
    fail(e);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  if (failure !== undefined) throw failure;
}

function zipEntryType(e: yauzl.Entry): ArchiveEntry['type'] {
  const name = e.fileName as unknown as Buffer;
  const unixMode = (e.externalFileAttributes >>> 16) & 0o170000;
  if (unixMode === 0o120000) return 'symlink';
  if (name[name.length - 1] === 0x2f || unixMode === 0o040000) return 'directory';
  if (unixMode === 0 || unixMode === 0o100000) return 'file';
  return 'other';
}

async function readZip(
  input: Readable,
  opts: ReadOptions,
  tap: Transform | null,
  handle: (e: ArchiveEntry) => Promise<void>,
): Promise<void> {
  const caps = new Caps(opts);
  const dir = await mkdtemp(path.join(opts.tmpDir ?? tmpdir(), 'cap-zip-'));
  try {
    const file = path.join(dir, 'in.zip');
    // the central directory is at the end: spooled to disk, capped (a zip's data is at most
    // the entries' sizes plus a few hundred bytes of headers per entry)
    const spoolCap = caps.maxBytes + Math.min(caps.maxEntries, 1_000_000) * 512 + 1024 * 1024;
    let spooled = 0;
    const limit = new Transform({
      transform(c: Buffer, _enc, cb) {
        spooled += c.length;
        if (spooled > spoolCap)
          cb(new CodedError('ARCHIVE_TOO_LARGE', `the zip is larger than ${spoolCap} bytes`));
        else cb(null, c);
      },
    });
    const stages: (NodeJS.ReadableStream | NodeJS.WritableStream)[] = [input];
    if (tap) stages.push(tap);
    stages.push(limit, createWriteStream(file, { mode: 0o600 }));
    await (pipeline as (...s: unknown[]) => Promise<void>)(...stages, { signal: opts.signal });
    const zf = await new Promise<yauzl.ZipFile>((resolve, reject) =>
      yauzl.open(
        file,
        { lazyEntries: true, decodeStrings: false, validateEntrySizes: true, autoClose: true },
        (err, z) => (err || !z ? reject(invalid(err)) : resolve(z)),
      ),
    );
    try {
      await new Promise<void>((resolve, reject) => {
        let failed = false;
        const fail = (e: unknown) => {
          if (failed) return;
          failed = true;
          zf.close();
          reject(e);
        };
        zf.on('error', (e) => fail(invalid(e)));
        zf.on('end', () => {
          if (!failed) resolve();
        });
        zf.on('entry', (e: yauzl.Entry) => {
          void (async () => {
            const rawName = (e.fileName as unknown as Buffer).toString(
              (e.generalPurposeBitFlag & 0x800) !== 0 ? 'utf8' : 'latin1',
            );
            const type = zipEntryType(e);
            const size = type === 'file' ? e.uncompressedSize : 0;
            const stream = () =>
              new Promise<Readable>((res, rej) =>
                zf.openReadStream(e, (err, rs) => (err || !rs ? rej(invalid(err)) : res(rs))),
              );
            // CRC-32 of what came out (yauzl does not check it)
            async function* checked(rs: Readable): AsyncGenerator<Buffer> {
              let crc = 0;
              try {
                for await (const c of rs as AsyncIterable<Buffer>) {
                  crc = zlib.crc32(c, crc);
                  yield c;
                }
              } catch (err) {
                throw invalid(err);
              }
              if (crc >>> 0 !== e.crc32 >>> 0)
                throw new CodedError(
                  'ARCHIVE_INVALID',
                  `corrupt archive: CRC-32 mismatch in ${JSON.stringify(rawName.slice(0, 200))}`,
                );
            }
            let linkpath: string | undefined;
            if (type === 'symlink') {
              if (e.uncompressedSize > LINK_BODY_MAX)
                throw new CodedError('ARCHIVE_UNSAFE', 'symbolic link target too long');
              const chunks: Buffer[] = [];
              for await (const c of checked(await stream())) chunks.push(c);
              linkpath = Buffer.concat(chunks).toString('utf8');
            }
            const c = checkEntry(rawName, type, linkpath);
            caps.entry(size);
            const unixMode = (e.externalFileAttributes >>> 16) & 0o7777;
            const empty = (async function* () {})();
            await handle({
              ...c,
              type,
              size,
              mode: unixMode || (type === 'directory' ? 0o755 : 0o644),
              mtime: e.getLastModDate(),
              ...(linkpath !== undefined ? { linkpath } : {}),
              body: iterBody(type === 'file' ? counted(checked(await stream()), caps, opts.signal) : empty),
            });
            zf.readEntry();
          })().catch(fail);
        });
        zf.readEntry();
      });
    } finally {
      zf.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// extract

/**
 * Writes entries under a root, never through a link (see the header). Synchronous calls with the
 * event loop let in every millisecond (each turn feeds the decompressor; see `pacer` and the
 * read-ahead in readEntries); large files are written async.
 */
class TreeWriter {
  readonly #root: number;
  #cached: { key: string; fd: number } | null = null;
  /** directory modes and times, applied at the end (a read-only directory must still be filled) */
  readonly #dirs: { parts: string[]; mode: number; mtime: Date | undefined }[] = [];
  /** often: every yield lets the decompressor take its next chunk (see readEntries' read-ahead) */
  readonly pace = pacer(1);
  /** the process umask: a file created with its final mode needs no fchmod */
  readonly #umask = currentUmask();

  private constructor(root: number) {
    this.#root = root;
  }

  static async open(root: string): Promise<TreeWriter> {
    return new TreeWriter(openSync(await realpath(root), DIR_NOFOLLOW));
  }

  /** The directory at `parts` (created when missing), opened step by step with O_NOFOLLOW. */
  dir(parts: readonly string[], create: boolean): number {
    if (parts.length === 0) return this.#root;
    const key = parts.join('/');
    if (this.#cached?.key === key) return this.#cached.fd;
    const shown = JSON.stringify(key.slice(0, 200));
    let cur = this.#root;
    try {
      for (const name of parts) {
        const p = `/proc/self/fd/${cur}/${name}`;
        let next: number | null = null;
        for (let attempt = 0; next === null; attempt++) {
          try {
            next = openSync(p, DIR_NOFOLLOW);
          } catch (e) {
            const code = (e as NodeJS.ErrnoException).code;
            // O_DIRECTORY|O_NOFOLLOW on a link: ELOOP or ENOTDIR, depending on the kernel's order
            const isLink =
              code === 'ELOOP' ||
              (code === 'ENOTDIR' && lstatSync(p, { throwIfNoEntry: false })?.isSymbolicLink());
            if (isLink) throw new CodedError('ARCHIVE_UNSAFE', `${shown} goes through a symbolic link`);
            if (code === 'ENOTDIR')
              throw new CodedError('ARCHIVE_INVALID', `${shown}: a file is in the way of a directory`);
            if (code !== 'ENOENT' || !create || attempt > 2) throw e;
            try {
              mkdirSync(p, 0o755);
            } catch (m) {
              if ((m as NodeJS.ErrnoException).code !== 'EEXIST') throw m;
            }
          }
        }
        if (cur !== this.#root) closeQuietly(cur);
        cur = next;
      }
    } catch (e) {
      if (cur !== this.#root) closeQuietly(cur);
      throw e;
    }
    if (this.#cached) closeQuietly(this.#cached.fd);
    this.#cached = { key, fd: cur };
    return cur;
  }

  /** Makes room for a new entry at `name` in `dir`: a file or link there is unlinked (never followed). */
  #clear(dir: number, name: string): string {
    const p = `/proc/self/fd/${dir}/${name}`;
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (st?.isDirectory())
      throw new CodedError(
        'ARCHIVE_INVALID',
        `${JSON.stringify(name.slice(0, 200))}: a directory is in the way of a file`,
      );
    if (st) unlinkSync(p);
    return p;
  }

  /**
   * Creates an entry exclusively (O_EXCL / symlink(2), never through what is there); when
   * something is in the way it is unlinked (see #clear) and the creation tried once more. Trying
   * first saves an lstat per entry on a fresh tree.
   */
  #create<T>(dir: number, name: string, make: (p: string) => T): T {
    const p = `/proc/self/fd/${dir}/${name}`;
    try {
      return make(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    this.#clear(dir, name);
    return make(p);
  }

  async write(e: ArchiveEntry): Promise<void> {
    const wait = this.pace();
    if (wait) await wait;
    const parent = e.parts.slice(0, -1);
    const name = e.parts[e.parts.length - 1];
    if (e.type === 'directory') {
      this.dir(e.parts, true);
      this.#dirs.push({ parts: e.parts, mode: e.mode, mtime: e.mtime });
      return;
    }
    if (name === undefined || e.type === 'other') return;
    const dir = this.dir(parent, true);
    if (e.type === 'symlink') {
      const p = this.#create(dir, name, (at) => {
        symlinkSync(e.linkpath ?? '', at);
        return at;
      });
      if (e.mtime) await lutimes(p, e.mtime, e.mtime).catch(() => undefined);
      return;
    }
    if (e.type === 'hardlink') {
      const lp = e.linkParts ?? [];
      const srcDir = this.dir(lp.slice(0, -1), false);
      const src = `/proc/self/fd/${srcDir}/${lp[lp.length - 1]}`;
      const st = lstatSync(src, { throwIfNoEntry: false });
      if (!st?.isFile())
        throw new CodedError(
          'ARCHIVE_UNSAFE',
          `hard link target ${JSON.stringify(lp.join('/'))} is not a file of the archive`,
        );
      // the source's directory may have replaced the cached one: reopen the destination's
      const dst = this.#clear(this.dir(parent, true), name);
      linkSync(src, dst);
      return;
    }
    // setuid/setgid never come out of an archive; exact bits otherwise (no umask)
    const mode = e.mode & 0o1777;
    // created with its final bits when the umask leaves them (no fchmod), else 0600 and fchmod
    const direct = this.#umask !== null && (mode & 0o777 & ~this.#umask) === mode;
    const fd = this.#create(dir, name, (at) =>
      openSync(
        at,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        direct ? mode : 0o600,
      ),
    );
    try {
      if (e.size <= SMALL_FILE)
        await e.body((c) => {
          for (let off = 0; off < c.length; ) off += writeSync(fd, c, off);
        });
      else
        await e.body(async (c) => {
          for (let off = 0; off < c.length; ) {
            off += await new Promise<number>((res, rej) =>
              write(fd, c, off, c.length - off, null, (err, n) => (err ? rej(err) : res(n))),
            );
          }
        });
      if (!direct) fchmodSync(fd, mode);
      if (e.mtime) futimesSync(fd, e.mtime, e.mtime);
    } finally {
      closeQuietly(fd);
    }
  }

  async finish(): Promise<void> {
    for (const d of this.#dirs.reverse()) {
      const wait = this.pace();
      if (wait) await wait;
      let fd: number;
      try {
        fd = this.dir(d.parts, false);
      } catch {
        continue;
      }
      fchmodSync(fd, d.mode & 0o1777);
      if (d.mtime) futimesSync(fd, d.mtime, d.mtime);
    }
  }

  close(): void {
    if (this.#cached) closeQuietly(this.#cached.fd);
    this.#cached = null;
    closeQuietly(this.#root);
  }
}

/** How many READ_CHUNK buffers an archive file cycles through when it feeds a decompressor. */
const FEED_BUFFERS = 4;

/**
 * An archive file as the input of extractArchive/verifyArchive, read in READ_CHUNK (1 MiB) pieces.
 * fs' default of 64 KiB made each piece a decompressor job of its own (a threadpool round trip,
 * a JS callback, a partly filled output buffer): 16× the jobs, measured 0.3–0.8 s more CPU to
 * unpack 463 MB of tar.zst (bench/backup.ts, `--cpu-prof`).
 *
 * Read as any Readable (a zip's spool, a plain tar) each piece is a new buffer. In front of a
 * decompressor readEntries calls `feed` instead: the pieces cycle through FEED_BUFFERS buffers,
 * each taken back when the decompressor's write callback says it is done with it (as TarSink does
 * for create). A fresh 1 MiB buffer per piece was external memory that forced mark-compacts:
 * verify of the bench's tar.zst, user CPU median 0.66 s from the file, 0.58 s from memory.
 */
export class ArchiveFileStream extends Readable {
  readonly #file: string;
  #fd: number | null = null;
  #pos = 0;
  #feeding = false;
  /** a read or open is in the threadpool: the descriptor is closed only after it is back */
  #busy = false;
  #closeWhenIdle: (() => void) | null = null;

  constructor(file: string) {
    super({ highWaterMark: READ_CHUNK });
    this.#file = file;
  }

  /** The descriptor (opened on first use), then `fn` with it; errors destroy the stream. */
  #withFd(fn: (fd: number) => void): void {
    if (this.#fd !== null) {
      fn(this.#fd);
      return;
    }
    this.#busy = true;
    open(this.#file, 'r', (err, fd) => {
      this.#busy = false;
      if (err) {
        if (!this.#idle()) this.destroy(err);
        return;
      }
      this.#fd = fd;
      // destroyed meanwhile: #idle has closed it
      if (this.#idle()) return;
      fn(fd);
    });
  }

  /** After a threadpool call: true when the stream was destroyed meanwhile (then closed now). */
  #idle(): boolean {
    const c = this.#closeWhenIdle;
    if (!c) return this.destroyed;
    this.#closeWhenIdle = null;
    c();
    return true;
  }

  /** `buf` filled from the current position; `done` with the byte count (0 at the end), or nothing when destroyed. */
  #readInto(buf: Buffer, done: (n: number) => void): void {
    this.#withFd((fd) => {
      this.#busy = true;
      read(fd, buf, 0, buf.length, this.#pos, (err, n) => {
        this.#busy = false;
        if (this.#idle()) return;
        if (err) {
          this.destroy(err);
          return;
        }
        this.#pos += n;
        done(n);
      });
    });
  }

  override _read(): void {
    if (this.#feeding) return;
    const buf = Buffer.allocUnsafeSlow(READ_CHUNK);
    this.#readInto(buf, (n) => {
      this.push(n === 0 ? null : n === buf.length ? buf : buf.subarray(0, n));
    });
  }

  /**
   * Writes the whole file into `dest` through reused buffers (`seen` gets each piece first), then
   * ends `dest` and this stream. Only for a consumer that is done with a chunk when its write
   * callback comes (a zlib stream); instead of reading this stream, never both.
   */
  feed(dest: Writable, seen: ((c: Buffer) => void) | null): void {
    this.#feeding = true;
    const free: Buffer[] = [];
    let made = 0;
    let waiting = false;
    const pump = (): void => {
      if (this.destroyed) return;
      let buf = free.pop();
      if (!buf) {
        if (made >= FEED_BUFFERS) {
          waiting = true;
          return;
        }
        made++;
        // not from Node's small-buffer pool (this one is reused whole)
        buf = Buffer.allocUnsafeSlow(READ_CHUNK);
      }
      const b = buf;
      this.#readInto(b, (n) => {
        if (n === 0) {
          dest.end();
          // ends this stream too (readableEnded), as a piped read to the end would
          this.push(null);
          this.resume();
          return;
        }
        const view = n === b.length ? b : b.subarray(0, n);
        seen?.(view);
        dest.write(view, (err) => {
          // after a failure the buffer may still be in the decompressor's hands: never reused
          if (err) return;
          free.push(b);
          if (waiting) {
            waiting = false;
            pump();
          }
        });
        pump();
      });
    };
    pump();
  }

  override _destroy(err: Error | null, cb: (e: Error | null) => void): void {
    const closeFd = () => {
      const fd = this.#fd;
      this.#fd = null;
      if (fd === null) cb(err);
      else close(fd, () => cb(err));
    };
    if (this.#busy) this.#closeWhenIdle = closeFd;
    else closeFd();
  }
}

/** An archive file as the input of extractArchive/verifyArchive (see ArchiveFileStream). */
export function archiveFileStream(file: string): Readable {
  return new ArchiveFileStream(file);
}

/** Unpacks into `root` (which must exist); see the header for the rules. */
export async function extractArchive(
  input: Readable,
  root: string,
  opts: ReadOptions,
): Promise<ArchiveStats> {
  const w = await TreeWriter.open(root);
  const stats: ArchiveStats = { bytes: 0, entries: 0, skipped: 0 };
  try {
    await readEntries(input, opts, null, async (e) => {
      opts.check?.(e.parts.join('/'), e.type);
      await w.write(e);
      stats.entries++;
      stats.bytes += e.size;
      if (e.type === 'other') stats.skipped++;
      opts.onProgress?.(stats.bytes, stats.entries);
    });
    await w.finish();
    return stats;
  } finally {
    w.close();
  }
}

/** Reads the whole archive, writing nothing: checksums, structure, entry rules, caps; sha256 of the input. */
export async function verifyArchive(input: Readable, opts: ReadOptions): Promise<VerifyResult> {
  const hash = createHash('sha256');
  let archiveBytes = 0;
  const seen = (c: Buffer) => {
    hash.update(c);
    archiveBytes += c.length;
  };
  const stats: ArchiveStats = { bytes: 0, entries: 0, skipped: 0 };
  await readEntries(input, opts, seen, async (e) => {
    opts.check?.(e.parts.join('/'), e.type);
    // read (and counted, and checksummed) only
    await e.body(() => undefined);
    stats.entries++;
    stats.bytes += e.size;
    if (e.type === 'other') stats.skipped++;
    opts.onProgress?.(stats.bytes, stats.entries);
  });
  return { ...stats, sha256: hash.digest('hex'), archiveBytes };
}

/**
 * An archive read by the rules of extract (entry paths, links, caps: `opts`), written again as
 * this archiver's own tar in `format` (tar, tar.gz, tar.zst), streamed: for a tar that comes from
 * elsewhere (the Docker Engine's archive API) or an upload, so what goes on is what create would
 * have made. `strip` leading components are dropped (the Engine's tar of /v is `v/…`); what is not
 * under them, the root itself, links that would not stay inside after the strip, and other types
 * (devices, FIFOs) are left out (counted as skipped), as create leaves them out. Owners, modes and
 * mtimes are kept (a zip has no owner: `owner`).
 */
export function repackArchive(
  input: Readable,
  opts: ReadOptions & {
    to: 'tar' | 'tar.gz' | 'tar.zst';
    strip?: readonly string[];
    owner?: { uid: number; gid: number };
  },
): { stream: Readable; done: Promise<ArchiveStats> } {
  const strip = opts.strip ?? [];
  const owner = opts.owner ?? { uid: 0, gid: 0 };
  const stats: ArchiveStats = { bytes: 0, entries: 0, skipped: 0 };
  const under = (parts: readonly string[]): string[] | null =>
    parts.length > strip.length && strip.every((s, i) => parts[i] === s) ? parts.slice(strip.length) : null;
  // the reader pushes an entry and waits until the packer is done with it
  let pending: { e: ArchiveEntry; done: () => void } | null = null;
  let finished = false;
  let failure: unknown;
  let wake: (() => void) | null = null;
  const poke = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const readOpts: ReadOptions = { ...opts };
  delete readOpts.onProgress;
  async function* entries(): AsyncGenerator<TreeEntry> {
    const reading = readEntries(input, readOpts, null, (e) => {
      if (e.type === 'other') {
        stats.skipped++;
        return Promise.resolve();
      }
      return new Promise<void>((done) => {
        pending = { e, done };
        poke();
      });
    }).then(
      () => {
        finished = true;
        poke();
      },
      (err: unknown) => {
        failure = err;
        poke();
      },
    );
    try {
      for (;;) {
        while (pending === null && !finished && failure === undefined)
          await new Promise<void>((r) => {
            wake = r;
          });
        if (failure !== undefined) throw failure;
        const p = pending as { e: ArchiveEntry; done: () => void } | null;
        if (p === null) return;
        pending = null;
        try {
          const { e } = p;
          // the root itself (the Engine's `v/`): nothing to write
          if (e.parts.length === strip.length && strip.every((s, i) => e.parts[i] === s)) continue;
          const parts = under(e.parts);
          const linkParts = e.type === 'hardlink' ? under(e.linkParts ?? []) : null;
          if (
            parts === null ||
            (e.type === 'symlink' && !linkStaysInside(parts, e.linkpath ?? '')) ||
            (e.type === 'hardlink' && linkParts === null)
          ) {
            stats.skipped++;
            continue;
          }
          const t: TreeEntry = {
            rel: parts.join('/'),
            kind: e.type === 'other' ? 'file' : e.type,
            mode: e.mode,
            uid: e.uid ?? owner.uid,
            gid: e.gid ?? owner.gid,
            mtimeMs: (e.mtime ?? new Date()).getTime(),
            size: e.type === 'file' ? e.size : 0,
            body: e.body,
          };
          if (e.type === 'symlink' && e.linkpath !== undefined) t.linkpath = e.linkpath;
          if (linkParts) t.linkpath = linkParts.join('/');
          yield t;
        } finally {
          p.done();
        }
      }
    } finally {
      if (!finished && failure === undefined) input.destroy();
      await reading;
    }
  }
  const head = opts.to === 'tar' ? null : compressor(opts.to);
  const first = head ?? new PassThrough({ highWaterMark: 2 * OUT_CHUNK });
  const out = new PassThrough({ highWaterMark: 1024 * 1024 });
  const piped = pipeline(first, out);
  piped.catch(() => undefined);
  const sink = new TarSink(first, head !== null);
  const packed = packTar(entries(), sink, stats, opts as unknown as CreateOptions).then(
    () => {
      first.end();
    },
    (e: unknown) => {
      first.destroy(e as Error);
      throw e;
    },
  );
  const done = packed
    .catch((e: unknown) => (e === sink.closed ? piped.then(() => Promise.reject(e)) : Promise.reject(e)))
    .then(() => piped)
    .then(() => stats);
  done.catch((e) => out.destroy(e));
  return { stream: out, done };
}
