/**
 * Attack class: a hostile game server on the other end of a remote console (issue 12). The game
 * runs code its users upload (mods, plugins), so what its RCON / rcon / econ / admin port sends
 * is untrusted: garbage, lengths up to 2^31, a line or a response that never ends, or nothing at
 * all. None of it may crash the Agent, make it buffer without bound, or hang a command: the
 * session ends (or the response is cut at REMOTE_CONSOLE_MAX_RESPONSE_BYTES), the state says so,
 * and the console reconnects with backoff. Malicious servers here are local TCP/UDP sockets.
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { isCodedError, REMOTE_CONSOLE_MAX_RESPONSE_BYTES } from '@cap/protocol';
import pino from 'pino';
import { ManagedRemoteConsole } from '../../src/remote-console/managed.ts';
import type { Dialer, Session } from '../../src/remote-console/session.ts';
import {
  dialOpenttdAdmin,
  dialQuake3Rcon,
  dialSourceRcon,
  dialTeeworldsEcon,
} from '../../src/remote-console/transports.ts';

const log = pino({ level: 'silent' });
const servers: (Server | UdpSocket)[] = [];
after(() => {
  for (const s of servers) s.close();
});

/** A TCP server whose every connection is handed to `onConn`. */
async function tcpServer(onConn: (s: Socket) => void): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    onConn(s);
  });
  const close = server.close.bind(server);
  server.close = ((cb?: (err?: Error) => void) => {
    for (const s of sockets) s.destroy();
    return close(cb);
  }) as typeof server.close;
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as { port: number }).port;
}

async function udpServer(onMsg: (msg: Buffer, reply: (b: Buffer) => void) => void): Promise<number> {
  const s = createSocket('udp4');
  s.on('message', (msg, rinfo) => onMsg(msg, (b) => s.send(b, rinfo.port, rinfo.address)));
  servers.push(s);
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  return s.address().port;
}

function sourcePacket(id: number, type: number, body: Buffer | string): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const out = Buffer.alloc(14 + b.length);
  out.writeInt32LE(10 + b.length, 0);
  out.writeInt32LE(id, 4);
  out.writeInt32LE(type, 8);
  b.copy(out, 12);
  return out;
}

/** Reads Source packets off a socket (the test servers' side). */
function onSourcePackets(s: Socket, fn: (id: number, type: number, body: string) => void): void {
  let buf = Buffer.alloc(0);
  s.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    while (buf.length >= 4 && buf.length >= 4 + buf.readInt32LE(0)) {
      const size = buf.readInt32LE(0);
      fn(buf.readInt32LE(4), buf.readInt32LE(8), buf.subarray(12, 4 + size - 2).toString());
      buf = buf.subarray(4 + size);
    }
  });
}

function ttdPacket(type: number, body: Buffer): Buffer {
  const out = Buffer.alloc(3 + body.length);
  out.writeUInt16LE(3 + body.length, 0);
  out.writeUInt8(type, 2);
  body.copy(out, 3);
  return out;
}

const target = (port: number, password = 'pw') => ({ host: '127.0.0.1', port, password });
const kindOf = (e: unknown) => (e as { kind?: string }).kind;

/** The session ends (onClose called) within `ms`. */
function closes(session: Session, ms = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('the session did not end')), ms);
    session.onClose((r) => {
      clearTimeout(t);
      resolve(r);
    });
  });
}

describe('remote consoles against hostile game servers', { concurrency: true }, () => {
  it('Source RCON: a length of 2^31-1 ends the session before anything is buffered', async () => {
    const port = await tcpServer((s) => {
      onSourcePackets(s, (id, type) => {
        if (type === 3) s.write(sourcePacket(id, 2, ''));
        else {
          const huge = Buffer.alloc(12);
          huge.writeInt32LE(0x7fffffff, 0);
          s.write(huge);
        }
      });
    });
    const session = dialSourceRcon(target(port));
    await session.ready;
    const ended = closes(session);
    await assert.rejects(session.exec('status', 3000), (e) => kindOf(e) === 'unreachable');
    assert.match(await ended, /protocol error: a packet of 2147483647 bytes/);
  });

  it('Source RCON: a negative length and garbage at login are refused, never a crash', async () => {
    for (const bytes of [
      Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]),
      Buffer.from('HTTP/1.1 200 OK\r\n\r\n'),
    ]) {
      const port = await tcpServer((s) => s.write(bytes));
      const session = dialSourceRcon(target(port));
      await assert.rejects(session.ready, (e) => kindOf(e) === 'unreachable');
    }
  });

  it('Source RCON: a 10 MB response is cut at the cap; a response without an end times out', async () => {
    const port = await tcpServer((s) => {
      let silent = false;
      onSourcePackets(s, (id, type, body) => {
        if (type === 3) return void s.write(sourcePacket(id, 2, ''));
        if (type === 2 && body === 'flood') {
          const chunk = sourcePacket(id, 0, 'y'.repeat(4096));
          for (let i = 0; i < 2560; i++) s.write(chunk);
        }
        // "never" gets no answer and no end marker
        if (type === 2) silent = body === 'never';
        if (type === 0 && !silent) s.write(sourcePacket(id, 0, ''));
      });
    });
    const session = dialSourceRcon(target(port));
    await session.ready;
    const flood = await session.exec('flood', 20_000);
    assert.ok(Buffer.byteLength(flood) <= REMOTE_CONSOLE_MAX_RESPONSE_BYTES + 64, `${flood.length}`);
    assert.match(flood, /\[response cut at 65536 bytes\]$/);
    const t = Date.now();
    await assert.rejects(session.exec('never', 500), (e) => isCodedError(e) && e.code === 'TIMEOUT');
    assert.ok(Date.now() - t < 2000);
    session.close();
  });

  it('every TCP transport: a server that accepts and never answers fails the login in bounded time', async () => {
    const port = await tcpServer(() => undefined);
    const t = Date.now();
    await Promise.all(
      [dialSourceRcon, dialTeeworldsEcon, dialOpenttdAdmin].map((dial: Dialer) =>
        assert.rejects(dial(target(port)).ready, (e) => kindOf(e) === 'unreachable'),
      ),
    );
    assert.ok(Date.now() - t < 8000, `${Date.now() - t} ms`);
  });

  it('Teeworlds econ: a line that never ends (1 MB without a newline) ends the session', async () => {
    const port = await tcpServer((s) => {
      s.write('Enter password:\n');
      s.once('data', () => {
        s.write('Authentication successful. External console access granted.\n');
        s.once('data', () => s.write('z'.repeat(1024 * 1024)));
      });
    });
    const session = dialTeeworldsEcon(target(port));
    await session.ready;
    const ended = closes(session);
    await assert.rejects(session.exec('status', 5000), (e) => kindOf(e) === 'unreachable');
    assert.match(await ended, /a line over 16384 bytes/);
  });

  it('Teeworlds econ: a wrong password is wrong_password; a flood of lines is cut at the cap', async () => {
    const port = await tcpServer((s) => {
      s.write('Enter password:\n');
      s.once('data', (pw: Buffer) => {
        if (pw.toString().trim() !== 'pw') return void s.end('Wrong password 1/3.\n');
        s.write('Authentication successful. External console access granted.\n');
        s.once('data', () => {
          const line = `[server]: ${'w'.repeat(1000)}\n`;
          for (let i = 0; i < 1000; i++) s.write(line);
        });
      });
    });
    await assert.rejects(dialTeeworldsEcon(target(port, 'bad')).ready, (e) => kindOf(e) === 'wrong_password');
    const session = dialTeeworldsEcon(target(port));
    await session.ready;
    const out = await session.exec('status', 3000);
    assert.ok(Buffer.byteLength(out) <= REMOTE_CONSOLE_MAX_RESPONSE_BYTES + 64);
    session.close();
  });

  it('OpenTTD admin: a packet shorter than its header ends the session; an RCON flood is cut', async () => {
    const port = await tcpServer((s) => {
      s.once('data', () => {
        s.write(ttdPacket(104, Buffer.from('welcome\0')));
        s.on('data', (d: Buffer) => {
          const cmd = d.subarray(3, d.indexOf(0, 3)).toString();
          if (cmd === 'short') s.write(Buffer.from([2, 0, 120]));
          else {
            const line = ttdPacket(
              120,
              Buffer.concat([Buffer.from([1, 0]), Buffer.from(`${'r'.repeat(1400)}\0`)]),
            );
            for (let i = 0; i < 200; i++) s.write(line);
            s.write(ttdPacket(125, Buffer.from(`${cmd}\0`)));
          }
        });
      });
    });
    const session = dialOpenttdAdmin(target(port));
    await session.ready;
    const out = await session.exec('clients', 5000);
    assert.ok(Buffer.byteLength(out) <= REMOTE_CONSOLE_MAX_RESPONSE_BYTES + 64);
    assert.match(out, /response cut/);
    const ended = closes(session);
    await assert.rejects(session.exec('short', 3000), (e) => kindOf(e) === 'unreachable');
    assert.match(await ended, /a packet of 2 bytes/);
  });

  it('OpenTTD admin: SERVER_ERROR wrong password is wrong_password', async () => {
    const port = await tcpServer((s) => s.once('data', () => s.end(ttdPacket(102, Buffer.from([10])))));
    await assert.rejects(dialOpenttdAdmin(target(port)).ready, (e) => kindOf(e) === 'wrong_password');
  });

  it('Quake 3 rcon: garbage and spoofed-looking datagrams are ignored; Bad rconpassword is wrong_password', async () => {
    const port = await udpServer((msg, reply) => {
      const text = msg.subarray(4).toString();
      // noise first: not a print packet, a truncated header, a 60 KB blob
      reply(Buffer.from('garbage'));
      reply(Buffer.from([0xff, 0xff]));
      reply(Buffer.alloc(60_000, 0x41));
      if (!text.startsWith('rcon pw '))
        return reply(Buffer.from('\xff\xff\xff\xffprint\nBad rconpassword.\n', 'latin1'));
      const cmd = text.slice('rcon pw '.length);
      if (cmd === 'flood') {
        const big = Buffer.concat([
          Buffer.from('\xff\xff\xff\xffprint\n', 'latin1'),
          Buffer.alloc(1000, 0x71),
        ]);
        for (let i = 0; i < 200; i++) reply(big);
        return;
      }
      if (cmd === 'silent') return;
      reply(Buffer.from(`\xff\xff\xff\xffprint\nok ${cmd}\n`, 'latin1'));
    });
    await assert.rejects(dialQuake3Rcon(target(port, 'nope')).ready, (e) => kindOf(e) === 'wrong_password');
    const session = dialQuake3Rcon(target(port));
    await session.ready;
    assert.equal(await session.exec('status', 2000), 'ok status\n');
    const flood = await session.exec('flood', 3000);
    assert.ok(Buffer.byteLength(flood) <= REMOTE_CONSOLE_MAX_RESPONSE_BYTES + 64);
    await assert.rejects(session.exec('silent', 400), (e) => isCodedError(e) && e.code === 'TIMEOUT');
    session.close();
  });

  it('Quake 3 rcon: commands are paced under the game’s ~10/s rate limit', async () => {
    const at: number[] = [];
    const port = await udpServer((msg, reply) => {
      at.push(Date.now());
      reply(Buffer.from(`\xff\xff\xff\xffprint\n${msg.subarray(4).toString()}\n`, 'latin1'));
    });
    const session = dialQuake3Rcon(target(port));
    await session.ready;
    await Promise.all(Array.from({ length: 5 }, (_, i) => session.exec(`c${i}`, 3000)));
    for (let i = 1; i < at.length; i++)
      assert.ok(at[i]! - at[i - 1]! >= 100, `${at[i]! - at[i - 1]!} ms apart`);
    session.close();
  });

  it('the managed console: unreachable, then reconnects with backoff once the game listens; a dropped session reconnects', async () => {
    // a port with nothing on it yet
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const states: string[] = [];
    let conns = 0;
    const rc = new ManagedRemoteConsole({
      serverId: 's1',
      transport: 'source-rcon',
      dial: dialSourceRcon,
      target: async () => target(port),
      log,
      backoff: { initialMs: 50, maxMs: 200, wrongPasswordMs: 1000 },
    });
    rc.onState((s) => states.push(s));
    rc.start();
    await assert.rejects(
      rc.send('status', { timeoutMs: 300 }),
      (e) => isCodedError(e) && e.code === 'REMOTE_CONSOLE_UNAVAILABLE',
    );
    assert.equal(rc.state, 'unreachable');
    // the game comes up on that port; it drops the first session after the login
    const server = createServer((s) => {
      conns++;
      const n = conns;
      s.on('error', () => undefined);
      onSourcePackets(s, (id, type, body) => {
        if (type === 3) {
          s.write(sourcePacket(id, 2, ''));
          if (n === 1) setTimeout(() => s.destroy(), 50);
        } else if (type === 2) s.write(sourcePacket(id, 0, `did ${body}`));
        else s.write(sourcePacket(id, 0, ''));
      });
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    const t = Date.now();
    while (conns < 2 || (rc.state as string) !== 'authenticated') {
      assert.ok(Date.now() - t < 5000, `states ${states.join(',')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(await rc.send('status'), { response: 'did status' });
    assert.deepEqual(states.slice(0, 2), ['connecting', 'unreachable']);
    assert.ok(states.includes('authenticated'));
    rc.stop();
    assert.equal(rc.state, 'idle');
    await assert.rejects(rc.send('x'), (e) => isCodedError(e) && e.code === 'NOT_RUNNING');
  });
});
