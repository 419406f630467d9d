import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Header } from 'tar';
import { encodeUstar, TYPE_DIRECTORY, TYPE_FILE, TYPE_SYMLINK } from './tar-header.ts';

interface Input {
  path: string;
  type: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  linkpath?: string;
}
const TYPE_NAMES = new Map([
  [TYPE_FILE, 'File'],
  [TYPE_DIRECTORY, 'Directory'],
  [TYPE_SYMLINK, 'SymbolicLink'],
]);

/** node-tar's block, set up as packTar does; needPax: whether node-tar wants a pax header */
function nodeTar(x: Input): { block: Buffer; needPax: boolean } {
  const h = new Header();
  h.path = x.path;
  h.mode = x.mode;
  h.uid = x.uid;
  h.gid = x.gid;
  h.size = x.size;
  h.mtime = new Date(x.mtimeMs);
  h.type = TYPE_NAMES.get(x.type) as 'File';
  h.uname = '';
  h.gname = '';
  if (x.linkpath !== undefined) h.linkpath = x.linkpath;
  const block = Buffer.alloc(512);
  const needPax = h.encode(block, 0);
  return { block, needPax };
}
function ours(x: Input): Buffer | null {
  const b = Buffer.alloc(512);
  return encodeUstar(b, x.path, x.type, x.mode, x.uid, x.gid, x.size, x.mtimeMs, x.linkpath) ? b : null;
}

const base: Input = {
  path: 'server.properties',
  type: TYPE_FILE,
  mode: 0o644,
  uid: 1000,
  gid: 1000,
  size: 1234,
  mtimeMs: 1_700_000_000_123,
};

describe('encodeUstar', () => {
  it('writes the bytes node-tar writes, for every entry it takes', () => {
    const cases: Input[] = [
      base,
      { ...base, path: 'world/', type: TYPE_DIRECTORY, size: 0, mode: 0o755 },
      { ...base, path: 'link', type: TYPE_SYMLINK, size: 0, mode: 0o777, linkpath: '../x/y' },
      { ...base, path: 'a', size: 0, mode: 0, uid: 0, gid: 0, mtimeMs: 0 },
      { ...base, path: 'x'.repeat(99) },
      { ...base, path: 'l', type: TYPE_SYMLINK, size: 0, linkpath: 'y'.repeat(100) },
      { ...base, size: 0o77777777777, uid: 0o7777777, gid: 0o7777777, mode: 0o7777 },
      { ...base, mtimeMs: 0o77777777777 * 1000 },
      { ...base, mtimeMs: 999 },
      { ...base, mtimeMs: 1_700_000_000_999.875 },
      { ...base, mtimeMs: 0.5 },
      { ...base, size: 8 ** 10 - 1 },
      { ...base, size: 8 ** 10 },
      { ...base, uid: 8 ** 6 - 1, gid: 8 ** 6 },
    ];
    // many ordinary ones: paths, modes, sizes, times across their ranges
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const chars = 'abcXYZ019._- /';
    for (let k = 0; k < 2000; k++) {
      let p = '';
      const len = 1 + rnd(99);
      for (let c = 0; c < len; c++) p += chars[rnd(chars.length)];
      cases.push({
        path: p,
        type: [TYPE_FILE, TYPE_DIRECTORY, TYPE_SYMLINK][rnd(3)] as number,
        mode: rnd(0o10000),
        uid: rnd(70000),
        gid: rnd(70000),
        size: rnd(2 ** 31) * (rnd(2) ? 1 : rnd(4)),
        mtimeMs: rnd(2 ** 31) * 1000 + rnd(1000),
        ...(rnd(3) === 0 ? { linkpath: p.slice(0, rnd(p.length + 1)) || 'x' } : {}),
      });
    }
    let taken = 0;
    for (const x of cases) {
      const mine = ours(x);
      const theirs = nodeTar(x);
      if (mine === null) {
        // only what node-tar cannot write plain either… or a case left to it on purpose
        continue;
      }
      taken++;
      assert.equal(theirs.needPax, false, JSON.stringify(x));
      assert.deepEqual(mine, theirs.block, JSON.stringify(x));
      // and node-tar reads it back as written
      const h = new Header(mine);
      assert.equal(h.cksumValid, true);
      assert.equal(h.path, x.path);
      assert.equal(h.size, x.type === TYPE_DIRECTORY ? 0 : x.size);
    }
    assert.ok(taken >= cases.length - 5, `${taken} of ${cases.length} taken`);
  });

  it('leaves to node-tar what needs a pax header or a prefix', () => {
    const refused: Input[] = [
      { ...base, path: 'x'.repeat(100) },
      { ...base, path: `${'d'.repeat(60)}/${'f'.repeat(60)}` },
      { ...base, path: 'café.txt' },
      { ...base, path: 'l', type: TYPE_SYMLINK, size: 0, linkpath: 'y'.repeat(101) },
      { ...base, path: 'l', type: TYPE_SYMLINK, size: 0, linkpath: 'ü' },
      { ...base, size: 0o77777777777 + 1 },
      { ...base, uid: 0o7777777 + 1 },
      { ...base, gid: -1 },
      { ...base, mtimeMs: -1000 },
      { ...base, mtimeMs: (0o77777777777 + 0.5) * 1000 },
      { ...base, mtimeMs: Number.NaN },
      { ...base, size: 1.5 },
    ];
    for (const x of refused) assert.equal(ours(x), null, JSON.stringify(x));
  });
});
