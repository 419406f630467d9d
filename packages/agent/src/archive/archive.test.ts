import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { treeDigest } from '../../test/tree-digest.ts';
import { ARCHIVE_FORMATS, createArchive, extractArchive, verifyArchive } from './archive.ts';
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
