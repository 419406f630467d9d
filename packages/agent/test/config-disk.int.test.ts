/** Config files rewritten before every start, and the disk limit enforced while running (real Docker). */
import assert from 'node:assert/strict';
import { access, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { firstHost } from '../src/environment/docker/docker.ts';
import { docker, egg, type Fixture, fixture, freePort, uid, waitStatus } from './helpers.ts';

// a console loop that leaves on "exit" (the egg's stop command), so stops are graceful and quick
const LOOP = 'while read l; do [ "$l" = exit ] && exit 0; echo "got:$l"; done';

describe('config files and disk limit (real Docker)', () => {
  let f: Fixture;

  before(async () => {
    f = await fixture({ env: { AGENT_DISK_CHECK_INTERVAL_MS: '300', AGENT_STATS_INTERVAL_MS: '200' } });
    await f.panel.waitConnected();
  });
  after(() => f.cleanup());

  const status = (id: string, to: string, since: number) => waitStatus(f, id, to, since);
  const log = (id: string, text: string, since: number) =>
    f.panel.waitEvent('server_log', (d) => d.serverId === id && d.message === text, { since });

  it('rewrites config files before every start; a bad one is reported and does not block the start', async () => {
    const id = uid('cfg-');
    const port = await freePort();
    // the servers' network's gateway (the Agent's own bridge), as seen on the host
    const bridge = (await docker.getNetwork(f.config.dockerNetwork).inspect()) as {
      IPAM: { Config: { Gateway?: string; Subnet?: string }[] };
    };
    const gateway = bridge.IPAM.Config[0]?.Gateway ?? firstHost(bridge.IPAM.Config[0]?.Subnet);
    assert.match(String(gateway), /^\d+\.\d+\.\d+\.\d+$/);
    const mark = f.panel.received.length;
    const res = await f.panel.command('create_server', {
      serverId: id,
      eggConfig: egg(`cat server.properties; cat sub/app.json; echo; echo ready; ${LOOP}`, {
        environment: { MOTD: 'first motd' },
        ports: { [String(port)]: { hostPort: port, hostIp: '127.0.0.1' } },
        done: 'ready',
        stop: 'exit',
        configFiles: {
          'server.properties': {
            parser: 'properties',
            find: {
              'server-port': '{{server.build.default.port}}',
              motd: '{{server.build.env.MOTD}}',
              gateway: '{{config.docker.interface}}',
            },
          },
          'sub/app.json': {
            parser: 'json',
            find: { name: '{{env.MOTD}}', 'net.port': '{{server.allocations.default.port}}' },
          },
          '../escape.properties': { parser: 'properties', find: { a: 'b' } },
        },
      }),
    });
    assert.equal(res.success, true, JSON.stringify(res.error));
    const start = await f.panel.command('start_server', {}, { serverId: id });
    assert.equal(start.success, true, JSON.stringify(start.error));
    await status(id, 'running', mark);
    await log(id, `server-port=${port}`, mark);
    await log(id, 'motd=first motd', mark);
    await log(id, `gateway=${gateway}`, mark);
    const daemon = await f.panel.waitEvent(
      'server_log',
      (d) => d.serverId === id && d.stream === 'daemon' && d.message.includes('../escape.properties'),
      { since: mark },
    );
    assert.match(daemon.data.message, /PATH_OUTSIDE_ROOT/);
    await assert.rejects(access(path.join(f.dataDir, 'servers', 'escape.properties')), { code: 'ENOENT' });
    const dir = path.join(f.dataDir, 'servers', id);
    const json = JSON.parse(await readFile(path.join(dir, 'sub', 'app.json'), 'utf8'));
    assert.deepEqual(json, { name: 'first motd', net: { port } });
    // created by the Agent (root) but handed to the game's user, so the game can write its config
    assert.equal((await stat(path.join(dir, 'server.properties'))).uid, 1000);
    assert.equal((await stat(path.join(dir, 'sub'))).uid, 1000);

    // an update restarts the server: the files are rewritten with the new value before the start
    const m2 = f.panel.received.length;
    const upd = await f.panel.command('update_server', { environment: { MOTD: 'second' } }, { serverId: id });
    assert.equal(upd.success, true, JSON.stringify(upd.error));
    await log(id, 'motd=second', m2);
    await f.panel.command('delete_server', {}, { serverId: id });
  });

  it('over the disk limit while running: a console line, then the server is stopped', async () => {
    const id = uid('disk-');
    const mark = f.panel.received.length;
    const res = await f.panel.command('create_server', {
      serverId: id,
      eggConfig: egg(
        `echo ready; sleep 1; dd if=/dev/zero of=/home/container/big bs=1024 count=3072 2>/dev/null; echo written; ${LOOP}`,
        { limits: { disk: '1m' }, done: 'ready', stop: 'exit' },
      ),
    });
    assert.equal(res.success, true, JSON.stringify(res.error));
    assert.equal((await f.panel.command('start_server', {}, { serverId: id })).success, true);
    await status(id, 'running', mark);
    await log(id, 'written', mark);
    const line = await f.panel.waitEvent(
      'server_log',
      (d) =>
        d.serverId === id && d.stream === 'daemon' && /exceeding the assigned disk space/.test(d.message),
      { since: mark },
    );
    assert.equal(line.data.stream, 'daemon');
    await status(id, 'stopping', mark);
    const off = await status(id, 'offline', mark);
    assert.equal(off.data.previousStatus, 'stopping');
    // and it cannot be started again while over the limit
    const again = await f.panel.command('start_server', {}, { serverId: id });
    assert.equal(again.error?.code, 'INSUFFICIENT_RESOURCES');
    await f.panel.command('delete_server', {}, { serverId: id });
  });
});
