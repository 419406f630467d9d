/**
 * Split brain (issue 16 failover): a server the Panel failed over to another node must never run
 * on its old node again. The Agent is told with `fence_servers` (on connect, before anything
 * else): it stops the copy, moves its files aside (never deletes them) and refuses to start it,
 * also when it comes back from its own downtime with the server's container stopped behind it.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { docker, egg, type Fixture, fixture, sleep, uid, waitStatus } from '../helpers.ts';

let f: Fixture;
before(async () => {
  f = await fixture();
  await f.panel.waitConnected();
});
after(() => f.cleanup());

const LONG_RUNNING = egg('echo booting; sleep 0.2; echo READY; exec sleep 600', { done: 'READY' });
const fence = (serverId: string) => ({
  serverId,
  fencedAt: new Date().toISOString(),
  reason: 'failed over to node-b',
});

async function createAndStart(id: string): Promise<void> {
  const created = await f.panel.command('create_server', { serverId: id, eggConfig: LONG_RUNNING });
  assert.equal(created.success, true, JSON.stringify(created.error));
  await writeFile(path.join(f.dataDir, 'servers', id, 'world.dat'), 'the world');
  const since = f.panel.received.length;
  const started = await f.panel.command('start_server', {}, { serverId: id });
  assert.equal(started.success, true, JSON.stringify(started.error));
  await waitStatus(f, id, 'running', since);
}

async function containerOf(id: string) {
  return docker
    .getContainer(`cap-${id}`)
    .inspect()
    .catch(() => null);
}

async function fencedCopy(id: string): Promise<string> {
  const names = await readdir(path.join(f.dataDir, 'fenced'));
  const dir = names.find((n) => n.startsWith(`${id}-`) && !n.endsWith('.json'));
  assert.ok(dir, `no fenced copy of ${id} in ${names.join(', ')}`);
  return path.join(f.dataDir, 'fenced', dir);
}

test('a fence stops the running copy, moves its files aside and refuses to start it', async () => {
  const id = uid('fence-');
  await createAndStart(id);
  const r = await f.panel.command('fence_servers', { servers: [fence(id)] });
  assert.equal(r.success, true, JSON.stringify(r.error));
  const c = await containerOf(id);
  assert.ok(c === null || c.State.Running === false, 'the fenced copy still runs');
  // never deleted: the files are kept aside, byte for byte
  assert.equal(await readFile(path.join(await fencedCopy(id), 'world.dat'), 'utf8'), 'the world');
  for (const action of ['start_server', 'restart_server'] as const) {
    const refused = await f.panel.command(action, {}, { serverId: id });
    assert.equal(refused.success, false);
    assert.equal(refused.error?.code, 'SERVER_FENCED', action);
  }
  const again = await f.panel.command('create_server', { serverId: id, eggConfig: LONG_RUNNING });
  assert.equal(again.error?.code, 'SERVER_FENCED');
  assert.equal(await containerOf(id), null, 'a container came back');
});

test('after its downtime the Agent does not start a server fenced meanwhile (fence list first)', async () => {
  const id = uid('fenceboot-');
  await createAndStart(id);
  await f.agent.stop(); // leaves the game running
  const container = docker.getContainer(`cap-${id}`);
  await container.kill({ signal: 'SIGKILL' }); // stopped behind the Agent's back
  const stoppedAt = (await container.inspect()).State.StartedAt;
  // the Panel failed it over while the Agent was away: its list on connect names it
  f.panel.fenced = [fence(id)];
  const since = f.panel.received.length;
  await f.restartAgent();
  await f.panel.waitFor((m) => m.type === 'event' && m.event === 'agent_hello', 20_000, since);
  // a start after downtime would come within a few hundred ms; give it more than that
  await sleep(2000);
  const c = await containerOf(id);
  assert.ok(c === null || (c.State.Running === false && c.State.StartedAt === stoppedAt), 'started');
  const starts = f.panel.received
    .slice(since)
    .filter(
      (m) =>
        m.type === 'event' &&
        m.event === 'server_status_changed' &&
        (m.data as { serverId: string; currentStatus: string }).serverId === id &&
        (m.data as { currentStatus: string }).currentStatus === 'starting',
    );
  assert.deepEqual(starts, []);
  assert.equal(await readFile(path.join(await fencedCopy(id), 'world.dat'), 'utf8'), 'the world');
  const refused = await f.panel.command('start_server', {}, { serverId: id });
  assert.equal(refused.error?.code, 'SERVER_FENCED');
  f.panel.fenced = [];
});
