/** The Teeworlds 0.7 server-info query (issue 12 item 2): packets built and read, hostile ones refused. */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { describe, it } from 'node:test';
import {
  infoRequest,
  MAX_PACKET,
  packInt,
  parseInfo,
  parseTokenResponse,
  queryTeeworlds,
  TeeworldsQueryError,
  tokenRequest,
} from './teeworlds.ts';

const OURS = 0x12345678;
const BROWSER = 77;

function str(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
}

/** An `inf3` answer as the game sends it (0.7.5, captured layout). */
function info(
  opts: { clients?: Buffer[]; counts?: number[]; token?: number; browser?: number } = {},
): Buffer {
  const head = Buffer.alloc(9);
  head[0] = 0x21;
  head.writeUInt32BE(opts.token ?? OURS, 1);
  head.writeUInt32BE(0xabcdef01, 5);
  const counts = opts.counts ?? [2, 8, 2, 8];
  return Buffer.concat([
    head,
    Buffer.from([255, 255, 255, 255, 0x69, 0x6e, 0x66, 0x33]),
    packInt(opts.browser ?? BROWSER),
    str('0.7.5'),
    str('probe'),
    str(''),
    str('dm1'),
    str('DM'),
    packInt(0),
    packInt(1),
    ...counts.map(packInt),
    ...(opts.clients ?? [client('nameless tee', 12), client('brainless tee', -3, 1)]),
  ]);
}

function client(name: string, score: number, flags = 0): Buffer {
  return Buffer.concat([str(name), str('clan'), packInt(-1), packInt(score), packInt(flags)]);
}

const isQueryError = (e: unknown) => e instanceof TeeworldsQueryError;

describe('Teeworlds 0.7 query: packets', () => {
  it('builds the token request (520 bytes) and reads the token answer', () => {
    const req = tokenRequest(OURS);
    assert.equal(req.length, 520);
    assert.equal(req.subarray(0, 12).toString('hex'), '04000' + '0ffffffff0512345678');
    // the answer a 0.7.5 server gave on this machine
    assert.equal(parseTokenResponse(Buffer.from('04000012345678058ff00257', 'hex'), OURS), 0x8ff00257);
    // another token, a connless packet, a short one: not ours
    assert.equal(parseTokenResponse(Buffer.from('04000012345679058ff00257', 'hex'), OURS), null);
    assert.equal(parseTokenResponse(Buffer.from('21000012345678058ff00257', 'hex'), OURS), null);
    assert.equal(parseTokenResponse(Buffer.from('040000123456', 'hex'), OURS), null);
  });

  it('builds the info request with the server token, ours and the browser token', () => {
    assert.equal(
      infoRequest(0x8ff00257, OURS, BROWSER).toString('hex'),
      '218ff0025712345678ffffffff676965338d01',
    );
  });

  it('packs integers as the game does (sign bit, 6 then 7 bits)', () => {
    assert.equal(packInt(0).toString('hex'), '00');
    assert.equal(packInt(63).toString('hex'), '3f');
    assert.equal(packInt(64).toString('hex'), '8001');
    assert.equal(packInt(-1).toString('hex'), '40');
    assert.equal(packInt(2 ** 31 - 1).toString('hex'), 'bfffffff0f');
  });

  it('reads an answer: counts, names, scores, spectators and bots', () => {
    const r = parseInfo(info(), OURS, BROWSER);
    assert.equal(r.version, '0.7.5');
    assert.equal(r.map, 'dm1');
    assert.deepEqual([r.numPlayers, r.maxPlayers, r.numClients, r.maxClients], [2, 8, 2, 8]);
    assert.deepEqual(
      r.clients.map((c) => [c.name, c.score, c.spectator, c.bot]),
      [
        ['nameless tee', 12, false, false],
        ['brainless tee', -3, true, false],
      ],
    );
  });
});

describe('Teeworlds 0.7 query: hostile answers are refused, never thrown otherwise', () => {
  const cases: [string, Buffer][] = [
    ['over the packet cap', Buffer.concat([info(), Buffer.alloc(MAX_PACKET)])],
    ['too short', Buffer.from('21', 'hex')],
    ['not connless', Buffer.concat([Buffer.from([0x04]), info().subarray(1)])],
    ['someone else’s token', info({ token: 0x11111111 })],
    ['another browser token', info({ browser: 5 })],
    ['a truncated integer', Buffer.concat([info({ clients: [] }), Buffer.from([0x80])])],
    [
      'an integer longer than 5 bytes',
      Buffer.concat([info({ clients: [] }).subarray(0, 22), Buffer.alloc(7, 0xff)]),
    ],
    ['an unterminated string', Buffer.concat([info({ clients: [] }), Buffer.from('abc')])],
    ['a name over 16 bytes', info({ clients: [client('x'.repeat(17), 0)] })],
    ['a negative count', info({ counts: [-1, 8, 2, 8] })],
    ['an absurd count', info({ counts: [2, 8, 2, 100000] })],
  ];
  for (const [what, packet] of cases) {
    it(what, () => assert.throws(() => parseInfo(packet, OURS, BROWSER), isQueryError));
  }

  it('reads at most 64 clients and strips control characters from names', () => {
    const many = Array.from({ length: 70 }, (_, i) => client(`p${i}\u0007`, i));
    const r = parseInfo(info({ clients: many.slice(0, 30) }), OURS, BROWSER);
    assert.equal(r.clients[0]?.name, 'p0');
    // 70 clients do not fit one packet: the 64-client cap on a long list of tiny ones
    const tiny = Array.from({ length: 90 }, () =>
      Buffer.concat([str(''), str(''), packInt(0), packInt(0), packInt(0)]),
    );
    assert.equal(parseInfo(info({ clients: tiny }), OURS, BROWSER).clients.length, 64);
  });
});

describe('Teeworlds 0.7 query over UDP against hostile servers', () => {
  /** A UDP server answering each packet with `answer(packet)` (null: silence). */
  async function fakeServer(answer: (msg: Buffer) => Buffer[] | null) {
    const s = createSocket('udp4');
    s.on('message', (msg, r) => {
      for (const out of answer(msg) ?? []) s.send(out, r.port, r.address);
    });
    await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
    return { port: s.address().port, close: () => s.close() };
  }
  const tokenOf = (msg: Buffer) => msg.readUInt32BE(8);

  it('times out on a server that never answers', async () => {
    const srv = await fakeServer(() => null);
    const t0 = Date.now();
    await assert.rejects(queryTeeworlds('127.0.0.1', srv.port, 300), isQueryError);
    assert.ok(Date.now() - t0 < 2000);
    srv.close();
  });

  it('ignores junk and floods, and refuses a malformed info answer', async () => {
    const srv = await fakeServer((msg) => {
      if (msg.length === 520) {
        const ours = tokenOf(msg);
        const tok = Buffer.from('0400000000000005deadbeef', 'hex');
        tok.writeUInt32BE(ours, 3);
        // junk first, then the real token answer
        return [Buffer.alloc(2000, 0xff), Buffer.from('hello'), tok];
      }
      // the info answer with our token but an unterminated string
      const head = Buffer.from(msg.subarray(0, 9));
      head.writeUInt32BE(msg.readUInt32BE(5), 1);
      return [
        Buffer.concat([
          head,
          Buffer.from([255, 255, 255, 255, 0x69, 0x6e, 0x66, 0x33]),
          msg.subarray(17),
          Buffer.from('x'),
        ]),
      ];
    });
    await assert.rejects(queryTeeworlds('127.0.0.1', srv.port, 1000), isQueryError);
    srv.close();
  });
});
