/**
 * A test double of a Source-engine game server (no such server runs here): Source RCON over TCP
 * (auth, exec, responses split into packets of at most 4096 body bytes, and the mirror of an
 * empty RESPONSE_VALUE followed by srcds' `00 01 00 00` packet, which is how clients find the end
 * of a split response) and A2S over UDP (A2S_INFO with the S2C_CHALLENGE step, A2S_PLAYER).
 * It is held to the protocol by third-party clients: npm `rcon-srcds` and `gamedig`
 * (test/remote-console-source.test.ts).
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';

export interface SourceDoubleOptions {
  password: string;
  name?: string;
  map?: string;
  players?: { name: string; score: number; seconds: number }[];
  maxPlayers?: number;
  /** the answers of commands (default: `echo <args>` echoes, `status` lists the players) */
  commands?: (command: string) => string;
}

export interface SourceDouble {
  rconPort: number;
  queryPort: number;
  /** commands executed, in order */
  executed: string[];
  close(): Promise<void>;
}

const AUTH = 3;
const AUTH_RESPONSE = 2;
const EXEC = 2;
const RESPONSE_VALUE = 0;
const MAX_BODY = 4096;

function packet(id: number, type: number, body: Buffer | string): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const out = Buffer.alloc(14 + b.length);
  out.writeInt32LE(10 + b.length, 0);
  out.writeInt32LE(id, 4);
  out.writeInt32LE(type, 8);
  b.copy(out, 12);
  return out;
}

function cstr(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
}

export async function startSourceDouble(opts: SourceDoubleOptions): Promise<SourceDouble> {
  const executed: string[] = [];
  const players = opts.players ?? [];
  const answer =
    opts.commands ??
    ((command: string) => {
      if (command.startsWith('echo ')) return `${command.slice(5)}\n`;
      if (command === 'status')
        // as srcds prints it: the header, then `# userid "name" uniqueid connected ping loss state adr`
        return `hostname: ${opts.name ?? 'double'}\nplayers : ${players.length} humans, 0 bots (${opts.maxPlayers ?? 24} max)\n# userid name                uniqueid            connected ping loss state  adr\n${players.map((p, i) => `#      ${i + 2} "${p.name}"  [U:1:${1000 + i}]  ${Math.floor(p.seconds / 60)}:${String(p.seconds % 60).padStart(2, '0')}  50  0 active 127.0.0.1:27005\n`).join('')}`;
      return `Unknown command "${command.split(' ')[0]}"\n`;
    });

  const sockets = new Set<Socket>();
  const tcp: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let authed = false;
    let buf = Buffer.alloc(0);
    // writes are spaced so that each packet is its own read on the other side, as srcds sends them
    let queue = Promise.resolve();
    const send = (b: Buffer) => {
      queue = queue.then(
        () =>
          new Promise<void>((resolve) => {
            if (socket.destroyed) return resolve();
            socket.write(b, () => setTimeout(resolve, 5));
          }),
      );
    };
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 4) {
        const size = buf.readInt32LE(0);
        if (size < 10 || size > MAX_BODY + 10) return socket.destroy();
        if (buf.length < 4 + size) return;
        const id = buf.readInt32LE(4);
        const type = buf.readInt32LE(8);
        const body = buf.subarray(12, 4 + size - 2).toString('utf8');
        buf = buf.subarray(4 + size);
        if (type === AUTH) {
          authed = body === opts.password;
          send(packet(id, RESPONSE_VALUE, ''));
          send(packet(authed ? id : -1, AUTH_RESPONSE, ''));
        } else if (!authed) {
          socket.destroy();
          return;
        } else if (type === EXEC) {
          executed.push(body);
          const out = Buffer.from(answer(body), 'utf8');
          for (let at = 0; at < out.length || at === 0; at += MAX_BODY) {
            send(packet(id, RESPONSE_VALUE, out.subarray(at, at + MAX_BODY)));
            if (out.length === 0) break;
          }
        } else if (type === RESPONSE_VALUE) {
          // the end-of-response trick: mirror the empty packet, then srcds' 0x0001 packet
          send(packet(id, RESPONSE_VALUE, ''));
          send(packet(id, RESPONSE_VALUE, Buffer.from([0x00, 0x01, 0x00, 0x00])));
        }
      }
    });
  });
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  const rconPort = (tcp.address() as { port: number }).port;

  const udp: UdpSocket = createSocket('udp4');
  const challenge = 0x1234abcd;
  udp.on('message', (msg, rinfo) => {
    if (msg.length < 5 || msg.readInt32LE(0) !== -1) return;
    const type = msg.readUInt8(4);
    const reply = (b: Buffer) =>
      udp.send(Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff]), b]), rinfo.port, rinfo.address);
    const challengeMsg = () => {
      const c = Buffer.alloc(5);
      c.writeUInt8(0x41, 0);
      c.writeInt32LE(challenge, 1);
      reply(c);
    };
    if (type === 0x54) {
      // A2S_INFO: "Source Engine Query\0" then (since 2020) the challenge
      const given = msg.length >= 25 + 4 ? msg.readInt32LE(25) : null;
      if (given !== challenge) return challengeMsg();
      const edf = Buffer.alloc(3);
      edf.writeUInt8(0x80, 0);
      edf.writeUInt16LE(rconPort, 1);
      reply(
        Buffer.concat([
          Buffer.from([0x49, 17]),
          cstr(opts.name ?? 'double'),
          cstr(opts.map ?? 'ctf_2fort'),
          cstr('tf'),
          cstr('Team Fortress'),
          Buffer.from([440 & 0xff, 440 >> 8, players.length, opts.maxPlayers ?? 24, 0]),
          Buffer.from('dl', 'ascii'),
          Buffer.from([0, 1]),
          cstr('1.0.0.0'),
          edf,
        ]),
      );
    } else if (type === 0x55) {
      // A2S_PLAYER with the challenge (-1 asks for one)
      if (msg.length < 9 || msg.readInt32LE(5) !== challenge) return challengeMsg();
      const parts: Buffer[] = [Buffer.from([0x44, players.length])];
      players.forEach((p, i) => {
        const nums = Buffer.alloc(8);
        nums.writeInt32LE(p.score, 0);
        nums.writeFloatLE(p.seconds, 4);
        parts.push(Buffer.from([i]), cstr(p.name), nums);
      });
      reply(Buffer.concat(parts));
    } else if (type === 0x56) {
      if (msg.length < 9 || msg.readInt32LE(5) !== challenge) return challengeMsg();
      reply(Buffer.from([0x45, 0, 0]));
    }
  });
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', () => resolve()));
  const queryPort = udp.address().port;

  return {
    rconPort,
    queryPort,
    executed,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
      await new Promise<void>((resolve) => udp.close(() => resolve()));
    },
  };
}
