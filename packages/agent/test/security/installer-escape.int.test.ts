/**
 * Attack class: the install script reaching the host (Wings GHSA-p744-4q6p-hvc2 / CVE-2023-32080).
 * The installer runs the egg's script as root, so it must be hardened like the game's container:
 * no new privileges, capabilities dropped (DAC_OVERRIDE/FOWNER kept), a PIDs limit, the script
 * read-only, nothing of the host but the server's files. Checked from inside the installer, by
 * what the script can and cannot do, and with a variable that carries shell code.
 */
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_PIDS_LIMIT } from '../../src/environment/docker/container-spec.ts';
import { egg, type Fixture, fixture, IMAGE, uid } from '../helpers.ts';

const PROBE = [
  'echo "nnp=$(grep NoNewPrivs /proc/self/status | tr -dc 0-9)"',
  'echo "capeff=$(grep CapEff /proc/self/status | cut -f2)"',
  'echo "uid=$(id -u)"',
  'mknod /tmp/blk b 7 0 2>/dev/null; echo "mknod=$?"',
  'touch /mnt/install/planted 2>/dev/null; echo "script_ro=$?"',
  'echo "pids_max=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)"',
  'echo "mounts=$(grep -c " /mnt/" /proc/self/mounts)"',
  'echo "docker_sock=$(ls /var/run/docker.sock /run/docker.sock 2>/dev/null | wc -l)"',
  // the variable is data: echoed, never run
  'echo "name=$SERVER_NAME_VAR"',
  'echo probe-done',
].join('\n');

/** capability numbers (linux/capability.h) */
const CAP = { DAC_OVERRIDE: 1, FOWNER: 3, SETPCAP: 8, NET_RAW: 13, SYS_CHROOT: 18, SYS_ADMIN: 21, MKNOD: 27 };

describe('installer hardening', () => {
  let f: Fixture;
  const id = uid('inesc-');

  before(async () => {
    f = await fixture();
    await f.panel.waitConnected();
  });
  after(() => f.cleanup());

  it('the install script runs without new privileges, dropped capabilities, a PIDs limit, a read-only script', async () => {
    const mark = f.panel.received.length;
    const injected = '$(touch /mnt/server/pwned)`touch /mnt/server/pwned2`';
    const res = await f.panel.command('create_server', {
      serverId: id,
      eggConfig: egg('sleep 1000', {
        environment: { SERVER_NAME_VAR: injected },
        install: { script: PROBE, container: IMAGE, entrypoint: 'sh' },
      }),
    });
    assert.equal(res.success, true, JSON.stringify(res.error));
    const done = await f.panel.waitEvent('install_completed', (d) => d.serverId === id, {
      since: mark,
      timeoutMs: 30_000,
    });
    assert.equal(done.data.success, true);
    const out = Object.fromEntries(
      f.panel
        .events('install_output')
        .filter((e) => e.data.serverId === id)
        .map((e) => e.data.message.split('='))
        .filter((kv) => kv.length >= 2)
        .map(([k, ...v]) => [k, v.join('=')]),
    ) as Record<string, string>;
    assert.ok('capeff' in out, `the probe did not run: ${JSON.stringify(out)}`);
    assert.equal(out.uid, '0');
    assert.equal(out.nnp, '1');
    const caps = BigInt(`0x${out.capeff}`);
    const has = (n: number) => (caps & (1n << BigInt(n))) !== 0n;
    for (const dropped of ['SETPCAP', 'NET_RAW', 'SYS_CHROOT', 'SYS_ADMIN', 'MKNOD'] as const) {
      assert.equal(has(CAP[dropped]), false, `installer still has CAP_${dropped}`);
    }
    // kept on purpose: a reinstall rewrites files the game's user owns
    assert.equal(has(CAP.DAC_OVERRIDE), true);
    assert.equal(has(CAP.FOWNER), true);
    assert.notEqual(out.mknod, '0', 'mknod of a block device succeeded');
    assert.notEqual(out.script_ro, '0', 'the script directory is writable');
    assert.equal(out.pids_max, String(DEFAULT_PIDS_LIMIT));
    assert.equal(out.mounts, '2', 'something besides /mnt/server and /mnt/install is mounted from the host');
    assert.equal(out.docker_sock, '0');
    assert.equal(out.name, injected);
    const dir = path.join(f.dataDir, 'servers', id);
    await assert.rejects(stat(path.join(dir, 'pwned')), { code: 'ENOENT' });
    await assert.rejects(stat(path.join(dir, 'pwned2')), { code: 'ENOENT' });
  });
});
