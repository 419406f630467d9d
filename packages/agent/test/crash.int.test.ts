/** Crash detection, automatic restart and the crash-loop guard, against the real Docker Engine. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { docker, egg, type Fixture, fixture, sleep, uid } from './helpers.ts';

let f: Fixture;
before(async () => {
  f = await fixture({ env: { AGENT_CRASH_TIMEOUT: '60' } });
  await f.panel.waitConnected();
});
after(() => f.cleanup());

test('an exit nobody asked for is a crash, restarted once, then the loop guard holds', async () => {
  const id = uid('crash-');
  const created = await f.panel.command('create_server', {
    serverId: id,
    eggConfig: egg('echo hi; sleep 0.3; exit 3'),
  });
  assert.equal(created.success, true, JSON.stringify(created.error));
  const started = await f.panel.command('start_server', {}, { serverId: id });
  assert.equal(started.success, true);
  const first = await f.panel.waitEvent('server_crashed', (d) => d.serverId === id);
  assert.equal(first.data.exitCode, 3);
  assert.equal(first.data.restarting, true);
  assert.equal(first.data.oomKilled, false);
  // the automatic restart: crashed → starting → running, then it crashes again within 60 s
  const second = await f.panel.waitEvent('server_crashed', (d) => d.serverId === id && !d.restarting);
  assert.equal(second.data.exitCode, 3);
  const transitions = f.panel
    .events('server_status_changed')
    .filter((e) => e.data.serverId === id)
    .map((e) => `${e.data.previousStatus}>${e.data.currentStatus}`);
  assert.deepEqual(transitions, [
    'offline>starting',
    'starting>running',
    'running>crashed',
    'crashed>starting',
    'starting>running',
    'running>crashed',
  ]);
  // the guard held: no third start. A start would change StartedAt at once, before any crash
  // event could show it, so this does not depend on waiting long enough for a third crash.
  const startedAt = (await docker.getContainer(`cap-${id}`).inspect()).State.StartedAt;
  await sleep(800);
  const later = await docker.getContainer(`cap-${id}`).inspect();
  assert.equal(later.State.StartedAt, startedAt, 'the crash-loop guard let a third start through');
  assert.equal(later.State.Running, false);
  assert.equal(f.panel.events('server_crashed').filter((e) => e.data.serverId === id).length, 2);
  const st = await f.panel.command('get_status', {}, { serverId: id });
  assert.equal((st.data as { status: string }).status, 'crashed');
  // a user's start leaves crashed
  const again = await f.panel.command('start_server', {}, { serverId: id });
  assert.equal(again.success, true);
  await f.panel.waitEvent('server_crashed', (d) => d.serverId === id, {
    since: f.panel.received.length,
  });
});

test('with crashRestart false a crash is reported and not restarted', async () => {
  const id = uid('norestart-');
  await f.panel.command('create_server', { serverId: id, eggConfig: egg('exit 7', { crashRestart: false }) });
  await f.panel.command('start_server', {}, { serverId: id });
  const c = await f.panel.waitEvent('server_crashed', (d) => d.serverId === id);
  assert.equal(c.data.exitCode, 7);
  assert.equal(c.data.restarting, false);
});
