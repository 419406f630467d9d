/**
 * Attack class: fork bomb (Wings GHSA-jj6m-r8jc-2gp7 / CVE-2021-32699: no PID limit). A game
 * server forks without end; the Agent's own limits (PIDs 512, memory) must hold it inside its
 * container, the host and the Agent must keep working, and a kill must end it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { DEFAULT_PIDS_LIMIT } from '../../src/environment/docker/container-spec.ts';
import { docker, egg, type Fixture, fixture, sleep, uid, waitStatus } from '../helpers.ts';

const run = promisify(execFile);
/** the classic `:(){ :|:& };:`, in a form busybox sh parses; it prints once so we know it began */
const BOMB = 'echo bomb-armed; b() { b | b & }; b; sleep 1000';

describe('fork bomb', () => {
  let f: Fixture;
  const id = uid('bomb-');

  before(async () => {
    f = await fixture();
    await f.panel.waitConnected();
  });
  after(() => f.cleanup());

  it('is held at the PIDs limit; host and Agent stay responsive; kill ends it', async () => {
    const res = await f.panel.command('create_server', {
      serverId: id,
      eggConfig: egg(BOMB, { limits: { memory: '256m' }, done: 'bomb-armed' }),
    });
    assert.equal(res.success, true, JSON.stringify(res.error));
    const container = docker.getContainer(`cap-${id}`);
    // Never start a bomb without a limit: a regression here must fail, not take the host down.
    const spec = await container.inspect();
    assert.equal(spec.HostConfig.PidsLimit, DEFAULT_PIDS_LIMIT);
    assert.ok(DEFAULT_PIDS_LIMIT > 0 && DEFAULT_PIDS_LIMIT <= 1024);
    assert.equal(spec.HostConfig.Memory, 256 * 1024 * 1024);

    const mark = f.panel.received.length;
    const started = await f.panel.command('start_server', {}, { serverId: id });
    assert.equal(started.success, true, JSON.stringify(started.error));
    await waitStatus(f, id, 'running', mark);

    // wait until the bomb presses against the limit (a loaded 2-core CI once saw 23 pids after
    // 20 s: the bomb's shells fork slowly when the host is busy, so it gets a minute)
    let pids = 0;
    let limit: number | undefined;
    const t0 = Date.now();
    while (Date.now() - t0 < 60_000) {
      const st = (await container.stats({ stream: false })) as {
        pids_stats?: { current?: number; limit?: number };
      };
      pids = st.pids_stats?.current ?? 0;
      limit = st.pids_stats?.limit;
      if (pids >= DEFAULT_PIDS_LIMIT * 0.9) break;
      await sleep(200);
    }
    assert.ok(pids >= DEFAULT_PIDS_LIMIT * 0.9, `the bomb did not spread (${pids} pids): it tested nothing`);
    assert.ok(
      pids <= DEFAULT_PIDS_LIMIT,
      `${pids} processes in a container limited to ${DEFAULT_PIDS_LIMIT}`,
    );
    if (limit !== undefined && limit > 0) assert.equal(limit, DEFAULT_PIDS_LIMIT);

    // the host can still fork and exec, and the Agent still answers
    const host = await run('/bin/sh', [
      '-c',
      'for i in 1 2 3 4 5 6 7 8; do /bin/true & done; wait; echo alive',
    ]);
    assert.equal(host.stdout.trim(), 'alive');
    const status = await f.panel.command('get_status', {}, { serverId: id });
    assert.equal((status.data as { status: string }).status, 'running');
    const health = await fetch(`http://127.0.0.1:${f.agent.httpPort}/health`);
    assert.equal(health.status, 200);

    const killMark = f.panel.received.length;
    const killed = await f.panel.command('kill_server', {}, { serverId: id });
    assert.equal(killed.success, true, JSON.stringify(killed.error));
    await waitStatus(f, id, 'offline', killMark);
    assert.equal((await container.inspect()).State.Running, false);
    assert.equal((await f.panel.command('delete_server', {}, { serverId: id })).success, true);
  });
});
