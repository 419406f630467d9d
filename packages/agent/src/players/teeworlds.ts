/**
 * Teeworlds 0.7 server info over UDP (gamedig 5 knows no 0.7 server). The exchange, as the game's
 * own server browser does it (src/engine/shared/network*.cpp, 0.7):
 *
 * Packet flags (the first byte's upper six bits): CONTROL 1, CONNLESS 8; the low two bits are the
 * version (1) in a connless packet.
 *
 * 1. a token request: a control packet (flags CONTROL, token NONE) with NET_CTRLMSG_TOKEN and our
 *    token, padded to 512 bytes of data (the server ignores shorter ones: no amplification);
 * 2. the server answers with a control packet NET_CTRLMSG_TOKEN carrying its token for us;
 * 3. a connless packet (server's token, our token) `\xff\xff\xff\xffgie3` + a variable int;
 * 4. the answer `\xff\xff\xff\xffinf3`: variable ints and NUL-terminated strings, then a record
 *    per client (name, clan, country, score, flags: 1 spectator, 2 bot).
 *
 * Everything read from the server is bounded: packets over 1400 bytes are refused, strings are
 * capped by the game's own limits, at most 64 clients are read, and any malformed field fails the
 * whole answer with TeeworldsQueryError (never a throw of another kind, never an endless loop).
 */
import { randomInt } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { isIP } from 'node:net';

export const MAX_PACKET = 1400;
const TOKEN_NONE = 0xffffffff;
const CTRL_TOKEN = 5;
const FLAG_CONTROL = 1;
const FLAG_CONNLESS = 8;
const PACKET_VERSION = 1;
const TOKEN_REQUEST_DATA = 512;
const GETINFO = Buffer.from([255, 255, 255, 255, 0x67, 0x69, 0x65, 0x33]); // gie3
const INFO = Buffer.from([255, 255, 255, 255, 0x69, 0x6e, 0x66, 0x33]); // inf3
const MAX_CLIENTS = 64;

export class TeeworldsQueryError extends Error {
  override name = 'TeeworldsQueryError';
}

export interface TeeworldsPlayer {
  name: string;
  clan: string;
  country: number;
  score: number;
  spectator: boolean;
  bot: boolean;
}

export interface TeeworldsInfo {
  version: string;
  name: string;
  hostname: string;
  map: string;
  gameType: string;
  flags: number;
  /** players in the game (spectators not counted), and the player slots */
  numPlayers: number;
  maxPlayers: number;
  /** every client (players and spectators), and the client slots */
  numClients: number;
  maxClients: number;
  clients: TeeworldsPlayer[];
}

/** The token request (520 bytes): control packet, token NONE, NET_CTRLMSG_TOKEN, our token, padding. */
export function tokenRequest(ourToken: number): Buffer {
  const b = Buffer.alloc(7 + 1 + TOKEN_REQUEST_DATA);
  b[0] = (FLAG_CONTROL << 2) & 0xfc;
  b.writeUInt32BE(TOKEN_NONE, 3);
  b[7] = CTRL_TOKEN;
  b.writeUInt32BE(ourToken >>> 0, 8);
  return b;
}

/** The server's token from its answer to tokenRequest, or null when the packet is something else. */
export function parseTokenResponse(packet: Buffer, ourToken: number): number | null {
  if (packet.length < 12 || packet.length > MAX_PACKET) return null;
  const flags = packet[0]! >> 2;
  if ((flags & FLAG_CONTROL) === 0 || (flags & FLAG_CONNLESS) !== 0) return null;
  if (packet.readUInt32BE(3) !== ourToken >>> 0) return null;
  if (packet[7] !== CTRL_TOKEN) return null;
  return packet.readUInt32BE(8);
}

/** Teeworlds' CVariableInt. */
export function packInt(value: number): Buffer {
  const out: number[] = [];
  let i = value | 0;
  let first = (i >> 25) & 0x40;
  i ^= i >> 31;
  first |= i & 0x3f;
  i >>>= 6;
  if (i === 0) return Buffer.from([first]);
  out.push(first | 0x80);
  for (;;) {
    let b = i & 0x7f;
    i >>>= 7;
    if (i !== 0) b |= 0x80;
    out.push(b);
    if (i === 0) break;
  }
  return Buffer.from(out);
}

/** The info request: connless header (server token, our token), `gie3`, the browser token. */
export function infoRequest(serverToken: number, ourToken: number, browserToken: number): Buffer {
  const head = Buffer.alloc(9);
  head[0] = ((FLAG_CONNLESS << 2) & 0xfc) | (PACKET_VERSION & 0x03);
  head.writeUInt32BE(serverToken >>> 0, 1);
  head.writeUInt32BE(ourToken >>> 0, 5);
  return Buffer.concat([head, GETINFO, packInt(browserToken)]);
}

class Reader {
  #buf: Buffer;
  #pos: number;
  constructor(buf: Buffer, pos: number) {
    this.#buf = buf;
    this.#pos = pos;
  }
  get done(): boolean {
    return this.#pos >= this.#buf.length;
  }
  int(): number {
    const b = this.#buf;
    let p = this.#pos;
    if (p >= b.length) throw new TeeworldsQueryError('truncated integer');
    const sign = (b[p]! >> 6) & 1;
    let v = b[p]! & 0x3f;
    let shift = 6;
    // at most 4 extension bytes (32 bits), as the game reads them
    for (let n = 0; n < 4 && b[p]! & 0x80; n++) {
      p++;
      if (p >= b.length) throw new TeeworldsQueryError('truncated integer');
      v |= (b[p]! & 0x7f) << shift;
      shift += 7;
    }
    if (b[p]! & 0x80) throw new TeeworldsQueryError('integer longer than 5 bytes');
    this.#pos = p + 1;
    return (v ^ -sign) | 0;
  }
  /** a NUL-terminated string of at most `max` bytes (the game's own limit) */
  str(max: number): string {
    const end = this.#buf.indexOf(0, this.#pos);
    if (end === -1) throw new TeeworldsQueryError('unterminated string');
    if (end - this.#pos > max) throw new TeeworldsQueryError(`string over ${max} bytes`);
    const s = this.#buf.toString('utf8', this.#pos, end);
    this.#pos = end + 1;
    // control characters out (names are shown in the UI)
    // biome-ignore lint/suspicious/noControlCharactersInRegex: that is the point
    return s.replace(/[\u0000-\u001f\u007f]/g, '');
  }
}

function count(n: number, what: string, max = 256): number {
  if (!Number.isInteger(n) || n < 0 || n > max) throw new TeeworldsQueryError(`${what} ${n} out of range`);
  return n;
}

/** The `inf3` answer (the whole UDP packet, connless header included), checked against our tokens. */
export function parseInfo(packet: Buffer, ourToken: number, browserToken: number): TeeworldsInfo {
  if (packet.length > MAX_PACKET) throw new TeeworldsQueryError(`packet over ${MAX_PACKET} bytes`);
  if (packet.length < 9 + INFO.length) throw new TeeworldsQueryError('packet too short');
  const flags = packet[0]! >> 2;
  if ((flags & FLAG_CONNLESS) === 0) throw new TeeworldsQueryError('not a connless packet');
  if (packet.readUInt32BE(1) !== ourToken >>> 0) throw new TeeworldsQueryError('wrong token');
  if (!packet.subarray(9, 9 + INFO.length).equals(INFO)) throw new TeeworldsQueryError('not an info answer');
  const r = new Reader(packet, 9 + INFO.length);
  if (r.int() !== browserToken) throw new TeeworldsQueryError('wrong browser token');
  const info: TeeworldsInfo = {
    version: r.str(32),
    name: r.str(64),
    hostname: r.str(128),
    map: r.str(32),
    gameType: r.str(16),
    flags: r.int(),
    numPlayers: 0,
    maxPlayers: 0,
    numClients: 0,
    maxClients: 0,
    clients: [],
  };
  r.int(); // skill level
  info.numPlayers = count(r.int(), 'players');
  info.maxPlayers = count(r.int(), 'player slots');
  info.numClients = count(r.int(), 'clients');
  info.maxClients = count(r.int(), 'client slots');
  while (!r.done && info.clients.length < MAX_CLIENTS) {
    const name = r.str(16);
    const clan = r.str(12);
    const country = r.int();
    const score = r.int();
    const f = r.int();
    info.clients.push({ name, clan, country, score, spectator: (f & 1) !== 0, bot: (f & 2) !== 0 });
  }
  return info;
}

/** Sends `send()`'s packet and resolves with the first packet `accept` takes (null = not that one). */
function exchange<T>(
  socket: Socket,
  host: string,
  port: number,
  packet: Buffer,
  accept: (msg: Buffer) => T | null,
  signal: AbortSignal,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const done = (): void => {
      socket.off('message', onMessage);
      signal.removeEventListener('abort', onAbort);
    };
    const onMessage = (msg: Buffer, rinfo: { address: string; port: number }): void => {
      if (rinfo.port !== port) return;
      let v: T | null;
      try {
        v = accept(msg);
      } catch (e) {
        done();
        reject(e);
        return;
      }
      if (v === null) return;
      done();
      resolve(v);
    };
    const onAbort = (): void => {
      done();
      reject(new TeeworldsQueryError('no answer in time'));
    };
    if (signal.aborted) return onAbort();
    socket.on('message', onMessage);
    signal.addEventListener('abort', onAbort);
    socket.send(packet, port, host, (err) => {
      if (err) {
        done();
        reject(new TeeworldsQueryError(`send failed: ${err.message}`));
      }
    });
  });
}

/** Queries a Teeworlds 0.7 server; rejects with TeeworldsQueryError (timeout, malformed answer). */
export async function queryTeeworlds(host: string, port: number, timeoutMs = 3000): Promise<TeeworldsInfo> {
  const socket = createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
  socket.on('error', () => undefined);
  const signal = AbortSignal.timeout(timeoutMs);
  const ourToken = randomInt(1, 0xffffffff);
  const browserToken = randomInt(0, 0x7fffffff);
  try {
    await new Promise<void>((resolve) => socket.bind(0, resolve));
    const serverToken = await exchange(
      socket,
      host,
      port,
      tokenRequest(ourToken),
      (m) => parseTokenResponse(m, ourToken),
      signal,
    );
    return await exchange(
      socket,
      host,
      port,
      infoRequest(serverToken, ourToken, browserToken),
      (m) => {
        // anything else (a late token answer) is skipped; a malformed info answer fails
        if (m.length < 9 + INFO.length || !m.subarray(9, 9 + INFO.length).equals(INFO)) return null;
        return parseInfo(m, ourToken, browserToken);
      },
      signal,
    );
  } finally {
    socket.close();
  }
}
