import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  baseName,
  checkName,
  crumbsOf,
  dirsOf,
  isArchiveName,
  joinPath,
  languageOf,
  modeString,
  parentOf,
  parseMode,
  resolvePath,
  totalProgress,
  type WalkEntry,
  walkEntries,
} from './files.ts';

test('joinPath, parentOf, baseName and crumbsOf keep one slash and stop at the root', () => {
  assert.equal(joinPath('/', 'a.txt'), '/a.txt');
  assert.equal(joinPath('/cfg', 'a.txt'), '/cfg/a.txt');
  assert.equal(joinPath('/cfg/', '/a.txt'), '/cfg/a.txt');
  assert.equal(parentOf('/a.txt'), '/');
  assert.equal(parentOf('/a/b/c'), '/a/b');
  assert.equal(parentOf('/a/b/'), '/a');
  assert.equal(parentOf('/'), '/');
  assert.equal(baseName('/a/b/c.yml'), 'c.yml');
  assert.equal(baseName('/'), '');
  assert.deepEqual(crumbsOf('/a/b'), [
    { name: 'a', path: '/a' },
    { name: 'b', path: '/a/b' },
  ]);
  assert.deepEqual(crumbsOf('/'), []);
});

test('resolvePath takes names, relative and absolute paths, never above the root', () => {
  assert.deepEqual(resolvePath('/cfg', 'new.txt'), { ok: true, path: '/cfg/new.txt' });
  assert.deepEqual(resolvePath('/cfg', '../moved.txt'), { ok: true, path: '/moved.txt' });
  assert.deepEqual(resolvePath('/cfg', '/a//b/./c'), { ok: true, path: '/a/b/c' });
  assert.deepEqual(resolvePath('/', 'sub/x/'), { ok: true, path: '/sub/x' });
  assert.equal(resolvePath('/cfg', '../../etc/passwd').ok, false);
  assert.equal(resolvePath('/', '..').ok, false);
  assert.equal(resolvePath('/', '   ').ok, false);
  assert.equal(resolvePath('/', '/').ok, false);
  assert.equal(resolvePath('/', 'a\0b').ok, false);
  assert.equal(resolvePath('/', 'x'.repeat(256)).ok, false);
  assert.equal(resolvePath('/', 'x'.repeat(5000)).ok, false);
});

test('checkName refuses slashes, dots, NUL and names over 255 bytes', () => {
  assert.equal(checkName('server.properties'), null);
  assert.notEqual(checkName(''), null);
  assert.notEqual(checkName('a/b'), null);
  assert.notEqual(checkName('..'), null);
  assert.notEqual(checkName('a\0'), null);
  // 128 two-byte characters are 256 bytes
  assert.notEqual(checkName('é'.repeat(128)), null);
  assert.equal(checkName('é'.repeat(127)), null);
});

test('parseMode takes three or four octal digits, no setuid/setgid', () => {
  assert.deepEqual(parseMode('644'), { ok: true, mode: '0644' });
  assert.deepEqual(parseMode(' 0755 '), { ok: true, mode: '0755' });
  assert.deepEqual(parseMode('1777'), { ok: true, mode: '1777' });
  for (const bad of ['', '64', '888', '0o644', '4755', '2755', '12345', 'rwx', '-644', '6.44'])
    assert.equal(parseMode(bad).ok, false, bad);
});

test('modeString shows rwx bits and the sticky bit', () => {
  assert.equal(modeString('0644'), 'rw-r--r--');
  assert.equal(modeString('0755'), 'rwxr-xr-x');
  assert.equal(modeString('1777'), 'rwxrwxrwt');
  assert.equal(modeString('1666'), 'rw-rw-rwT');
  assert.equal(modeString('0000'), '---------');
});

test('languageOf picks the syntax by whole name, then extension, else plain text', () => {
  assert.equal(languageOf('/server.properties'), 'properties');
  assert.equal(languageOf('/config/paper-global.yml'), 'yaml');
  assert.equal(languageOf('ops.JSON'), 'json');
  assert.equal(languageOf('/cfg/app.toml'), 'toml');
  assert.equal(languageOf('start.sh'), 'shell');
  assert.equal(languageOf('Dockerfile'), 'shell');
  assert.equal(languageOf('.env'), 'properties');
  assert.equal(languageOf('pom.xml'), 'xml');
  assert.equal(languageOf('index.ts'), 'typescript');
  assert.equal(languageOf('README'), 'text');
  assert.equal(languageOf('world.dat'), 'text');
  // not a lookup on a plain object: prototype names are no extensions
  assert.equal(languageOf('x.constructor'), 'text');
  assert.equal(languageOf('x.__proto__'), 'text');
});

test('isArchiveName offers decompress for the formats the Agent reads', () => {
  for (const n of ['a.tar.gz', 'a.tgz', 'a.tar.zst', 'a.tar', 'A.ZIP'])
    assert.equal(isArchiveName(n), true, n);
  for (const n of ['a.gz.txt', 'a.rar', 'tar', 'zip']) assert.equal(isArchiveName(n), false, n);
});

/** A fake dropped tree: a folder's reader answers in pages of two, as Chromium pages readEntries. */
function tree(name: string, children?: Record<string, unknown>): WalkEntry<string> {
  if (children === undefined)
    return { isFile: true, isDirectory: false, name, file: (ok) => ok(`content of ${name}`) };
  const kids = Object.entries(children).map(([n, c]) =>
    tree(n, c === null ? undefined : (c as Record<string, unknown>)),
  );
  return {
    isFile: false,
    isDirectory: true,
    name,
    createReader() {
      let at = 0;
      return {
        readEntries(ok) {
          const page = kids.slice(at, at + 2);
          at += page.length;
          ok(page);
        },
      };
    },
  };
}

test('walkEntries reads every page of every folder, empty folders included', async () => {
  const dropped = [
    tree('world', {
      'level.dat': null,
      region: { 'r.0.0.mca': null, 'r.0.1.mca': null, 'r.1.0.mca': null },
      empty: {},
    }),
    tree('ops.json'),
  ];
  const w = await walkEntries(dropped);
  assert.deepEqual(w.dirs.sort(), ['world', 'world/empty', 'world/region']);
  assert.deepEqual(w.files.map((f) => f.rel).sort(), [
    'ops.json',
    'world/level.dat',
    'world/region/r.0.0.mca',
    'world/region/r.0.1.mca',
    'world/region/r.1.0.mca',
  ]);
  assert.equal(w.files.find((f) => f.rel === 'ops.json')?.file, 'content of ops.json');
  await assert.rejects(walkEntries(dropped, 3), /more than 3 entries/);
});

test('walkEntries passes a failing read on', async () => {
  const bad: WalkEntry<string> = {
    isFile: true,
    isDirectory: false,
    name: 'gone',
    file: (_ok, fail) => fail(new Error('NotFoundError')),
  };
  await assert.rejects(walkEntries([bad]), /NotFoundError/);
});

test('dirsOf lists the folders of relative paths, parents first', () => {
  assert.deepEqual(dirsOf(['pack/a.txt', 'pack/sub/b.txt', 'pack/sub/deep/c.txt', 'top.txt']), [
    'pack',
    'pack/sub',
    'pack/sub/deep',
  ]);
  assert.deepEqual(dirsOf(['x.txt']), []);
});

test('totalProgress: done files count whole, failed and cancelled ones not at all', () => {
  assert.deepEqual(
    totalProgress([
      { size: 100, loaded: 100, state: 'done' },
      { size: 300, loaded: 150, state: 'uploading' },
      { size: 50, loaded: 10, state: 'failed' },
      { size: 600, loaded: 0, state: 'queued' },
    ]),
    { loaded: 250, size: 1000, percent: 25 },
  );
  assert.deepEqual(totalProgress([]), { loaded: 0, size: 0, percent: 100 });
  // a loaded count past the size (a proxy's framing) is capped
  assert.equal(totalProgress([{ size: 10, loaded: 20, state: 'uploading' }]).percent, 100);
});
