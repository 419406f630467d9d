/**
 * Docker volumes backed up and restored through the one archiver (issue 10 item 5): a volume is a
 * directory on the host (its `Mountpoint`, from the Docker Engine), archived and unpacked by the
 * same code as server files, with the same safety (walks and writes through descriptors opened
 * with O_NOFOLLOW, entry rules, caps). Agent-level: no server, no quota; the Panel's route is for
 * admins only.
 *
 * - backup: the archive streams as it is made (a download ticket; size unknown, chunked).
 * - restore: the uploaded archive (exactly the ticket's size) is spooled to
 *   `<AGENT_DATA_DIR>/volume-restores/` (0600), read whole (checksums, entry rules, caps), and only
 *   then unpacked into the volume (`truncate`: its contents removed first); a volume that a running
 *   container uses is refused (INVALID_STATE) unless `force`, checked when the ticket is issued and
 *   again before anything is written. Owners: as `tar --numeric-owner` run as root, each entry
 *   gets the uid/gid its tar header carries (a second read of the spooled archive once it is
 *   unpacked: lchown, never through a link, only where the entry's folder still resolves inside
 *   the volume); a zip carries none, and an Agent not running as root leaves them as they are.
 *
 * - browse (issue 11): a directory's page and a file read (capped) or downloaded, by the server
 *   files' own path rules (src/filesystem: resolved, realpath'd, opened O_NOFOLLOW and proven
 *   inside by the descriptor), so `..` and links that lead out of the volume are PATH_OUTSIDE_ROOT.
 *   A symlink's entry carries the link's text (`target`), read through the listed directory's
 *   descriptor and never followed.
 *
 * An Agent in a container must have `/var/lib/docker/volumes` mounted at the same path (the
 * Mountpoint the Engine reports is a host path); one that cannot see it is answered
 * CONFIG_INVALID (no helper container is started to read it).
 */
import { randomBytes } from 'node:crypto';
import { constants, createReadStream, lchownSync, realpathSync } from 'node:fs';
import { lstat, mkdir, open, readdir, readlink, realpath, rm } from 'node:fs/promises';
import path from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { CodedError, VOLUME_FILE_MAX_BYTES, type VolumeFileEntry } from '@cap/protocol';
import type Docker from 'dockerode';
import { Parser, type ReadEntry } from 'tar';
import {
  type ArchiveFormat,
  archiveFileStream,
  createArchive,
  DEFAULT_MAX_BYTES,
  DEFAULT_MAX_ENTRIES,
  extractArchive,
  verifyArchive,
} from '../archive/archive.ts';
import { entryParts } from '../archive/paths.ts';
import { sniffFormat } from '../filesystem/archives.ts';
import { getFile, type ListPage, listFiles, openInside, resolveInside } from '../filesystem/filesystem.ts';
import { Denylist } from '../filesystem/operations.ts';
import { downloadSize } from '../transfers/transfers.ts';

/** The server files' errors, worded for a volume (the same codes). */
async function inVolume<T>(name: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof CodedError && e.code === 'PATH_OUTSIDE_ROOT')
      throw new CodedError('PATH_OUTSIDE_ROOT', `the path leads outside the volume ${name}`, { cause: e });
    throw e;
  }
}

/**
 * The numeric owners of a (verified, unpacked) tar archive's entries given back under `root`
 * (see the header). Entries that are not there (or not safely reachable) are left.
 */
async function restoreOwners(file: string, format: ArchiveFormat, root: string): Promise<void> {
  if (format === 'zip' || process.getuid?.() !== 0) return;
  const real = await realpath(root);
  // a folder's resolution, remembered for its entries (it is the same for all of them)
  let lastDir = '';
  let lastOk = false;
  const apply = (e: ReadEntry) => {
    if (typeof e.uid !== 'number' || typeof e.gid !== 'number') return;
    let parts: string[];
    try {
      parts = entryParts(e.path);
    } catch {
      return;
    }
    const dir = path.join(real, ...parts.slice(0, -1));
    if (dir !== lastDir) {
      lastDir = dir;
      try {
        // no link on the way: the folder resolves to itself, inside the volume
        lastOk = realpathSync(dir) === dir;
      } catch {
        lastOk = false;
      }
    }
    if (!lastOk) return;
    try {
      lchownSync(path.join(real, ...parts), e.uid, e.gid);
    } catch {
      // gone or not ours to change: left as it is
    }
  };
  await new Promise<void>((resolve, reject) => {
    const parser = new Parser({ strict: true });
    parser.on('entry', (e: ReadEntry) => {
      apply(e);
      e.resume();
    });
    parser.on('error', reject);
    parser.on('end', () => resolve());
    const src = createReadStream(file);
    src.on('error', reject);
    const dec =
      format === 'tar.gz' ? zlib.createGunzip() : format === 'tar.zst' ? zlib.createZstdDecompress() : null;
    dec?.on('error', reject);
    (dec ? src.pipe(dec) : src).pipe(parser as unknown as NodeJS.WritableStream);
  });
}

export class VolumeArchiver {
  readonly #docker: Docker;
  readonly #tmpDir: string;

  constructor(opts: { docker: Docker; tmpDir: string }) {
    this.#docker = opts.docker;
    this.#tmpDir = opts.tmpDir;
  }

  /** The volume's directory on this host (a local volume whose Mountpoint the Agent can reach). */
  async mountpoint(name: string): Promise<string> {
    let info: Docker.VolumeInspectInfo;
    try {
      info = await this.#docker.getVolume(name).inspect();
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404)
        throw new CodedError('NOT_FOUND', `no Docker volume ${JSON.stringify(name)}`);
      throw new CodedError('DOCKER_ERROR', `cannot inspect volume ${name}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    if (info.Driver !== 'local')
      throw new CodedError(
        'CONFIG_INVALID',
        `volume ${name} uses the ${info.Driver} driver; only local volumes`,
      );
    const mp = info.Mountpoint;
    const st = path.isAbsolute(mp) ? await lstat(mp).catch(() => null) : null;
    if (!st?.isDirectory())
      throw new CodedError(
        'CONFIG_INVALID',
        `volume ${name}'s Mountpoint ${mp} is not a directory this Agent can reach (an Agent in a container needs /var/lib/docker/volumes mounted at the same path)`,
      );
    return mp;
  }

  /** One page of a directory inside the volume; symlinks with their target (see the header). */
  async listFiles(
    name: string,
    rel: string,
    page: { offset: number; limit: number; sort: 'name' | 'size' | 'modified'; order: 'asc' | 'desc' },
  ): Promise<Omit<ListPage, 'entries'> & { entries: VolumeFileEntry[] }> {
    const mp = await this.mountpoint(name);
    return inVolume(name, async () => {
      const list = await listFiles(mp, rel, page);
      const entries: VolumeFileEntry[] = list.entries;
      if (!entries.some((e) => e.type === 'symlink')) return list;
      const dir = await openInside(
        mp,
        await resolveInside(mp, rel),
        constants.O_RDONLY | constants.O_DIRECTORY,
      );
      try {
        for (const e of entries)
          if (e.type === 'symlink') {
            const t = await readlink(`/proc/self/fd/${dir.fd}/${e.name}`).catch(() => null);
            if (t !== null) e.target = t.slice(0, 4096);
          }
      } finally {
        await dir.close();
      }
      return { ...list, entries };
    });
  }

  /** One regular file inside the volume, at most VOLUME_FILE_MAX_BYTES (utf8 or base64). */
  async getFile(name: string, rel: string) {
    const mp = await this.mountpoint(name);
    return inVolume(name, () => getFile(mp, rel, VOLUME_FILE_MAX_BYTES));
  }

  /** What a download ticket reads: the volume's directory, and the file's size and name now. */
  async download(name: string, rel: string): Promise<{ root: string; size: number; name: string }> {
    const root = await this.mountpoint(name);
    return { root, ...(await inVolume(name, () => downloadSize(root, rel, new Denylist([])))) };
  }

  /** Running containers that mount the volume. */
  async usedBy(name: string): Promise<string[]> {
    const list = await this.#docker.listContainers({ filters: { volume: [name], status: ['running'] } });
    return list.map((c) => (c.Names[0] ?? c.Id).replace(/^\//, ''));
  }

  async assertFree(name: string, force: boolean): Promise<void> {
    if (force) return;
    const users = await this.usedBy(name);
    if (users.length > 0)
      throw new CodedError(
        'INVALID_STATE',
        `volume ${name} is in use by running container(s) ${users.slice(0, 10).join(', ')}; stop them or pass force`,
      );
  }

  /** The volume archived while it streams. */
  async openBackup(
    name: string,
    format: 'tar.gz' | 'tar.zst',
  ): Promise<{ stream: Readable; size: null; name: string; close: () => Promise<void> }> {
    const mp = await this.mountpoint(name);
    const { stream, done } = createArchive(mp, { format });
    done.catch(() => undefined);
    return {
      stream,
      size: null,
      name: `${name}.${format}`,
      close: async () => {
        stream.destroy();
      },
    };
  }

  /** Spools, verifies and unpacks an uploaded archive into the volume (see the header). */
  async restore(
    name: string,
    body: Readable,
    size: number,
    opts: { force: boolean; truncate: boolean },
  ): Promise<{ path: string; size: number; bytes: number; entries: number }> {
    const mp = await this.mountpoint(name);
    await this.assertFree(name, opts.force);
    await mkdir(this.#tmpDir, { recursive: true, mode: 0o700 });
    const file = path.join(this.#tmpDir, `${randomBytes(8).toString('hex')}.part`);
    const out = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      let got = 0;
      const cap = new Transform({
        transform(c: Buffer, _enc, cb) {
          got += c.length;
          if (got > size)
            cb(new CodedError('FILE_TOO_LARGE', `the body is larger than the ${size} bytes announced`));
          else cb(null, c);
        },
      });
      await pipeline(body, cap, out.createWriteStream());
      if (got !== size)
        throw new CodedError('VALIDATION_FAILED', `the body had ${got} of the ${size} bytes announced`);
      const head = Buffer.alloc(512);
      const fh = await open(file, 'r');
      let format: ArchiveFormat | null;
      try {
        format = sniffFormat(head.subarray(0, (await fh.read(head, 0, 512, 0)).bytesRead));
      } finally {
        await fh.close();
      }
      if (!format)
        throw new CodedError(
          'ARCHIVE_INVALID',
          'not an archive this Agent reads (tar.gz, tar.zst, tar, zip)',
        );
      const caps = {
        format,
        maxBytes: DEFAULT_MAX_BYTES,
        maxEntries: DEFAULT_MAX_ENTRIES,
        tmpDir: this.#tmpDir,
      };
      await verifyArchive(archiveFileStream(file), caps);
      // checked again: a container may have started since the ticket was issued
      await this.assertFree(name, opts.force);
      if (opts.truncate)
        for (const n of await readdir(mp)) await rm(path.join(mp, n), { recursive: true, force: true });
      const stats = await extractArchive(archiveFileStream(file), mp, caps);
      await restoreOwners(file, format, mp);
      return { path: `volume:${name}`, size, bytes: stats.bytes, entries: stats.entries };
    } finally {
      await out.close().catch(() => undefined);
      await rm(file, { force: true });
    }
  }
}
