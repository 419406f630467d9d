/**
 * Wings' reattach rule: a server whose container stopped while the Agent was down, and that was
 * last running/starting, is started again on boot; one the user stopped stays offline.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { docker, egg, type Fixture, fixture, sleep, uid, waitStatus } from './helpers.ts';

let f: Fixture;
before(async () => {
  f = await fixture();
  await f.panel.waitConnected();
});
after(() => f.cleanup());

const REASON = 'restarted after agent downtime';
// a done pattern, so the restart goes through done detection (starting → running on READY)
const LONG_RUNNING = egg('echo booting; sleep 0.2; echo READY; exec sleep 600', { done: 'READY' });

async function createAndStart(id: string): Promise<void> {
  const created = await f.panel.command('create_server', { serverId: id, eggConfig: LONG_RUNNING });
  assert.equal(created.success, true, JSON.stringify(created.error));
  const since = f.panel.received.length;
  const started = await f.panel.command('start_server', {}, { serverId: id });
  assert.equal(started.success, true, JSON.stringify(started.error));
  await waitStatus(f, id, 'running', since);
}

/** The definition file's `lastState` once it is `want` (written just after the status event). */
async function lastState(id: string, want: string): Promise<unknown> {
  let last: unknown;
  for (let i = 0; i < 100; i++) {
    const raw = JSON.parse(await readFile(path.join(f.dataDir, 'servers', `${id}.json`), 'utf8'));
    last = (raw as { lastState?: unknown }).lastState;
    if (last === want) break;
    await sleep(20);
  }
  return last;
}

test('a server stopped behind the Agent while it was down is started again on boot', async () => {
  const id = uid('boot-');
  await createAndStart(id);
  assert.equal(await lastState(id, 'running'), 'running');
  const container = docker.getContainer(`cap-${id}`);
  const before = (await container.inspect()).State.StartedAt;

  await f.agent.stop(); // leaves the game running
  assert.equal((await container.inspect()).State.Running, true);
  await container.kill({ signal: 'SIGKILL' }); // dies while nobody watches
  assert.equal((await container.inspect()).State.Running, false);

  const since = f.panel.received.length;
  await f.restartAgent();
  // the events were emitted before the link was up: queued, then delivered on connect
  const starting = await waitStatus(f, id, 'starting', since);
  assert.equal(starting.data.reason, REASON);
  await waitStatus(f, id, 'running', since);
  const after = (await container.inspect()).State;
  assert.equal(after.Running, true);
  assert.notEqual(after.StartedAt, before, 'the container was not started again');
  const st = await f.panel.command('get_status', {}, { serverId: id });
  assert.equal((st.data as { status: string }).status, 'running');
  // an Agent downtime restart is not a crash
  assert.equal(f.panel.events('server_crashed').filter((e) => e.data.serverId === id).length, 0);
});

test('a server the user stopped stays offline across an Agent restart', async () => {
  const id = uid('bootoff-');
  await createAndStart(id);
  const stopped = await f.panel.command('stop_server', { timeout: 1 }, { serverId: id });
  assert.equal(stopped.success, true, JSON.stringify(stopped.error));
  assert.equal(await lastState(id, 'offline'), 'offline');
  const container = docker.getContainer(`cap-${id}`);
  const before = (await container.inspect()).State;
  assert.equal(before.Running, false);

  const since = f.panel.received.length;
  await f.restartAgent();
  await f.panel.waitFor((m) => m.type === 'event' && m.event === 'agent_hello', 20_000, since);
  // a start would change StartedAt within a few hundred ms; give it more than that
  await sleep(1500);
  const later = (await container.inspect()).State;
  assert.equal(later.Running, false);
  assert.equal(later.StartedAt, before.StartedAt, 'a stopped server was started on boot');
  const starts = f.panel.received
    .slice(since)
    .filter(
      (m) =>
        m.type === 'event' &&
        m.event === 'server_status_changed' &&
        (m.data as { serverId: string }).serverId === id,
    );
  assert.deepEqual(starts, []);
  const st = await f.panel.command('get_status', {}, { serverId: id });
  assert.equal((st.data as { status: string }).status, 'offline');
});
