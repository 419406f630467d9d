/**
 * Docker volumes backed up and restored through the archiver (issue 10 item 5), with the real
 * Docker Engine: a named volume filled by a busybox container, backed up over a download ticket,
 * changed, restored over an upload ticket, and compared byte for byte; a volume in use by a
 * running container is refused unless forced; a hostile archive writes nothing into the volume.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import zlib from 'node:zlib';
import { Header } from 'tar';
import { docker, type Fixture, fixture, IMAGE, uid } from './helpers.ts';
import { treeDigest } from './tree-digest.ts';

type Res = { success: boolean; data?: unknown; error?: { code: string; message: string } };

/** Runs `script` in a throw-away busybox container with the volume at /data; its exit code. */
async function inVolume(volume: string, script: string, keep = false): Promise<{ code: number; id: string }> {
  const c = await docker.createContainer({
    Image: IMAGE,
    Cmd: ['sh', '-c', script],
    Labels: { 'ctrl-alt-play.test': 'volumes' },
    HostConfig: { Binds: [`${volume}:/data`] },
  });
  await c.start();
  if (keep) return { code: 0, id: c.id };
  const { StatusCode } = (await c.wait()) as { StatusCode: number };
  await c.remove({ force: true });
  return { code: StatusCode, id: c.id };
}

describe('Docker volumes: backup and restore through the archiver', () => {
  let f: Fixture;
  const volume = uid('capvol-');
  let mountpoint = '';
  const containers: string[] = [];
  let cmd: (action: string, payload: unknown) => Promise<Res>;
  const base = () => `http://127.0.0.1:${f.agent.httpPort}`;

  before(async () => {
    f = await fixture({ env: { AGENT_API_KEY: `k_${uid()}${uid()}${uid()}`, AGENT_COMMAND_RATE: '100000' } });
    await f.panel.waitConnected();
    cmd = (action, payload) =>
      f.panel.command(action as 'get_file', payload as { path: string }) as Promise<Res>;
    await docker.createVolume({ Name: volume, Labels: { 'ctrl-alt-play.test': 'volumes' } });
    mountpoint = (await docker.getVolume(volume).inspect()).Mountpoint;
    const fill = await inVolume(
      volume,
      'mkdir -p /data/db/sub && dd if=/dev/urandom of=/data/db/big.bin bs=1024 count=3072 2>/dev/null && ' +
        'echo hello > /data/db/sub/a.txt && chmod 600 /data/db/sub/a.txt && ln -s sub/a.txt /data/db/link && ' +
        ': > /data/empty && mkdir /data/emptydir',
    );
    assert.equal(fill.code, 0);
  });
  after(async () => {
    await f.cleanup();
    for (const id of containers)
      await docker
        .getContainer(id)
        .remove({ force: true })
        .catch(() => undefined);
    await docker
      .getVolume(volume)
      .remove({ force: true })
      .catch(() => undefined);
  });

  const backup = async (format: 'tar.gz' | 'tar.zst') => {
    const r = await cmd('volume_backup', { volume, format });
    assert.equal(r.success, true, JSON.stringify(r.error));
    const g = r.data as { ticket: string; size: number | null; name: string };
    assert.equal(g.size, null);
    assert.equal(g.name, `${volume}.${format}`);
    const res = await fetch(`${base()}/transfers/${g.ticket}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), null);
    return Buffer.from(await res.arrayBuffer());
  };
  const restore = async (body: Buffer, opts: { force?: boolean; truncate?: boolean } = {}) => {
    const r = await cmd('volume_restore', { volume, size: body.length, ...opts });
    if (!r.success) return { status: 0, body: r.error as unknown as Record<string, unknown> };
    const { ticket } = r.data as { ticket: string };
    const res = await fetch(`${base()}/transfers/${ticket}`, { method: 'PUT', body: new Uint8Array(body) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  for (const format of ['tar.gz', 'tar.zst'] as const) {
    it(`backed up (${format}), changed, restored: byte for byte the same tree`, async () => {
      const before = await treeDigest(mountpoint);
      assert.ok(
        before.some((l) => l.startsWith('db/big.bin file 644 3145728')),
        before.join('\n'),
      );
      const archive = await backup(format);
      const change = await inVolume(
        volume,
        'echo changed > /data/db/sub/a.txt && rm /data/db/big.bin && echo new > /data/extra.txt',
      );
      assert.equal(change.code, 0);
      assert.notDeepEqual(await treeDigest(mountpoint), before);
      const r = await restore(archive, { truncate: true });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.path, `volume:${volume}`);
      assert.deepEqual(await treeDigest(mountpoint), before);
      // and what a container sees in it
      const seen = await inVolume(
        volume,
        'test "$(cat /data/db/sub/a.txt)" = hello && test ! -e /data/extra.txt',
      );
      assert.equal(seen.code, 0);
    });
  }

  it('a volume in use by a running container is refused for restore unless forced', async () => {
    const archive = await backup('tar.gz');
    const running = await inVolume(volume, 'sleep 300', true);
    containers.push(running.id);
    const refused = await restore(archive);
    assert.equal(refused.body.code, 'INVALID_STATE', JSON.stringify(refused.body));
    assert.match(String(refused.body.message), /in use by running container/);
    const forced = await restore(archive, { force: true });
    assert.equal(forced.status, 200, JSON.stringify(forced.body));
    await docker.getContainer(running.id).remove({ force: true });
  });

  it('a hostile or corrupt archive writes nothing into the volume; an unknown volume is NOT_FOUND', async () => {
    const before = await treeDigest(mountpoint);
    const blocks: Buffer[] = [];
    for (const [p, body] of [
      ['first.txt', 'x'],
      ['../../../../escape.txt', 'pwned'],
    ] as const) {
      const h = new Header({ path: p, type: 'File', size: body.length, mode: 0o644, mtime: new Date() });
      h.encode();
      blocks.push(h.block as Buffer, Buffer.from(body), Buffer.alloc(512 - body.length));
    }
    blocks.push(Buffer.alloc(1024));
    const evil = zlib.gzipSync(Buffer.concat(blocks));
    const r1 = await restore(evil, { truncate: true });
    assert.equal(r1.body.code, 'ARCHIVE_UNSAFE', JSON.stringify(r1.body));
    const r2 = await restore(evil.subarray(0, evil.length - 30), { truncate: true });
    assert.equal(r2.body.code, 'ARCHIVE_INVALID', JSON.stringify(r2.body));
    assert.deepEqual(
      await treeDigest(mountpoint),
      before,
      'the volume is untouched (truncate only after the verify)',
    );
    const missing = await cmd('volume_backup', { volume: uid('capvol-missing-') });
    assert.equal(missing.error?.code, 'NOT_FOUND');
    const bad = await cmd('volume_backup', { volume: '../etc' });
    assert.equal(bad.error?.code, 'CONFIG_INVALID');
  });
});
