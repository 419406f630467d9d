/**
 * A Docker volume reached through a short-lived helper container (issue 11), for when the Agent
 * cannot see the volume's Mountpoint itself (an Agent in a container without /var/lib/docker
 * mounted, or a volume driver other than `local`). One container per operation: the helper
 * image (busybox, or the Agent's own Debian image: both have the tools used) with the volume
 * mounted at /v, read-only unless the operation writes, no network, all capabilities dropped but
 * the file ones root needs to read and write files it does not own, no-new-privileges; it sleeps
 * while the Agent runs argument arrays in it (exec, never a shell string) and reads or writes
 * bytes through the Engine's archive API, and is removed after.
 *
 * Paths: `..` that leaves /v lexically is refused first; then every path is realpath'd inside the
 * helper and must stay under /v (PATH_OUTSIDE_ROOT otherwise), as the direct code does. A race
 * that swaps a folder for a link between the check and the use can only reach the helper's own
 * throw-away root filesystem (the volume is the only thing of the host mounted in it).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { PassThrough, Readable, Transform } from 'node:stream';
import { CodedError, type FileEntry } from '@cap/protocol';
import type Docker from 'dockerode';
import { Header, Parser, type ReadEntry } from 'tar';

export const HELPER_LABEL = 'ctrl-alt-play.volume-helper';
const ROOT = '/v';
/** what one listing may print (names and stat lines) before it is refused */
const LIST_MAX_OUTPUT = 64 * 1024 * 1024;
const STAT_FORMAT = '%F|%s|%a|%Y';

function inside(p: string): boolean {
  return p === ROOT || p.startsWith(`${ROOT}/`);
}

/** `rel` under /v, lexically (`..` past the root is refused before anything runs). */
export function lexical(rel: string): string {
  if (rel.includes('\0')) throw new CodedError('PATH_OUTSIDE_ROOT', 'path contains a NUL byte');
  const p = path.posix.resolve(ROOT, `./${rel.replace(/^\/+/, '')}`);
  if (!inside(p)) throw new CodedError('PATH_OUTSIDE_ROOT', 'path is outside the volume');
  return p;
}

/** A real path under /v as the volume's own path (`/…`). */
export const displayPath = (real: string): string => (real === ROOT ? '/' : real.slice(ROOT.length));

function typeOf(f: string): FileEntry['type'] {
  if (f === 'directory') return 'directory';
  if (f === 'regular file' || f === 'regular empty file') return 'file';
  if (f === 'symbolic link') return 'symlink';
  return 'other';
}

/** One `stat -c '%F|%s|%a|%Y'` line as an entry. */
export function parseStat(name: string, line: string): FileEntry {
  const m = /^(.*)\|(\d+)\|([0-7]+)\|(\d+)$/.exec(line);
  if (!m) throw new CodedError('INTERNAL_ERROR', 'the helper container printed an unexpected stat line');
  return {
    name,
    type: typeOf(m[1] ?? ''),
    size: Number(m[2]),
    mode: (Number.parseInt(m[3] ?? '0', 8) & 0o7777).toString(8).padStart(4, '0'),
    modifiedAt: new Date(Number(m[4]) * 1000).toISOString(),
  };
}

/**
 * The output of `find D -mindepth 1 -maxdepth 1 -exec stat -c F {} ; -print0 -type l -exec
 * readlink {} ; -print0`: per entry a stat line, `\n`, the path and NUL; a link then prints its
 * target, `\n`, and the path and NUL again (the repeated path ends the target, whatever it holds).
 */
export function parseListing(out: Buffer, dir: string): (FileEntry & { target?: string })[] {
  const entries: (FileEntry & { target?: string })[] = [];
  let i = 0;
  while (i < out.length) {
    const nl = out.indexOf(0x0a, i);
    if (nl < 0) break;
    const line = out.subarray(i, nl).toString('utf8');
    const nul = out.indexOf(0, nl + 1);
    if (nul < 0) break;
    const full = out.subarray(nl + 1, nul).toString('utf8');
    i = nul + 1;
    const e: FileEntry & { target?: string } = parseStat(path.posix.basename(full), line);
    if (!full.startsWith(dir === '/' ? '/' : `${dir}/`)) continue;
    if (e.type === 'symlink') {
      const end = out.indexOf(Buffer.from(`\n${full}\0`), i);
      if (end >= 0) {
        e.target = out.subarray(i, end).toString('utf8').slice(0, 4096);
        i = end + full.length + 2;
      }
    }
    entries.push(e);
  }
  return entries;
}

interface Run {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** One helper container, alive for one operation. */
export class HelperSession {
  readonly #c: Docker.Container;
  readonly #docker: Docker;
  constructor(docker: Docker, c: Docker.Container) {
    this.#docker = docker;
    this.#c = c;
  }

  /** Runs an argument array in the helper; stdout kept up to `max` bytes (more: FILE_TOO_LARGE). */
  async run(argv: string[], max = 1024 * 1024): Promise<Run> {
    const exec = await this.#c.exec({ Cmd: argv, AttachStdout: true, AttachStderr: true, Tty: false });
    const stream = await exec.start({ hijack: true, stdin: false });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let tooMuch = false;
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    stdout.on('data', (b: Buffer) => {
      outBytes += b.length;
      if (outBytes > max) {
        tooMuch = true;
        stream.destroy();
      } else out.push(b);
    });
    stderr.on('data', (b: Buffer) => {
      if (err.length < 64) err.push(b);
    });
    this.#docker.modem.demuxStream(stream, stdout, stderr);
    await new Promise<void>((resolve, reject) => {
      stream.on('end', () => resolve());
      stream.on('close', () => resolve());
      stream.on('error', (e) => (tooMuch ? resolve() : reject(e)));
    });
    if (tooMuch) throw new CodedError('FILE_TOO_LARGE', `the helper's answer is larger than ${max} bytes`);
    let code: number | null = null;
    // the exit code shows once the process is reaped: a few polls at most
    for (let i = 0; i < 50; i++) {
      const info = await exec.inspect();
      if (!info.Running) {
        code = info.ExitCode ?? 0;
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return {
      code: code ?? -1,
      stdout: Buffer.concat(out),
      stderr: Buffer.concat(err).toString('utf8').slice(0, 2000),
    };
  }

  /** The real path of `rel` inside the volume (it must exist). */
  async resolve(rel: string): Promise<string> {
    const p = lexical(rel);
    const r = await this.run(['realpath', p], 64 * 1024);
    if (r.code !== 0) throw new CodedError('FILE_NOT_FOUND', 'no such file or directory');
    const real = r.stdout.toString('utf8').replace(/\n$/, '');
    if (!inside(real)) throw new CodedError('PATH_OUTSIDE_ROOT', 'path leads outside the volume');
    return real;
  }

  /** The real folder of `rel`'s parent and its last name (checked), for a target that may not exist. */
  async resolveParent(rel: string, check: (name: string) => void): Promise<{ dir: string; name: string }> {
    const p = lexical(rel);
    if (p === ROOT) throw new CodedError('NAME_INVALID', 'the path names the volume root');
    const name = path.posix.basename(p);
    check(name);
    const dir = await this.resolve(displayPath(path.posix.dirname(p)));
    const st = await this.stat(dir);
    if (st.type !== 'directory') throw new CodedError('CONFIG_INVALID', 'not a directory');
    return { dir, name };
  }

  /** lstat of a real path (no link followed); null when there is none. */
  async lstatOrNull(real: string): Promise<FileEntry | null> {
    const r = await this.run(['stat', '-c', STAT_FORMAT, real], 64 * 1024);
    if (r.code !== 0) return null;
    return parseStat(path.posix.basename(real), r.stdout.toString('utf8').replace(/\n$/, ''));
  }

  async stat(real: string): Promise<FileEntry> {
    const s = await this.lstatOrNull(real);
    if (!s) throw new CodedError('FILE_NOT_FOUND', 'no such file or directory');
    return s;
  }

  /** The numeric owner of a real path. */
  async ownerOf(real: string): Promise<{ uid: number; gid: number }> {
    const r = await this.run(['stat', '-c', '%u|%g', real], 1024);
    const m = /^(\d+)\|(\d+)\n?$/.exec(r.stdout.toString('utf8'));
    if (r.code !== 0 || !m) throw new CodedError('FILE_NOT_FOUND', 'no such file or directory');
    return { uid: Number(m[1]), gid: Number(m[2]) };
  }

  /** Every entry of a (real) directory, with link targets. */
  async list(real: string): Promise<(FileEntry & { target?: string })[]> {
    const r = await this.run(
      [
        'find',
        real,
        '-mindepth',
        '1',
        '-maxdepth',
        '1',
        '-exec',
        'stat',
        '-c',
        STAT_FORMAT,
        '{}',
        ';',
        '-print0',
        '-type',
        'l',
        '-exec',
        'readlink',
        '{}',
        ';',
        '-print0',
      ],
      LIST_MAX_OUTPUT,
    );
    if (r.code !== 0) throw new CodedError('FILE_NOT_FOUND', 'cannot list the directory');
    return parseListing(r.stdout, real);
  }

  /** A regular file's bytes, streamed out of the Engine's archive API (its one tar entry). */
  async openFile(real: string): Promise<{ stream: Readable; size: number }> {
    const st = await this.stat(real);
    if (st.type === 'directory') throw new CodedError('CONFIG_INVALID', 'is a directory');
    if (st.type !== 'file') throw new CodedError('CONFIG_INVALID', 'not a regular file');
    const tar = (await this.#c.getArchive({ path: real })) as unknown as Readable;
    const body = new PassThrough();
    const parser = new Parser({ strict: true });
    let seen = false;
    parser.on('entry', (e: ReadEntry) => {
      if (seen || e.type !== 'File') {
        e.resume();
        return;
      }
      seen = true;
      e.pipe(body);
    });
    const fail = (e: Error) => body.destroy(e);
    parser.on('error', fail);
    tar.on('error', fail);
    parser.on('end', () => {
      if (!seen) body.destroy(new CodedError('FILE_NOT_FOUND', 'the file vanished'));
    });
    tar.pipe(parser as unknown as NodeJS.WritableStream);
    body.on('close', () => tar.destroy());
    return { stream: body, size: st.size };
  }

  /**
   * Writes exactly `size` bytes of `body` as `dir/name`: a tar of one entry under a temporary
   * name goes through the archive API, then is renamed over the target; on any failure the
   * temporary file is removed and the target is untouched.
   */
  async writeFile(
    dir: string,
    name: string,
    body: Readable,
    size: number,
    owner: { uid: number; gid: number },
  ): Promise<void> {
    const tmp = `.cap-upload-${randomBytes(8).toString('hex')}`;
    const header = new Header({
      path: tmp,
      mode: 0o644,
      uid: owner.uid,
      gid: owner.gid,
      size,
      mtime: new Date(),
      type: 'File',
    });
    header.encode();
    let got = 0;
    const counted = new Transform({
      transform(c: Buffer, _enc, cb) {
        got += c.length;
        if (got > size)
          cb(new CodedError('FILE_TOO_LARGE', `the body is larger than the ${size} bytes announced`));
        else cb(null, c);
      },
      flush(cb) {
        if (got !== size)
          cb(new CodedError('VALIDATION_FAILED', `the body had ${got} of the ${size} bytes announced`));
        else {
          const pad = (512 - (size % 512)) % 512;
          this.push(Buffer.alloc(pad + 1024));
          cb();
        }
      },
    });
    const head = Readable.from([header.block as Buffer]);
    const tarStream = new PassThrough();
    head.pipe(tarStream, { end: false });
    head.on('end', () => body.pipe(counted).pipe(tarStream));
    let bodyError: unknown = null;
    const onError = (e: unknown) => {
      bodyError ??= e;
      tarStream.destroy(e as Error);
    };
    body.on('error', onError);
    counted.on('error', onError);
    try {
      await this.#c.putArchive(tarStream, { path: dir });
      if (bodyError) throw bodyError;
      // a link in the way is replaced, not followed (as rename(2) does it on the direct path);
      // -T: never into a folder that appeared there meanwhile
      if ((await this.lstatOrNull(`${dir}/${name}`))?.type === 'symlink')
        await this.change(['rm', '-f', `${dir}/${name}`]);
      const mv = await this.run(['mv', '-f', '-T', `${dir}/${tmp}`, `${dir}/${name}`]);
      if (mv.code !== 0) throw new CodedError('INTERNAL_ERROR', `cannot write ${name}: ${mv.stderr.trim()}`);
    } catch (e) {
      await this.run(['rm', '-f', `${dir}/${tmp}`]).catch(() => undefined);
      throw bodyError ?? e;
    }
  }

  /** The Engine's tar of the whole volume (entries `v/…`), streamed. */
  async archiveOut(): Promise<Readable> {
    return (await this.#c.getArchive({ path: ROOT })) as unknown as Readable;
  }

  /** Extracts a tar (one this Agent made) into the volume's root through the Engine. */
  async archiveIn(tar: Readable): Promise<void> {
    await this.#c.putArchive(tar, { path: ROOT });
  }

  /** Removes everything in the volume (not the volume's root). */
  async clear(): Promise<void> {
    await this.change(['find', ROOT, '-mindepth', '1', '-maxdepth', '1', '-exec', 'rm', '-rf', '{}', ';']);
  }

  /** Runs a change (mkdir, mv, rm); a nonzero exit is `code` with the tool's own words. */
  async change(argv: string[], code: 'INTERNAL_ERROR' | 'FILE_EXISTS' = 'INTERNAL_ERROR'): Promise<void> {
    const r = await this.run(argv);
    if (r.code !== 0) throw new CodedError(code, `${argv[0]} failed: ${r.stderr.trim().slice(0, 500)}`);
  }
}

export class VolumeHelper {
  readonly #docker: Docker;
  readonly #configured: string | undefined;
  readonly #owner: string;
  #image: Promise<string> | undefined;

  /** `owner`: this Agent's node id, on its helpers' label (Agents may share one Engine). */
  constructor(opts: { docker: Docker; owner: string; image?: string | undefined }) {
    this.#docker = opts.docker;
    this.#owner = opts.owner;
    this.#configured = opts.image;
  }

  /**
   * The helper's image: the one configured, else the Agent's own image when it runs in a
   * container (it is on the node for sure), else the project's busybox image.
   */
  image(): Promise<string> {
    this.#image ??= (async () => {
      if (this.#configured) return this.#configured;
      // this container's id: Docker mounts its /etc/hostname from /var/lib/docker/containers/<id>/
      // (also with --network host, where the host name is the host's); else the host name
      const mountinfo = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
      const ids = [
        /\/containers\/([0-9a-f]{64})\/hostname \/etc\/hostname /.exec(mountinfo)?.[1],
        hostname(),
      ];
      for (const id of ids) {
        if (!id) continue;
        try {
          const me = await this.#docker.getContainer(id).inspect();
          if (me.Config?.Image) return me.Config.Image;
        } catch {
          // not a container the Engine knows
        }
      }
      return 'ctrl-alt-play/busybox:latest';
    })();
    return this.#image;
  }

  /** Runs `fn` with a helper container that mounts the volume (read-write only when asked). */
  async with<T>(volume: string, rw: boolean, fn: (h: HelperSession) => Promise<T>): Promise<T> {
    const c = await this.#docker
      .createContainer({
        name: `cap-volume-helper-${randomBytes(6).toString('hex')}`,
        Image: await this.image(),
        Entrypoint: ['sleep'],
        Cmd: ['600'],
        User: '0:0',
        WorkingDir: '/',
        Labels: { [HELPER_LABEL]: this.#owner, [`${HELPER_LABEL}.volume`]: volume },
        NetworkDisabled: true,
        HostConfig: {
          NetworkMode: 'none',
          Mounts: [{ Type: 'volume', Source: volume, Target: ROOT, ReadOnly: !rw }],
          CapDrop: ['ALL'],
          CapAdd: ['CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER'],
          SecurityOpt: ['no-new-privileges'],
          PidsLimit: 64,
          Memory: 128 * 1024 * 1024,
          ReadonlyRootfs: true,
        },
      })
      .catch((e: { statusCode?: number; message?: string }) => {
        throw new CodedError('DOCKER_ERROR', `cannot create the volume helper container: ${e.message}`, {
          cause: e,
        });
      });
    try {
      await c.start();
      return await fn(new HelperSession(this.#docker, c));
    } finally {
      await c.remove({ force: true, v: false }).catch(() => undefined);
    }
  }

  /** Helpers left by an Agent that stopped mid-operation. */
  async sweep(): Promise<void> {
    const left = await this.#docker
      .listContainers({ all: true, filters: { label: [`${HELPER_LABEL}=${this.#owner}`] } })
      .catch(() => []);
    for (const c of left)
      await this.#docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined);
  }
}
