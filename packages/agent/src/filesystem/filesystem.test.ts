import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { isCodedError, LINK_MAX_MESSAGE_BYTES } from '@cap/protocol';
import { diskUsage, getFile, listFiles } from './filesystem.ts';

let base: string;
let root: string;
before(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'cap-fs-'));
  root = path.join(base, 'servers', 's1');
  await mkdir(path.join(root, 'sub'), { recursive: true });
  await writeFile(path.join(root, 'server.properties'), 'motd=hi\n');
  await writeFile(path.join(root, 'bin.dat'), Buffer.from([0, 1, 2, 255]));
  await writeFile(path.join(root, 'big.log'), Buffer.alloc(2048, 'a'));
  await writeFile(path.join(base, 'secret.txt'), 'outside');
  await symlink(path.join(base, 'secret.txt'), path.join(root, 'escape-file'));
  await symlink(base, path.join(root, 'escape-dir'));
  await symlink('server.properties', path.join(root, 'inner-link'));
});
after(() => rm(base, { recursive: true, force: true }));

const code = (c: string) => (e: unknown) => isCodedError(e) && e.code === c;

test('lists and reads inside the root', async () => {
  const l = await listFiles(root, '/');
  assert.equal(l.path, '/');
  assert.deepEqual(
    l.entries.map((e) => [e.name, e.type]),
    [
      // directories first, then by name (a symlink to a directory is a symlink)
      ['sub', 'directory'],
      ['big.log', 'file'],
      ['bin.dat', 'file'],
      ['escape-dir', 'symlink'],
      ['escape-file', 'symlink'],
      ['inner-link', 'symlink'],
      ['server.properties', 'file'],
    ],
  );
  assert.equal(l.total, 7);
  const page = await listFiles(root, '/', { offset: 2, limit: 2 });
  assert.deepEqual(
    [page.entries.map((e) => e.name), page.total, page.offset, page.limit],
    [['bin.dat', 'escape-dir'], 7, 2, 2],
  );
  const f = await getFile(root, 'server.properties');
  assert.equal(f.encoding, 'utf8');
  assert.equal(f.content, 'motd=hi\n');
  assert.equal((await getFile(root, '/inner-link')).content, 'motd=hi\n');
  const b = await getFile(root, 'bin.dat');
  assert.equal(b.encoding, 'base64');
  assert.deepEqual(Buffer.from(b.content, 'base64'), Buffer.from([0, 1, 2, 255]));
  assert.equal((await listFiles(root, 'sub')).path, '/sub');
});

test('.. escapes are refused with PATH_OUTSIDE_ROOT', async () => {
  await assert.rejects(getFile(root, '../../secret.txt'), code('PATH_OUTSIDE_ROOT'));
  await assert.rejects(getFile(root, '/../../secret.txt'), code('PATH_OUTSIDE_ROOT'));
  await assert.rejects(listFiles(root, 'sub/../../'), code('PATH_OUTSIDE_ROOT'));
});

test('symlink escapes are refused with PATH_OUTSIDE_ROOT', async () => {
  await assert.rejects(getFile(root, 'escape-file'), code('PATH_OUTSIDE_ROOT'));
  await assert.rejects(listFiles(root, 'escape-dir'), code('PATH_OUTSIDE_ROOT'));
  await assert.rejects(getFile(root, 'escape-dir/secret.txt'), code('PATH_OUTSIDE_ROOT'));
});

test('missing and too large files have their codes', async () => {
  await assert.rejects(getFile(root, 'nope.txt'), code('FILE_NOT_FOUND'));
  await assert.rejects(getFile(root, 'big.log', 1024), code('FILE_TOO_LARGE'));
  await assert.rejects(getFile(root, 'a\0b'), code('PATH_OUTSIDE_ROOT'));
});

test('diskUsage sums file sizes and does not follow symlinks out', async () => {
  assert.equal(await diskUsage(root), 8 + 4 + 2048);
});

test('a text file whose JSON escaping would be huge is sent as base64, so the answer stays small', async () => {
  // a control character is one byte on disk and six in JSON (\u0001): 1 MiB → 6 MiB of answer
  await writeFile(path.join(root, 'controls.txt'), Buffer.alloc(1024 * 1024, 1));
  const f = await getFile(root, 'controls.txt');
  assert.equal(f.encoding, 'base64');
  assert.ok(Buffer.byteLength(JSON.stringify(f)) < LINK_MAX_MESSAGE_BYTES);
  await rm(path.join(root, 'controls.txt'));
});

test('a listing kept for paging never hides a change made after it', async () => {
  const dir = path.join(root, 'paged');
  await mkdir(dir);
  for (const n of ['a', 'b', 'c']) await writeFile(path.join(dir, n), '');
  await new Promise((r) => setTimeout(r, 1100)); // settled: the sorted names may be kept
  assert.equal((await listFiles(root, 'paged', { limit: 1 })).total, 3);
  await writeFile(path.join(dir, 'aa'), '');
  const again = await listFiles(root, 'paged');
  assert.deepEqual([again.total, again.entries.map((e) => e.name)], [4, ['a', 'aa', 'b', 'c']]);
  await rm(path.join(dir, 'b'));
  assert.deepEqual(
    (await listFiles(root, 'paged')).entries.map((e) => e.name),
    ['a', 'aa', 'c'],
  );
  await rm(dir, { recursive: true });
});
