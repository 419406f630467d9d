/**
 * Privilege escalation through the server's folder: an install script (root in its container)
 * leaves setuid/setgid binaries there. After the install no file in the folder has an s-bit,
 * whoever owns it (the ownership walk used to skip files the game's user already owned).
 * Real Agent, real Docker Engine.
 */
import assert from 'node:assert/strict';
import { lstat } from 'node:fs/promises';
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
});
