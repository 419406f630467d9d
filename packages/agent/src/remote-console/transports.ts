/**
 * The four remote-console protocols, small enough to write here (each under 150 lines; npm
 * `rcon-srcds` is a client of one of them only, with no size caps). Each dialer returns a Session
 * (session.ts). Everything read is capped before it is kept: a frame length over the protocol's
 * own maximum ends the session; a response over REMOTE_CONSOLE_MAX_RESPONSE_BYTES is cut.
 */
import { createSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import type { RemoteConsoleTransport } from '@cap/protocol';
import {
  CommandQueue,
  type Dialer,
  ResponseBuffer,
  type Session,
  SessionError,
  type Target,
  timeoutError,
} from './session.ts';

/** How long a dial and its authentication may take. */
export const CONNECT_TIMEOUT_MS = 5000;
/** A line-based console line longer than this ends the session (econ lines are < 1 KiB). */
const MAX_LINE_BYTES = 16 * 1024;

/** A TCP connection that reports its end once; data goes to `onData`. */
function tcp(
  target: Target,
  onData: (chunk: Buffer) => void,
): { socket: Socket; connected: Promise<void>; ended: Promise<string> } {
  const socket = connect({ host: target.host, port: target.port });
  socket.setNoDelay(true);
  let endReason: (r: string) => void = () => undefined;
  const ended = new Promise<string>((resolve) => {
    endReason = resolve;
  });
  const connected = new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', (e) => reject(new SessionError('unreachable', e.message)));
  });
  connected.catch(() => undefined);
  socket.on('data', (chunk: Buffer) => {
    try {
      onData(chunk);
    } catch (e) {
      socket.destroy();
      endReason(`protocol error: ${(e as Error).message}`);
    }
  });
  socket.on('error', (e) => endReason(e.message));
  socket.on('close', () => endReason('the game closed the connection'));
  return { socket, connected, ended };
}

/** Rejects with `err` after `ms` unless `p` settles first. */
function within<T>(p: Promise<T>, ms: number, err: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(err()), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/** Pending: one command's collector, with a way to end it. */
interface Pending<P> {
  feed: (packet: P) => void;
  fail: (err: Error) => void;
}

/** One command under way on a TCP protocol (see TcpProtocol.command). */
interface TcpCommand<P> {
  /** each packet that arrives while the command runs */
  feed(packet: P): void;
  /** what the overall timeout gives: an error, or undefined to answer with what came */
  timeout(): Error | undefined;
  /** stops the command's own timers, once it is done */
  cleanup?(): void;
}

/**
 * A remote-console protocol over TCP, plugged into the one session skeleton (tcpDialer): its
 * framing, its login and how one command is sent and its response collected. One is made per
 * session, so what it keeps (a read buffer, request ids) is that session's own.
 */
interface TcpProtocol<P> {
  /**
   * Framing: takes each chunk read and hands every whole packet to `emit`; keeps less than one
   * packet between reads and throws on a protocol error (which ends the session). `loggingIn` says
   * whether the login still listens.
   */
  read(chunk: Buffer, emit: (packet: P) => void, loggingIn: () => boolean): void;
  /**
   * The login, once connected: `listen` takes the packets that arrive (null: none any more) and the
   * returned promise settles with the login (a SessionError when refused). `ended` resolves with
   * why the connection ended.
   */
  login(io: {
    socket: Socket;
    ended: Promise<string>;
    listen: (h: ((p: P) => void) | null) => void;
  }): Promise<void>;
  /** what a login without an answer in time is said as */
  loginTimeout: string;
  /** Writes one command; `done` ends it (an error, or the response collected in `out`). */
  command(
    command: string,
    io: { socket: Socket; out: ResponseBuffer; done: (err?: Error) => void },
  ): TcpCommand<P>;
}

/**
 * The skeleton every TCP remote console shares: connect and log in within CONNECT_TIMEOUT_MS,
 * then one command at a time, each with its timeout; the end of the connection fails the command
 * under way and is told to the close listeners (managed.ts reconnects).
 */
function tcpDialer<P>(protocol: (target: Target) => TcpProtocol<P>): Dialer {
  return (target) => {
    const proto = protocol(target);
    const queue = new CommandQueue();
    let login: ((p: P) => void) | null = null;
    let pending: Pending<P> | null = null;
    const closeListeners: ((r: string) => void)[] = [];
    const emit = (p: P) => {
      if (login) login(p);
      else pending?.feed(p);
    };
    const loggingIn = () => login !== null;
    const { socket, connected, ended } = tcp(target, (chunk) => proto.read(chunk, emit, loggingIn));
    ended.then((reason) => {
      pending?.fail(new SessionError('unreachable', reason));
      for (const l of closeListeners) l(reason);
    });
    const ready = (async () => {
      await within(connected, CONNECT_TIMEOUT_MS, () => new SessionError('unreachable', 'connect timed out'));
      const answer = proto.login({
        socket,
        ended,
        listen: (h) => {
          login = h;
        },
      });
      await within(answer, CONNECT_TIMEOUT_MS, () => new SessionError('unreachable', proto.loginTimeout));
    })();
    ready.catch(() => socket.destroy());
    const execOne = (command: string, timeoutMs: number): Promise<string> => {
      const out = new ResponseBuffer();
      return new Promise<string>((resolve, reject) => {
        let cmd: TcpCommand<P> | undefined;
        const finish = (err?: Error) => {
          clearTimeout(timer);
          cmd?.cleanup?.();
          pending = null;
          if (err) reject(err);
          else resolve(out.text());
        };
        const timer = setTimeout(() => finish(cmd?.timeout()), timeoutMs);
        pending = { feed: (p) => cmd?.feed(p), fail: finish };
        cmd = proto.command(command, { socket, out, done: finish });
      });
    };
    return {
      ready,
      onClose: (l) => closeListeners.push(l),
      close: () => socket.destroy(),
      exec: (command, timeoutMs) => queue.run(() => execOne(command, timeoutMs)),
    } satisfies Session;
  };
}

// ---------------------------------------------------------------------------------------------
// Source RCON (TCP): int32 LE size, int32 id, int32 type, body, NUL, NUL

const SERVERDATA_AUTH = 3;
const SERVERDATA_AUTH_RESPONSE = 2;
const SERVERDATA_EXECCOMMAND = 2;
const SERVERDATA_RESPONSE_VALUE = 0;
/** The protocol's own limit is 4096 bytes of body; Minecraft and others send up to 4096 + 10. */
export const SOURCE_MAX_PACKET = 4096 + 14;

function sourcePacket(id: number, type: number, body: string): Buffer {
  const b = Buffer.from(body, 'utf8');
  const out = Buffer.alloc(14 + b.length);
  out.writeInt32LE(10 + b.length, 0);
  out.writeInt32LE(id, 4);
  out.writeInt32LE(type, 8);
  b.copy(out, 12);
  return out;
}

interface SourcePacket {
  id: number;
  type: number;
  body: Buffer;
}

export const dialSourceRcon: Dialer = tcpDialer<SourcePacket>((target) => {
  let buf: Buffer = Buffer.alloc(0);
  let nextId = 1;
  return {
    read(chunk, emit) {
      // what is kept between reads is less than one packet (its length was checked): at most
      // SOURCE_MAX_PACKET + one read
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 4) {
        const size = buf.readInt32LE(0);
        if (size < 10 || size > SOURCE_MAX_PACKET) throw new Error(`a packet of ${size} bytes`);
        if (buf.length < 4 + size) break;
        const id = buf.readInt32LE(4);
        const type = buf.readInt32LE(8);
        // body up to the first NUL of the two terminators
        const end = buf.indexOf(0, 12);
        const body = buf.subarray(12, end < 0 || end > 4 + size ? 4 + size : end);
        buf = buf.subarray(4 + size);
        emit({ id, type, body });
      }
    },
    login({ socket, ended, listen }) {
      const authId = nextId++;
      const answer = new Promise<void>((resolve, reject) => {
        listen((p) => {
          // some servers send an empty RESPONSE_VALUE before the AUTH_RESPONSE
          if (p.type !== SERVERDATA_AUTH_RESPONSE) return;
          listen(null);
          if (p.id === -1) reject(new SessionError('wrong_password', 'the server refused the RCON password'));
          else if (p.id === authId) resolve();
          else reject(new SessionError('unreachable', 'an answer to another request'));
        });
        ended.then((r) => reject(new SessionError('unreachable', r)));
      });
      socket.write(sourcePacket(authId, SERVERDATA_AUTH, target.password));
      return answer;
    },
    loginTimeout: 'no answer to the login',
    command(command, { socket, out, done }) {
      const cmdId = nextId++;
      const endId = nextId++;
      nextId = nextId > 0x3fffffff ? 1 : nextId;
      socket.write(sourcePacket(cmdId, SERVERDATA_EXECCOMMAND, command));
      socket.write(sourcePacket(endId, SERVERDATA_RESPONSE_VALUE, ''));
      return {
        feed: (p) => {
          if (p.id === cmdId && p.type === SERVERDATA_RESPONSE_VALUE) out.push(p.body);
          // the mirror of the empty packet sent after the command: everything before it was
          // the command's response, however many packets it took
          else if (p.id === endId) done();
        },
        timeout: () => timeoutError(command.split(' ')[0] ?? ''),
      };
    },
  };
});

// ---------------------------------------------------------------------------------------------
// Quake 3 rcon (UDP): `\xff\xff\xff\xffrcon <password> <command>` → `\xff\xff\xff\xffprint\n<text>`

const Q3_PREFIX = Buffer.from([0xff, 0xff, 0xff, 0xff]);
const Q3_PRINT = Buffer.concat([Q3_PREFIX, Buffer.from('print\n')]);
/** ioquake3 answers one rcon per 100 ms from an address; faster ones are silently dropped. */
export const Q3_MIN_INTERVAL_MS = 120;
/** A response ends when no packet came for this long (one command may give several packets). */
const Q3_QUIET_MS = 250;
const Q3_MAX_DATAGRAM = 64 * 1024;

export const dialQuake3Rcon: Dialer = (target) => {
  const queue = new CommandQueue();
  const socket = createSocket(target.host.includes(':') ? 'udp6' : 'udp4');
  let pending: Pending<Buffer> | null = null;
  let lastSent = 0;
  let closed = false;
  const closeListeners: ((r: string) => void)[] = [];
  socket.on('message', (msg, rinfo) => {
    // only the game's own address, and only print packets; anything else is ignored
    if (rinfo.port !== target.port || msg.length > Q3_MAX_DATAGRAM) return;
    if (msg.length < Q3_PRINT.length || !msg.subarray(0, Q3_PRINT.length).equals(Q3_PRINT)) return;
    pending?.feed(msg.subarray(Q3_PRINT.length));
  });
  socket.on('error', (e) => {
    pending?.fail(new SessionError('unreachable', e.message));
    const wasOpen = !closed;
    closeSession();
    if (wasOpen) for (const l of closeListeners) l(e.message);
  });
  const connected = new Promise<void>((resolve, reject) => {
    socket.once('error', (e) => reject(new SessionError('unreachable', e.message)));
    socket.connect(target.port, target.host, () => resolve());
  });
  connected.catch(() => undefined);

  const exec = async (command: string, timeoutMs: number): Promise<string> => {
    const wait = lastSent + Q3_MIN_INTERVAL_MS - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    lastSent = Date.now();
    const out = new ResponseBuffer();
    let got = false;
    return new Promise<string>((resolve, reject) => {
      let quiet: NodeJS.Timeout | null = null;
      const finish = (err?: Error) => {
        clearTimeout(overall);
        if (quiet) clearTimeout(quiet);
        pending = null;
        if (err) reject(err);
        else resolve(out.text());
      };
      const overall = setTimeout(() => finish(got ? undefined : timeoutError('rcon')), timeoutMs);
      pending = {
        feed: (raw) => {
          got = true;
          out.push(raw);
          if (quiet) clearTimeout(quiet);
          quiet = setTimeout(() => finish(), Q3_QUIET_MS);
        },
        fail: (e) => finish(e),
      };
      socket.send(Buffer.concat([Q3_PREFIX, Buffer.from(`rcon ${target.password} ${command}`, 'utf8')]));
    });
  };

  const ready = (async () => {
    await within(connected, CONNECT_TIMEOUT_MS, () => new SessionError('unreachable', 'no socket'));
    // UDP has no connection: one harmless command tells whether the game answers and takes the password
    let reply: string;
    try {
      reply = await exec('echo', CONNECT_TIMEOUT_MS);
    } catch (e) {
      throw new SessionError('unreachable', (e as Error).message);
    }
    if (reply.startsWith('Bad rconpassword.'))
      throw new SessionError('wrong_password', 'the server refused the rcon password');
    if (reply.startsWith('No rconpassword set'))
      throw new SessionError('wrong_password', 'the server has no rconpassword set');
  })();
  ready.catch(() => {
    closed = true;
    socket.close();
  });
  return {
    ready,
    onClose: (l) => closeListeners.push(l),
    close: closeSession,
    exec: (command, timeoutMs) => queue.run(() => execChecked(command, timeoutMs)),
  } satisfies Session;
  function closeSession(): void {
    if (closed) return;
    closed = true;
    pending?.fail(new SessionError('unreachable', 'closed'));
    socket.close();
  }
  async function execChecked(command: string, timeoutMs: number): Promise<string> {
    const reply = await exec(command, timeoutMs);
    if (reply.startsWith('Bad rconpassword.')) {
      closeSession();
      for (const l of closeListeners) l('the server refused the rcon password');
      throw new SessionError('wrong_password', 'the server refused the rcon password');
    }
    return reply;
  }
};

// ---------------------------------------------------------------------------------------------
// Teeworlds / DDNet econ (TCP, lines): `Enter password:` → password → `Authentication successful…`

/** A response is the lines that come until none came for this long after the command. */
const ECON_QUIET_MS = 300;

export const dialTeeworldsEcon: Dialer = tcpDialer<string>((target) => {
  let partial: Buffer = Buffer.alloc(0);
  return {
    read(chunk, emit, loggingIn) {
      let data = partial.length === 0 ? chunk : Buffer.concat([partial, chunk]);
      for (;;) {
        const nl = data.indexOf(0x0a);
        if (nl < 0) break;
        const line = data
          .subarray(0, nl)
          .toString('utf8')
          .replace(/^\0+|\0+$/g, '')
          .replace(/\r$/, '');
        data = data.subarray(nl + 1);
        emit(line);
      }
      // the password prompt has no newline after it in some versions
      if (loggingIn() && data.toString('utf8').replace(/^\0+/, '').startsWith('Enter password:')) {
        emit('Enter password:');
        data = Buffer.alloc(0);
      }
      if (data.length > MAX_LINE_BYTES) throw new Error(`a line over ${MAX_LINE_BYTES} bytes`);
      partial = Buffer.from(data);
    },
    login({ socket, ended, listen }) {
      return new Promise<void>((resolve, reject) => {
        let sent = false;
        listen((line) => {
          if (!sent && line.startsWith('Enter password')) {
            sent = true;
            socket.write(`${target.password}\n`);
          } else if (sent && /^Authentication successful/i.test(line)) {
            listen(null);
            resolve();
          } else if (sent && /^Wrong password/i.test(line)) {
            listen(null);
            reject(new SessionError('wrong_password', 'the server refused the econ password'));
          }
        });
        ended.then((r) =>
          reject(
            new SessionError(sent ? 'wrong_password' : 'unreachable', sent ? `after the password: ${r}` : r),
          ),
        );
      });
    },
    loginTimeout: 'no econ login prompt',
    command(command, { socket, out, done }) {
      // a response is what comes until the console is quiet; the overall timeout answers what came
      let lines = 0;
      let quiet = setTimeout(() => done(), ECON_QUIET_MS);
      socket.write(`${command}\n`);
      return {
        feed: (line) => {
          out.push(`${lines++ > 0 ? '\n' : ''}${line}`);
          clearTimeout(quiet);
          quiet = setTimeout(() => done(), ECON_QUIET_MS);
        },
        timeout: () => undefined,
        cleanup: () => clearTimeout(quiet),
      };
    },
  };
});

// ---------------------------------------------------------------------------------------------
// OpenTTD admin port (TCP): uint16 LE size (with the 3-byte header), uint8 type, payload

const ADMIN_JOIN = 0;
const ADMIN_RCON = 5;
const SERVER_FULL = 100;
const SERVER_BANNED = 101;
const SERVER_ERROR = 102;
const SERVER_WELCOME = 104;
const SERVER_RCON = 120;
const SERVER_RCON_END = 125;
/** NetworkErrorCode NETWORK_ERROR_WRONG_PASSWORD (src/network/core/config.h) */
const NETWORK_ERROR_WRONG_PASSWORD = 10;
/** OpenTTD's admin packets are at most TCP_MTU (32767) bytes. */
export const OPENTTD_MAX_PACKET = 32767;

function openttdPacket(type: number, ...strings: string[]): Buffer {
  const body = Buffer.concat(strings.map((s) => Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])])));
  const out = Buffer.alloc(3 + body.length);
  out.writeUInt16LE(3 + body.length, 0);
  out.writeUInt8(type, 2);
  body.copy(out, 3);
  return out;
}

function cString(b: Buffer, from: number): string {
  const end = b.indexOf(0, from);
  return b.subarray(from, end < 0 ? b.length : end).toString('utf8');
}

interface OpenttdPacket {
  type: number;
  body: Buffer;
}

export const dialOpenttdAdmin: Dialer = tcpDialer<OpenttdPacket>((target) => {
  let buf: Buffer = Buffer.alloc(0);
  return {
    read(chunk, emit) {
      // what is kept between reads is less than one packet (a uint16 length): bounded
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 3) {
        const size = buf.readUInt16LE(0);
        if (size < 3 || size > OPENTTD_MAX_PACKET) throw new Error(`a packet of ${size} bytes`);
        if (buf.length < size) break;
        const type = buf.readUInt8(2);
        const body = buf.subarray(3, size);
        buf = buf.subarray(size);
        emit({ type, body });
      }
    },
    login({ socket, ended, listen }) {
      const answer = new Promise<void>((resolve, reject) => {
        listen(({ type, body }) => {
          if (type === SERVER_WELCOME) {
            listen(null);
            resolve();
          } else if (type === SERVER_ERROR) {
            listen(null);
            const code = body.length > 0 ? body.readUInt8(0) : -1;
            reject(
              code === NETWORK_ERROR_WRONG_PASSWORD
                ? new SessionError('wrong_password', 'the server refused the admin password')
                : new SessionError('unreachable', `the server refused the admin login (error ${code})`),
            );
          } else if (type === SERVER_FULL || type === SERVER_BANNED) {
            listen(null);
            reject(new SessionError('unreachable', type === SERVER_FULL ? 'admin slots full' : 'banned'));
          }
        });
        ended.then((r) => reject(new SessionError('unreachable', r)));
      });
      socket.write(openttdPacket(ADMIN_JOIN, target.password, 'Ctrl-Alt-Play', '1'));
      return answer;
    },
    loginTimeout: 'no answer to the join',
    command(command, { socket, out, done }) {
      let lines = 0;
      socket.write(openttdPacket(ADMIN_RCON, command));
      return {
        feed: (p) => {
          if (p.type === SERVER_RCON && p.body.length >= 2) {
            out.push(`${lines++ > 0 ? '\n' : ''}${cString(p.body, 2)}`);
          } else if (p.type === SERVER_RCON_END) done();
        },
        timeout: () => timeoutError('rcon'),
      };
    },
  };
});

export const dialers: ReadonlyMap<RemoteConsoleTransport, Dialer> = new Map<RemoteConsoleTransport, Dialer>([
  ['source-rcon', dialSourceRcon],
  ['quake3-rcon', dialQuake3Rcon],
  ['teeworlds-econ', dialTeeworldsEcon],
  ['openttd-admin', dialOpenttdAdmin],
]);
