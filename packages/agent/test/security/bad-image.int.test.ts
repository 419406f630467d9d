/**
 * Image references as an attack: a path-like or flag-like image (`../../../etc`, `--privileged
 * busybox`) in a create or an update, an image that does not exist, and an update the Agent must
 * refuse. The Agent stays up, answers with a code, leaves nothing behind and never touches a
 * running server for an update it refuses. Real Agent, real Docker Engine.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { docker, egg, type Fixture, fixture, uid, waitStatus } from '../helpers.ts';

const BAD_IMAGES = [
  '../../../etc',
  '--privileged busybox',
  'ctrl-alt-play/../../../../etc',
  'UPPER/Case',
  'busybox:bad tag',
  'busybox@sha256:123',
  'a//b',
];

describe('bad image references (real Docker)', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture();
    await f.panel.waitConnected();
  });
  after(() => f.cleanup());

  const alive = async () => {
    const r = await f.panel.command('list_servers', {});
    assert.equal(r.success, true, 'the Agent no longer answers');
  };

  it('a create with a path-like or flag-like image is CONFIG_INVALID and the Agent stays up', async () => {
    for (const image of BAD_IMAGES) {
      const id = uid('badimg-');
      const res = await f.panel.command('create_server', {
        serverId: id,
        eggConfig: egg('true', { image }),
      });
      assert.equal(res.error?.code, 'CONFIG_INVALID', `${image}: ${JSON.stringify(res)}`);
      await alive();
    }
    // the same in an install container
    const res = await f.panel.command('create_server', {
      serverId: uid('badinst-'),
      eggConfig: egg('true', { install: { script: 'true', container: '../../../etc', entrypoint: 'sh' } }),
    });
    assert.equal(res.error?.code, 'CONFIG_INVALID', JSON.stringify(res));
    await alive();
  });

  it('an update with a bad image is CONFIG_INVALID and the Agent stays up', async () => {
    const id = uid('badupd-');
    const created = await f.panel.command('create_server', { serverId: id, eggConfig: egg('sleep 600') });
    assert.equal(created.success, true, JSON.stringify(created.error));
    for (const image of BAD_IMAGES) {
      const res = await f.panel.command('update_server', { image }, { serverId: id });
      assert.equal(res.error?.code, 'CONFIG_INVALID', `${image}: ${JSON.stringify(res)}`);
      await alive();
    }
  });

  it('an image that cannot be pulled: the cause in the error, no definition and no folder left', async () => {
    const id = uid('nopull-');
    const res = await f.panel.command('create_server', {
      serverId: id,
      eggConfig: egg('true', { image: `localhost:1/cap-missing-${id}:none` }),
    });
    assert.equal(res.error?.code, 'DOCKER_ERROR', JSON.stringify(res));
    // the Engine's own words, not only "could not be pulled"
    assert.match(res.error?.message ?? '', /could not be pulled: .*(connect|refused|dial|lookup|manifest)/i);
    const left = await readdir(path.join(f.dataDir, 'servers'));
    assert.deepEqual(
      left.filter((n) => n.startsWith(id)),
      [],
      'a failed create left files behind',
    );
    const listed = await f.panel.command('list_servers', {});
    assert.ok(!(listed.data as { servers: { serverId: string }[] }).servers.some((s) => s.serverId === id));
    // and the id is free for a create that works
    const again = await f.panel.command('create_server', { serverId: id, eggConfig: egg('true') });
    assert.equal(again.success, true, JSON.stringify(again.error));
  });

  it('an update the Agent refuses leaves the running server as it was', async () => {
    const id = uid('keep-');
    const created = await f.panel.command('create_server', { serverId: id, eggConfig: egg('sleep 600') });
    assert.equal(created.success, true, JSON.stringify(created.error));
    const mark = f.panel.received.length;
    assert.equal((await f.panel.command('start_server', {}, { serverId: id })).success, true);
    await waitStatus(f, id, 'running', mark);
    const before = await docker.getContainer(`cap-${id}`).inspect();
    // a port this host already uses (a listener of the test's own)
    const { createServer } = await import('node:net');
    const squatter = createServer();
    const taken = await new Promise<number>((resolve) =>
      squatter.listen(0, '127.0.0.1', () => resolve((squatter.address() as { port: number }).port)),
    );
    const refused = [
      { image: `localhost:1/cap-missing-${id}:none` },
      { ports: { '70000': 25565 } },
      { ports: { '25565': 70000 } },
      { ports: { '7777/tcp': { hostPort: taken, hostIp: '127.0.0.1' } } },
    ];
    for (const patch of refused) {
      const res = await f.panel.command('update_server', patch as never, { serverId: id });
      assert.equal(res.success, false, `${JSON.stringify(patch)} was accepted`);
      const now = await docker.getContainer(`cap-${id}`).inspect();
      assert.equal(now.Id, before.Id, `${JSON.stringify(patch)} replaced the container`);
      assert.equal(now.State.StartedAt, before.State.StartedAt, `${JSON.stringify(patch)} restarted it`);
      assert.equal(now.State.Running, true, `${JSON.stringify(patch)} stopped it`);
      const st = await f.panel.command('get_status', {}, { serverId: id });
      assert.equal((st.data as { status: string }).status, 'running');
    }
    squatter.close();
  });

  it('an update the Agent did not finish (its new container left behind) is undone at boot', async () => {
    const id = uid('half-');
    const created = await f.panel.command('create_server', { serverId: id, eggConfig: egg('sleep 600') });
    assert.equal(created.success, true, JSON.stringify(created.error));
    const mark = f.panel.received.length;
    assert.equal((await f.panel.command('start_server', {}, { serverId: id })).success, true);
    await waitStatus(f, id, 'running', mark);
    const real = await docker.getContainer(`cap-${id}`).inspect();
    // what an Agent killed between creating the new container and replacing the old one leaves
    await docker.createContainer({
      name: `cap-${id}-next`,
      Image: real.Config.Image,
      Cmd: ['true'],
      Labels: real.Config.Labels,
    });
    await f.restartAgent();
    await f.panel.waitConnected();
    const left = await docker.listContainers({ all: true, filters: { name: [`cap-${id}-next`] } });
    assert.equal(left.length, 0, 'the half-made container is still there');
    const st = await f.panel.command('get_status', {}, { serverId: id });
    assert.equal((st.data as { status: string; containerId: string }).status, 'running');
    assert.equal((st.data as { containerId: string }).containerId, real.Id);
  });
});
