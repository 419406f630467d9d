/**
 * Backups kept on the node (issue 10 item 4), in `AGENT_BACKUP_DIR` (default
 * `<AGENT_DATA_DIR>/backups`, outside every server root): `<dir>/<serverId>/<backupId>.tar.zst`
 * and a small `index.json` per server with each backup's state, size and sha256.
 *
 * - One backup or restore at a time per server (SERVER_BUSY).
 * - An archive is written to `.<backupId>.<ext>.partial` (O_EXCL, 0600), fsync'ed, renamed, and
 *   the directory fsync'ed; only then is it `completed`. Any failure (a full disk included) leaves
 *   it `failed` with the code, and the partial file removed: nothing half-written is ever listed
 *   as completed. A backup pending when the Agent stopped is `failed` (AGENT_RESTARTED) on boot.
 * - Restore is one operation: verify the archive (sha256 against the index, then a full
 *   structural read: checksums, entry rules, caps) → stop the server → optionally delete its files
 *   → extract → give the files to the game's user → start it again if it was running. A corrupt
 *   archive fails before anything of the server is touched.
 * - Retention after a success: the newest `retain` completed unlocked backups are kept; locked
 *   ones are never removed by it, nor deleted until unlocked.
 */
import { createHash, randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, statfs } from 'node:fs/promises';
import path from 'node:path';
import {
  BACKUP_LIST_MAX_LIMIT,
  type BackupFormat,
  type BackupRecord,
  CodedError,
  type Command,
  type ErrorCode,
  isCodedError,
  sizeToBytes,
} from '@cap/protocol';
import type { Logger } from 'pino';
import {
  archiveFileStream,
  createArchive,
  DEFAULT_MAX_BYTES,
  extractArchive,
  verifyArchive,
} from '../archive/archive.ts';
import { chownTree, getFile } from '../filesystem/filesystem.ts';
import type { BackupImport } from '../transfers/transfers.ts';

/** What a backup needs of a server (the Server class; an interface so tests and volumes can stand in). */
export interface BackupSubject {
  readonly id: string;
  readonly dir: string;
  readonly status: string;
  readonly egg: { limits: { disk?: number | string | undefined } };
  sendCommand(command: string): void;
  stop(): Promise<void>;
  start(): Promise<void>;
}

export type Progress = (stage: string, message?: string) => void;

const INDEX_VERSION = 1;
/** failed records kept per server (the newest); older ones go with the next retention pass */
const FAILED_KEPT = 20;

function inside(parent: string, p: string): boolean {
  const rel = path.relative(parent, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function mb(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** A progress callback for archive bytes, at most once a second. */
function throttled(progress: Progress, stage: string): (bytes: number, entries: number) => void {
  let last = 0;
  return (bytes, entries) => {
    const now = Date.now();
    if (now - last < 1000) return;
    last = now;
    progress(stage, `${mb(bytes)}, ${entries} entries`);
  };
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class BackupStore {
  readonly dir: string;
  readonly #log: Logger;
  readonly #owner: { uid: number; gid: number };
  readonly #diskFull: (e: unknown) => CodedError | null;
  /** servers with a backup or restore running */
  readonly #busy = new Set<string>();
  /** index writes per server, one after the other */
  readonly #writes = new Map<string, Promise<void>>();
  /** the running backups and restores: aborted by close() (the Agent stopping) */
  readonly #jobs = new Map<AbortController, Promise<unknown>>();
  #closed = false;

  constructor(opts: {
    dir: string;
    serversDir: string;
    logger: Logger;
    owner: { uid: number; gid: number };
    diskFull: (e: unknown) => CodedError | null;
  }) {
    this.dir = path.resolve(opts.dir);
    if (inside(path.resolve(opts.serversDir), this.dir) || inside(this.dir, path.resolve(opts.serversDir)))
      throw new CodedError(
        'CONFIG_INVALID',
        `AGENT_BACKUP_DIR ${this.dir} must be outside the servers' directory ${opts.serversDir}`,
        { location: 'AGENT_BACKUP_DIR' },
      );
    this.#log = opts.logger.child({ component: 'backups' });
    this.#owner = opts.owner;
    this.#diskFull = opts.diskFull;
  }

  /** Creates the directory; backups left pending by a stop become failed, their partial files removed. */
  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    for (const d of await readdir(this.dir, { withFileTypes: true })) {
      if (!d.isDirectory()) continue;
      const serverId = d.name;
      const index = await this.#load(serverId);
      let changed = false;
      for (const b of index) {
        if (b.state !== 'pending') continue;
        b.state = 'failed';
        b.completedAt = new Date().toISOString();
        b.error = { code: 'AGENT_RESTARTED', message: 'the Agent stopped while the backup was being made' };
        changed = true;
      }
      for (const f of await readdir(path.join(this.dir, serverId))) {
        if (f.endsWith('.partial')) await rm(path.join(this.dir, serverId, f), { force: true });
      }
      if (changed) await this.#save(serverId, index);
    }
  }

  #serverDir(serverId: string): string {
    return path.join(this.dir, serverId);
  }

  #file(b: Pick<BackupRecord, 'serverId' | 'backupId' | 'format'>): string {
    return path.join(this.#serverDir(b.serverId), `${b.backupId}.${b.format}`);
  }

  async #load(serverId: string): Promise<BackupRecord[]> {
    try {
      const raw = JSON.parse(await readFile(path.join(this.#serverDir(serverId), 'index.json'), 'utf8'));
      return Array.isArray(raw?.backups) ? (raw.backups as BackupRecord[]) : [];
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        this.#log.error({ err: e, serverId }, 'unreadable backup index, treated as empty');
      return [];
    }
  }

  /** The index written whole to a temp file, fsync'ed and renamed over (one write at a time per server). */
  #save(serverId: string, backups: BackupRecord[]): Promise<void> {
    const dir = this.#serverDir(serverId);
    const body = JSON.stringify({ version: INDEX_VERSION, backups }, null, 1);
    const prev = this.#writes.get(serverId) ?? Promise.resolve();
    const next = prev
      .catch(() => undefined)
      .then(async () => {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        const tmp = path.join(dir, 'index.json.tmp');
        const fh = await open(tmp, 'w', 0o600);
        try {
          await fh.writeFile(body);
          await fh.sync();
        } finally {
          await fh.close();
        }
        await rename(tmp, path.join(dir, 'index.json'));
      });
    this.#writes.set(serverId, next);
    return next;
  }

  #claim(serverId: string): void {
    if (this.#closed) throw new CodedError('AGENT_RESTARTED', 'the Agent is stopping');
    if (this.#busy.has(serverId))
      throw new CodedError('SERVER_BUSY', `a backup or restore is already running for server ${serverId}`);
    this.#busy.add(serverId);
  }

  /** SERVER_BUSY while a backup or restore of the server runs. */
  assertIdle(serverId: string): void {
    if (this.#busy.has(serverId))
      throw new CodedError('SERVER_BUSY', `a backup or restore is running for server ${serverId}`);
  }

  /** A deleted server's backups: every file and its index removed. */
  async dropServer(serverId: string): Promise<void> {
    this.assertIdle(serverId);
    await (this.#writes.get(serverId) ?? Promise.resolve()).catch(() => undefined);
    this.#writes.delete(serverId);
    await rm(this.#serverDir(serverId), { recursive: true, force: true });
    this.#log.info({ serverId }, "the deleted server's backups were removed");
  }

  /** Runs a backup or restore with a signal that close() aborts; the slot is freed at the end. */
  async #job<T>(serverId: string, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    this.#claim(serverId);
    const ac = new AbortController();
    const p = work(ac.signal).finally(() => {
      this.#jobs.delete(ac);
      this.#busy.delete(serverId);
    });
    this.#jobs.set(
      ac,
      p.catch(() => undefined),
    );
    return p;
  }

  /**
   * The Agent is stopping: running backups end `failed` (AGENT_RESTARTED) with their partial
   * files removed; a restore stops where it is (the next boot reports the operation cut).
   */
  async close(): Promise<void> {
    this.#closed = true;
    const reason = new CodedError('AGENT_RESTARTED', 'the Agent stopped while the backup was being made');
    for (const ac of this.#jobs.keys()) ac.abort(reason);
    await Promise.all(this.#jobs.values());
    await Promise.all(this.#writes.values()).catch(() => undefined);
  }

  #coded(e: unknown): CodedError {
    if (isCodedError(e)) return e;
    return (
      this.#diskFull(e) ?? new CodedError('INTERNAL_ERROR', 'the backup failed unexpectedly', { cause: e })
    );
  }

  /** The server's own `.pteroignore` lines (a link or a missing file: none). */
  async #pteroignore(root: string): Promise<string[]> {
    const f = await getFile(root, '.pteroignore').catch(() => null);
    if (f?.encoding !== 'utf8') return [];
    return f.content.split(/\r?\n/).filter((l) => l.trim() !== '' && !l.startsWith('#'));
  }

  async create(
    server: BackupSubject,
    p: Command<'backup_create'>['payload'],
    progress: Progress,
  ): Promise<BackupRecord> {
    return this.#job(server.id, (signal) => this.#create(server, p, progress, signal));
  }

  async #create(
    server: BackupSubject,
    p: Command<'backup_create'>['payload'],
    progress: Progress,
    signal: AbortSignal,
  ): Promise<BackupRecord> {
    const backupId = p.backupId ?? randomUUID();
    const index = await this.#load(server.id);
    if (index.some((b) => b.backupId === backupId))
      throw new CodedError('CONFLICT', `backup ${backupId} exists for server ${server.id}`);
    const rec: BackupRecord = {
      backupId,
      serverId: server.id,
      name: p.name ?? null,
      format: p.format,
      state: 'pending',
      size: null,
      sha256: null,
      bytes: null,
      entries: null,
      locked: p.locked,
      createdAt: new Date().toISOString(),
      completedAt: null,
    };
    index.push(rec);
    await this.#save(server.id, index);
    const running = server.status === 'running' || server.status === 'starting';
    const final = this.#file(rec);
    const tmp = path.join(this.#serverDir(server.id), `.${backupId}.${p.format}.partial`);
    const send = (commands: readonly string[]) => {
      for (const c of commands) {
        try {
          server.sendCommand(c);
        } catch (e) {
          this.#log.warn(
            { serverId: server.id, code: (e as CodedError).code },
            'backup console command not sent',
          );
        }
      }
    };
    try {
      if (running && p.commandsBefore.length > 0) {
        progress('commands_before', `${p.commandsBefore.length} console command(s)`);
        send(p.commandsBefore);
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(resolve, p.commandWaitSeconds * 1000);
          signal.addEventListener(
            'abort',
            () => {
              clearTimeout(t);
              reject(signal.reason);
            },
            { once: true },
          );
        });
      }
      progress('archiving');
      const ignore = [...(await this.#pteroignore(server.dir)), ...p.ignore];
      const { stream, done } = createArchive(server.dir, {
        format: p.format,
        ignore,
        signal,
        onProgress: throttled(progress, 'archiving'),
      });
      const hash = createHash('sha256');
      let size = 0;
      const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      try {
        for await (const c of stream as AsyncIterable<Buffer>) {
          hash.update(c);
          size += c.length;
          await fh.write(c);
        }
        await fh.sync();
      } finally {
        await fh.close();
        stream.destroy();
      }
      const stats = await done;
      await rename(tmp, final);
      await fsyncDir(this.#serverDir(server.id));
      Object.assign(rec, {
        state: 'completed',
        size,
        sha256: hash.digest('hex'),
        bytes: stats.bytes,
        entries: stats.entries,
        completedAt: new Date().toISOString(),
      });
    } catch (e) {
      const coded = this.#coded(e);
      await rm(tmp, { force: true }).catch(() => undefined);
      Object.assign(rec, {
        state: 'failed',
        completedAt: new Date().toISOString(),
        error: { code: coded.code, message: coded.message.slice(0, 4096) },
      });
      await this.#save(server.id, index).catch((w) =>
        this.#log.error({ err: w }, 'backup index not written'),
      );
      throw coded;
    } finally {
      if (running && p.commandsAfter.length > 0) send(p.commandsAfter);
    }
    if (p.retain !== undefined) await this.#retain(server.id, index, p.retain);
    await this.#save(server.id, index);
    progress('done', `${mb(rec.size ?? 0)}, sha256 ${rec.sha256}`);
    return rec;
  }

  /** Removes (in place) completed unlocked backups past the newest `keep`, and failed records past FAILED_KEPT. */
  async #retain(serverId: string, index: BackupRecord[], keep: number): Promise<void> {
    const newestFirst = [...index].sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
    const doomed = [
      ...newestFirst.filter((b) => b.state === 'completed' && !b.locked).slice(keep),
      ...newestFirst.filter((b) => b.state === 'failed').slice(FAILED_KEPT),
    ];
    for (const b of doomed) {
      await rm(this.#file(b), { force: true });
      index.splice(index.indexOf(b), 1);
      this.#log.info({ serverId, backupId: b.backupId }, 'backup removed by retention');
    }
  }

  async list(serverId: string, page: { offset: number; limit: number }) {
    const limit = Math.min(page.limit, BACKUP_LIST_MAX_LIMIT);
    const all = (await this.#load(serverId)).sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
    return {
      backups: all.slice(page.offset, page.offset + limit),
      total: all.length,
      offset: page.offset,
      limit,
    };
  }

  async #find(serverId: string, backupId: string): Promise<{ index: BackupRecord[]; rec: BackupRecord }> {
    const index = await this.#load(serverId);
    const rec = index.find((b) => b.backupId === backupId);
    if (!rec) throw new CodedError('BACKUP_NOT_FOUND', `no backup ${backupId} for server ${serverId}`);
    return { index, rec };
  }

  async delete(serverId: string, backupId: string): Promise<void> {
    const { index, rec } = await this.#find(serverId, backupId);
    if (rec.locked) throw new CodedError('INVALID_STATE', `backup ${backupId} is locked; unlock it first`);
    if (rec.state === 'pending') throw new CodedError('SERVER_BUSY', `backup ${backupId} is being made`);
    await rm(this.#file(rec), { force: true });
    index.splice(index.indexOf(rec), 1);
    await this.#save(serverId, index);
  }

  async lock(serverId: string, backupId: string, locked: boolean): Promise<BackupRecord> {
    const { index, rec } = await this.#find(serverId, backupId);
    rec.locked = locked;
    await this.#save(serverId, index);
    return rec;
  }

  /** A completed backup's file, for the HTTP download. */
  async file(
    serverId: string,
    backupId: string,
  ): Promise<{ path: string; size: number; sha256: string; filename: string }> {
    const { rec } = await this.#find(serverId, backupId);
    if (rec.state !== 'completed' || !rec.sha256)
      throw new CodedError('INVALID_STATE', `backup ${backupId} is ${rec.state}, not completed`);
    const file = this.#file(rec);
    const st = await stat(file).catch(() => null);
    if (!st) throw new CodedError('BACKUP_NOT_FOUND', `the file of backup ${backupId} is gone`);
    return {
      path: file,
      size: st.size,
      sha256: rec.sha256,
      filename: `${serverId}-${backupId}.${rec.format}`,
    };
  }

  /**
   * May `imp` be imported as `backupId` now? (Not while the server has a backup or restore
   * running, not an id it has, and only when the backup disk has room.)
   */
  async checkImport(serverId: string, backupId: string, imp: BackupImport): Promise<void> {
    if (this.#busy.has(serverId))
      throw new CodedError('SERVER_BUSY', `a backup or restore is already running for server ${serverId}`);
    if ((await this.#load(serverId)).some((b) => b.backupId === backupId))
      throw new CodedError('CONFLICT', `backup ${backupId} exists for server ${serverId}`);
    const fs = await statfs(this.dir).catch(() => null);
    if (fs && fs.bavail * fs.bsize < imp.size)
      throw new CodedError(
        'INSUFFICIENT_RESOURCES',
        `the backup directory ${this.dir} has ${fs.bavail * fs.bsize} bytes free, the backup needs ${imp.size}`,
      );
  }

  /**
   * An archive streamed in (from the Panel's object storage) becomes the completed backup
   * `backupId`: written to a partial file (O_EXCL, 0600), exactly `size` bytes with this sha256
   * (else ARCHIVE_INVALID and nothing kept), fsync'ed and renamed, then listed as completed.
   */
  async importFile(
    serverId: string,
    backupId: string,
    imp: BackupImport,
    body: AsyncIterable<Buffer> & { destroy?: (e?: Error) => void },
  ): Promise<BackupRecord> {
    return this.#job(serverId, async (signal) => {
      const index = await this.#load(serverId);
      if (index.some((b) => b.backupId === backupId))
        throw new CodedError('CONFLICT', `backup ${backupId} exists for server ${serverId}`);
      await mkdir(this.#serverDir(serverId), { recursive: true, mode: 0o700 });
      const rec: BackupRecord = {
        backupId,
        serverId,
        name: imp.name,
        format: imp.format,
        state: 'completed',
        size: imp.size,
        sha256: imp.sha256,
        bytes: imp.bytes,
        entries: imp.entries,
        locked: false,
        createdAt: imp.createdAt ?? new Date().toISOString(),
        completedAt: new Date().toISOString(),
      };
      const tmp = path.join(this.#serverDir(serverId), `.${backupId}.${imp.format}.partial`);
      const hash = createHash('sha256');
      let size = 0;
      try {
        const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
        try {
          for await (const c of body) {
            signal.throwIfAborted();
            size += c.length;
            if (size > imp.size)
              throw new CodedError(
                'ARCHIVE_INVALID',
                `the archive is longer than the ${imp.size} bytes announced`,
              );
            hash.update(c);
            await fh.write(c);
          }
          await fh.sync();
        } finally {
          await fh.close();
        }
        if (size !== imp.size)
          throw new CodedError(
            'ARCHIVE_INVALID',
            `the archive had ${size} of the ${imp.size} bytes announced`,
          );
        const sha256 = hash.digest('hex');
        if (sha256 !== imp.sha256)
          throw new CodedError(
            'ARCHIVE_INVALID',
            `the archive's sha256 ${sha256} is not the expected ${imp.sha256}`,
          );
        await rename(tmp, this.#file(rec));
        await fsyncDir(this.#serverDir(serverId));
      } catch (e) {
        body.destroy?.();
        await rm(tmp, { force: true }).catch(() => undefined);
        throw this.#coded(e);
      }
      // the index is read again: a delete or lock of another backup may have been written meanwhile
      const now = await this.#load(serverId);
      now.push(rec);
      await this.#save(serverId, now);
      this.#log.info({ serverId, backupId, size }, 'backup imported');
      return rec;
    });
  }

  async restore(
    server: BackupSubject,
    p: Command<'backup_restore'>['payload'],
    progress: Progress,
  ): Promise<{ backupId: string; bytes: number; entries: number }> {
    return this.#job(server.id, (signal) => this.#restore(server, p, progress, signal));
  }

  async #restore(
    server: BackupSubject,
    p: Command<'backup_restore'>['payload'],
    progress: Progress,
    signal: AbortSignal,
  ): Promise<{ backupId: string; bytes: number; entries: number }> {
    try {
      const { rec } = await this.#find(server.id, p.backupId);
      if (rec.state !== 'completed' || !rec.sha256)
        throw new CodedError('INVALID_STATE', `backup ${p.backupId} is ${rec.state}, not completed`);
      const file = this.#file(rec);
      const format: BackupFormat = rec.format;
      const limit = server.egg.limits.disk ? sizeToBytes(server.egg.limits.disk) : 0;
      const maxBytes = limit > 0 ? limit : DEFAULT_MAX_BYTES;
      progress('verifying');
      const v = await verifyArchive(archiveFileStream(file), {
        format,
        maxBytes,
        signal,
        onProgress: throttled(progress, 'verifying'),
      }).catch((e) => {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT')
          throw new CodedError('BACKUP_NOT_FOUND', `the file of backup ${p.backupId} is gone`);
        throw e;
      });
      if (v.sha256 !== rec.sha256)
        throw new CodedError(
          'ARCHIVE_INVALID',
          `backup ${p.backupId} does not match its checksum (sha256 ${v.sha256}, recorded ${rec.sha256})`,
        );
      const wasRunning = server.status === 'running' || server.status === 'starting';
      if (server.status !== 'offline') {
        progress('stopping');
        await server.stop();
      }
      if (p.truncate) {
        progress('deleting', 'removing the current files');
        // the server is stopped: nothing races the removal (rm never follows links)
        for (const name of await readdir(server.dir))
          await rm(path.join(server.dir, name), { recursive: true, force: true });
      }
      progress('extracting');
      const stats = await extractArchive(archiveFileStream(file), server.dir, {
        format,
        maxBytes,
        signal,
        onProgress: throttled(progress, 'extracting'),
      });
      await chownTree(server.dir, this.#owner.uid, this.#owner.gid);
      if (wasRunning) {
        progress('starting');
        await server.start();
      }
      progress('done', `${mb(stats.bytes)}, ${stats.entries} entries`);
      return { backupId: p.backupId, bytes: stats.bytes, entries: stats.entries };
    } catch (e) {
      throw this.#coded(e);
    }
  }

  /** The manager's dispatch for the backup_* actions. */
  async handle(
    cmd: Command,
    server: BackupSubject,
    progress: Progress,
  ): Promise<{ data?: unknown; message?: string }> {
    switch (cmd.action) {
      case 'backup_create':
        return {
          data: await this.create(server, cmd.payload as Command<'backup_create'>['payload'], progress),
        };
      case 'backup_list':
        return { data: await this.list(server.id, cmd.payload as Command<'backup_list'>['payload']) };
      case 'backup_delete': {
        const { backupId } = cmd.payload as Command<'backup_delete'>['payload'];
        await this.delete(server.id, backupId);
        return { data: { backupId, deleted: true } };
      }
      case 'backup_lock': {
        const { backupId, locked } = cmd.payload as Command<'backup_lock'>['payload'];
        return { data: await this.lock(server.id, backupId, locked) };
      }
      case 'backup_restore':
        return {
          data: await this.restore(server, cmd.payload as Command<'backup_restore'>['payload'], progress),
        };
      default:
        throw new CodedError('UNKNOWN_ACTION' satisfies ErrorCode, `not a backup action: ${cmd.action}`);
    }
  }
}
