import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, link, lstat, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { create as tarCreate } from 'tar';
import { treeDigest } from '../../test/tree-digest.ts';
import {
  ARCHIVE_FORMATS,
  archiveFileStream,
  createArchive,
  extractArchive,
  repackArchive,
  verifyArchive,
} from './archive.ts';
import { entryParts, linkStaysInside } from './paths.ts';

describe('archive round trip', () => {
  let base: string;
  let src: string;
  before(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'cap-arch-rt-'));
    src = path.join(base, 'src');
    const long = `${'deep-name-'.repeat(12)}`; // > 100 bytes: a pax header
    await mkdir(path.join(src, 'world', 'region', long), { recursive: true });
    await mkdir(path.join(src, 'empty'));
    await mkdir(path.join(src, 'logs'));
    await writeFile(path.join(src, 'logs', 'latest.log'), 'left out');
    await writeFile(path.join(src, 'server.properties'), 'motd=hi\n');
    await writeFile(path.join(src, 'world', 'region', 'r.0.0.mca'), randomBytes(300_000));
    await writeFile(path.join(src, 'world', 'region', long, 'f.txt'), 'x'.repeat(10_000));
    await writeFile(path.join(src, 'empty.dat'), '');
    await writeFile(path.join(src, 'run.sh'), '#!/bin/sh\n');
    await chmod(path.join(src, 'run.sh'), 0o750);
    await chmod(path.join(src, 'empty'), 0o700);
    await symlink('world/region/r.0.0.mca', path.join(src, 'latest-region'));
    await symlink('/etc/passwd', path.join(src, 'outside-link')); // left out: extract would refuse it
  });
  after(() => rm(base, { recursive: true, force: true }));

  for (const format of ARCHIVE_FORMATS) {
    it(`${format}: create → verify → extract gives the same tree (modes, links, long names), ignore lines honoured`, async () => {
      const { stream, done } = createArchive(src, { format, ignore: ['logs/', '*.tmp'] });
      const chunks: Buffer[] = [];
      for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
      const stats = await done;
      assert.equal(stats.skipped, 1);
      const buf = Buffer.concat(chunks);
      const { Readable } = await import('node:stream');
      const v = await verifyArchive(Readable.from([buf]), { format });
      assert.equal(v.entries, stats.entries);
      assert.equal(v.bytes, stats.bytes);
      const dest = path.join(base, `out-${format}`);
      await mkdir(dest);
      await extractArchive(Readable.from([buf]), dest, { format });
      const want = await treeDigest(src, { skip: (r) => r === 'logs' || r === 'outside-link' });
      assert.deepEqual(await treeDigest(dest), want);
    });
  }

  it("repackArchive: another tool's tar of `src/…` (a hard link, a link out) becomes this archiver's own, `src` stripped", async () => {
    await symlink('../../x', path.join(src, 'world', 'up-two')); // inside as src/world/up-two, not once stripped
    await link(path.join(src, 'run.sh'), path.join(src, 'run-hard.sh'));
    try {
      const foreign: Buffer[] = [];
      for await (const c of tarCreate({ cwd: base, portable: false }, [
        'src',
      ]) as unknown as AsyncIterable<Buffer>)
        foreign.push(c);
      // as extract would: a link out of the root is refused, unless left out
      await assert.rejects(
        verifyArchive(Readable.from([Buffer.concat(foreign)]), { format: 'tar' }),
        (e: { code?: string }) => e.code === 'ARCHIVE_UNSAFE',
      );
      const { stream, done } = repackArchive(Readable.from([Buffer.concat(foreign)]), {
        format: 'tar',
        to: 'tar.zst',
        strip: ['src'],
        dropLinksOut: true,
      });
      const out: Buffer[] = [];
      for await (const c of stream as AsyncIterable<Buffer>) out.push(c);
      const stats = await done;
      assert.equal(stats.skipped, 2); // outside-link and up-two
      const dest = path.join(base, 'out-repack');
      await mkdir(dest);
      await extractArchive(Readable.from([Buffer.concat(out)]), dest, { format: 'tar.zst' });
      const skip = (r: string) => r === 'outside-link' || r === 'world/up-two';
      assert.deepEqual(await treeDigest(dest), await treeDigest(src, { skip }));
      // the hard link is one again
      const [a, b] = await Promise.all(['run.sh', 'run-hard.sh'].map((n) => lstat(path.join(dest, n))));
      assert.equal(a?.ino, b?.ino);
      // a hostile tar: refused by the same rules, nothing produced
      const hostile = repackArchive(Readable.from([Buffer.concat(foreign)]), { format: 'tar', to: 'tar' });
      hostile.stream.resume();
      await assert.rejects(hostile.done, (e: { code?: string }) => e.code === 'ARCHIVE_UNSAFE');
    } finally {
      await rm(path.join(src, 'world', 'up-two'));
      await rm(path.join(src, 'run-hard.sh'));
    }
  });

  it('entry and link rules', () => {
    assert.deepEqual(entryParts('./a//b/'), ['a', 'b']);
    assert.deepEqual(entryParts('./'), []);
    for (const bad of ['../x', 'a/../../x', '/etc/passwd', 'C:\\x', 'a\0b', 'a/..'])
      assert.throws(() => entryParts(bad), /ARCHIVE_UNSAFE|climbs|absolute|NUL/, bad);
    assert.equal(linkStaysInside(['a', 'l'], '../b'), true);
    assert.equal(linkStaysInside(['l'], '../b'), false);
    assert.equal(linkStaysInside(['l'], 'self/../x'), false);
    assert.equal(linkStaysInside(['l'], '/abs'), false);
    assert.equal(linkStaysInside(['l'], 'a/b'), true);
  });
});

describe('archive streams larger than the packer buffers', () => {
  // more than the 4 × 1 MiB the compressed packer cycles through: a buffer handed back too early
  // (before the compressor is done with it) shows as corrupt data or a wrong checksum here
  let base: string;
  let src: string;
  before(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'cap-arch-big-'));
    src = path.join(base, 'src');
    await mkdir(path.join(src, 'small'), { recursive: true });
    let seed = 7;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let i = 0; i < 400; i++) {
      // random sizes, random and repetitive bodies: entries straddle the buffers' ends
      const size = rnd() % 40_000;
      const body = i % 2 ? randomBytes(size) : Buffer.alloc(size, `line ${i} `);
      await writeFile(path.join(src, 'small', `f${i}.dat`), body);
    }
    await writeFile(path.join(src, 'big-random.bin'), randomBytes(3 * 1024 * 1024 + 123));
    await writeFile(path.join(src, 'big-text.txt'), Buffer.alloc(5 * 1024 * 1024 + 7, 'abcdefgh\n'));
    await writeFile(path.join(src, 'mid.bin'), randomBytes(300_000)); // above the one-read size
  });
  after(() => rm(base, { recursive: true, force: true }));

  for (const format of ['tar.zst', 'tar.gz', 'tar'] as const) {
    it(`${format}: byte-identical round trip with a slow consumer`, async () => {
      const { stream, done } = createArchive(src, { format });
      const chunks: Buffer[] = [];
      for await (const c of stream as AsyncIterable<Buffer>) {
        // kept, not copied: the bytes must not change after they were handed out
        chunks.push(c);
        if (chunks.length % 3 === 0) await sleep(2);
      }
      const stats = await done;
      assert.equal(stats.entries, 404); // a directory and 403 files
      const buf = Buffer.concat(chunks);
      const v = await verifyArchive(Readable.from([buf]), { format });
      assert.equal(v.bytes, stats.bytes);
      const dest = path.join(base, `out-${format}`);
      await mkdir(dest);
      await extractArchive(Readable.from([buf]), dest, { format });
      assert.deepEqual(await treeDigest(dest), await treeDigest(src));
    });
  }

  it('an archive file is read in 1 MiB pieces (archiveFileStream) and unpacks byte-identical', async () => {
    const { stream, done } = createArchive(src, { format: 'tar.zst' });
    const chunks: Buffer[] = [];
    for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
    await done;
    const file = path.join(base, 'file.tar.zst');
    const whole = Buffer.concat(chunks);
    await writeFile(file, whole);
    // fs' default (64 KiB) made every 64 KiB a decompressor job of its own
    const sizes: number[] = [];
    for await (const c of archiveFileStream(file) as AsyncIterable<Buffer>) sizes.push(c.length);
    assert.ok(whole.length > 2 * 1024 * 1024);
    assert.deepEqual(sizes.slice(0, -1), new Array(sizes.length - 1).fill(1024 * 1024));
    assert.equal(
      sizes.reduce((a, b) => a + b, 0),
      whole.length,
    );
    const v = await verifyArchive(archiveFileStream(file), { format: 'tar.zst' });
    assert.equal(v.archiveBytes, whole.length);
    const dest = path.join(base, 'out-file');
    await mkdir(dest);
    await extractArchive(archiveFileStream(file), dest, { format: 'tar.zst' });
    assert.deepEqual(await treeDigest(dest), await treeDigest(src));
  });

  it('an archive file feeds the decompressor through reused buffers: more pieces than buffers, every format, sha256 of the file', async () => {
    const fds = async () => (await readdir('/proc/self/fd')).length;
    const before = await fds();
    for (const format of ['tar.gz', 'tar.zst', 'tar'] as const) {
      const { stream, done } = createArchive(src, { format, level: 1 });
      const chunks: Buffer[] = [];
      for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
      await done;
      const whole = Buffer.concat(chunks);
      // the random file alone is 3 MiB: with the rest, more 1 MiB pieces than the 4 buffers
      assert.ok(whole.length > 5 * 1024 * 1024, `${whole.length}`);
      const file = path.join(base, `feed.${format}`);
      await writeFile(file, whole);
      const v = await verifyArchive(archiveFileStream(file), { format });
      assert.equal(v.archiveBytes, whole.length);
      assert.equal(v.sha256, createHash('sha256').update(whole).digest('hex'));
      const dest = path.join(base, `out-feed-${format}`);
      await mkdir(dest);
      await extractArchive(archiveFileStream(file), dest, { format });
      assert.deepEqual(await treeDigest(dest), await treeDigest(src));
    }
    assert.equal(await fds(), before);
  });

  it('an archive file that is truncated, missing or aborted mid-way: a clean rejection, no descriptor left open', async () => {
    const fds = async () => (await readdir('/proc/self/fd')).length;
    const { stream, done } = createArchive(src, { format: 'tar.zst' });
    const chunks: Buffer[] = [];
    for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
    await done;
    const whole = Buffer.concat(chunks);
    const cut = path.join(base, 'cut.tar.zst');
    await writeFile(cut, whole.subarray(0, Math.floor(whole.length * 0.7)));
    const before = await fds();
    for (const read of [verifyArchive, (i: Readable, o: { format: 'tar.zst' }) => extractArchive(i, base, o)])
      await assert.rejects(read(archiveFileStream(cut), { format: 'tar.zst' }), { code: 'ARCHIVE_INVALID' });
    await assert.rejects(
      verifyArchive(archiveFileStream(path.join(base, 'none.tar.zst')), { format: 'tar.zst' }),
      {
        code: 'ENOENT',
      },
    );
    const full = path.join(base, 'full.tar.zst');
    await writeFile(full, whole);
    const ac = new AbortController();
    const dest = path.join(base, 'out-aborted');
    await mkdir(dest);
    const p = extractArchive(archiveFileStream(full), dest, {
      format: 'tar.zst',
      signal: ac.signal,
      onProgress: (bytes) => {
        if (bytes > 1024 * 1024) ac.abort();
      },
    });
    await assert.rejects(p, { code: 'OPERATION_SUPERSEDED' });
    await sleep(50);
    assert.equal(await fds(), before);
  });

  it('a consumer that destroys the stream mid-way: done rejects with its error, no descriptor left open', async () => {
    const fds = async () => (await readdir('/proc/self/fd')).length;
    const before = await fds();
    const { stream, done } = createArchive(src, { format: 'tar.zst' });
    let n = 0;
    for await (const c of stream as AsyncIterable<Buffer>) {
      n += c.length;
      if (n > 64 * 1024) break;
    }
    stream.destroy(new Error('consumer went away'));
    await assert.rejects(done);
    await sleep(50);
    assert.equal(await fds(), before);
  });
});

describe('archive walk descriptors', () => {
  it('a consumer that stops at a directory leaves no directory descriptor open', async () => {
    const base = await mkdtemp(path.join(tmpdir(), 'cap-arch-fd-'));
    try {
      // only directories, more headers than the stream buffers: the packer waits on a directory
      await Promise.all(Array.from({ length: 6000 }, (_, i) => mkdir(path.join(base, `d${i}`))));
      const openFds = async () => (await readdir('/proc/self/fd')).length;
      const before = await openFds();
      for (let round = 0; round < 3; round++) {
        const { stream, done } = createArchive(base, { format: 'tar' });
        // nobody reads: the packer fills the buffers and waits; then the consumer goes away
        await sleep(150);
        stream.destroy(new Error('consumer left'));
        await done.catch(() => undefined);
      }
      await sleep(50);
      assert.equal(await openFds(), before, 'every directory the walk opened is closed');
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});
