import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { Header, type HeaderData, Pax } from 'tar';
import { ChunkQueue, decodeHeader, readTar } from './tar-reader.ts';

/** node-tar's reading of a block, as its Parser + ReadEntry hand it on (the pax path and link
 * target put back over Header's, for the file-system types the pending fields apply to) */
function nodeTar(b: Buffer, ex?: HeaderData, gex?: HeaderData) {
  let h: Header;
  try {
    h = new Header(b, 0, ex, gex);
  } catch {
    return 'throws';
  }
  if (h.nullBlock) return { nullBlock: true };
  const isFs = /^[0-7D]?$/.test(b[156] === 0 ? '' : String.fromCharCode(b[156] ?? 0));
  return {
    type: h.type,
    path: isFs && ex?.path !== undefined ? ex.path : h.path,
    linkpath: isFs && ex?.linkpath !== undefined ? ex.linkpath : (h.linkpath ?? ''),
    size: h.size,
    mode: h.mode,
    uid: h.uid,
    gid: h.gid,
    mtime: h.mtime?.getTime(),
    cksumValid: h.cksumValid,
    nullBlock: false,
  };
}
function ours(b: Buffer, ex?: HeaderData, gex?: HeaderData) {
  try {
    const h = decodeHeader(b, ex, gex);
    return h.nullBlock ? { nullBlock: true } : { ...h, mtime: h.mtime?.getTime() };
  } catch {
    return 'throws';
  }
}
/** a pax record: its length counts itself */
function rec(k: string, v: string): string {
  const body = ` ${k}=${v}\n`;
  let n = Buffer.byteLength(body) + 1;
  if (String(n).length + Buffer.byteLength(body) !== n) n = String(n + 1).length + Buffer.byteLength(body);
  return `${n}${body}`;
}
function block(d: HeaderData): Buffer {
  const b = Buffer.alloc(512);
  new Header(d).encode(b, 0);
  return b;
}
/** sets the checksum field so that the block is valid again after a change */
function resum(b: Buffer): Buffer {
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const c of b) sum += c;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return b;
}

const mtime = new Date(1_700_000_000_000);
const samples: HeaderData[] = [
  { path: 'server.properties', type: 'File', size: 1234, mode: 0o644, mtime, uid: 1000, gid: 1000 },
  { path: 'world/', type: 'Directory', size: 0, mode: 0o755, mtime },
  { path: 'latest', type: 'SymbolicLink', linkpath: 'world/region/r.0.0.mca', size: 0, mode: 0o777, mtime },
  { path: 'hard', type: 'Link', linkpath: 'server.properties', size: 0, mode: 0o644, mtime },
  // a path over 100 bytes: ustar prefix
  { path: `${'deep-name-'.repeat(12)}/${'x'.repeat(90)}`, type: 'File', size: 5, mode: 0o600, mtime },
  // a size over 8 GiB: base-256
  { path: 'huge.bin', type: 'File', size: 9 * 1024 ** 3, mode: 0o644, mtime },
  { path: 'dev', type: 'CharacterDevice', size: 0, mode: 0o600, mtime },
  { path: 'ünïcödé/名前.txt', type: 'File', size: 3, mode: 0o644, mtime },
];

describe('tar header decoding (ours against node-tar Header)', () => {
  it('written headers: the same fields', () => {
    for (const d of samples) assert.deepEqual(ours(block(d)), nodeTar(block(d)), d.path);
  });

  it('pending pax fields apply to file-system entries only, as in node-tar', () => {
    const ex = Pax.parse(
      rec('path', 'from/pax/long-name.txt') + rec('size', '4096') + rec('mtime', '1600000000'),
      undefined,
      false,
    );
    for (const d of samples) {
      const b = block(d);
      const o = ours(b, ex);
      assert.notEqual(o, 'throws');
      const n = nodeTar(b, ex);
      assert.notEqual(n, 'throws');
      if (typeof o === 'string' || typeof n === 'string' || !('path' in o)) continue;
      assert.equal(o.path, 'from/pax/long-name.txt', d.path);
      assert.equal(o.size, d.type === 'Directory' ? 0 : 4096);
      assert.deepEqual(o, n, d.path);
    }
    // an L header (meta) is not the target of the pending fields
    const l = block({ path: '././@LongLink', type: 'NextFileHasLongPath', size: 300, mode: 0o644, mtime });
    assert.deepEqual(ours(l, ex), nodeTar(l, ex));
    assert.equal((ours(l, ex) as { size: number }).size, 300);
  });

  it('mutated and hostile blocks: the same reading, or both refuse', () => {
    let seed = 11;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const blocks: Buffer[] = [Buffer.alloc(512)];
    for (let i = 0; i < 3000; i++) {
      const b = block(samples[i % samples.length] as HeaderData);
      const flips = 1 + (rnd() % 6);
      for (let f = 0; f < flips; f++) {
        const at = rnd() % 512;
        const pick = rnd() % 8;
        // bytes a writer might put there: digits, spaces, NULs, high bytes, signs, letters
        b[at] = [0x30 + (rnd() % 10), 0x20, 0, 0x80, 0xff, 0x2d, 0x41 + (rnd() % 26), rnd() % 256][
          pick
        ] as number;
      }
      blocks.push(i % 3 === 0 ? b : resum(b));
    }
    // GNU's old magic, and a ustar block with a 155-byte prefix
    const gnu = block(samples[4] as HeaderData);
    gnu.write('ustar  \0', 257, 'latin1');
    blocks.push(resum(gnu));
    const pre = block(samples[0] as HeaderData);
    pre.fill(0x61, 345, 500);
    blocks.push(resum(pre));
    let agreed = 0;
    for (const b of blocks) {
      const o = ours(b);
      const n = nodeTar(b);
      if (n === 'throws') assert.equal(o, 'throws', b.toString('hex'));
      else assert.deepEqual(o, n, b.toString('hex'));
      agreed++;
    }
    assert.equal(agreed, blocks.length);
  });
});

describe('tar reading loop', () => {
  const data = (n: number, seed: number) => Buffer.alloc(n, seed % 251);
  function tar(entries: { path: string; size: number }[]): Buffer {
    const parts: Buffer[] = [];
    for (const [i, e] of entries.entries()) {
      parts.push(block({ path: e.path, type: 'File', size: e.size, mode: 0o644, mtime }));
      parts.push(data(e.size, i), Buffer.alloc((512 - (e.size % 512)) % 512));
    }
    parts.push(Buffer.alloc(1024));
    return Buffer.concat(parts);
  }
  async function read(buf: Buffer, chunk: number) {
    const s = new PassThrough();
    const q = new ChunkQueue(s, 4096);
    const got: { path: string; body: Buffer }[] = [];
    const done = readTar(q, async (e, body) => {
      const cs: Buffer[] = [];
      // copies: a view is only valid until the next take
      await body((c) => {
        cs.push(Buffer.from(c));
      });
      got.push({ path: e.path, body: Buffer.concat(cs) });
    });
    for (let o = 0; o < buf.length; o += chunk) s.write(buf.subarray(o, o + chunk));
    s.end();
    await done;
    return got;
  }

  it('entries and data come out whole whatever the chunk boundaries (headers across chunks too)', async () => {
    const entries = [0, 1, 511, 512, 513, 5000, 70_000, 3].map((size, i) => ({ path: `f${i}`, size }));
    const buf = tar(entries);
    for (const chunk of [1, 7, 511, 512, 1000, 65_536, buf.length]) {
      const got = await read(buf, chunk);
      assert.deepEqual(
        got.map((g) => [g.path, g.body.length]),
        entries.map((e) => [e.path, e.size]),
        `chunk ${chunk}`,
      );
      for (const [i, g] of got.entries()) assert.ok(g.body.equals(data(entries[i]?.size ?? 0, i)));
    }
  });

  it('an archive of no entries (the tar of an empty tree) reads as none; what follows the end is read, not parsed', async () => {
    assert.deepEqual(await read(Buffer.alloc(1024), 512), []);
    const buf = tar([{ path: 'a', size: 700 }]);
    const got = await read(Buffer.concat([buf, Buffer.alloc(3000, 0x41)]), 1000);
    assert.deepEqual(
      got.map((g) => [g.path, g.body.length]),
      [['a', 700]],
    );
  });

  it('truncation, a bad checksum and an empty input are ARCHIVE_INVALID', async () => {
    const buf = tar([{ path: 'a', size: 2000 }]);
    for (const bad of [buf.subarray(0, 1000), buf.subarray(0, 300), Buffer.alloc(0)])
      await assert.rejects(read(bad, 100), (e: Error & { code?: string }) => e.code === 'ARCHIVE_INVALID');
    const flipped = Buffer.from(buf);
    flipped[10] = 0x41;
    await assert.rejects(read(flipped, 512), /checksum/);
    // a pax header past 1 MiB is refused, not skipped
    const pax = block({
      path: 'PaxHeader/x',
      type: 'ExtendedHeader',
      size: 2 * 1024 * 1024,
      mode: 0o644,
      mtime,
    });
    await assert.rejects(read(Buffer.concat([pax, Buffer.alloc(2 * 1024 * 1024 + 1024)]), 65_536), /at most/);
  });
});
