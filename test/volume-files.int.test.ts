/**
 * Browsing a Docker volume's files through the Panel (issue 11), with the real Panel, a real Agent
 * and the real Docker Engine: a volume filled by a container (files, a subdirectory, a link
 * inside and one pointing out of the volume) is listed (paged, sorted, the links' targets) and
 * read; `..` and the escaping link are refused with PATH_OUTSIDE_ROOT; docker.read on the node
 * is needed; a file too large to read inline downloads through a ticket, byte for byte.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
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

describe('Panel + Agent: browsing a Docker volume', () => {
  let stack: Stack | undefined;
  const volume = `cap-e2e-volfiles-${process.pid}-${Date.now()}`;
  let mountpoint = '';
  const base = () => `/api/nodes/${(stack as Stack).nodeId}/volumes/${volume}`;

  before(async () => {
    stack = await startStack('volfiles');
    await docker.createVolume({ Name: volume });
    mountpoint = (await docker.getVolume(volume).inspect()).Mountpoint;
    assert.equal(
      await inVolume(
        volume,
        [
          'mkdir -p /data/conf/deep',
          'printf "port=27015\\nname=cap\\n" > /data/conf/server.cfg',
          'echo deep > /data/conf/deep/x.txt',
          'for i in $(seq -w 1 25); do echo $i > /data/conf/f$i.log; done',
          'dd if=/dev/urandom of=/data/big.bin bs=1024 count=1500 2>/dev/null',
          'chmod 0640 /data/conf/server.cfg',
          'ln -s conf/server.cfg /data/cfg-link',
          'ln -s /etc/passwd /data/passwd-link',
          'ln -s ../../../../../../etc /data/etc-link',
        ].join(' && '),
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

  it('lists a volume paged and sorted, with mode, size, mtime and link targets', async () => {
    const { panel, owner } = stack as Stack;
    const root = await panel.api(owner, 'GET', `${base()}/files`);
    assert.equal(root.status, 200, JSON.stringify(root.body));
    assert.equal(root.body.path, '/');
    assert.equal(root.body.total, 5);
    type Entry = {
      name: string;
      type: string;
      size: number;
      mode: string;
      modifiedAt: string;
      target?: string;
    };
    const byName: Record<string, Entry> = Object.fromEntries(
      (root.body.entries as Entry[]).map((e) => [e.name, e]),
    );
    // directories first, then by name
    assert.deepEqual(
      (root.body.entries as { name: string }[]).map((e) => e.name),
      ['conf', 'big.bin', 'cfg-link', 'etc-link', 'passwd-link'],
    );
    assert.equal(byName.conf?.type, 'directory');
    assert.equal(byName['big.bin']?.type, 'file');
    assert.equal(byName['big.bin']?.size, 1500 * 1024);
    assert.equal(byName['cfg-link']?.type, 'symlink');
    assert.equal(byName['cfg-link']?.target, 'conf/server.cfg');
    assert.equal(byName['passwd-link']?.target, '/etc/passwd');
    assert.equal(byName['etc-link']?.target, '../../../../../../etc');
    assert.ok(Number.isFinite(Date.parse(byName.conf?.modifiedAt ?? '')));

    const conf = await panel.api(owner, 'GET', `${base()}/files?path=/conf&limit=10&offset=0`);
    assert.equal(conf.status, 200, JSON.stringify(conf.body));
    assert.equal(conf.body.total, 27);
    assert.equal(conf.body.entries.length, 10);
    assert.equal(conf.body.entries[0].name, 'deep');
    assert.equal(conf.body.entries[1].name, 'f01.log');
    const cfg = (
      await panel.api(owner, 'GET', `${base()}/files?path=/conf&offset=20&limit=10`)
    ).body.entries.find((e: { name: string }) => e.name === 'server.cfg');
    assert.equal(cfg?.mode, '0640');
    assert.equal(cfg?.size, 'port=27015\nname=cap\n'.length);
    const desc = await panel.api(owner, 'GET', `${base()}/files?path=/conf&limit=3&order=desc`);
    assert.deepEqual(
      desc.body.entries.map((e: { name: string }) => e.name),
      ['deep', 'server.cfg', 'f25.log'],
    );
    const bySize = await panel.api(owner, 'GET', `${base()}/files?sort=size&order=desc&limit=2`);
    assert.deepEqual(
      bySize.body.entries.map((e: { name: string }) => e.name),
      ['conf', 'big.bin'],
    );
  });

  it('reads a file (also through a link inside); `..` and links that lead out are refused', async () => {
    const { panel, owner } = stack as Stack;
    const f = await panel.api(owner, 'GET', `${base()}/file?path=/conf/server.cfg`);
    assert.equal(f.status, 200, JSON.stringify(f.body));
    assert.equal(f.body.encoding, 'utf8');
    assert.equal(f.body.content, 'port=27015\nname=cap\n');
    assert.equal(f.body.sha256, createHash('sha256').update('port=27015\nname=cap\n').digest('hex'));
    const viaLink = await panel.api(owner, 'GET', `${base()}/file?path=/cfg-link`);
    assert.equal(viaLink.status, 200, JSON.stringify(viaLink.body));
    assert.equal(viaLink.body.content, 'port=27015\nname=cap\n');

    for (const bad of [
      `${base()}/file?path=${encodeURIComponent('/passwd-link')}`,
      `${base()}/file?path=${encodeURIComponent('../../../../etc/passwd')}`,
      `${base()}/file?path=${encodeURIComponent('/conf/../../_data/../../x')}`,
      `${base()}/files?path=${encodeURIComponent('/etc-link')}`,
      `${base()}/files?path=${encodeURIComponent('/..')}`,
    ]) {
      const r = await panel.api(owner, 'GET', bad);
      assert.equal(r.status, 400, `${bad}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'PATH_OUTSIDE_ROOT', bad);
    }
    const missing = await panel.api(owner, 'GET', `${base()}/file?path=/nope.txt`);
    assert.equal(missing.status, 404, JSON.stringify(missing.body));
    assert.equal(missing.body.code, 'FILE_NOT_FOUND');
    const noVolume = await panel.api(
      owner,
      'GET',
      `/api/nodes/${(stack as Stack).nodeId}/volumes/no-such-${process.pid}/files`,
    );
    assert.equal(noVolume.status, 404, JSON.stringify(noVolume.body));
  });

  it('a file over the inline cap is FILE_TOO_LARGE and downloads through a ticket', async () => {
    const { panel, owner } = stack as Stack;
    const big = await panel.api(owner, 'GET', `${base()}/file?path=/big.bin`);
    assert.equal(big.status, 413, JSON.stringify(big.body));
    assert.equal(big.body.code, 'FILE_TOO_LARGE');
    const g = await panel.api(owner, 'POST', `${base()}/file-download`, { path: '/big.bin' });
    assert.equal(g.status, 201, JSON.stringify(g.body));
    assert.equal(g.body.size, 1500 * 1024);
    assert.equal(g.body.name, 'big.bin');
    const res = await fetch(`${panel.url}${g.body.relayUrl}`);
    assert.equal(res.status, 200);
    const got = Buffer.from(await res.arrayBuffer());
    assert.ok(got.equals(await readFile(path.join(mountpoint, 'big.bin'))));
    const out = await panel.api(owner, 'POST', `${base()}/file-download`, { path: '/passwd-link' });
    assert.equal(out.status, 400, JSON.stringify(out.body));
    assert.equal(out.body.code, 'PATH_OUTSIDE_ROOT');
  });

  it('needs docker.read on the node', async () => {
    const { panel, owner, nodeId } = stack as Stack;
    const user = await panel.userWithRole('user');
    const denied = await panel.api(user, 'GET', `${base()}/files`);
    assert.equal(denied.status, 403, JSON.stringify(denied.body));
    const deniedFile = await panel.api(user, 'GET', `${base()}/file?path=/conf/server.cfg`);
    assert.equal(deniedFile.status, 403, JSON.stringify(deniedFile.body));
    const who = await panel.api(user, 'GET', '/api/auth/me');
    assert.equal(who.status, 200, JSON.stringify(who.body));
    const userId = who.body.user.id as string;
    const g = await panel.api(owner, 'PUT', `/api/nodes/${nodeId}/docker-access/${userId}`, {
      permissions: ['docker.read'],
    });
    assert.equal(g.status, 200, JSON.stringify(g.body));
    const ok = await panel.api(user, 'GET', `${base()}/files?path=/conf&limit=1`);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.entries[0].name, 'deep');
  });
});
