/**
 * Exhausting the node's disk: the Agent's data disk full (a 1 MiB tmpfs here) and a server
 * writing past its disk limit. The Agent answers with INSUFFICIENT_RESOURCES naming what is
 * full, and stops a server over its limit long before it has written twice the limit.
 * Real Agent, real Docker Engine (root, for the tmpfs).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { docker, egg, type Fixture, fixture, uid, waitStatus } from '../helpers.ts';

const run = promisify(execFile);

describe('a full data disk (real Docker, tmpfs)', () => {
  let f: Fixture;
  let mnt: string;
  before(async () => {
    mnt = await mkdtemp(path.join(tmpdir(), 'cap-full-'));
    await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
    const dataDir = path.join(mnt, 'agent');
    await mkdir(dataDir);
    f = await fixture({ env: { AGENT_DATA_DIR: dataDir } });
    await f.panel.waitConnected();
  });
  after(async () => {
    await f?.cleanup();
    await run('umount', [mnt]).catch(() => undefined);
    await rm(mnt, { recursive: true, force: true });
  });

  it('create_server answers INSUFFICIENT_RESOURCES naming what is full, and leaves nothing', async () => {
    // fill the disk: writes until ENOSPC
    await writeFile(path.join(mnt, 'filler'), Buffer.alloc(2 * 1024 * 1024)).catch(() => undefined);
    const id = uid('full-');
    const res = await f.panel.command('create_server', {
      serverId: id,
      eggConfig: egg('true', { environment: { BIG: 'x'.repeat(20_000) } }),
    });
    assert.equal(res.error?.code, 'INSUFFICIENT_RESOURCES', JSON.stringify(res));
    assert.match(res.error?.message ?? '', /no space left/i);
    assert.ok(
      res.error?.message.includes(mnt),
      `the message names no path on the disk: ${res.error?.message}`,
    );
    assert.equal((await docker.listContainers({ all: true, filters: { name: [`cap-${id}`] } })).length, 0);
    // the Agent is fine once there is room again
    await rm(path.join(mnt, 'filler'));
    const again = await f.panel.command('create_server', { serverId: id, eggConfig: egg('true') });
    assert.equal(again.success, true, JSON.stringify(again.error));
  });
});

describe('a server writing past its disk limit (real Docker)', () => {
  let f: Fixture;
  before(async () => {
    // the default check interval (30 s), as shipped
    f = await fixture();
    await f.panel.waitConnected();
  });
  after(() => f.cleanup());

  it('a 20 MB limit: a container writing ~20 MB/s is stopped before it has written 2x the limit', async () => {
    const id = uid('diskhog-');
    const created = await f.panel.command('create_server', {
      serverId: id,
      // sh as PID 1 ignores SIGTERM: the stop alone would let it write on for 60 s
      eggConfig: egg(
        'i=0; while true; do dd if=/dev/zero of=f$i bs=1M count=1 2>/dev/null; i=$((i+1)); sleep 0.05; done',
        { limits: { disk: '20m' } },
      ),
    });
    assert.equal(created.success, true, JSON.stringify(created.error));
    const mark = f.panel.received.length;
    assert.equal((await f.panel.command('start_server', {}, { serverId: id })).success, true);
    await waitStatus(f, id, 'running', mark);
    await waitStatus(f, id, 'offline', mark, 30_000);
    const dir = path.join(f.dataDir, 'servers', id);
    let total = 0;
    for (const n of await readdir(dir)) total += (await stat(path.join(dir, n))).size;
    assert.ok(total < 40 * 1024 * 1024, `wrote ${Math.round(total / 1024 / 1024)} MB with a 20 MB limit`);
    assert.ok(total > 20 * 1024 * 1024, `stopped at ${Math.round(total / 1024 / 1024)} MB, under the limit`);
    const st = await docker.getContainer(`cap-${id}`).inspect();
    assert.equal(st.State.Running, false);
    // a start over the limit is refused
    const again = await f.panel.command('start_server', {}, { serverId: id });
    assert.equal(again.error?.code, 'INSUFFICIENT_RESOURCES');
  });
});

describe('compress temporaries a killed Agent left (real Agent)', () => {
  let f: Fixture;
  let host: string;
  after(async () => {
    await f?.cleanup();
    await rm(host, { recursive: true, force: true });
  });

  it('at start, only ours go: the exact name, a regular file inside a server folder, older than the process', async () => {
    f = await fixture();
    await f.panel.waitConnected();
    const id = uid('ftmp-');
    const res = await f.panel.command('create_server', { serverId: id, eggConfig: egg('sleep 1000') });
    assert.equal(res.success, true, JSON.stringify(res.error));
    const root = path.join(f.dataDir, 'servers', id);
    host = await mkdtemp(path.join(tmpdir(), 'cap-ftmp-host-'));
    const hex = () => randomBytes(8).toString('hex');
    const old = new Date(Date.now() - 3600_000);
    const put = async (p: string, mtime = old) => {
      await mkdir(path.dirname(p), { recursive: true });
      await writeFile(p, 'partial archive');
      await utimes(p, mtime, mtime);
      return p;
    };
    const stale = [
      await put(path.join(root, `.cap-compress-${hex()}`)),
      await put(path.join(root, 'world', 'region', `.cap-compress-${hex()}`)),
    ];
    const kept = [
      // made after the process started: a compress of this process may be writing it
      await put(path.join(root, `.cap-compress-${hex()}`), new Date()),
      // not exactly our name
      await put(path.join(root, `.cap-compress-${hex()}.zip`)),
      await put(path.join(root, '.cap-compress-notours')),
      await put(path.join(root, `cap-compress-${hex()}`)),
      // outside the servers' folders: the backups' folder, and a host folder reached by a link
      await put(path.join(f.dataDir, 'backups', `.cap-compress-${hex()}`)),
      await put(path.join(host, `.cap-compress-${hex()}`)),
    ];
    await symlink(host, path.join(root, 'host-link'));
    // a link of our name is not followed, nor removed
    const link = path.join(root, `.cap-compress-${hex()}`);
    await symlink(kept[5] as string, link);
    await f.restartAgent();
    // (undefined on an Agent without the sweep: nothing removed)
    const removed = (await f.agent.staleTempsSwept) ?? [];
    assert.deepEqual(removed.sort(), [...stale].sort());
    for (const p of stale) assert.equal(await lstat(p).catch(() => null), null, p);
    for (const p of kept) assert.ok((await lstat(p)).isFile(), p);
    assert.ok((await lstat(link)).isSymbolicLink());
  });
});
