/**
 * Browsing and changing a Docker volume's files through the Panel (issue 11), with the real Panel,
 * a real Agent and the real Docker Engine: a volume filled by a container (files, a subdirectory,
 * a link inside and one pointing out of the volume) is listed (paged, sorted, the links' targets)
 * and read; `..` and the escaping link are refused with PATH_OUTSIDE_ROOT; docker.read on the node
 * is needed; a file too large to read inline downloads through a ticket, byte for byte. A file is
 * uploaded through a ticket (streamed by the relay), a folder made, an entry renamed and deleted,
 * each in the activity log and only with docker.write; an upload whose body is short changes
 * nothing.
 *
 * Every case runs twice: with the Agent reading the volume's Mountpoint itself, and with
 * AGENT_VOLUME_ACCESS=helper (the Mountpoint treated as out of reach: every operation goes
 * through a short-lived helper container that mounts the volume, removed after).
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

for (const mode of ['direct', 'helper'] as const)
  describe(`Panel + Agent: a Docker volume's files (${mode})`, () => {
    let stack: Stack | undefined;
    const volume = `cap-e2e-vol${mode}-${process.pid}-${Date.now()}`;
    let mountpoint = '';
    const startedAt = Date.now();
    const base = () => `/api/nodes/${(stack as Stack).nodeId}/volumes/${volume}`;

    before(async () => {
      stack = await startStack(
        `vol${mode}`,
        mode === 'helper' ? { agentEnv: { AGENT_VOLUME_ACCESS: 'helper' } } : {},
      );
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

    it('uploads, makes a folder, renames and deletes (docker.write), in the activity log', async () => {
      const { panel, owner } = stack as Stack;
      const body = Buffer.concat([Buffer.from('uploaded\n'), Buffer.alloc(300 * 1024, 7)]);
      const g = await panel.api(owner, 'POST', `${base()}/file-upload`, {
        path: '/conf/up.bin',
        size: body.length,
      });
      assert.equal(g.status, 201, JSON.stringify(g.body));
      const put = await fetch(`${panel.url}${g.body.relayUrl}`, { method: 'PUT', body });
      assert.equal(put.status, 200, await put.text());
      assert.ok((await readFile(path.join(mountpoint, 'conf/up.bin'))).equals(body));
      const listed = await panel.api(owner, 'GET', `${base()}/files?path=/conf&sort=size&order=desc&limit=2`);
      assert.equal(listed.body.entries[1].name, 'up.bin', JSON.stringify(listed.body));
      assert.equal(listed.body.entries[1].size, body.length);

      // over a link: the link is replaced by the file, what it pointed at is left as it was
      const overLink = await panel.api(owner, 'POST', `${base()}/file-upload`, {
        path: '/cfg-link',
        size: 4,
      });
      assert.equal(overLink.status, 201, JSON.stringify(overLink.body));
      const putLink = await fetch(`${panel.url}${overLink.body.relayUrl}`, { method: 'PUT', body: 'new\n' });
      assert.equal(putLink.status, 200, await putLink.text());
      assert.equal(await readFile(path.join(mountpoint, 'cfg-link'), 'utf8'), 'new\n');
      assert.equal(
        await readFile(path.join(mountpoint, 'conf/server.cfg'), 'utf8'),
        'port=27015\nname=cap\n',
      );
      const linkNow = await panel.api(owner, 'GET', `${base()}/files?path=/&limit=10`);
      assert.equal(linkNow.body.entries.find((e: { name: string }) => e.name === 'cfg-link')?.type, 'file');

      // a short body: the ticket's upload fails and nothing is written
      const short = await panel.api(owner, 'POST', `${base()}/file-upload`, {
        path: '/conf/short.txt',
        size: 10,
      });
      assert.equal(short.status, 201, JSON.stringify(short.body));
      const cut = await fetch(`${panel.url}${short.body.relayUrl}`, { method: 'PUT', body: 'abc' });
      assert.notEqual(cut.status, 200);
      const none = await panel.api(owner, 'GET', `${base()}/file?path=/conf/short.txt`);
      assert.equal(none.status, 404, JSON.stringify(none.body));
      const conf = await panel.api(owner, 'GET', `${base()}/files?path=/conf&limit=100`);
      assert.ok(
        !conf.body.entries.some((e: { name: string }) => e.name.startsWith('.cap-upload-')),
        'no temporary file is left',
      );

      for (const bad of ['/passwd-link/x', '/etc-link/x', '../../x', '/conf/../../y']) {
        const r = await panel.api(owner, 'POST', `${base()}/file-upload`, { path: bad, size: 1 });
        assert.equal(r.status, 400, `${bad}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.code, 'PATH_OUTSIDE_ROOT', bad);
      }
      const noFolder = await panel.api(owner, 'POST', `${base()}/file-upload`, { path: '/nope/x', size: 1 });
      assert.equal(noFolder.status, 404, JSON.stringify(noFolder.body));
      assert.equal(noFolder.body.code, 'FILE_NOT_FOUND');

      const mk = await panel.api(owner, 'POST', `${base()}/mkdir`, { path: '/made' });
      assert.equal(mk.status, 200, JSON.stringify(mk.body));
      assert.deepEqual(mk.body.paths, ['/made']);
      const again = await panel.api(owner, 'POST', `${base()}/mkdir`, { path: '/made' });
      assert.equal(again.status, 409, JSON.stringify(again.body));
      assert.equal(again.body.code, 'FILE_EXISTS');
      const outMk = await panel.api(owner, 'POST', `${base()}/mkdir`, { path: '/etc-link/evil' });
      assert.equal(outMk.status, 400, JSON.stringify(outMk.body));
      assert.equal(outMk.body.code, 'PATH_OUTSIDE_ROOT');

      const mv = await panel.api(owner, 'POST', `${base()}/rename`, {
        from: '/conf/up.bin',
        to: '/made/moved.bin',
      });
      assert.equal(mv.status, 200, JSON.stringify(mv.body));
      assert.deepEqual(mv.body.paths, ['/made/moved.bin']);
      assert.ok((await readFile(path.join(mountpoint, 'made/moved.bin'))).equals(body));
      const onto = await panel.api(owner, 'POST', `${base()}/rename`, {
        from: '/made/moved.bin',
        to: '/big.bin',
      });
      assert.equal(onto.status, 409, JSON.stringify(onto.body));
      assert.equal(onto.body.code, 'FILE_EXISTS');
      const outMv = await panel.api(owner, 'POST', `${base()}/rename`, {
        from: '/made/moved.bin',
        to: '/etc-link/x',
      });
      assert.equal(outMv.status, 400, JSON.stringify(outMv.body));
      assert.equal(outMv.body.code, 'PATH_OUTSIDE_ROOT');

      const del = await panel.api(owner, 'POST', `${base()}/delete`, {
        root: '/',
        names: ['made', 'etc-link'],
      });
      assert.equal(del.status, 200, JSON.stringify(del.body));
      assert.deepEqual(del.body.paths, ['/made', '/etc-link']);
      const after = await panel.api(owner, 'GET', `${base()}/files`);
      assert.deepEqual(
        after.body.entries.map((e: { name: string }) => e.name),
        ['conf', 'big.bin', 'cfg-link', 'passwd-link'],
      );
      // the link went, not what it pointed at
      await readFile('/etc/passwd');
      const gone = await panel.api(owner, 'POST', `${base()}/delete`, { root: '/', names: ['made'] });
      assert.equal(gone.status, 404, JSON.stringify(gone.body));
      assert.equal(gone.body.code, 'FILE_NOT_FOUND');

      const act = await panel.api(owner, 'GET', '/api/activity?action=node.volume&limit=50');
      assert.equal(act.status, 200, JSON.stringify(act.body));
      const mine = (act.body.entries as { action: string; details?: { volume?: string } }[]).filter(
        (e) => e.details?.volume === volume,
      );
      for (const a of ['node.volume.upload', 'node.volume.mkdir', 'node.volume.rename', 'node.volume.delete'])
        assert.ok(
          mine.some((e) => e.action === a),
          `${a} in ${JSON.stringify(mine.map((e) => e.action))}`,
        );
      if (mode === 'helper') {
        // the helper was used (containers made for this volume), and none is left
        const events = (await docker.getEvents({
          since: Math.floor(startedAt / 1000) - 1,
          until: Math.ceil(Date.now() / 1000) + 1,
          filters: {
            type: ['container'],
            event: ['create'],
            label: [`ctrl-alt-play.volume-helper.volume=${volume}`],
          },
        })) as unknown as NodeJS.ReadableStream;
        let text = '';
        for await (const c of events) text += c.toString();
        assert.ok(
          text.split('\n').filter(Boolean).length >= 10,
          `helper containers made: ${text.length} bytes of events`,
        );
        const left = await docker.listContainers({
          all: true,
          filters: { label: ['ctrl-alt-play.volume-helper'] },
        });
        assert.deepEqual(
          left.filter((c) => c.Labels['ctrl-alt-play.volume-helper.volume'] === volume).map((c) => c.Id),
          [],
          'every helper container is removed after its operation',
        );
      }
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
      // reading is not changing: docker.write is needed for those
      for (const [url, b] of [
        [`${base()}/file-upload`, { path: '/conf/x', size: 1 }],
        [`${base()}/mkdir`, { path: '/x' }],
        [`${base()}/rename`, { from: '/big.bin', to: '/x' }],
        [`${base()}/delete`, { names: ['big.bin'] }],
      ] as const) {
        const r = await panel.api(user, 'POST', url, b);
        assert.equal(r.status, 403, `${url}: ${JSON.stringify(r.body)}`);
      }
      assert.equal(
        (await panel.api(owner, 'GET', `${base()}/file?path=/big.bin`)).body.code,
        'FILE_TOO_LARGE',
      );
    });
  });
