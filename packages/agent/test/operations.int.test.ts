/**
 * Operations (issue 9 item 1, seed 003 "Command Acknowledgment"), against the real Docker Engine:
 * a long action asked with an operationId is acknowledged at once and reported by events; a
 * second power action while one runs is SERVER_BUSY at once; kill pre-empts a hanging stop;
 * an Agent restart in the middle of an operation ends it as AGENT_RESTARTED; the Agent's own
 * starts (after a crash, after its downtime) take the same try-lock.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Environment } from '../src/environment/environment.ts';
import { docker, egg, type Fixture, fixture, uid, waitStatus } from './helpers.ts';

// sh as PID 1 with TERM ignored: only the kill after the stop timeout ends it
const IGNORES_TERM = egg('trap "" TERM; echo up; while true; do sleep 1; done', { stopTimeout: 120 });

describe('operations (real Docker)', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture();
    await f.panel.waitConnected();
  });
  after(() => f.cleanup());

  async function running(id: string): Promise<void> {
    const created = await f.panel.command('create_server', { serverId: id, eggConfig: IGNORES_TERM });
    assert.equal(created.success, true, JSON.stringify(created.error));
    const since = f.panel.received.length;
    const started = await f.panel.command('start_server', {}, { serverId: id });
    assert.equal(started.success, true, JSON.stringify(started.error));
    await waitStatus(f, id, 'running', since);
  }

  const completed = (operationId: string, since: number, timeoutMs = 20_000) =>
    f.panel.waitEvent('operation_completed', (d) => d.operationId === operationId, { since, timeoutMs });

  it('a stop is acknowledged at once; a second action is SERVER_BUSY; kill pre-empts the stop', async () => {
    const id = uid('ops-');
    await running(id);
    const since = f.panel.received.length;
    const t0 = Date.now();
    const ack = await f.panel.command('stop_server', {}, { serverId: id, operationId: `op-stop-${id}` });
    assert.ok(Date.now() - t0 < 2000, `ack took ${Date.now() - t0} ms`);
    assert.equal(ack.success, true, JSON.stringify(ack.error));
    assert.equal(ack.message, 'Server stop command received');
    assert.deepEqual(ack.data, { operationId: `op-stop-${id}`, status: 'accepted', serverId: id });
    const stage = await f.panel.waitEvent(
      'operation_progress',
      (d) => d.operationId === `op-stop-${id}` && d.stage === 'stopping',
      { since },
    );
    assert.match(stage.data.message ?? '', /kill after 120 s/);

    const busy = await f.panel.command('start_server', {}, { serverId: id, operationId: `op-start-${id}` });
    assert.equal(busy.success, false);
    assert.equal(busy.error?.code, 'SERVER_BUSY');
    const busyRestart = await f.panel.command('restart_server', {}, { serverId: id });
    assert.equal(busyRestart.error?.code, 'SERVER_BUSY');

    const kill = await f.panel.command('kill_server', {}, { serverId: id, operationId: `op-kill-${id}` });
    assert.equal(kill.success, true, JSON.stringify(kill.error));
    const stopEnd = await completed(`op-stop-${id}`, since);
    assert.equal(stopEnd.data.success, false);
    assert.equal(stopEnd.data.error?.code, 'OPERATION_SUPERSEDED');
    const killEnd = await completed(`op-kill-${id}`, since);
    assert.equal(killEnd.data.success, true, JSON.stringify(killEnd.data.error));
    assert.equal(killEnd.data.action, 'kill_server');
    assert.equal((await docker.getContainer(`cap-${id}`).inspect()).State.Running, false);
    // the busy start never ran
    assert.equal(
      f.panel.events('operation_completed').filter((e) => e.data.operationId === `op-start-${id}`).length,
      0,
    );
    // after it, the server takes power actions again
    const again = await f.panel.command('start_server', {}, { serverId: id, operationId: `op-again-${id}` });
    assert.equal(again.success, true, JSON.stringify(again.error));
    assert.equal((await completed(`op-again-${id}`, since)).data.success, true);
  });

  it('an Agent restart in the middle of an operation ends it as AGENT_RESTARTED', async () => {
    const id = uid('opsr-');
    await running(id);
    const since = f.panel.received.length;
    const ack = await f.panel.command('stop_server', {}, { serverId: id, operationId: `op-cut-${id}` });
    assert.equal(ack.success, true, JSON.stringify(ack.error));
    await f.panel.waitEvent(
      'operation_progress',
      (d) => d.operationId === `op-cut-${id}` && d.stage === 'stopping',
      {
        since,
      },
    );
    // accepted operations are on disk while they run
    const stored = JSON.parse(await readFile(path.join(f.dataDir, 'operations.json'), 'utf8'));
    assert.deepEqual(
      stored.map((o: { operationId: string }) => o.operationId),
      [`op-cut-${id}`],
    );
    await f.restartAgent();
    const end = await completed(`op-cut-${id}`, since);
    assert.equal(end.data.success, false);
    assert.equal(end.data.error?.code, 'AGENT_RESTARTED');
    assert.equal(end.data.action, 'stop_server');
    // reported once: the file is emptied
    const after = JSON.parse(await readFile(path.join(f.dataDir, 'operations.json'), 'utf8'));
    assert.deepEqual(after, []);
  });
});

/**
 * The servers' environment with the start of chosen instances held until the test lets it go, so
 * an Agent-own start (after a crash, after downtime) can be caught while it holds the lock.
 */
class HeldStarts {
  readonly #held = new Map<string, { reached: () => void; release: Promise<void> }>();

  /** The next start of instance `containerId` waits for `release()`; `reached` resolves when it does. */
  hold(containerId: string): { reached: Promise<void>; release: () => void } {
    let reached!: () => void;
    let release!: () => void;
    const r = new Promise<void>((res) => {
      reached = res;
    });
    const gate = new Promise<void>((res) => {
      release = res;
    });
    this.#held.set(containerId, { reached, release: gate });
    return { reached: r, release };
  }

  wrap = (env: Environment): Environment =>
    new Proxy(env, {
      get: (target, prop) => {
        if (prop === 'start')
          return async (id: string) => {
            const h = this.#held.get(id);
            if (h) {
              this.#held.delete(id);
              h.reached();
              await h.release;
            }
            return target.start(id);
          };
        const v = Reflect.get(target, prop, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
}

describe("the Agent's own power actions take the per-server try-lock (real Docker)", () => {
  let f: Fixture;
  const held = new HeldStarts();
  before(async () => {
    f = await fixture({ environment: held.wrap });
    await f.panel.waitConnected();
  });
  after(() => f.cleanup());

  const completed = (operationId: string, since: number, timeoutMs = 20_000) =>
    f.panel.waitEvent('operation_completed', (d) => d.operationId === operationId, { since, timeoutMs });

  /** While the Agent's own start is held: user actions are SERVER_BUSY, a kill pre-empts it. */
  async function busyThenKilled(id: string, gate: { release: () => void }, since: number): Promise<void> {
    const stop = await f.panel.command('stop_server', {}, { serverId: id, operationId: `op-stop-${id}` });
    assert.equal(stop.success, false, `a stop ran into the Agent's own start: ${JSON.stringify(stop)}`);
    assert.equal(stop.error?.code, 'SERVER_BUSY');
    assert.match(stop.error?.message ?? '', /kill pre-empts it/);
    const start = await f.panel.command('start_server', {}, { serverId: id, operationId: `op-start-${id}` });
    assert.equal(start.error?.code, 'SERVER_BUSY');
    const kill = await f.panel.command('kill_server', {}, { serverId: id, operationId: `op-kill-${id}` });
    assert.equal(kill.success, true, JSON.stringify(kill.error));
    gate.release(); // the held start goes on, then the kill's second round kills what it started
    const killEnd = await completed(`op-kill-${id}`, since);
    assert.equal(killEnd.data.success, true, JSON.stringify(killEnd.data.error));
    const st = await f.panel.command('get_status', {}, { serverId: id });
    assert.equal((st.data as { status: string }).status, 'offline');
    assert.equal((await docker.getContainer(`cap-${id}`).inspect()).State.Running, false);
    // the refused actions never ran
    for (const op of [`op-stop-${id}`, `op-start-${id}`])
      assert.equal(f.panel.events('operation_completed').filter((e) => e.data.operationId === op).length, 0);
    // free again afterwards
    const again = await f.panel.command('start_server', {}, { serverId: id, operationId: `op-again-${id}` });
    assert.equal(again.success, true, JSON.stringify(again.error));
    assert.equal((await completed(`op-again-${id}`, since)).data.success, true);
  }

  it('the restart after a crash: a stop meanwhile is SERVER_BUSY, a kill pre-empts it', async () => {
    const id = uid('own-crash-');
    const created = await f.panel.command('create_server', {
      serverId: id,
      eggConfig: egg('echo up; sleep 0.5; exit 3'),
    });
    assert.equal(created.success, true, JSON.stringify(created.error));
    const since = f.panel.received.length;
    const gate: { release: () => void } = { release: () => undefined };
    try {
      const started = await f.panel.command('start_server', {}, { serverId: id });
      assert.equal(started.success, true, JSON.stringify(started.error));
      const { Id } = await docker.getContainer(`cap-${id}`).inspect();
      const hold = held.hold(Id); // the next start of this container: the restart after the crash
      gate.release = hold.release;
      const crashed = await f.panel.waitEvent('server_crashed', (d) => d.serverId === id, { since });
      assert.equal(crashed.data.restarting, true);
      await hold.reached;
      await busyThenKilled(id, gate, since);
    } finally {
      gate.release();
    }
  });

  it('the stop over the disk limit: a restart meanwhile is SERVER_BUSY, a kill pre-empts it', async () => {
    const id = uid('own-disk-');
    // over the 1 MiB limit (not past 1.1 × it, which is killed at once), and deaf to SIGTERM:
    // the Agent's stop waits its 60 s
    const created = await f.panel.command('create_server', {
      serverId: id,
      eggConfig: egg(
        'trap "" TERM; echo ready; sleep 0.5; dd if=/dev/zero of=/home/container/big bs=1024 count=1080 2>/dev/null; echo written; while true; do sleep 1; done',
        { limits: { disk: '1m' }, done: 'ready' },
      ),
    });
    assert.equal(created.success, true, JSON.stringify(created.error));
    const since = f.panel.received.length;
    assert.equal((await f.panel.command('start_server', {}, { serverId: id })).success, true);
    await f.panel.waitEvent(
      'server_log',
      (d) =>
        d.serverId === id && d.stream === 'daemon' && /exceeding the assigned disk space/.test(d.message),
      { since },
    );
    await waitStatus(f, id, 'stopping', since);
    const restart = await f.panel.command('restart_server', {}, { serverId: id, operationId: `op-r-${id}` });
    assert.equal(restart.success, false, `a restart ran into the Agent's stop: ${JSON.stringify(restart)}`);
    assert.equal(restart.error?.code, 'SERVER_BUSY');
    assert.match(restart.error?.message ?? '', /disk limit/);
    const kill = await f.panel.command('kill_server', {}, { serverId: id, operationId: `op-kill-${id}` });
    assert.equal(kill.success, true, JSON.stringify(kill.error));
    const killEnd = await completed(`op-kill-${id}`, since);
    assert.equal(killEnd.data.success, true, JSON.stringify(killEnd.data.error));
    const st = await f.panel.command('get_status', {}, { serverId: id });
    assert.equal((st.data as { status: string }).status, 'offline');
    assert.equal((await docker.getContainer(`cap-${id}`).inspect()).State.Running, false);
    assert.equal(
      f.panel.events('operation_completed').filter((e) => e.data.operationId === `op-r-${id}`).length,
      0,
    );
  });

  it('the start after the Agent was down: a user action meanwhile is SERVER_BUSY, a kill pre-empts it', async () => {
    const id = uid('own-boot-');
    const created = await f.panel.command('create_server', {
      serverId: id,
      eggConfig: egg('echo up; exec sleep 600'),
    });
    assert.equal(created.success, true, JSON.stringify(created.error));
    const started = await f.panel.command('start_server', {}, { serverId: id });
    assert.equal(started.success, true, JSON.stringify(started.error));
    const container = docker.getContainer(`cap-${id}`);
    await f.agent.stop(); // leaves the game running
    await container.kill({ signal: 'SIGKILL' }); // dies while nobody watches
    const gate: { release: () => void } = { release: () => undefined };
    try {
      const hold = held.hold((await container.inspect()).Id);
      gate.release = hold.release;
      const since = f.panel.received.length;
      await f.restartAgent();
      await hold.reached; // the boot's start is held
      await f.panel.waitConnected();
      await waitStatus(f, id, 'starting', since);
      await busyThenKilled(id, gate, since);
    } finally {
      gate.release();
    }
  });
});
