/** The server lifecycle through the Panel protocol, against the real Docker Engine. */
import assert from 'node:assert/strict';
import { stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { EventMessage, ResponseMessage, StatusData } from '@cap/protocol';
import { docker, egg, type Fixture, fixture, uid } from './helpers.ts';

const ECHO = 'echo ready; while read l; do echo "got:$l"; done';

describe('server lifecycle (real Docker)', () => {
  let f: Fixture;
  const id = uid('life-');
  let startedAt = 0;

  before(async () => {
    f = await fixture();
    await f.panel.waitConnected();
  });
  after(() => f.cleanup());

  const status = (to: string, since: number, serverId = id) =>
    f.panel.waitEvent('server_status_changed', (d) => d.serverId === serverId && d.currentStatus === to, {
      since,
    });

  it('creates a labelled, limited container running as uid 1000 with the startup', async () => {
    const res = await f.panel.command(
      'create_server',
      {
        serverId: id,
        eggConfig: egg(ECHO.replace('ready', '{{GREETING}}'), {
          environment: { GREETING: 'ready' },
          limits: { memory: '64m', cpu: 0.5 },
          done: 'ready',
          ports: {},
        }),
      },
      {},
    );
    assert.equal(res.success, true, JSON.stringify(res.error));
    const info = await docker.getContainer(`cap-${id}`).inspect();
    assert.equal(info.Config.Labels['ctrl-alt-play.server'], id);
    assert.equal(info.Config.Labels['ctrl-alt-play.node'], f.nodeId);
    assert.equal(info.Config.Labels['ctrl-alt-play.managed'], 'true');
    // the value travels in the environment; sh substitutes it after parsing the line
    // biome-ignore lint/suspicious/noTemplateCurlyInString: ${VAR} is shell syntax here, not a template
    assert.deepEqual(info.Config.Cmd, ['/bin/sh', '-c', ECHO.replace('ready', '${GREETING}')]);
    assert.ok(info.Config.Env.includes('GREETING=ready'));
    assert.equal(info.Config.User, '1000:1000');
    assert.equal(info.HostConfig.Memory, 64 * 1024 * 1024);
    assert.equal(info.HostConfig.NanoCpus, 0.5e9);
    assert.equal(info.HostConfig.PidsLimit, 512);
    assert.deepEqual(info.HostConfig.SecurityOpt, ['no-new-privileges']);
    assert.ok(
      (info.HostConfig.CapDrop as string[] | undefined)
        ?.map((c: string) => c.toLowerCase().replace(/^cap_/, ''))
        .includes('net_raw'),
    );
    assert.ok(info.Config.Env.includes('SERVER_MEMORY=64'));
    assert.ok(info.HostConfig.Binds?.[0]?.endsWith(`/servers/${id}:/home/container`));
    const def = await stat(path.join(f.dataDir, 'servers', `${id}.json`));
    assert.equal(def.mode & 0o777, 0o600);
    const again = await f.panel.command('create_server', { serverId: id, eggConfig: egg('true') });
    assert.equal(again.error?.code, 'SERVER_EXISTS');
  });

  it('starts: starting → running when the done line appears, console lines arrive', async () => {
    startedAt = Date.now();
    const mark = f.panel.received.length;
    const res = await f.panel.command('start_server', {}, { serverId: id });
    assert.equal(res.success, true, JSON.stringify(res.error));
    await status('starting', mark);
    const running = await status('running', mark);
    assert.equal(running.data.previousStatus, 'starting');
    await f.panel.waitEvent('server_log', (d) => d.serverId === id && d.message === 'ready', { since: mark });
    // a second start is idempotent
    const second = await f.panel.command('start_server', {}, { serverId: id });
    assert.equal(second.success, true);
  });

  it('send_command reaches stdin', async () => {
    const mark = f.panel.received.length;
    const res = await f.panel.command('send_command', { command: 'hello world' }, { serverId: id });
    assert.equal(res.success, true);
    await f.panel.waitEvent('server_log', (d) => d.serverId === id && d.message === 'got:hello world', {
      since: mark,
    });
    const bad = await f.panel.command('send_command', { command: 'a\nb' }, { serverId: id });
    assert.equal(bad.error?.code, 'CONFIG_INVALID');
  });

  it('reports resource_update and get_status', async () => {
    const mark = f.panel.received.length;
    const ru = (await f.panel.waitEvent(
      'resource_update',
      // uptime is whole seconds since the start: one that stays 0 never matches
      (d) => d.serverId === id && d.memory.usedBytes > 0 && d.uptime >= 1,
      { since: mark },
    )) as EventMessage<'resource_update'>;
    assert.equal(ru.data.memory.limitBytes, 64 * 1024 * 1024);
    assert.ok(ru.data.uptime <= Math.ceil((Date.now() - startedAt) / 1000) + 1, `uptime ${ru.data.uptime} s`);
    // a quiet container may legitimately have received nothing: a count, not NaN or a fraction
    assert.ok(Number.isSafeInteger(ru.data.network.rx) && ru.data.network.rx >= 0);
    const st = await f.panel.command('get_status', {}, { serverId: id });
    const data = st.data as StatusData;
    assert.equal(data.status, 'running');
    assert.equal(data.resources.memory.limitBytes, 64 * 1024 * 1024);
  });

  it('lists and reads files inside the server directory only', async () => {
    const dir = path.join(f.dataDir, 'servers', id);
    await writeFile(path.join(dir, 'eula.txt'), 'eula=true\n');
    await symlink('/etc/passwd', path.join(dir, 'passwd'));
    const list = await f.panel.command('list_files', { path: '/' }, { serverId: id });
    assert.ok((list.data as { entries: { name: string }[] }).entries.some((e) => e.name === 'eula.txt'));
    const file = await f.panel.command('get_file', { path: 'eula.txt' }, { serverId: id });
    assert.equal((file.data as { content: string }).content, 'eula=true\n');
    const dots = await f.panel.command('get_file', { path: '../../credentials.json' }, { serverId: id });
    assert.equal(dots.error?.code, 'PATH_OUTSIDE_ROOT');
    const link = await f.panel.command('get_file', { path: 'passwd' }, { serverId: id });
    assert.equal(link.error?.code, 'PATH_OUTSIDE_ROOT');
    const missing = await f.panel.command('get_file', { path: 'nope' }, { serverId: id });
    assert.equal(missing.error?.code, 'FILE_NOT_FOUND');
  });

  it('stop with a timeout: SIGTERM is ignored by PID 1, so it is killed when the timeout passes', async () => {
    const mark = f.panel.received.length;
    const t0 = Date.now();
    const res = await f.panel.command('stop_server', { signal: 'SIGTERM', timeout: 1 }, { serverId: id });
    assert.equal(res.success, true, JSON.stringify(res.error));
    const took = Date.now() - t0;
    assert.ok(took >= 900 && took < 10_000, `stop took ${took} ms`);
    await status('stopping', mark);
    await status('offline', mark);
    assert.equal((await docker.getContainer(`cap-${id}`).inspect()).State.Running, false);
    assert.equal(f.panel.events('server_crashed').length, 0);
  });

  it('restart and kill', async () => {
    let mark = f.panel.received.length;
    const started = await f.panel.command('start_server', {}, { serverId: id });
    assert.equal(started.success, true);
    await status('running', mark);
    mark = f.panel.received.length;
    const res = await f.panel.command('restart_server', { timeout: 0 }, { serverId: id });
    assert.equal(res.success, true, JSON.stringify(res.error));
    await status('offline', mark);
    await status('running', mark);
    mark = f.panel.received.length;
    const killed = await f.panel.command('kill_server', {}, { serverId: id });
    assert.equal(killed.success, true);
    await status('offline', mark);
    assert.equal((await docker.getContainer(`cap-${id}`).inspect()).State.Running, false);
    const notRunning = await f.panel.command('send_command', { command: 'x' }, { serverId: id });
    assert.equal(notRunning.error?.code, 'NOT_RUNNING');
    assert.equal(f.panel.events('server_crashed').length, 0);
  });

  it('kill does not wait for the power lock (a stop with a long timeout is in progress)', async () => {
    let mark = f.panel.received.length;
    await f.panel.command('start_server', {}, { serverId: id });
    await status('running', mark);
    mark = f.panel.received.length;
    const stop = f.panel.command('stop_server', { timeout: 120 }, { serverId: id });
    await status('stopping', mark);
    const t0 = Date.now();
    const killed = await f.panel.command('kill_server', {}, { serverId: id });
    assert.equal(killed.success, true);
    assert.ok(Date.now() - t0 < 10_000);
    const stopped = await stop;
    assert.equal(stopped.success, true);
    await status('offline', mark);
  });

  it('update_server recreates the container with the new environment and starts it again', async () => {
    let mark = f.panel.received.length;
    await f.panel.command('start_server', {}, { serverId: id });
    await status('running', mark);
    const before = await docker.getContainer(`cap-${id}`).inspect();
    mark = f.panel.received.length;
    const res = await f.panel.command(
      'update_server',
      { environment: { GREETING: 'hello-again' }, done: 'hello-again', stopTimeout: 0 },
      { serverId: id },
    );
    assert.equal(res.success, true, JSON.stringify(res.error));
    assert.equal((res.data as { status: string }).status, 'running');
    const afterInfo = await docker.getContainer(`cap-${id}`).inspect();
    assert.notEqual(afterInfo.Id, before.Id);
    assert.ok(afterInfo.Config.Env.includes('GREETING=hello-again'));
    assert.equal(afterInfo.State.Running, true);
    await f.panel.waitEvent('server_log', (d) => d.serverId === id && d.message === 'hello-again', {
      since: mark,
    });
    const stages = f.panel
      .events('server_update_progress')
      .filter((e) => e.data.serverId === id)
      .map((e) => e.data.stage);
    assert.deepEqual(stages, ['validating', 'stopping', 'recreating', 'starting', 'waiting_ready', 'done']);
    const bad = await f.panel.command('update_server', { limits: { memory: 'lots' } } as never, {
      serverId: id,
    });
    assert.equal(bad.error?.code, 'CONFIG_INVALID');
  });

  it('delete removes the container, its files and definition', async () => {
    const res = await f.panel.command('delete_server', {}, { serverId: id });
    assert.equal(res.success, true, JSON.stringify(res.error));
    await assert.rejects(
      docker.getContainer(`cap-${id}`).inspect(),
      (e: { statusCode?: number }) => e.statusCode === 404,
    );
    await assert.rejects(stat(path.join(f.dataDir, 'servers', id)));
    await assert.rejects(stat(path.join(f.dataDir, 'servers', `${id}.json`)));
    const gone = await f.panel.command('get_status', {}, { serverId: id });
    assert.equal(gone.error?.code, 'SERVER_NOT_FOUND');
  });

  it('answers every bad command with one response and a code', async () => {
    const codeOf = async (raw: object) => {
      const cid = uid('c');
      const wait = f.panel.waitFor<ResponseMessage>((m) => m.type === 'response' && m.id === cid);
      f.panel.sendRaw(
        JSON.stringify({ id: cid, type: 'command', timestamp: new Date().toISOString(), ...raw }),
      );
      return (await wait).error?.code;
    };
    assert.equal(await codeOf({ action: 'launch_rockets', payload: {} }), 'UNKNOWN_ACTION');
    assert.equal(await codeOf({ action: 'start_server', payload: {} }), 'CONFIG_INVALID'); // no serverId
    assert.equal(await codeOf({ action: 'start_server', serverId: 'nope', payload: {} }), 'SERVER_NOT_FOUND');
    assert.equal(
      await codeOf({ action: 'create_server', payload: { serverId: 'x', eggConfig: { name: 'x' } } }),
      'CONFIG_INVALID',
    );
    assert.equal(
      await codeOf({ action: 'stop_server', serverId: 'nope', payload: { signal: 'SIGNOPE' } }),
      'CONFIG_INVALID',
    );
    assert.equal(
      await codeOf({ action: 'send_command', serverId: 'nope', payload: { command: 'x' } }),
      'SERVER_NOT_FOUND',
    );
    // not JSON: answered with INVALID_MESSAGE and id 'unknown'
    const waitBad = f.panel.waitFor<ResponseMessage>((m) => m.type === 'response' && m.id === 'unknown');
    f.panel.sendRaw('{not json');
    assert.equal((await waitBad).error?.code, 'INVALID_MESSAGE');
    const missingImage = await f.panel.command('create_server', {
      serverId: uid('img-'),
      eggConfig: { name: 'x', image: 'ctrl-alt-play/does-not-exist:latest', startup: 'true' },
    });
    assert.equal(missingImage.error?.code, 'DOCKER_ERROR');
    assert.deepEqual(f.panel.invalid, []);
  });

  it('publishes ports and reports a port conflict as PORT_CONFLICT', async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const a = uid('pa-');
    const b = uid('pb-');
    for (const s of [a, b]) {
      const r = await f.panel.command('create_server', {
        serverId: s,
        eggConfig: egg('sleep 1000', { ports: { '25565/tcp': { hostPort: port, hostIp: '127.0.0.1' } } }),
      });
      assert.equal(r.success, true, JSON.stringify(r.error));
    }
    const info = await docker.getContainer(`cap-${a}`).inspect();
    assert.deepEqual(info.HostConfig.PortBindings?.['25565/tcp'], [
      { HostIp: '127.0.0.1', HostPort: String(port) },
    ]);
    assert.equal((await f.panel.command('start_server', {}, { serverId: a })).success, true);
    const second = await f.panel.command('start_server', {}, { serverId: b });
    assert.equal(second.error?.code, 'PORT_CONFLICT');
    assert.equal((await f.panel.command('delete_server', {}, { serverId: a })).success, true);
    assert.equal((await f.panel.command('delete_server', {}, { serverId: b })).success, true);
  });

  it('refuses to start a server over its disk limit with INSUFFICIENT_RESOURCES', async () => {
    const s = uid('disk-');
    await f.panel.command('create_server', {
      serverId: s,
      eggConfig: egg('sleep 1000', { limits: { disk: '1m' } }),
    });
    await writeFile(path.join(f.dataDir, 'servers', s, 'world.dat'), Buffer.alloc(2 * 1024 * 1024));
    const res = await f.panel.command('start_server', {}, { serverId: s });
    assert.equal(res.error?.code, 'INSUFFICIENT_RESOURCES');
    assert.equal((await f.panel.command('delete_server', {}, { serverId: s })).success, true);
  });

  it('system_info describes the machine', async () => {
    const res = await f.panel.command('system_info', {});
    const d = res.data as {
      kernel: string;
      dockerVersion: string;
      cpus: number;
      memory: { total: number };
      images?: string[];
    };
    assert.ok(d.kernel.length > 0);
    assert.match(d.dockerVersion, /^\d+\./);
    assert.ok(d.cpus >= 1);
    assert.ok(d.memory.total > 0);
    // the images here, for automatic placement (issue 16)
    assert.ok(d.images?.includes('ctrl-alt-play/busybox:latest'), JSON.stringify(d.images));
    // no AGENT_API_KEY here: its HTTP API serves no transfer tickets, and it says so
    assert.equal((res.data as { transfers?: boolean }).transfers, false);
  });
});
