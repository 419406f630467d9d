/** The installer container (Wings' model) and reinstall, against the real Docker Engine. */
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { EventMessage } from '@cap/protocol';
import pino from 'pino';
import { startAgent } from '../src/agent.ts';
import { docker, egg, type Fixture, fixture, IMAGE, uid, waitStatus } from './helpers.ts';

const ECHO = 'echo ready; while read l; do echo "got:$l"; done';

/** A busybox install: CRLF line ends (as exported from Windows panels), output, a file, a pause. */
function installSpec(script: string) {
  return { script: script.replace(/\n/g, '\r\n'), container: IMAGE, entrypoint: 'sh' };
}

const GOOD = [
  'set -e',
  'echo "installing $GREETING as $(id -u)"',
  'cd /mnt/server',
  'echo "port=$SERVER_PORT" > installed.txt',
  'ls /mnt/install',
  'sleep 1',
  'echo install-done',
].join('\n');

describe('installer container (real Docker)', () => {
  let f: Fixture;

  before(async () => {
    f = await fixture({ env: { AGENT_CONTAINER_UID: '1000', AGENT_CONTAINER_GID: '1000' } });
    await f.panel.waitConnected();
  });
  after(() => f.cleanup());

  const status = (id: string, to: string, since: number) => waitStatus(f, id, to, since);
  const completed = (id: string, since: number, timeoutMs = 30_000) =>
    f.panel.waitEvent('install_completed', (d) => d.serverId === id, { since, timeoutMs }) as Promise<
      EventMessage<'install_completed'>
    >;

  it('create runs the install: responds installing, streams output, then offline; start meanwhile is refused', async () => {
    const id = uid('inst-');
    const mark = f.panel.received.length;
    const res = await f.panel.command('create_server', {
      serverId: id,
      eggConfig: egg(ECHO, {
        environment: { GREETING: 'hello' },
        ports: { '27015': 27015 },
        done: 'ready',
        // busybox sh as PID 1 ignores SIGTERM: the stop before the reinstall kills after 1 s
        stopTimeout: 1,
        install: installSpec(GOOD),
      }),
    });
    assert.equal(res.success, true, JSON.stringify(res.error));
    assert.equal((res.data as { status: string }).status, 'installing');
    await status(id, 'installing', mark);
    // the installer runs labelled, with the script and the server's files, and nothing else of the host
    const [inst] = await docker.listContainers({ filters: { label: [`ctrl-alt-play.install=${id}`] } });
    assert.ok(inst, 'installer container exists while installing');
    const info = await docker.getContainer(inst.Id).inspect();
    assert.deepEqual(info.Mounts.map((m) => m.Destination).sort(), ['/mnt/install', '/mnt/server']);
    assert.equal(info.HostConfig.Memory, 1024 * 1024 * 1024);
    assert.deepEqual(info.HostConfig.SecurityOpt, ['no-new-privileges']);
    assert.equal(info.Config.Labels['ctrl-alt-play.managed'], undefined);

    const early = await f.panel.command('start_server', {}, { serverId: id });
    assert.equal(early.error?.code, 'INVALID_STATE');

    const done = await completed(id, mark);
    assert.deepEqual(done.data, { serverId: id, success: true, exitCode: 0 });
    const lines = f.panel
      .events('install_output')
      .filter((e) => e.data.serverId === id)
      .map((e) => e.data.message);
    // CRLF was turned into LF: with \r left in, `set -e\r` would fail and "hello\r" would print
    assert.ok(lines.includes('installing hello as 0'), lines.join('|'));
    assert.ok(lines.includes('install.sh'));
    assert.ok(lines.includes('install-done'));
    const off = await status(id, 'offline', mark);
    assert.equal(off.data.previousStatus, 'installing');
    // removed afterwards; its files now belong to the game's user
    const left = await docker.listContainers({
      all: true,
      filters: { label: [`ctrl-alt-play.install=${id}`] },
    });
    assert.equal(left.length, 0);
    const file = path.join(f.dataDir, 'servers', id, 'installed.txt');
    assert.equal(await readFile(file, 'utf8'), 'port=27015\n');
    assert.equal((await stat(file)).uid, 1000);

    const start = await f.panel.command('start_server', {}, { serverId: id });
    assert.equal(start.success, true, JSON.stringify(start.error));
    await status(id, 'running', mark);

    // reinstall of a running server: stopped first, installed again, offline afterwards
    const m2 = f.panel.received.length;
    const re = await f.panel.command('reinstall_server', {}, { serverId: id });
    assert.equal(re.success, true, JSON.stringify(re.error));
    assert.equal((re.data as { status: string }).status, 'installing');
    await status(id, 'stopping', m2);
    const again = await completed(id, m2);
    assert.equal(again.data.success, true);
    await status(id, 'offline', m2);
    await f.panel.command('delete_server', {}, { serverId: id });
  });

  it('a failing install ends install_failed; start is refused; a fixed script and reinstall recover', async () => {
    const id = uid('instf-');
    const mark = f.panel.received.length;
    const res = await f.panel.command('create_server', {
      serverId: id,
      eggConfig: egg(ECHO, { done: 'ready', install: installSpec('echo failing\nexit 3') }),
    });
    assert.equal(res.success, true, JSON.stringify(res.error));
    const done = await completed(id, mark);
    assert.deepEqual(done.data, { serverId: id, success: false, exitCode: 3 });
    await status(id, 'install_failed', mark);
    const start = await f.panel.command('start_server', {}, { serverId: id });
    assert.equal(start.error?.code, 'INVALID_STATE');
    // kept across an Agent restart (the definition file records it)
    await f.restartAgent();
    await f.panel.waitConnected();
    const st = await f.panel.command('get_status', {}, { serverId: id });
    assert.equal((st.data as { status: string }).status, 'install_failed');

    const upd = await f.panel.command(
      'update_server',
      { install: installSpec('echo fixed') },
      { serverId: id },
    );
    assert.equal(upd.success, true, JSON.stringify(upd.error));
    const m2 = f.panel.received.length;
    const re = await f.panel.command('reinstall_server', {}, { serverId: id });
    assert.equal(re.success, true, JSON.stringify(re.error));
    assert.equal((await completed(id, m2)).data.success, true);
    await status(id, 'offline', m2);
    const ok = await f.panel.command('start_server', {}, { serverId: id });
    assert.equal(ok.success, true, JSON.stringify(ok.error));
    await f.panel.command('kill_server', {}, { serverId: id });
    await f.panel.command('delete_server', {}, { serverId: id });
  });

  it('stop during an install is refused; kill ends it as failed; delete removes the installer', async () => {
    const id = uid('instk-');
    const mark = f.panel.received.length;
    const script = 'echo long-install\nsleep 60';
    const res = await f.panel.command('create_server', {
      serverId: id,
      eggConfig: egg(ECHO, { install: installSpec(script) }),
    });
    assert.equal(res.success, true, JSON.stringify(res.error));
    await f.panel.waitEvent('install_output', (d) => d.serverId === id && d.message === 'long-install', {
      since: mark,
    });
    const stop = await f.panel.command('stop_server', {}, { serverId: id });
    assert.equal(stop.error?.code, 'INVALID_STATE');
    const again = await f.panel.command('reinstall_server', {}, { serverId: id });
    assert.equal(again.error?.code, 'INVALID_STATE');
    const kill = await f.panel.command('kill_server', {}, { serverId: id });
    assert.equal(kill.success, true, JSON.stringify(kill.error));
    const done = await completed(id, mark);
    assert.deepEqual(done.data, { serverId: id, success: false, exitCode: 137 });
    await status(id, 'install_failed', mark);

    const m2 = f.panel.received.length;
    assert.equal((await f.panel.command('reinstall_server', {}, { serverId: id })).success, true);
    await f.panel.waitEvent('install_output', (d) => d.serverId === id && d.message === 'long-install', {
      since: m2,
    });
    const del = await f.panel.command('delete_server', {}, { serverId: id });
    assert.equal(del.success, true, JSON.stringify(del.error));
    const left = await docker.listContainers({
      all: true,
      filters: { label: [`ctrl-alt-play.install=${id}`] },
    });
    assert.equal(left.length, 0);
  });

  it('reinstall without an install script is refused', async () => {
    const id = uid('noinst-');
    const res = await f.panel.command('create_server', { serverId: id, eggConfig: egg(ECHO) });
    assert.equal(res.success, true);
    assert.equal((res.data as { status: string }).status, 'offline');
    const re = await f.panel.command('reinstall_server', {}, { serverId: id });
    assert.equal(re.error?.code, 'CONFIG_INVALID');
  });

  it('an Agent restarted during an install finds the installer by its label and waits for it', async () => {
    const id = uid('instr-');
    const mark = f.panel.received.length;
    const res = await f.panel.command('create_server', {
      serverId: id,
      eggConfig: egg(ECHO, { install: installSpec('echo before\nsleep 3\necho after-restart\nexit 0') }),
    });
    assert.equal(res.success, true, JSON.stringify(res.error));
    await f.panel.waitEvent('install_output', (d) => d.serverId === id && d.message === 'before', {
      since: mark,
    });
    await f.restartAgent();
    await f.panel.waitConnected();
    const done = await completed(id, mark);
    assert.equal(done.data.success, true);
    // output after the reattach still streams
    await f.panel.waitEvent('install_output', (d) => d.serverId === id && d.message === 'after-restart', {
      since: mark,
    });
    const st = await f.panel.command('get_status', {}, { serverId: id });
    assert.equal((st.data as { status: string }).status, 'offline');
    const left = await docker.listContainers({
      all: true,
      filters: { label: [`ctrl-alt-play.install=${id}`] },
    });
    assert.equal(left.length, 0);
  });

  it('an install whose installer vanished while the Agent was away counts as failed', async () => {
    const id = uid('instv-');
    const mark = f.panel.received.length;
    const res = await f.panel.command('create_server', {
      serverId: id,
      eggConfig: egg(ECHO, { install: installSpec('echo started\nsleep 30') }),
    });
    assert.equal(res.success, true, JSON.stringify(res.error));
    await f.panel.waitEvent('install_output', (d) => d.serverId === id && d.message === 'started', {
      since: mark,
    });
    await f.agent.stop();
    const [inst] = await docker.listContainers({ filters: { label: [`ctrl-alt-play.install=${id}`] } });
    assert.ok(inst);
    await docker.getContainer(inst.Id).remove({ force: true });
    f.agent = await startAgent(f.config, { logger: pino({ level: 'silent' }) });
    await f.panel.waitConnected();
    const st = await f.panel.command('get_status', {}, { serverId: id });
    assert.equal((st.data as { status: string }).status, 'install_failed');
    const start = await f.panel.command('start_server', {}, { serverId: id });
    assert.equal(start.error?.code, 'INVALID_STATE');
  });
});
