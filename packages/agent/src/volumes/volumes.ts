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
 * - change (issue 11): upload (a ticket: a temporary file renamed over the target when every byte
 *   came), mkdir, rename, delete, by the server files' operations (src/filesystem/operations:
 *   every component opened O_NOFOLLOW); no denylist, no quota (the Panel asks docker.write).
 *
 * Where the data is reached: the Mountpoint the Engine reports is a host path, read directly when
 * the volume uses the `local` driver and that path is a directory this Agent sees (an Agent in a
 * container needs /var/lib/docker/volumes mounted at the same path). Otherwise (another driver,
 * or a Mountpoint out of sight; or always, with AGENT_VOLUME_ACCESS=helper) browsing and changes
 * go through a short-lived helper container that mounts the volume (./helper.ts). So do backup
 * and restore (issue 11): a backup is the Engine's tar of the volume (GET archive of /v) read by
 * the archiver's own tar reader with extract's rules (links out and devices left out, as create
 * leaves them) and written again as its own tar.zst/tar.gz, streamed; a restore spools and
 * verifies the upload as above, then streams a plain tar the archiver writes from it (owners,
 * modes, mtimes kept; never the upload's bytes) into the Engine's PUT archive at /v, after
 * emptying the volume when `truncate`.
 */
import { createHash, randomBytes } from 'node:crypto';
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
  repackArchive,
  verifyArchive,
} from '../archive/archive.ts';
import { entryParts } from '../archive/paths.ts';
import { sniffFormat } from '../filesystem/archives.ts';
import { getFile, type ListPage, listFiles, openInside, resolveInside } from '../filesystem/filesystem.ts';
import {
  checkName,
  createDirectory,
  Denylist,
  deleteFiles,
  renameFile,
  splitPath,
} from '../filesystem/operations.ts';
import { downloadSize, openDownload, receiveUpload } from '../transfers/transfers.ts';
import { displayPath, type HelperSession, VolumeHelper } from './helper.ts';

/** How a volume's files are reached: its Mountpoint on this host, or a helper container. */
type Access = { kind: 'direct'; root: string } | { kind: 'helper' };

const NO_DENY = new Denylist([]);

/** Entries sorted as listFiles sorts them (directories first), one page of them. */
function pageOf<E extends { name: string; type: string; size: number; modifiedAt: string }>(
  all: E[],
  page: { offset: number; limit: number; sort: 'name' | 'size' | 'modified'; order: 'asc' | 'desc' },
): E[] {
  const desc = page.order === 'desc';
  const key = (e: E) =>
    page.sort === 'size' ? e.size : page.sort === 'modified' ? Date.parse(e.modifiedAt) : 0;
  const sorted = [...all].sort((a, b) => {
    const da = a.type === 'directory' ? 0 : 1;
    const db = b.type === 'directory' ? 0 : 1;
    if (da !== db) return da - db;
    const k = key(a) - key(b);
    if (k !== 0) return desc ? -k : k;
    const n = a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
    return page.sort === 'name' && desc ? -n : n;
  });
  return sorted.slice(page.offset, page.offset + page.limit);
}

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
  readonly #forceHelper: boolean;
  readonly helper: VolumeHelper;

  constructor(opts: {
    docker: Docker;
    tmpDir: string;
    /** this Agent's node id (its helper containers' label) */
    owner?: string;
    /** AGENT_VOLUME_ACCESS=helper: never the Mountpoint, always a helper container */
    forceHelper?: boolean;
    helperImage?: string | undefined;
  }) {
    this.#docker = opts.docker;
    this.#tmpDir = opts.tmpDir;
    this.#forceHelper = opts.forceHelper ?? false;
    this.helper = new VolumeHelper({
      docker: opts.docker,
      owner: opts.owner ?? 'agent',
      image: opts.helperImage,
    });
  }

  /**
   * How the volume is reached (see the header): directly when it is local and its Mountpoint is
   * a directory here, else through a helper container.
   */
  async access(name: string): Promise<Access> {
    const info = await this.#inspect(name);
    if (this.#forceHelper || info.Driver !== 'local') return { kind: 'helper' };
    const mp = info.Mountpoint;
    const st = path.isAbsolute(mp) ? await lstat(mp).catch(() => null) : null;
    return st?.isDirectory() ? { kind: 'direct', root: mp } : { kind: 'helper' };
  }

  async #inspect(name: string): Promise<Docker.VolumeInspectInfo> {
    try {
      return await this.#docker.getVolume(name).inspect();
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404)
        throw new CodedError('NOT_FOUND', `no Docker volume ${JSON.stringify(name)}`);
      throw new CodedError('DOCKER_ERROR', `cannot inspect volume ${name}: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  /** `run` on the volume's directory, or in a helper container (read-write only when `rw`). */
  async #on<T>(
    name: string,
    rw: boolean,
    direct: (root: string) => Promise<T>,
    viaHelper: (h: HelperSession) => Promise<T>,
  ): Promise<T> {
    const a = await this.access(name);
    return inVolume(name, () =>
      a.kind === 'direct' ? direct(a.root) : this.helper.with(name, rw, viaHelper),
    );
  }

  /** One page of a directory inside the volume; symlinks with their target (see the header). */
  async listFiles(
    name: string,
    rel: string,
    page: { offset: number; limit: number; sort: 'name' | 'size' | 'modified'; order: 'asc' | 'desc' },
  ): Promise<Omit<ListPage, 'entries'> & { entries: VolumeFileEntry[] }> {
    const a = await this.access(name);
    if (a.kind === 'helper')
      return inVolume(name, () =>
        this.helper.with(name, false, async (h) => {
          const real = await h.resolve(rel);
          if ((await h.stat(real)).type !== 'directory')
            throw new CodedError('CONFIG_INVALID', 'not a directory');
          const all = await h.list(real);
          return {
            path: displayPath(real),
            entries: pageOf(all, page),
            total: all.length,
            offset: page.offset,
            limit: page.limit,
          };
        }),
      );
    const mp = a.root;
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
  async getFile(
    name: string,
    rel: string,
  ): Promise<ReturnType<typeof getFile> extends Promise<infer R> ? R : never> {
    return this.#on(
      name,
      false,
      (mp) => getFile(mp, rel, VOLUME_FILE_MAX_BYTES),
      async (h) => {
        const real = await h.resolve(rel);
        const st = await h.stat(real);
        if (st.type !== 'file') throw new CodedError('CONFIG_INVALID', 'not a regular file');
        if (st.size > VOLUME_FILE_MAX_BYTES)
          throw new CodedError('FILE_TOO_LARGE', `file is larger than ${VOLUME_FILE_MAX_BYTES} bytes`);
        const f = await h.openFile(real);
        const chunks: Buffer[] = [];
        let n = 0;
        for await (const c of f.stream as AsyncIterable<Buffer>) {
          n += c.length;
          if (n > VOLUME_FILE_MAX_BYTES) {
            f.stream.destroy();
            throw new CodedError('FILE_TOO_LARGE', `file is larger than ${VOLUME_FILE_MAX_BYTES} bytes`);
          }
          chunks.push(c);
        }
        const buf = Buffer.concat(chunks);
        const text = buf.toString('utf8');
        const isText = !buf.includes(0) && Buffer.from(text, 'utf8').equals(buf);
        return {
          path: displayPath(real),
          size: buf.length,
          encoding: isText ? ('utf8' as const) : ('base64' as const),
          content: isText ? text : buf.toString('base64'),
          sha256: createHash('sha256').update(buf).digest('hex'),
          modifiedAt: st.modifiedAt,
        };
      },
    );
  }

  /** What a download ticket announces: the file's size and name now (proof it may be read). */
  async download(name: string, rel: string): Promise<{ size: number; name: string }> {
    return this.#on(
      name,
      false,
      (root) => downloadSize(root, rel, NO_DENY),
      async (h) => {
        const real = await h.resolve(rel);
        const st = await h.stat(real);
        if (st.type === 'directory') throw new CodedError('CONFIG_INVALID', 'is a directory');
        if (st.type !== 'file') throw new CodedError('CONFIG_INVALID', 'not a regular file');
        return { size: st.size, name: st.name };
      },
    );
  }

  /** A file's bytes for a download ticket taken (resolved again now); the helper goes at close. */
  async openFile(
    name: string,
    rel: string,
  ): Promise<{ stream: Readable; size: number; name: string; close: () => Promise<void> }> {
    const a = await this.access(name);
    if (a.kind === 'direct') return inVolume(name, () => openDownload(a.root, rel, NO_DENY));
    return this.#held(name, false, async (h) => {
      const real = await h.resolve(rel);
      return { ...(await h.openFile(real)), name: path.posix.basename(real) };
    });
  }

  /**
   * A stream made in a helper container that lives as long as the stream: it is removed when the
   * stream ends or is closed.
   */
  async #held<S extends { stream: Readable }>(
    name: string,
    rw: boolean,
    make: (h: HelperSession) => Promise<S>,
  ): Promise<S & { close: () => Promise<void> }> {
    let release: () => void = () => undefined;
    const released = new Promise<void>((r) => {
      release = r;
    });
    let opened: (v: S) => void = () => undefined;
    let failed: (e: unknown) => void = () => undefined;
    const ready = new Promise<S>((res, rej) => {
      opened = res;
      failed = rej;
    });
    const done = inVolume(name, () =>
      this.helper.with(name, rw, async (h) => {
        const f = await make(h);
        f.stream.on('close', release);
        opened(f);
        await released;
      }),
    );
    done.catch(failed);
    const f = await ready;
    return {
      ...f,
      close: async () => {
        f.stream.destroy();
        release();
        await done.catch(() => undefined);
      },
    };
  }

  /**
   * Writes an upload ticket's body (exactly `size` bytes) to `rel` (see the header); the new file
   * belongs to its folder's owner (a volume's files are its containers' user's, not the Agent's).
   */
  async upload(
    name: string,
    rel: string,
    body: Readable,
    size: number,
  ): Promise<{ path: string; size: number }> {
    return this.#on(
      name,
      true,
      async (root) => {
        const parts = splitPath(rel);
        parts.pop();
        const folder = await lstat(await resolveInside(root, parts.join('/')));
        return receiveUpload(
          {
            serverId: '',
            root,
            path: rel,
            direction: 'upload',
            size,
            expiresAt: Date.now() + 60_000,
            deny: NO_DENY,
            owner: { uid: folder.uid, gid: folder.gid },
          },
          body,
        );
      },
      async (h) => {
        const { dir, name: file } = await h.resolveParent(rel, checkName);
        const existing = await h.lstatOrNull(`${dir}/${file}`);
        if (existing?.type === 'directory') throw new CodedError('FILE_EXISTS', `${rel} is a directory`);
        await h.writeFile(dir, file, body, size, await h.ownerOf(dir));
        return { path: `${displayPath(dir).replace(/\/$/, '')}/${file}`, size };
      },
    );
  }

  /** Checks an upload's target before its ticket is issued (its folder exists, inside). */
  async assertUploadTarget(name: string, rel: string): Promise<void> {
    const parts = splitPath(rel);
    const file = parts.pop();
    if (file === undefined) throw new CodedError('NAME_INVALID', 'the path names the volume root');
    checkName(file);
    await this.#on(
      name,
      false,
      async (root) => {
        const real = await resolveInside(root, parts.join('/'));
        if (!(await lstat(real)).isDirectory()) throw new CodedError('CONFIG_INVALID', 'not a directory');
      },
      async (h) => {
        await h.resolveParent(rel, checkName);
      },
    );
  }

  async createDirectory(name: string, rel: string): Promise<{ paths: string[] }> {
    return this.#on(
      name,
      true,
      async (root) => ({ paths: [(await createDirectory(root, rel, NO_DENY)).path] }),
      async (h) => {
        const { dir, name: last } = await h.resolveParent(rel, checkName);
        if (await h.lstatOrNull(`${dir}/${last}`))
          throw new CodedError('FILE_EXISTS', 'the target exists already');
        await h.change(['mkdir', `${dir}/${last}`]);
        return { paths: [`${displayPath(dir).replace(/\/$/, '')}/${last}`] };
      },
    );
  }

  async rename(name: string, from: string, to: string): Promise<{ paths: string[] }> {
    return this.#on(
      name,
      true,
      (root) => renameFile(root, from, to, NO_DENY),
      async (h) => {
        const src = await h.resolveParent(from, checkName);
        const dst = await h.resolveParent(to, checkName);
        if (!(await h.lstatOrNull(`${src.dir}/${src.name}`)))
          throw new CodedError('FILE_NOT_FOUND', 'no such file or directory');
        if (await h.lstatOrNull(`${dst.dir}/${dst.name}`))
          throw new CodedError('FILE_EXISTS', 'the target exists already');
        // -n -T: never over (or into) an entry that appeared meanwhile; a link moves, not its target
        await h.change(['mv', '-n', '-T', `${src.dir}/${src.name}`, `${dst.dir}/${dst.name}`]);
        return { paths: [`${displayPath(dst.dir).replace(/\/$/, '')}/${dst.name}`] };
      },
    );
  }

  async deleteFiles(name: string, dirRel: string, names: readonly string[]): Promise<{ paths: string[] }> {
    return this.#on(
      name,
      true,
      (root) => deleteFiles(root, dirRel, names, NO_DENY),
      async (h) => {
        for (const n of names) checkName(n);
        const dir = await h.resolve(dirRel);
        if ((await h.stat(dir)).type !== 'directory')
          throw new CodedError('CONFIG_INVALID', 'not a directory');
        // every entry is checked before any is removed
        for (const n of names)
          if (!(await h.lstatOrNull(`${dir}/${n}`)))
            throw new CodedError(
              'FILE_NOT_FOUND',
              `${displayPath(dir).replace(/\/$/, '')}/${n} does not exist`,
            );
        await h.change(['rm', '-rf', ...names.map((n) => `${dir}/${n}`)]);
        return { paths: names.map((n) => `${displayPath(dir).replace(/\/$/, '')}/${n}`) };
      },
    );
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
    const a = await this.access(name);
    if (a.kind === 'helper') {
      // the Engine's tar of /v, read by the archiver's rules and written as its own (as create)
      const held = await this.#held(name, false, async (h) => {
        const { stream, done } = repackArchive(await h.archiveOut(), {
          format: 'tar',
          to: format,
          strip: ['v'],
          dropLinksOut: true,
          maxBytes: Number.MAX_SAFE_INTEGER,
          maxEntries: Number.MAX_SAFE_INTEGER,
        });
        done.catch(() => undefined);
        return { stream };
      });
      return { stream: held.stream, size: null, name: `${name}.${format}`, close: held.close };
    }
    const { stream, done } = createArchive(a.root, { format });
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
    const a = await this.access(name);
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
      const verified = await verifyArchive(archiveFileStream(file), caps);
      // checked again: a container may have started since the ticket was issued
      await this.assertFree(name, opts.force);
      if (a.kind === 'helper') {
        // the Engine gets a tar this Agent writes from the verified archive, never the upload's bytes
        await this.helper.with(name, true, async (h) => {
          const owner = await h.ownerOf('/v');
          if (opts.truncate) await h.clear();
          const { stream, done } = repackArchive(archiveFileStream(file), { ...caps, to: 'tar', owner });
          done.catch(() => undefined);
          try {
            await h.archiveIn(stream);
          } catch (e) {
            stream.destroy();
            throw new CodedError('DOCKER_ERROR', `cannot restore volume ${name}: ${(e as Error).message}`, {
              cause: e,
            });
          }
          await done;
        });
        return { path: `volume:${name}`, size, bytes: verified.bytes, entries: verified.entries };
      }
      const mp = a.root;
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
