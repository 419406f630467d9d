/**
 * The tar reading loop of extract and verify: a loop of our own over the decompressed chunks
 * instead of node-tar's Parser, with node-tar's Pax.parse for pax records and its type tables, and
 * a header decoder that follows node-tar's Header field for field (decodeHeader; the test checks
 * the two agree on written, mutated and hostile blocks).
 *
 * Why not the Parser (measured on the bench archive of bench/backup.ts, 463 MB, 20k files, on
 * the shared 2-core VM at load 15–38): parsing the plain tar took 1.0–1.4 s of CPU against
 * 0.6–0.7 s to read it alone, node-tar's Header 0.35 s of user CPU for 20k headers (a toString
 * and a regex per field); around it a Minipass ReadEntry per entry, its events, a queue of
 * entries, and our glue to pause and resume it. The whole extract (user CPU, same runs,
 * interleaved) went from 3.65–4.63 s with the Parser to 2.6–3.3 s with this loop; the tools'
 * whole unpack is 0.4–0.7 s user. Here a header is a view of the chunk it is in (copied only
 * when it straddles two), file data goes to the writer as views of the decompressor's chunks,
 * and a small file's header and data are handled in the same turn.
 *
 * The rules are node-tar's strict mode: a bad checksum, a missing path, a link without a target
 * or a target on a non-link, data cut short are ARCHIVE_INVALID; unknown and vendor types
 * (sparse, ACL, volume headers) are skipped; two zero blocks end the archive (what follows is
 * read, so a decompressor still checks its frame to the end, and not parsed). Stricter: a pax or
 * GNU long-name header over 1 MiB is refused (node-tar skips it and applies nothing), input that
 * ends inside a header block is truncated, and input with no block at all is not an archive.
 */
import type { Readable } from 'node:stream';
import { CodedError } from '@cap/protocol';
import { type HeaderData, Pax, types } from 'tar';

const BLOCK = 512;
/** pax and GNU long-name bodies are read whole: at most this (node-tar's limit too) */
const META_MAX = 1024 * 1024;

function corrupt(message: string): CodedError {
  return new CodedError('ARCHIVE_INVALID', `corrupt or truncated archive: ${message}`);
}

/**
 * The chunks of a stream, queued as they come (up to `limit` bytes ahead of the reader: the
 * source is paused beyond that), taken as views. The queue lets the decompressor (in the
 * threadpool) go on while the entries before are written; 'data' events, not the stream's
 * async iterator (whose read() concatenates what is buffered into one new buffer).
 */
export class ChunkQueue {
  readonly #src: Readable;
  readonly #limit: number;
  readonly #queue: Buffer[] = [];
  #queued = 0;
  #cur: Buffer = Buffer.alloc(0);
  #off = 0;
  #ended = false;
  #failure: unknown;
  #wake: (() => void) | null = null;
  #paused = false;

  constructor(src: Readable, limit: number) {
    this.#src = src;
    this.#limit = limit;
    src.on('data', (c: Buffer) => {
      if (c.length === 0) return;
      this.#queue.push(c);
      this.#queued += c.length;
      if (this.#queued > this.#limit && !this.#paused) {
        this.#paused = true;
        src.pause();
      }
      this.#notify();
    });
    src.once('end', () => {
      this.#ended = true;
      this.#notify();
    });
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  /** Ends every wait with `e` (the first failure of any stage). */
  fail(e: unknown): void {
    if (this.#failure !== undefined) return;
    this.#failure = e;
    this.#notify();
  }

  /** Up to `max` (≥ 1) bytes of what comes next, as a view, if any is here; null: call more(). */
  take(max: number): Buffer | null {
    if (this.#off === this.#cur.length) {
      const next = this.#queue.shift();
      if (next === undefined) return null;
      this.#queued -= next.length;
      if (this.#paused && this.#queued <= this.#limit) {
        this.#paused = false;
        this.#src.resume();
      }
      this.#cur = next;
      this.#off = 0;
    }
    const n = Math.min(max, this.#cur.length - this.#off);
    const v = this.#cur.subarray(this.#off, this.#off + n);
    this.#off += n;
    return v;
  }

  /** Waits for more data: false at the end of the stream; rejects with the failure. */
  more(): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      const check = () => {
        if (this.#failure !== undefined) reject(this.#failure);
        else if (this.#queue.length > 0) resolve(true);
        else if (this.#ended) resolve(false);
        else this.#wake = check;
      };
      check();
    });
  }

  /** Exactly `n` bytes (a view when they are in one chunk, else a copy); null when the stream
   * ends before the first byte; ARCHIVE_INVALID when it ends in between. */
  async exact(n: number, what: string): Promise<Buffer | null> {
    const first = this.take(n);
    if (first !== null && first.length === n) return first;
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    if (first !== null) got += first.copy(out, 0);
    while (got < n) {
      const c = this.take(n - got);
      if (c !== null) {
        got += c.copy(out, got);
        continue;
      }
      if (!(await this.more())) {
        if (got === 0) return null;
        throw corrupt(`the input ends inside ${what} (${got} of ${n} bytes)`);
      }
    }
    return out;
  }

  /** Skips `n` bytes; ARCHIVE_INVALID when the stream ends first. */
  async skip(n: number, what: string): Promise<void> {
    while (n > 0) {
      const c = this.take(n);
      if (c !== null) n -= c.length;
      else if (!(await this.more())) throw corrupt(`the input ends inside ${what} (${n} bytes missing)`);
    }
  }

  /** Reads to the end of the stream, keeping nothing. */
  async drain(): Promise<void> {
    for (;;) {
      while (this.take(Number.MAX_SAFE_INTEGER) !== null) {}
      if (!(await this.more())) return;
    }
  }
}

export interface TarEntry {
  /** as in the archive (pax and GNU long names applied); not yet checked */
  path: string;
  /** node-tar's type name: File, OldFile, ContiguousFile, Directory, GNUDumpDir, SymbolicLink, Link, CharacterDevice, BlockDevice, FIFO */
  type: string;
  /** data bytes that follow (0 for a directory) */
  size: number;
  mode: number | undefined;
  /** numeric owner (pax or header) */
  uid?: number | undefined;
  gid?: number | undefined;
  mtime: Date | undefined;
  linkpath: string | undefined;
}

/** An entry's data, each chunk in order to `fn` (awaited when it returns a promise); at most once. */
export type TarBody = (fn: (c: Buffer) => void | Promise<void>) => Promise<void>;

/** the types node-tar emits as entries; any other (vendor, unknown) is skipped with its data */
const ENTRY_TYPES = new Set([
  'File',
  'OldFile',
  'ContiguousFile',
  'Directory',
  'GNUDumpDir',
  'SymbolicLink',
  'Link',
  'CharacterDevice',
  'BlockDevice',
  'FIFO',
]);
const LINK_TYPES = new Set(['SymbolicLink', 'Link']);
const META_TYPES = new Set([
  'ExtendedHeader',
  'OldExtendedHeader',
  'GlobalExtendedHeader',
  'NextFileHasLongPath',
  'OldGnuLongPath',
  'NextFileHasLongLinkpath',
]);

/** A string field: up to its first NUL (node-tar's decString), UTF-8. */
function field(b: Buffer, off: number, len: number): string {
  let end = off;
  const max = off + len;
  while (end < max && b[end] !== 0) end++;
  return end === off ? '' : b.toString('utf8', off, end);
}

const isSpace = (c: number) => c === 0x20 || (c >= 0x09 && c <= 0x0d);

/**
 * A number field: base-256 when its first byte has the high bit (0x80 positive, 0xff negative),
 * else octal text up to a NUL, spaces around, parsed as far as it is octal (parseInt's rules, as
 * node-tar's decNumber); undefined when there is no digit. ARCHIVE_INVALID for base-256 that is
 * neither, or past 2^53.
 */
function num(b: Buffer, off: number, len: number): number | undefined {
  const first = b[off] as number;
  if (first & 0x80) {
    if (first !== 0x80 && first !== 0xff) throw corrupt('a header number in an unknown encoding');
    const neg = first === 0xff;
    let v = 0;
    for (let i = off + 1; i < off + len; i++)
      v = v * 256 + (neg ? (b[i] as number) ^ 0xff : (b[i] as number));
    if (neg) v = -(v + 1);
    if (!Number.isSafeInteger(v)) throw corrupt('a header number past 2^53');
    return v;
  }
  let i = off;
  const max = off + len;
  let end = off;
  while (end < max && b[end] !== 0) end++;
  while (i < end && isSpace(b[i] as number)) i++;
  let sign = 1;
  if (i < end && (b[i] === 0x2b || b[i] === 0x2d)) sign = b[i++] === 0x2d ? -1 : 1;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const d = (b[i] as number) - 0x30;
    if (d < 0 || d > 7) break;
    v = v * 8 + d;
    digits++;
  }
  return digits === 0 ? undefined : sign * v;
}

const date = (n: number | undefined) => (n === undefined ? undefined : new Date(n * 1000));

/**
 * the types that pending pax and long-name fields apply to (node-tar's normalFsTypes); read when
 * first needed, not at load: the Agent's bundle loads tar on its first use (scripts/build-dist.ts)
 */
const fsCodes = (): ReadonlySet<string> => types.normalFsTypes;
const USTAR = Buffer.from('ustar\u000000', 'latin1');

interface Block {
  type: string;
  path: string;
  linkpath: string;
  size: number | undefined;
  mode: number | undefined;
  uid: number | undefined;
  gid: number | undefined;
  mtime: Date | undefined;
  cksumValid: boolean;
  nullBlock: boolean;
}

/**
 * One 512-byte header, decoded as node-tar's Header does (same fields, same rules, checked
 * against it in tar-reader.test.ts) but only the fields extract uses, and without its per-field
 * toString + regex (a third of node-tar's parse time here): `ex` and `gex` are the pending pax
 * (or GNU long-name) fields, applied to file-system entries only.
 */
export function decodeHeader(b: Buffer, ex: HeaderData | undefined, gex: HeaderData | undefined): Block {
  let sum = 8 * 0x20;
  for (let i = 0; i < 148; i++) sum += b[i] as number;
  for (let i = 156; i < 512; i++) sum += b[i] as number;
  const cksum = num(b, 148, 12);
  if (cksum === undefined && sum === 8 * 0x20)
    return {
      type: '',
      path: '',
      linkpath: '',
      size: 0,
      mode: 0,
      uid: undefined,
      gid: undefined,
      mtime: undefined,
      cksumValid: false,
      nullBlock: true,
    };
  const t = b[156] === 0 ? '' : String.fromCharCode(b[156] as number);
  const fs = fsCodes().has(t);
  const e = fs ? ex : undefined;
  const g = fs ? gex : undefined;
  let path = e?.path ?? field(b, 0, 100);
  const mode = e?.mode ?? g?.mode ?? num(b, 100, 8);
  const uid = e?.uid ?? g?.uid ?? num(b, 108, 8);
  const gid = e?.gid ?? g?.gid ?? num(b, 116, 8);
  let size = e?.size ?? g?.size ?? num(b, 124, 12);
  if (size !== undefined && size < 0) size = undefined;
  const mtime = e?.mtime ?? g?.mtime ?? date(num(b, 136, 12));
  let code = types.isCode(t) ? t || '0' : null;
  if (code === '0' && path.endsWith('/')) code = '5';
  if (code === '5') size = 0;
  if (b.compare(USTAR, 0, 8, 257, 265) === 0 && e?.path === undefined) {
    // the ustar prefix (node-tar adds it to a pax path too, then its ReadEntry puts the pax path back)
    if (b[475] !== 0) path = `${field(b, 345, 155)}/${path}`;
    else {
      const prefix = field(b, 345, 130);
      if (prefix) path = `${prefix}/${path}`;
    }
  }
  return {
    type: code === null ? 'Unsupported' : (types.name.get(code) as string),
    path,
    linkpath: e?.linkpath ?? field(b, 157, 100),
    size,
    mode,
    uid,
    gid,
    mtime,
    cksumValid: sum === cksum,
    nullBlock: false,
  };
}

const padding = (size: number) => (BLOCK - (size % BLOCK)) % BLOCK;

/**
 * Calls `onEntry` for each entry in order, one at a time (awaited); whatever of an entry's data
 * the handler leaves unread is skipped. Resolves at the end of the input (read to its end).
 */
export async function readTar(
  q: ChunkQueue,
  onEntry: (e: TarEntry, body: TarBody) => Promise<void>,
  beforeHeader?: () => void,
): Promise<void> {
  let ex: HeaderData | undefined;
  let gex: HeaderData | undefined;
  let sawNull = false;
  let sawBlock = false;
  for (;;) {
    beforeHeader?.();
    const block = await q.exact(BLOCK, 'a header');
    if (block === null) {
      if (!sawBlock) throw corrupt('the input is empty');
      // no end-of-archive blocks: accepted, as node-tar and GNU tar do
      return;
    }
    sawBlock = true;
    const h = decodeHeader(block, ex, gex);
    if (h.nullBlock) {
      if (sawNull) return q.drain();
      sawNull = true;
      continue;
    }
    sawNull = false;
    if (!h.cksumValid) throw corrupt('header checksum failure');
    const type = h.type;
    const size = h.size ?? 0;
    if (!Number.isSafeInteger(size) || size < 0) throw corrupt('an entry size that is not a number');
    if (META_TYPES.has(type)) {
      if (size > META_MAX) throw corrupt(`a ${type} header of ${size} bytes (at most ${META_MAX})`);
      const body = size > 0 ? await q.exact(size, `a ${type} header`) : Buffer.alloc(0);
      if (body === null) throw corrupt(`the input ends before a ${type} header's data`);
      const text = body.toString('utf8');
      await q.skip(padding(size), 'padding');
      if (type === 'GlobalExtendedHeader') gex = Pax.parse(text, gex, true);
      else if (type === 'ExtendedHeader' || type === 'OldExtendedHeader') ex = Pax.parse(text, ex, false);
      else {
        const next: HeaderData = ex ?? Object.create(null);
        const value = text.replace(/\0.*/s, '');
        if (type === 'NextFileHasLongLinkpath') next.linkpath = value;
        else next.path = value;
        ex = next;
      }
      continue;
    }
    // decodeHeader applied the pending pax / long-name fields; they end with this entry
    const path = h.path;
    const linkpath = h.linkpath || undefined;
    ex = undefined;
    if (!path) throw corrupt('an entry without a path');
    if (LINK_TYPES.has(type) && !linkpath)
      throw corrupt(`link ${JSON.stringify(path.slice(0, 200))} has no target`);
    if (!LINK_TYPES.has(type) && linkpath)
      throw corrupt(`${JSON.stringify(path.slice(0, 200))} has a link target but is no link`);
    let remain = size;
    if (ENTRY_TYPES.has(type)) {
      const body: TarBody = async (fn) => {
        while (remain > 0) {
          const c = q.take(remain);
          if (c === null) {
            if (!(await q.more()))
              throw corrupt(
                `the input ends inside ${JSON.stringify(path.slice(0, 200))} (${remain} bytes missing)`,
              );
            continue;
          }
          remain -= c.length;
          const r = fn(c);
          if (r) await r;
        }
      };
      await onEntry(
        {
          path,
          type,
          size,
          mode: h.mode === undefined ? undefined : h.mode & 0o7777,
          uid: h.uid,
          gid: h.gid,
          mtime: h.mtime,
          linkpath,
        },
        body,
      );
    }
    await q.skip(remain + padding(size), 'an entry');
  }
}
