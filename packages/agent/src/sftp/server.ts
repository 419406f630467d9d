/**
 * The Agent's SFTP server (issue 10 item 3; Wings' sftp package informed it). Logins are
 * `<panel username>.<server id>` with the Panel password or an SSH key on the user's account:
 * the Agent verifies a key's signature itself, then asks the Panel (`POST /api/agents/sftp/auth`
 * with its link token), which answers the user's permissions on that server. Attempts are
 * rate-limited per client address here and per user and address at the Panel. Each session is
 * confined to its server's folder under the file API's path rules (files.ts) and its
 * permissions; `sftp_revoke` from the Panel closes a user's sessions at once.
 */
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { type AddressInfo, createServer, type Server as NetServer, type Socket } from 'node:net';
import path from 'node:path';
import {
  AGENT_ID_HEADER,
  CodedError,
  isCodedError,
  PROTOCOL_VERSION,
  PROTOCOL_VERSION_HEADER,
  SftpAuthResponse,
} from '@cap/protocol';
import type { Logger } from 'pino';
import type { AuthContext, Connection, SFTPWrapper } from 'ssh2';
import type { DiskWriter } from '../filesystem/disk-ledger.ts';
import { chownPathInside } from '../filesystem/filesystem.ts';
import { panelHttpBase } from '../panel-link/link.ts';
import { PinnedAgent, panelAgent, postJson } from '../panel-link/transport.ts';
import type { Server } from '../server/server.ts';
import * as files from './files.ts';

type Ssh2 = typeof import('ssh2');
let utils: Ssh2['utils'];
let STATUS: Ssh2['utils']['sftp']['STATUS_CODE'];
let OPEN: Ssh2['utils']['sftp']['OPEN_MODE'];
let ssh2Loading: Promise<Ssh2> | undefined;

/**
 * ssh2 (a good part of an idle Agent's memory) is loaded on the first connection, not when the
 * port opens: the port is a plain TCP listener until someone connects.
 */
function loadSsh2(): Promise<Ssh2> {
  ssh2Loading ??= import('ssh2').then((m) => {
    const ssh2 = (m as { default?: Ssh2 }).default ?? m;
    utils = ssh2.utils;
    STATUS = utils.sftp.STATUS_CODE;
    OPEN = utils.sftp.OPEN_MODE;
    return ssh2;
  });
  return ssh2Loading;
}

/** open handles per session; bytes per READ; names per READDIR answer */
const MAX_HANDLES = 64;
const MAX_READ = 256 * 1024;
const DIR_BATCH = 100;

export interface SftpDeps {
  dataDir: string;
  panelUrl: string;
  host: string;
  port: number;
  /** login attempts a minute one client address may make */
  authPerMinute: number;
  containerUid: number;
  containerGid: number;
  log: Logger;
  /** AGENT_PANEL_CERT_SHA256: the only certificate the Panel may present (as on the link) */
  panelCertSha256?: string | undefined;
  /** the link's current token and the node id (null until registered) */
  credentials: () => { token: string; agentId: string } | null;
  server: (id: string) => Server | undefined;
}

interface Session {
  userId: string;
  serverId: string;
  permissions: ReadonlySet<string>;
  client: Connection;
}

type Handle =
  | {
      kind: 'file';
      fh: import('node:fs/promises').FileHandle;
      virt: string;
      /** a write handle's share of the server's disk limit (disk-ledger.ts: shared with parallel writers) */
      disk: DiskWriter | null;
      size: number;
    }
  | { kind: 'dir'; fh: import('node:fs/promises').FileHandle; virt: string; names: string[]; at: number };

/** Fixed window per key. */
class Attempts {
  readonly #hits = new Map<string, { start: number; n: number }>();
  readonly #limit: number;
  constructor(limit: number) {
    this.#limit = limit;
  }
  hit(key: string, now = Date.now()): boolean {
    const h = this.#hits.get(key);
    if (!h || now - h.start >= 60_000) {
      if (this.#hits.size > 10_000)
        for (const [k, v] of this.#hits) if (now - v.start >= 60_000) this.#hits.delete(k);
      this.#hits.set(key, { start: now, n: 1 });
      return true;
    }
    h.n += 1;
    return h.n <= this.#limit;
  }
}

/** The host key, made once (ed25519, on the first connection) and kept in the data dir (0600). */
async function hostKey(dataDir: string): Promise<string> {
  const file = path.resolve(dataDir, 'sftp_host_ed25519_key');
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const pair = utils.generateKeyPairSync('ed25519');
  await writeFile(file, pair.private, { mode: 0o600, flag: 'wx' }).catch(async (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') throw e;
  });
  await chmod(file, 0o600);
  return readFile(file, 'utf8');
}

/** The key type named inside an SSH public key blob. */
function blobType(blob: Buffer): string {
  if (blob.length < 4) return '';
  const n = blob.readUInt32BE(0);
  return n > 0 && n < 64 && blob.length >= 4 + n ? blob.subarray(4, 4 + n).toString('latin1') : '';
}

export class SftpServer {
  readonly #deps: SftpDeps;
  readonly #sessions = new Set<Session>();
  readonly #attempts: Attempts;
  #listener: NetServer | null = null;
  /** the https.Agent holding the Panel's certificate pin, made on the first login check */
  #pinned: PinnedAgent | undefined;
  /** the SSH server the connections are handed to, made on the first one */
  #ssh: Promise<InstanceType<Ssh2['Server']>> | null = null;
  port = 0;

  constructor(deps: SftpDeps) {
    this.#deps = deps;
    this.#attempts = new Attempts(deps.authPerMinute);
  }

  async start(): Promise<void> {
    const listener = createServer((socket) => this.#accept(socket));
    listener.on('error', (err: Error) => this.#deps.log.warn({ err: err.message }, 'sftp server error'));
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(this.#deps.port, this.#deps.host, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    this.#listener = listener;
    this.port = (listener.address() as AddressInfo).port;
    this.#deps.log.info({ port: this.port }, 'sftp listening');
  }

  /** A connection goes to the SSH server (made, with ssh2 loaded, on the first one). */
  #accept(socket: Socket): void {
    const early = () => socket.destroy();
    socket.once('error', early);
    this.#ssh ??= this.#sshServer();
    this.#ssh.then(
      (ssh) => {
        socket.off('error', early);
        if (socket.destroyed || !this.#listener) socket.destroy();
        else ssh.injectSocket(socket);
      },
      (err: Error) => {
        this.#deps.log.error({ err: err.message }, 'sftp server not ready');
        this.#ssh = null;
        socket.destroy();
      },
    );
  }

  async #sshServer(): Promise<InstanceType<Ssh2['Server']>> {
    const { Server } = await loadSsh2();
    const key = await hostKey(this.#deps.dataDir);
    return new Server({ hostKeys: [key], ident: 'ctrl-alt-play' }, (client, info) =>
      this.#client(client, info.ip),
    );
  }

  /** Closes the user's sessions (on one server, or all); how many were closed. */
  revoke(userId: string, serverId?: string): number {
    let n = 0;
    for (const s of [...this.#sessions]) {
      if (s.userId !== userId || (serverId !== undefined && s.serverId !== serverId)) continue;
      this.#sessions.delete(s);
      s.client.end();
      n++;
    }
    if (n > 0) this.#deps.log.info({ userId, serverId, closed: n }, 'sftp sessions revoked');
    return n;
  }

  async stop(): Promise<void> {
    for (const s of this.#sessions) s.client.end();
    this.#sessions.clear();
    const listener = this.#listener;
    this.#listener = null;
    if (listener) await new Promise<void>((resolve) => listener.close(() => resolve()));
  }

  async #ask(body: Record<string, string>): Promise<SftpAuthResponse | null> {
    const creds = this.#deps.credentials();
    if (!creds) return null;
    // node:http, as the link's register and refresh: with the link's certificate pin, and no
    // WebAssembly (fetch's HTTP parser is; an Agent run with --jitless has none)
    const url = `${panelHttpBase(this.#deps.panelUrl)}/api/agents/sftp/auth`;
    const pin = this.#deps.panelCertSha256;
    this.#pinned ??= pin ? new PinnedAgent(pin) : undefined;
    const res = await postJson(
      url,
      {
        authorization: `Bearer ${creds.token}`,
        [AGENT_ID_HEADER]: creds.agentId,
        [PROTOCOL_VERSION_HEADER]: String(PROTOCOL_VERSION),
      },
      body,
      { agent: panelAgent(url, this.#pinned), timeoutMs: 10_000 },
    );
    if (res.status < 200 || res.status > 299) return null;
    const r = SftpAuthResponse.safeParse(res.json);
    return r.success ? r.data : null;
  }

  #client(client: Connection, ip: string): void {
    const log = this.#deps.log.child({ ip });
    let granted: SftpAuthResponse | null = null;
    client.on('error', (err: Error) => log.debug({ err: err.message }, 'sftp client error'));
    // each SFTP request waits for its answer: Nagle's algorithm would hold small answers back
    // until the client's delayed ACK (~40 ms a request for a client that does not pipeline)
    // (ssh2's server-side connection has it; its type does not say so)
    (client as unknown as { setNoDelay(on: boolean): void }).setNoDelay(true);
    client.on('authentication', (ctx: AuthContext) => {
      if (ctx.method !== 'password' && ctx.method !== 'publickey')
        return ctx.reject(['password', 'publickey']);
      // a key offered without a signature is only a question ("would you take it?"): yes, then prove it
      if (ctx.method === 'publickey' && !ctx.signature) return ctx.accept();
      if (!this.#attempts.hit(ip)) {
        log.warn('sftp login attempts over the limit');
        return ctx.reject(['password', 'publickey']);
      }
      let body: Record<string, string>;
      if (ctx.method === 'password') {
        body = { username: ctx.username, ip, password: ctx.password };
      } else {
        const parsed = utils.parseKey(ctx.key.data);
        const key = parsed instanceof Error ? null : Array.isArray(parsed) ? parsed[0] : parsed;
        const type = blobType(ctx.key.data);
        if (
          !key ||
          !type ||
          !ctx.blob ||
          !ctx.signature ||
          key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true
        )
          return ctx.reject(['password', 'publickey']);
        body = { username: ctx.username, ip, publicKey: `${type} ${ctx.key.data.toString('base64')}` };
      }
      if (ctx.username.length > 255 || body.password?.length === 0)
        return ctx.reject(['password', 'publickey']);
      this.#ask(body)
        .then((r) => {
          if (r && this.#deps.server(r.serverId)) {
            granted = r;
            ctx.accept();
          } else ctx.reject(['password', 'publickey']);
        })
        .catch((err: Error) => {
          log.warn({ err: err.message }, 'sftp auth: panel unreachable');
          ctx.reject(['password', 'publickey']);
        });
    });
    client.on('ready', () => {
      const g = granted;
      if (!g) return client.end();
      const session: Session = {
        userId: g.userId,
        serverId: g.serverId,
        permissions: new Set(g.permissions),
        client,
      };
      this.#sessions.add(session);
      client.on('close', () => this.#sessions.delete(session));
      log.info({ userId: g.userId, serverId: g.serverId }, 'sftp login');
      client.on('session', (accept) => {
        const s = accept();
        s.on('sftp', (acceptSftp) => {
          this.#sftp(acceptSftp(), session);
        });
        // no shell, exec or pty: SFTP only
        s.on('exec', (_a, reject) => reject());
        s.on('shell', (_a, reject) => reject());
        s.on('pty', (_a, reject) => reject?.());
      });
    });
  }

  #sftp(sftp: SFTPWrapper, session: Session): void {
    const handles = new Map<number, Handle>();
    let next = 1;
    const dep = this.#deps;
    const root = (): { server: Server; dir: string } => {
      const server = dep.server(session.serverId);
      if (!server || !this.#sessions.has(session)) {
        session.client.end();
        throw new CodedError('SERVER_NOT_FOUND', 'the server is gone');
      }
      return { server, dir: server.dir };
    };
    const need = (perm: string) => {
      if (!session.permissions.has(perm)) throw new CodedError('PERMISSION_DENIED', `needs ${perm}`);
    };
    const fail = (id: number, e: unknown) => {
      const c = isCodedError(e) ? e : files.codedFs(e);
      const code =
        c.code === 'PERMISSION_DENIED' || c.code === 'PATH_OUTSIDE_ROOT'
          ? STATUS.PERMISSION_DENIED
          : c.code === 'FILE_NOT_FOUND'
            ? STATUS.NO_SUCH_FILE
            : STATUS.FAILURE;
      if (c.code === 'INTERNAL_ERROR')
        dep.log.warn({ err: (c.cause as Error)?.message }, 'sftp operation failed');
      sftp.status(id, code, c.message);
    };
    const run = (id: number, fn: () => Promise<void>) => {
      fn().catch((e) => fail(id, e));
    };
    const newHandle = (h: Handle): Buffer => {
      if (handles.size >= MAX_HANDLES) throw new CodedError('RATE_LIMITED', 'too many open handles');
      const n = next++;
      handles.set(n, h);
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      return b;
    };
    const handleOf = (buf: Buffer): [number, Handle] => {
      const n = buf.length === 4 ? buf.readUInt32BE(0) : -1;
      const h = handles.get(n);
      if (!h) throw new CodedError('NOT_FOUND', 'invalid handle');
      return [n, h];
    };
    const attrsOf = (st: import('node:fs').Stats) => ({
      mode: st.mode,
      uid: st.uid,
      gid: st.gid,
      size: st.size,
      atime: Math.floor(st.atimeMs / 1000),
      mtime: Math.floor(st.mtimeMs / 1000),
    });
    const longname = (name: string, st: import('node:fs').Stats) => {
      const t = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : '-';
      const m = st.mode & 0o777;
      const rwx = [6, 3, 0]
        .map((sh) => ((m >> sh) & 4 ? 'r' : '-') + ((m >> sh) & 2 ? 'w' : '-') + ((m >> sh) & 1 ? 'x' : '-'))
        .join('');
      return `${t}${rwx} 1 container container ${st.size} ${st.mtime.toISOString().slice(0, 16).replace('T', ' ')} ${name}`;
    };

    sftp.on('REALPATH', (id, p) =>
      run(id, async () => {
        const virt = files.virtualPath(p);
        sftp.name(id, [{ filename: virt, longname: virt, attrs: {} as never }]);
      }),
    );
    const stat = (id: number, p: string) =>
      run(id, async () => {
        need('file.read');
        const st = await files.statInside(root().dir, files.virtualPath(p));
        sftp.attrs(id, attrsOf(st));
      });
    sftp.on('STAT', stat);
    sftp.on('LSTAT', stat);
    sftp.on('FSTAT', (id, buf) =>
      run(id, async () => {
        const [, h] = handleOf(buf);
        sftp.attrs(id, attrsOf(await h.fh.stat()));
      }),
    );
    sftp.on('OPENDIR', (id, p) =>
      run(id, async () => {
        need('file.read');
        const virt = files.virtualPath(p);
        const { fh, names } = await files.listDir(root().dir, virt);
        sftp.handle(id, newHandle({ kind: 'dir', fh, virt, names, at: 0 }));
      }),
    );
    sftp.on('READDIR', (id, buf) =>
      run(id, async () => {
        const [, h] = handleOf(buf);
        if (h.kind !== 'dir') throw new CodedError('CONFIG_INVALID', 'not a directory handle');
        if (h.at >= h.names.length) {
          sftp.status(id, STATUS.EOF);
          return;
        }
        const batch = h.names.slice(h.at, h.at + DIR_BATCH);
        h.at += batch.length;
        const { lstat } = await import('node:fs/promises');
        const out = [];
        for (const name of batch) {
          const st = await lstat(`/proc/self/fd/${h.fh.fd}/${name}`).catch(() => null);
          if (st) out.push({ filename: name, longname: longname(name, st), attrs: attrsOf(st) });
        }
        sftp.name(id, out);
      }),
    );
    sftp.on('OPEN', (id, p, flags, attrs) =>
      run(id, async () => {
        const virt = files.virtualPath(p);
        const { server, dir } = root();
        const writing = (flags & (OPEN.WRITE | OPEN.APPEND | OPEN.CREAT | OPEN.TRUNC)) !== 0;
        if (!writing) {
          need('file.read-content');
          const fh = await files.openRead(dir, virt);
          sftp.handle(id, newHandle({ kind: 'file', fh, virt, disk: null, size: 0 }));
          return;
        }
        const { fh } = await files.openWrite(
          dir,
          virt,
          {
            create: (flags & OPEN.CREAT) !== 0,
            exclusive: (flags & OPEN.EXCL) !== 0,
            truncate: (flags & OPEN.TRUNC) !== 0,
            append: (flags & OPEN.APPEND) !== 0,
            mode: typeof attrs?.mode === 'number' && attrs.mode > 0 ? attrs.mode : 0o644,
          },
          (created) => need(created ? 'file.create' : 'file.update'),
        );
        let disk: DiskWriter | null = null;
        try {
          if ((flags & OPEN.READ) !== 0) need('file.read-content');
          const st = await fh.stat();
          disk = await server.resources.diskLedger.join();
          sftp.handle(id, newHandle({ kind: 'file', fh, virt, disk, size: st.size }));
        } catch (e) {
          disk?.close();
          await fh.close();
          throw e;
        }
      }),
    );
    sftp.on('READ', (id, buf, offset, length) =>
      run(id, async () => {
        const [, h] = handleOf(buf);
        if (h.kind !== 'file') throw new CodedError('CONFIG_INVALID', 'not a file handle');
        const out = Buffer.alloc(Math.min(Math.max(0, length), MAX_READ));
        const { bytesRead } = await h.fh.read(out, 0, out.length, offset);
        if (bytesRead === 0) sftp.status(id, STATUS.EOF);
        else sftp.data(id, out.subarray(0, bytesRead));
      }),
    );
    sftp.on('WRITE', (id, buf, offset, data) =>
      run(id, async () => {
        const [, h] = handleOf(buf);
        if (h.kind !== 'file' || !h.disk) throw new CodedError('PERMISSION_DENIED', 'not opened for writing');
        if (!Number.isSafeInteger(offset) || offset < 0) throw new CodedError('CONFIG_INVALID', 'bad offset');
        const end = offset + data.length;
        const growth = Math.max(0, end - h.size);
        // writes past the server's disk limit (counting every upload in flight on the server) are
        // refused before anything is written; the size grows before the await, so that parallel
        // writes past the end are charged once each
        const disk = h.disk;
        disk.charge(growth);
        const sizeBefore = h.size;
        h.size = Math.max(h.size, end);
        try {
          await h.fh.write(data, 0, data.length, offset);
        } catch (e) {
          disk.release(growth);
          if (h.size === end) h.size = Math.max(sizeBefore, (await h.fh.stat().catch(() => null))?.size ?? 0);
          throw e;
        }
        disk.written(growth);
        sftp.status(id, STATUS.OK);
      }),
    );
    sftp.on('CLOSE', (id, buf) =>
      run(id, async () => {
        const [n, h] = handleOf(buf);
        handles.delete(n);
        if (h.kind === 'file') h.disk?.close();
        await h.fh.close();
        if (h.kind === 'file' && h.disk) {
          const server = dep.server(session.serverId);
          if (server)
            await chownPathInside(server.dir, h.virt, dep.containerUid, dep.containerGid).catch(
              () => undefined,
            );
        }
        sftp.status(id, STATUS.OK);
      }),
    );
    sftp.on('MKDIR', (id, p, attrs) =>
      run(id, async () => {
        need('file.create');
        const { dir } = root();
        const virt = files.virtualPath(p);
        await files.makeDir(
          dir,
          virt,
          typeof attrs?.mode === 'number' && attrs.mode > 0 ? attrs.mode : 0o755,
        );
        await chownPathInside(dir, virt, dep.containerUid, dep.containerGid).catch(() => undefined);
        sftp.status(id, STATUS.OK);
      }),
    );
    sftp.on('REMOVE', (id, p) =>
      run(id, async () => {
        need('file.delete');
        await files.remove(root().dir, files.virtualPath(p), 'file');
        sftp.status(id, STATUS.OK);
      }),
    );
    sftp.on('RMDIR', (id, p) =>
      run(id, async () => {
        need('file.delete');
        await files.remove(root().dir, files.virtualPath(p), 'dir');
        sftp.status(id, STATUS.OK);
      }),
    );
    sftp.on('RENAME', (id, from, to) =>
      run(id, async () => {
        need('file.update');
        await files.renameInside(root().dir, files.virtualPath(from), files.virtualPath(to));
        sftp.status(id, STATUS.OK);
      }),
    );
    const setstat = (
      id: number,
      target: { virt: string } | { fh: import('node:fs/promises').FileHandle },
      attrs: { mode?: number; atime?: number; mtime?: number },
    ) =>
      run(id, async () => {
        need('file.update');
        const a = { mode: attrs.mode, atime: attrs.atime, mtime: attrs.mtime };
        if ('virt' in target) await files.setAttrs(root().dir, target.virt, a);
        else await files.applyAttrs(target.fh, a);
        sftp.status(id, STATUS.OK);
      });
    sftp.on('SETSTAT', (id, p, attrs) => {
      try {
        setstat(id, { virt: files.virtualPath(p) }, attrs);
      } catch (e) {
        fail(id, e);
      }
    });
    sftp.on('FSETSTAT', (id, buf, attrs) => {
      try {
        setstat(id, { fh: handleOf(buf)[1].fh }, attrs);
      } catch (e) {
        fail(id, e);
      }
    });
    // links are never read or made through SFTP
    sftp.on('READLINK', (id) => sftp.status(id, STATUS.OP_UNSUPPORTED, 'symbolic links are not supported'));
    sftp.on('SYMLINK', (id) => sftp.status(id, STATUS.OP_UNSUPPORTED, 'symbolic links are not supported'));
    // the client's EOF: close our side of the channel too (OpenSSH waits for that to exit)
    sftp.on('end', () => {
      sftp.end();
    });
    sftp.on('close', () => {
      for (const h of handles.values()) {
        if (h.kind === 'file') h.disk?.close();
        void h.fh.close().catch(() => undefined);
      }
      handles.clear();
      // one SFTP channel per connection: when it closes, so does the connection (OpenSSH waits for it)
      session.client.end();
    });
  }
}
