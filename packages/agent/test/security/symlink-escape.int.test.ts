/**
 * Attack class: symlink escape (Wings CVE-2023-25152, CVE-2024-27102, GHSA-rhq6-9rgh-v45c, the
 * boot-time chmod of beta.8). The game server owns its directory and can plant links there: a
 * link to a host file, a linked parent directory, a link swapped in between check and use. The
 * Agent must not read, rewrite or chown anything outside through them.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { applyConfigFile } from '../../src/config-files/index.ts';
import { chownPathInside, chownTree, getFile, listFiles } from '../../src/filesystem/filesystem.ts';
import { egg, type Fixture, fixture, uid } from '../helpers.ts';

const SECRET = `host-secret-${uid()}`;

/**
 * Another process that, for `ms`, keeps swapping `<dir>/d` (a real directory) with `<dir>/l` (a
 * link to the stand-in host directory), so the swaps interleave with the Agent's calls for real.
 */
function spawnFlipper(dir: string, ms: number) {
  return spawn(
    process.execPath,
    [
      '-e',
      `const fs = require('node:fs'); const r = ${JSON.stringify(dir)};
       const end = Date.now() + ${ms};
       while (Date.now() < end) {
         try { fs.renameSync(r + '/d', r + '/hold'); fs.renameSync(r + '/l', r + '/d');
               fs.renameSync(r + '/d', r + '/l'); fs.renameSync(r + '/hold', r + '/d'); } catch {}
       }`,
    ],
    { stdio: 'ignore' },
  );
}

describe('symlink escape', () => {
  let f: Fixture;
  const id = uid('sesc-');
  let root: string;
  /** stands for the host: a directory outside every server root */
  let host: string;

  before(async () => {
    f = await fixture();
    await f.panel.waitConnected();
    const res = await f.panel.command('create_server', { serverId: id, eggConfig: egg('sleep 1000') });
    assert.equal(res.success, true, JSON.stringify(res.error));
    root = path.join(f.dataDir, 'servers', id);
    host = await mkdtemp(path.join(tmpdir(), 'cap-host-'));
    await writeFile(path.join(host, 'secret.txt'), SECRET);
    await writeFile(path.join(host, 'server.properties'), `motd=${SECRET}\n`);
    await mkdir(path.join(root, 'real'), { recursive: true });
    await writeFile(path.join(root, 'real', 'ok.txt'), 'ok\n');
    await symlink(path.join(host, 'secret.txt'), path.join(root, 'file-link'));
    await symlink(host, path.join(root, 'dir-link'));
    // climbs out to the temp directory (never to `/`: a regression must not reach the real host)
    await symlink('../../..', path.join(root, 'up-link'));
    await symlink('dir-link', path.join(root, 'chain-link'));
    await symlink('real/ok.txt', path.join(root, 'inside-link'));
  });
  after(async () => {
    await f.cleanup();
    await rm(host, { recursive: true, force: true });
  });

  const command = (action: 'get_file' | 'list_files', p: string) =>
    f.panel.command(action, { path: p }, { serverId: id });

  it('reads and listings through a link, a linked parent or a chain of links are refused', async () => {
    const cases: ['get_file' | 'list_files', string][] = [
      ['get_file', 'file-link'],
      ['get_file', 'dir-link/secret.txt'],
      ['get_file', 'chain-link/secret.txt'],
      ['get_file', `up-link/${path.basename(host)}/secret.txt`],
      ['list_files', 'dir-link'],
      ['list_files', 'chain-link'],
      ['list_files', 'up-link'],
    ];
    for (const [action, p] of cases) {
      const res = await command(action, p);
      assert.equal(res.error?.code, 'PATH_OUTSIDE_ROOT', `${action} ${p}`);
      assert.equal(JSON.stringify(res).includes(SECRET), false);
    }
    // a link that stays inside is fine, and a listing shows links as links without following them
    const inside = await command('get_file', 'inside-link');
    assert.equal((inside.data as { content: string }).content, 'ok\n');
    const list = await command('list_files', '/');
    const types = Object.fromEntries(
      (list.data as { entries: { name: string; type: string }[] }).entries.map((e) => [e.name, e.type]),
    );
    assert.equal(types['dir-link'], 'symlink');
    assert.equal(types['file-link'], 'symlink');
  });

  it('write_file through a link, a linked parent or a chain of links is refused; the host is unchanged', async () => {
    const write = (p: string) =>
      f.panel.command('write_file', { path: p, content: 'eula=true\n' }, { serverId: id });
    for (const p of [
      'file-link',
      'dir-link/secret.txt',
      'dir-link/new.txt',
      'chain-link/secret.txt',
      `up-link/${path.basename(host)}/secret.txt`,
      'inside-link',
    ]) {
      const res = await write(p);
      assert.equal(res.error?.code, 'PATH_OUTSIDE_ROOT', p);
    }
    assert.equal(await readFile(path.join(host, 'secret.txt'), 'utf8'), SECRET);
    await assert.rejects(stat(path.join(host, 'new.txt')), { code: 'ENOENT' });
    // a plain file inside is written, and given to the game's user
    const ok = await write('real/eula.txt');
    assert.equal(ok.success, true, JSON.stringify(ok.error));
    assert.deepEqual(
      { ...(ok.data as object), sha256: undefined, modifiedAt: undefined },
      {
        path: '/real/eula.txt',
        size: 10,
        sha256: undefined,
        modifiedAt: undefined,
      },
    );
    assert.equal(await readFile(path.join(root, 'real', 'eula.txt'), 'utf8'), 'eula=true\n');
    assert.equal((await lstat(path.join(root, 'real', 'eula.txt'))).uid, f.config.containerUid);
  });

  it('config files: a linked file or a linked parent directory is refused, the host file is unchanged', async () => {
    const ctx = { environment: {} };
    const file = { parser: 'properties' as const, find: { motd: 'pwned' } };
    for (const name of ['dir-link/server.properties', 'chain-link/server.properties', 'prop-link']) {
      if (name === 'prop-link') await symlink(path.join(host, 'server.properties'), path.join(root, name));
      await assert.rejects(applyConfigFile(root, name, file, ctx), (e: { code?: string }) => {
        assert.equal(e.code, 'PATH_OUTSIDE_ROOT', name);
        return true;
      });
    }
    // creating through a linked parent (the file does not exist yet) is refused too
    await assert.rejects(
      applyConfigFile(root, 'dir-link/new/planted.yml', { parser: 'yaml', find: { a: 1 } }, ctx),
      {
        code: 'PATH_OUTSIDE_ROOT',
      },
    );
    assert.equal(await readFile(path.join(host, 'server.properties'), 'utf8'), `motd=${SECRET}\n`);
    await assert.rejects(stat(path.join(host, 'new')), { code: 'ENOENT' });
  });

  it('chown of the tree never follows a link (lchown): host files keep their owner', async () => {
    // A tree of its own whose links lead only into the stand-in host directory: if chownTree ever
    // followed links, this test must damage nothing but that temporary directory (never `/`).
    const tree = await mkdtemp(path.join(tmpdir(), 'cap-chown-'));
    try {
      await mkdir(path.join(tree, 'real'));
      await writeFile(path.join(tree, 'real', 'ok.txt'), 'ok\n');
      await symlink(path.join(host, 'secret.txt'), path.join(tree, 'file-link'));
      await symlink(host, path.join(tree, 'dir-link'));
      const before = await stat(path.join(host, 'secret.txt'));
      const hostDir = await stat(host);
      await chownTree(tree, 4242, 4343);
      const afterFile = await stat(path.join(host, 'secret.txt'));
      assert.deepEqual([afterFile.uid, afterFile.gid], [before.uid, before.gid]);
      const afterDir = await stat(host);
      assert.deepEqual([afterDir.uid, afterDir.gid], [hostDir.uid, hostDir.gid]);
      // the links themselves and the real files were chowned, so the walk did run
      const link = await lstat(path.join(tree, 'file-link'));
      assert.deepEqual([link.uid, link.gid], [4242, 4343]);
      const ok = await stat(path.join(tree, 'real', 'ok.txt'));
      assert.deepEqual([ok.uid, ok.gid], [4242, 4343]);
    } finally {
      await rm(tree, { recursive: true, force: true });
    }
  });

  it('chown of a config file and its directories stops at a link', async () => {
    const tree = await mkdtemp(path.join(tmpdir(), 'cap-chown-'));
    try {
      await mkdir(path.join(tree, 'cfg'));
      await writeFile(path.join(tree, 'cfg', 'a.ini'), 'x');
      await symlink(host, path.join(tree, 'linked'));
      const before = await stat(path.join(host, 'secret.txt'));
      await chownPathInside(tree, 'linked/secret.txt', 4242, 4343);
      await chownPathInside(tree, '../secret.txt', 4242, 4343);
      const after = await stat(path.join(host, 'secret.txt'));
      assert.deepEqual([after.uid, after.gid], [before.uid, before.gid]);
      // an ordinary one (with the spellings eggs use) is chowned, directories included
      await chownPathInside(tree, '/./cfg\\a.ini', 4242, 4343);
      for (const p of ['cfg', 'cfg/a.ini']) {
        const st = await stat(path.join(tree, p));
        assert.deepEqual([st.uid, st.gid], [4242, 4343], p);
      }
    } finally {
      await rm(tree, { recursive: true, force: true });
    }
  });

  it('a directory swapped for a link while the tree is chowned (TOCTOU race) never chowns a host file', async () => {
    const tree = await mkdtemp(path.join(tmpdir(), 'cap-chown-race-'));
    await mkdir(path.join(tree, 'd'));
    await writeFile(path.join(tree, 'd', 'secret.txt'), 'inside\n');
    await symlink(host, path.join(tree, 'l'));
    const before = await stat(path.join(host, 'secret.txt'));
    const flipper = spawnFlipper(tree, 4000);
    const exited = new Promise((r) => flipper.once('exit', r));
    let walks = 0;
    const t0 = Date.now();
    try {
      while (Date.now() - t0 < 3500) {
        // hand the files back to root each round so every walk has something to do
        await chownTree(tree, 0, 0);
        await chownTree(tree, 4242, 4343);
        walks++;
      }
    } finally {
      flipper.kill();
      await exited;
    }
    try {
      const after = await stat(path.join(host, 'secret.txt'));
      assert.deepEqual([after.uid, after.gid], [before.uid, before.gid], 'a host file was chowned');
      assert.ok(walks > 10, `only ${walks} walks: the race tested nothing`);
    } finally {
      await rm(tree, { recursive: true, force: true });
    }
  });

  it('a directory swapped for a link between check and read (TOCTOU race) never yields a host file', async () => {
    // `race/` flips between a real directory holding `f` and a link to the host directory,
    // from another process so the swaps interleave with the Agent's calls for real
    const race = await mkdtemp(path.join(tmpdir(), 'cap-race-'));
    await mkdir(path.join(race, 'd'));
    await writeFile(path.join(race, 'd', 'secret.txt'), 'inside\n');
    await symlink(host, path.join(race, 'l'));
    const flipper = spawnFlipper(race, 4000);
    const exited = new Promise((r) => flipper.once('exit', r));
    let leaked = 0;
    let insideReads = 0;
    let listedHost = 0;
    const t0 = Date.now();
    try {
      while (Date.now() - t0 < 3500) {
        const [file, list] = await Promise.all([
          getFile(race, 'd/secret.txt').catch((e: { code?: string }) => e.code),
          listFiles(race, 'd').catch((e: { code?: string }) => e.code),
        ]);
        if (typeof file === 'object' && file.content === SECRET) leaked++;
        if (typeof file === 'object' && file.content === 'inside\n') insideReads++;
        if (typeof list === 'object' && list.entries.some((e) => e.name === 'server.properties'))
          listedHost++;
      }
    } finally {
      flipper.kill();
      await exited;
      await rm(race, { recursive: true, force: true });
    }
    assert.ok(insideReads > 0, 'the race never let a read through: it tested nothing');
    assert.equal(leaked, 0, `${leaked} reads returned the host file`);
    assert.equal(listedHost, 0, `${listedHost} listings showed the host directory`);
  });
});
