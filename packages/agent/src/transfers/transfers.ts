/**
 * File bodies over HTTP, never over the link (issue 10). The Panel asks for a ticket
 * (create_transfer): single use, short-lived, kept in memory only, bound to one server, one path,
 * one direction and, for an upload, an exact byte count (checked against the disk quota when it
 * is issued and enforced while the body streams). The body then goes either straight to the
 * Agent's HTTP API (`GET|PUT /transfers/<ticket>`) or through the Panel (relay_transfer: the Agent
 * dials out, so a node behind NAT works). Both ends stream with backpressure: nothing holds a file.
 *
 * An upload is written to a temporary name in the target's directory (opened through that
 * directory's descriptor, O_EXCL|O_NOFOLLOW) and renamed over the target only when every byte came.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, lchown, lstat, open, realpath, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type ArchiveWriteFormat, type BackupFormat, CodedError } from '@cap/protocol';
import { reclaimWhileStreaming } from '@cap/protocol/runtime/reclaim.ts';
import { openInside, resolveInside } from '../filesystem/filesystem.ts';
import {
  checkName,
  createDirectory,
  type Denylist,
  openParent,
  splitPath,
} from '../filesystem/operations.ts';

export interface Ticket {
  serverId: string;
  root: string;
  /** the path from the root, as asked */
  path: string;
  direction: 'upload' | 'download';
  /** upload: exactly this many bytes; download: the file's size when the ticket was issued */
  size: number;
  expiresAt: number;
  deny: Denylist;
  owner: { uid: number; gid: number };
  /** a backup's archive (then `path` is unused): its download (with its recorded sha256), or,
   * with `import` (backup_import), an upload that becomes the backup `backupId` */
  backup?: { backupId: string; sha256?: string; import?: BackupImport };
  /** a folder downloaded as this archive, made while it streams (size unknown) */
  archive?: ArchiveWriteFormat;
  /** a Docker volume's backup (download) or restore (upload) instead of a server's file */
  volume?: { name: string; format: 'tar.gz' | 'tar.zst'; force: boolean; truncate: boolean };
  /** one file inside this Docker volume (`path` from its root), read or written by VolumeArchiver */
  volumeFile?: { name: string };
}

/** What an imported archive must be, and the record it becomes. */
export interface BackupImport {
  format: BackupFormat;
  size: number;
  sha256: string;
  name: string | null;
  bytes: number | null;
  entries: number | null;
  createdAt?: string | undefined;
}

/** Tickets alive at once, at most (a flood of create_transfer cannot grow memory). */
export const MAX_TICKETS = 1000;

export class TransferTickets {
  readonly #tickets = new Map<string, Ticket>();

  issue(t: Ticket): string {
    this.#prune();
    if (this.#tickets.size >= MAX_TICKETS)
      throw new CodedError('RATE_LIMITED', 'too many transfers waiting; try again shortly');
    const ticket = randomBytes(32).toString('base64url');
    this.#tickets.set(ticket, t);
    return ticket;
  }

  /** The ticket's grant, once: a used, unknown or expired ticket is AUTH_FAILED. */
  take(ticket: string): Ticket {
    const t = this.#tickets.get(ticket);
    this.#tickets.delete(ticket);
    if (!t || t.expiresAt <= Date.now())
      throw new CodedError('NOT_FOUND', 'unknown, used or expired transfer ticket');
    return t;
  }

  /** For a server being deleted: its tickets go with it. */
  dropServer(serverId: string): void {
    for (const [k, v] of this.#tickets) if (v.serverId === serverId) this.#tickets.delete(k);
  }

  #prune(): void {
    const now = Date.now();
    for (const [k, v] of this.#tickets) if (v.expiresAt <= now) this.#tickets.delete(k);
  }
}

function relFromRoot(realRoot: string, real: string): string {
  return path.relative(realRoot, real).split(path.sep).join('/');
}

/** A regular file opened for a download (resolved and proven inside, denylist checked). */
export async function openDownload(
  root: string,
  rel: string,
  deny: Denylist,
): Promise<{ stream: Readable; size: number; name: string; close: () => Promise<void> }> {
  const real = await resolveInside(root, rel);
  deny.assert(relFromRoot(await realpath(root), real));
  const fh = await openInside(root, real, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (st.isDirectory())
      throw new CodedError(
        'CONFIG_INVALID',
        "a folder downloads as an archive (`archive: 'tar.gz' | 'zip'`)",
      );
    if (!st.isFile()) throw new CodedError('CONFIG_INVALID', 'not a regular file');
    return await fileDownload(fh, st.size, path.basename(real));
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/**
 * An open file streamed as a download of exactly `size` bytes (the size announced: a file that
 * grows meanwhile is cut at it, one that shrinks fails); an empty one closes the handle at once.
 * Files and backups alike.
 */
export async function fileDownload(
  fh: FileHandle,
  size: number,
  name: string,
): Promise<{ stream: Readable; size: number; name: string; close: () => Promise<void> }> {
  if (size === 0) {
    await fh.close();
    return { stream: Readable.from([]), size: 0, name, close: async () => undefined };
  }
  const stream = fh.createReadStream({ start: 0, end: size - 1, autoClose: true });
  return { stream, size, name, close: () => fh.close().catch(() => undefined) };
}

/** The size a download ticket announces (and proof, now, that the file may be read). */
export async function downloadSize(
  root: string,
  rel: string,
  deny: Denylist,
): Promise<{ size: number; name: string }> {
  const d = await openDownload(root, rel, deny);
  d.stream.destroy();
  await d.close();
  return { size: d.size, name: d.name };
}

/** Counts bytes through; more than `max` is FILE_TOO_LARGE. */
function capped(max: number, onBytes?: (n: number) => void): Transform & { bytes: number } {
  let bytes = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      (t as Transform & { bytes: number }).bytes = bytes;
      if (bytes > max)
        cb(new CodedError('FILE_TOO_LARGE', `the body is larger than the ${max} bytes announced`));
      else {
        onBytes?.(chunk.length);
        cb(null, chunk);
      }
    },
  }) as Transform & { bytes: number };
  t.bytes = 0;
  return t;
}

/**
 * Writes an upload's body to `rel` (missing parent folders are created, each component opened
 * without following a link): a temporary file first, renamed over the target when exactly `size`
 * bytes came; on any failure the temporary file is removed and the target is untouched.
 */
export async function receiveUpload(
  t: Ticket,
  body: Readable,
  /** bytes handed to the file as they go (the disk ledger's `written`) */
  onBytes?: (n: number) => void,
): Promise<{ path: string; size: number }> {
  const parts = splitPath(t.path);
  const name = parts.pop();
  if (name === undefined) throw new CodedError('NAME_INVALID', 'the path names the server root');
  checkName(name);
  if (parts.length > 0) await createDirectory(t.root, parts.join('/'), t.deny, true);
  const dir = await openParent(t.root, t.path);
  try {
    const target = dir.rel === '' ? dir.name : `${dir.rel}/${dir.name}`;
    t.deny.assert(target);
    const existing = await lstat(`/proc/self/fd/${dir.fh.fd}/${dir.name}`).catch(() => null);
    if (existing?.isDirectory()) throw new CodedError('FILE_EXISTS', `/${target} is a directory`);
    const tmpName = `.cap-upload-${randomBytes(8).toString('hex')}`;
    const tmp = `/proc/self/fd/${dir.fh.fd}/${tmpName}`;
    const out = await open(
      tmp,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o644,
    );
    const counter = capped(t.size, onBytes);
    // the body's chunks are reclaimed as they go (RSS flat during a large upload: reclaim.ts)
    reclaimWhileStreaming(body);
    try {
      await pipeline(body, counter, out.createWriteStream());
      if (counter.bytes !== t.size)
        throw new CodedError(
          'VALIDATION_FAILED',
          `the body had ${counter.bytes} of the ${t.size} bytes announced`,
        );
      await lchown(tmp, t.owner.uid, t.owner.gid).catch(() => undefined);
      await rename(tmp, `/proc/self/fd/${dir.fh.fd}/${dir.name}`);
    } catch (e) {
      await out.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
    return { path: `/${target}`, size: counter.bytes };
  } finally {
    await dir.fh.close();
  }
}
