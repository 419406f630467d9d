/**
 * Privilege escalation through the server's folder: an install script (root in its container)
 * leaves setuid/setgid binaries there. After the install no file in the folder has an s-bit,
 * whoever owns it (the ownership walk used to skip files the game's user already owned).
 * Real Agent, real Docker Engine.
 */
import assert from 'node:assert/strict';
import { chmod, lstat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { egg, type Fixture, fixture, IMAGE, uid } from '../helpers.ts';

const SCRIPT = [
  'set -e',
  'cd /mnt/server',
  // root-owned: the chown to the game's user would clear it anyway
  'cp /bin/busybox x && chmod 4755 x',
  // already the game's user's: the walk skipped it
  'cp /bin/busybox y && chown 1000:1000 y && chmod 6755 y',
  'mkdir -p deep/er && cp /bin/busybox deep/er/z && chown 1000:1000 deep/er/z && chmod 2755 deep/er/z',
  // a link to a setuid file outside is not followed (its target keeps its mode)
  'ln -s /bin/busybox link',
].join('\n');

describe('setuid files left by an install (real Docker)', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture({ env: { AGENT_CONTAINER_UID: '1000', AGENT_CONTAINER_GID: '1000' } });
    await f.panel.waitConnected();
  });
  after(() => f.cleanup());

  it('after the install no file has a setuid or setgid bit', async () => {
    const id = uid('suid-');
    const mark = f.panel.received.length;
    const res = await f.panel.command('create_server', {
      serverId: id,
      eggConfig: egg('true', { install: { script: SCRIPT, container: IMAGE, entrypoint: 'sh' } }),
    });
    assert.equal(res.success, true, JSON.stringify(res.error));
    const done = await f.panel.waitEvent('install_completed', (d) => d.serverId === id, {
      since: mark,
      timeoutMs: 60_000,
    });
    assert.equal(done.data.success, true);
    const dir = path.join(f.dataDir, 'servers', id);
    for (const rel of ['x', 'y', 'deep/er/z']) {
      const st = await lstat(path.join(dir, rel));
      assert.equal(st.mode & 0o6000, 0, `${rel} has mode ${(st.mode & 0o7777).toString(8)}`);
      assert.equal(st.mode & 0o777, 0o755, `${rel}: the other bits are kept`);
      assert.equal(st.uid, 1000);
    }
    assert.ok((await lstat(path.join(dir, 'link'))).isSymbolicLink());
  });

  it('write_file over a setuid file clears its s-bits; over the disk limit it is refused and nothing is written', async () => {
    const id = uid('suidw-');
    const res = await f.panel.command('create_server', {
      serverId: id,
      eggConfig: egg('true', { limits: { disk: '1m' } }),
    });
    assert.equal(res.success, true, JSON.stringify(res.error));
    const dir = path.join(f.dataDir, 'servers', id);
    await writeFile(path.join(dir, 'cfg'), 'old\n');
    await chmod(path.join(dir, 'cfg'), 0o6755);
    const w = await f.panel.command('write_file', { path: 'cfg', content: 'new\n' }, { serverId: id });
    assert.equal(w.success, true, JSON.stringify(w.error));
    const st = await lstat(path.join(dir, 'cfg'));
    assert.equal(st.mode & 0o6000, 0, `cfg has mode ${(st.mode & 0o7777).toString(8)}`);
    // 1 MiB limit: 600 KiB already there, a 600 KiB write does not fit
    await writeFile(path.join(dir, 'world.dat'), Buffer.alloc(600 * 1024, 1));
    const big = 'x'.repeat(600 * 1024);
    const over = await f.panel.command('write_file', { path: 'big.txt', content: big }, { serverId: id });
    assert.equal(over.success, false);
    assert.equal(over.error?.code, 'INSUFFICIENT_RESOURCES');
    await assert.rejects(lstat(path.join(dir, 'big.txt')), { code: 'ENOENT' });
    // replacing a file frees its bytes: rewriting world.dat with the same size fits
    const same = await f.panel.command(
      'write_file',
      { path: 'world.dat', content: 'y'.repeat(600 * 1024) },
      { serverId: id },
    );
    assert.equal(same.success, true, JSON.stringify(same.error));
  });
});
