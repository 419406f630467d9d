/**
 * A Docker volume backed up and restored through the Panel (issue 10 item 5), with the real Panel,
 * a real Agent and the real Docker Engine: admins only; the archive streams through the Panel's
 * relay both ways (the Agent dials out); the restored volume is byte for byte the one backed up.
 *
 * Every case runs twice: with the Agent reading the volume's Mountpoint itself, and with
 * AGENT_VOLUME_ACCESS=helper (the Engine's archive API through a helper container, the tar read
 * and written again by the Agent's archiver); in helper mode a hostile archive (`..`, a link out
 * and a file through it) is refused before anything is written.
 */
import assert from 'node:assert/strict';
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Header } from 'tar';
import { treeDigest } from '../packages/agent/test/tree-digest.ts';
import { docker, IMAGE, type Stack, startStack } from './harness.ts';

async function inVolume(volume: string, script: string): Promise<number> {
  const c = await docker.createContainer({
    Image: IMAGE,
    Cmd: ['sh', '-c', script],
    HostConfig: { Binds: [`${volume}:/data`] },
  });
  try {
    await c.start();
    return ((await c.wait()) as { StatusCode: number }).StatusCode;
  } finally {
    await c.remove({ force: true }).catch(() => undefined);
  }
}

/** A tar of the given entries (no end blocks needed: the reader accepts none). */
function tarOf(entries: { path: string; type: 'File' | 'SymbolicLink'; body?: string; linkpath?: string }[]) {
  const out: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '');
    const h = new Header({
      path: e.path,
      type: e.type,
      mode: 0o644,
      size: body.length,
      mtime: new Date(),
      ...(e.linkpath ? { linkpath: e.linkpath } : {}),
    });
    h.encode();
    out.push(h.block as Buffer, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  out.push(Buffer.alloc(1024));
  return Buffer.concat(out);
}

for (const mode of ['direct', 'helper'] as const)
  describe(`Panel + Agent: Docker volume backup and restore (${mode})`, () => {
    let stack: Stack | undefined;
    const volume = `cap-e2e-vbk${mode}-${process.pid}-${Date.now()}`;
    let mountpoint = '';
    /** The volume's archive, through the Panel's relay (as an admin). */
    const download = async (format: 'tar.gz' | 'tar.zst') => {
      const { panel, owner, nodeId } = stack as Stack;
      const g = await panel.api(owner, 'POST', `/api/nodes/${nodeId}/volumes/${volume}/archive`, { format });
      assert.equal(g.status, 201, JSON.stringify(g.body));
      assert.equal(g.body.size, null);
      assert.equal(g.body.name, `${volume}.${format}`);
      const res = await fetch(`${panel.url}${g.body.url}`);
      assert.equal(res.status, 200);
      return Buffer.from(await res.arrayBuffer());
    };
    /** An archive restored into the volume (its contents removed first), through the relay. */
    const restore = async (archive: Buffer, ok = true) => {
      const { panel, owner, nodeId } = stack as Stack;
      const u = await panel.api(owner, 'POST', `/api/nodes/${nodeId}/volumes/${volume}/restore`, {
        size: archive.length,
        truncate: true,
      });
      assert.equal(u.status, 201, JSON.stringify(u.body));
      const put = await fetch(`${panel.url}${u.body.url}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream' },
        body: new Uint8Array(archive),
      });
      const body = await put.json();
      if (!ok) return { status: put.status, body };
      assert.equal(put.status, 200, JSON.stringify(body));
      assert.equal(body.path, `volume:${volume}`);
      return { status: put.status, body };
    };

    before(async () => {
      stack = await startStack(
        `vbk${mode}`,
        mode === 'helper' ? { agentEnv: { AGENT_VOLUME_ACCESS: 'helper' } } : {},
      );
      await docker.createVolume({ Name: volume });
      mountpoint = (await docker.getVolume(volume).inspect()).Mountpoint;
      assert.equal(
        await inVolume(
          volume,
          'mkdir -p /data/pg/base && dd if=/dev/urandom of=/data/pg/base/1 bs=1024 count=2048 2>/dev/null && echo conf > /data/pg/pg.conf && ln -s base/1 /data/pg/latest' +
            // a hard link (the Engine's tar has it as one), and what no backup carries: a link
            // out of the volume and a FIFO
            ' && ln /data/pg/pg.conf /data/pg/hard && ln -s /etc/passwd /data/pg/passwd && mkfifo /data/pg/fifo',
        ),
        0,
      );
    });
    after(async () => {
      await stack?.stop();
      await docker
        .getVolume(volume)
        .remove({ force: true })
        .catch(() => undefined);
    });

    it('an admin backs a volume up and restores it through the relay; others may not', async () => {
      const { panel, owner, nodeId } = stack as Stack;
      const user = await panel.userWithRole('user');
      const denied = await panel.api(user, 'POST', `/api/nodes/${nodeId}/volumes/${volume}/archive`, {});
      assert.equal(denied.status, 403, JSON.stringify(denied.body));

      const left = new Set(['pg/passwd', 'pg/fifo']);
      const expected = await treeDigest(mountpoint, { skip: (r) => left.has(r) });
      const conf = expected.find((l) => l.startsWith('pg/pg.conf '));
      assert.equal(
        expected.find((l) => l.startsWith('pg/hard ')),
        conf?.replace('pg/pg.conf', 'pg/hard'),
      );
      const archive = await download('tar.zst');
      assert.ok(archive.length > 2 * 1024 * 1024);

      assert.equal(
        await inVolume(volume, 'echo changed > /data/pg/pg.conf && rm /data/pg/base/1 && touch /data/new'),
        0,
      );
      assert.notDeepEqual(await treeDigest(mountpoint), expected);

      await restore(archive);
      // byte for byte, and what a backup leaves out is gone (the restore emptied the volume first)
      assert.deepEqual(await treeDigest(mountpoint), expected);
      for (const r of left) await assert.rejects(lstat(path.join(mountpoint, r)), { code: 'ENOENT' });

      const missing = await panel.api(
        owner,
        'POST',
        `/api/nodes/${nodeId}/volumes/no-such-volume-${process.pid}/archive`,
        {},
      );
      assert.equal(missing.status, 404, JSON.stringify(missing.body));
    });

    it('a restore gives entries back their numeric owners (as tar --numeric-owner), links included', async () => {
      assert.equal(
        await inVolume(
          volume,
          'mkdir -p /data/own/sub && echo a > /data/own/sub/f && ln -s f /data/own/sub/l && ' +
            'chown 2000:2001 /data/own && chown 1234:5678 /data/own/sub/f && chown 4321:8765 /data/own/sub && ' +
            'chown -h 3000:3001 /data/own/sub/l',
        ),
        0,
      );
      const owners = async () => {
        const out: Record<string, string> = {};
        for (const rel of ['own', 'own/sub', 'own/sub/f', 'own/sub/l']) {
          const st = await lstat(path.join(mountpoint, rel));
          out[rel] = `${st.uid}:${st.gid}`;
        }
        return out;
      };
      const expected = await owners();
      assert.deepEqual(expected, {
        own: '2000:2001',
        'own/sub': '4321:8765',
        'own/sub/f': '1234:5678',
        'own/sub/l': '3000:3001',
      });
      const archive = await download('tar.gz');
      assert.equal(await inVolume(volume, 'rm -rf /data/own'), 0);
      await restore(archive);
      assert.deepEqual(await owners(), expected);
    });
    if (mode === 'helper')
      it('a hostile archive (.., a link out, a file through it) is refused before anything is written', async () => {
        const before = await treeDigest(mountpoint);
        const outside = `/tmp/vbk-escape-${process.pid}`;
        for (const entries of [
          [
            { path: 'ok.txt', type: 'File' as const, body: 'fine' },
            { path: '../vbk-escape.txt', type: 'File' as const, body: 'out' },
          ],
          [
            { path: 'ok.txt', type: 'File' as const, body: 'fine' },
            { path: 'out', type: 'SymbolicLink' as const, linkpath: '/tmp' },
            { path: `out/vbk-escape-${process.pid}`, type: 'File' as const, body: 'out' },
          ],
          [{ path: `/tmp/vbk-escape-${process.pid}`, type: 'File' as const, body: 'out' }],
        ]) {
          const r = await restore(tarOf(entries), false);
          assert.equal(r.status, 422, JSON.stringify(r.body));
          assert.equal(r.body.error?.code ?? r.body.code, 'ARCHIVE_UNSAFE', JSON.stringify(r.body));
          assert.deepEqual(await treeDigest(mountpoint), before);
          await assert.rejects(lstat(outside));
        }
      });
  });
