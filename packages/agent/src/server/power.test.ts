/**
 * The power logic and the per-server try-lock, through the ServerManager on the in-memory
 * environment (environment/fake.ts): fast and exact about what interleaves. The same behaviour
 * against real Docker is in packages/agent/test/operations.int.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Command, command } from '@cap/protocol';
import pino from 'pino';
import { loadAgentConfig } from '../config/config.ts';
import { FakeEnvironment } from '../environment/fake.ts';
import type { ServerEvent } from './events.ts';
import { ServerManager } from './manager.ts';

const EGG = { name: 'fake', image: 'fake/image:1', startup: 'run' };

describe('power and the per-server try-lock (fake environment)', () => {
  let dataDir: string;
  let env: FakeEnvironment;
  let manager: ServerManager;
  const events: ServerEvent[] = [];
  let n = 0;

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'cap-power-'));
    const config = loadAgentConfig({
      PANEL_URL: 'ws://127.0.0.1:9',
      NODE_ID: 'node-fake',
      AGENT_SECRET: 'secret-secret',
      AGENT_DATA_DIR: dataDir,
      AGENT_STATS_INTERVAL_MS: '60000',
      // 50 lines a minute: what is past them is dropped and counted, never refilled in a test
      AGENT_LOG_THROTTLE_LINES: '50',
      AGENT_LOG_THROTTLE_INTERVAL_MS: '60000',
    });
    env = new FakeEnvironment();
    manager = new ServerManager({ env, config, logger: pino({ level: 'silent' }) });
    await manager.init();
    manager.events.onAny((e) => events.push(e));
  });
  after(async () => {
    await manager.shutdown();
    await rm(dataDir, { recursive: true, force: true });
  });

  const send = (
    action: Command['action'],
    payload: object,
    opts: { serverId?: string; operationId?: string } = {},
  ) =>
    manager.handleRaw({
      ...command(action, payload as never, { ...(opts.serverId ? { serverId: opts.serverId } : {}) }),
      ...(opts.operationId ? { operationId: opts.operationId } : {}),
    });

  const until = async (what: string, ok: () => boolean, ms = 2000) => {
    const end = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 2));
    }
  };

  const completedOf = (operationId: string) => {
    for (const e of events)
      if (e.type === 'operation_completed' && e.data.operationId === operationId) return e.data;
    return undefined;
  };

  async function runningServer(): Promise<string> {
    const id = `s${++n}`;
    const created = await send('create_server', { serverId: id, eggConfig: EGG }, { serverId: id });
    assert.equal(created.success, true, JSON.stringify(created.error));
    const started = await send('start_server', {}, { serverId: id });
    assert.equal(started.success, true, JSON.stringify(started.error));
    assert.equal(manager.servers.get(id)?.status, 'running');
    return id;
  }

  it('a restart after a crash holds the try-lock: stop is SERVER_BUSY, kill pre-empts it', async () => {
    const id = await runningServer();
    const held = env.holdStart(id);
    env.exit(env.of(id)!.id, 3); // a crash: restarted by policy
    await held.reached;
    assert.equal(manager.servers.get(id)?.status, 'starting');
    const stop = await send('stop_server', {}, { serverId: id, operationId: `stop-${id}` });
    assert.equal(stop.error?.code, 'SERVER_BUSY', JSON.stringify(stop));
    const restart = await send('restart_server', {}, { serverId: id });
    assert.equal(restart.error?.code, 'SERVER_BUSY');
    const kill = send('kill_server', {}, { serverId: id });
    held.release();
    const killed = await kill;
    assert.equal(killed.success, true, JSON.stringify(killed.error));
    assert.equal(manager.servers.get(id)?.status, 'offline');
    assert.equal(env.of(id)?.state.running, false);
    // the Agent's own action is no operation of the Panel's: no operation events for it
    const ops = events.filter(
      (e) => (e.type === 'operation_progress' || e.type === 'operation_completed') && e.data.serverId === id,
    );
    assert.ok(
      ops.every((e) => !String((e.data as { operationId: string }).operationId).startsWith('agent:')),
    );
    // free again
    assert.equal((await send('start_server', {}, { serverId: id })).success, true);
  });

  it('a crash inside a user operation is restarted after it ends, never inside it', async () => {
    const id = `s${++n}`;
    const egg = { ...EGG, done: 'READY' };
    assert.equal(
      (await send('create_server', { serverId: id, eggConfig: egg }, { serverId: id })).success,
      true,
    );
    const start = send('start_server', {}, { serverId: id });
    await until('starting', () => manager.servers.get(id)?.status === 'starting');
    env.print(id, 'READY\n');
    assert.equal((await start).success, true);
    await until('running', () => manager.servers.get(id)?.status === 'running');
    const seen: string[] = [];
    manager.events.onAny((e) => {
      if (e.data.serverId !== id) return;
      if (e.type === 'status') seen.push(e.data.currentStatus);
      if (e.type === 'operation_completed') seen.push(`completed:${e.data.success}`);
    });
    const ack = await send(
      'update_server',
      { environment: { A: '1' } },
      { serverId: id, operationId: `u-${id}` },
    );
    assert.equal(ack.success, true, JSON.stringify(ack.error));
    // the update stopped the server, made the instance again and started it: it waits for READY
    await until('the new instance', () => seen.includes('starting'));
    env.exit(env.of(id)!.id, 3); // crashes before it is ready: the update fails
    await until('the restart after the crash', () => seen.filter((s) => s === 'starting').length === 2);
    await until('the update to end', () => seen.includes('completed:false'));
    // deferred, not dropped: the restart by policy runs once the update has let go of the server
    assert.deepEqual(
      seen.filter((s) => !s.startsWith('completed')),
      ['stopping', 'offline', 'starting', 'crashed', 'starting'],
    );
  });

  it('game output is split into lines; a command goes to the stdin', async () => {
    const id = await runningServer();
    env.print(id, 'hello\nwor');
    env.print(id, 'ld\n');
    await until(
      'two lines',
      () => events.filter((e) => e.type === 'console' && e.data.serverId === id).length >= 2,
    );
    const lines = events
      .filter((e) => e.type === 'console' && e.data.serverId === id)
      .map((e) => (e.data as { message: string }).message);
    assert.deepEqual(lines, ['hello', 'world']);
    assert.equal((await send('send_command', { command: 'say hi' }, { serverId: id })).success, true);
    assert.deepEqual(env.of(id)?.stdin, ['say hi\n']);
  });

  it("the installer's output takes the console's path: line cap, throttle, drop count", async () => {
    const id = `s${++n}`;
    const install = { script: 'echo', container: 'fake/installer:1', entrypoint: 'sh' };
    const created = await send(
      'create_server',
      { serverId: id, eggConfig: { ...EGG, install } },
      { serverId: id },
    );
    assert.equal(created.success, true, JSON.stringify(created.error));
    assert.equal(manager.servers.get(id)?.status, 'installing');
    const installer = env.installerOf(id)!;
    // one line over the 8 KiB cap, then 59 more: 50 delivered, 10 dropped and counted
    installer.output.write(`${'x'.repeat(9000)}\n`);
    for (let i = 1; i < 60; i++) installer.output.write(`line ${i}\n`);
    installer.output.end('unfinished');
    await new Promise((r) => setImmediate(r));
    env.exit(installer.id, 0);
    await until('the install to end', () =>
      events.some((e) => e.type === 'install_completed' && e.data.serverId === id),
    );
    const lines = events
      .filter((e) => e.type === 'install_output' && e.data.serverId === id)
      .map((e) => (e.data as { message: string }).message);
    assert.equal(lines.length, 50);
    assert.equal(lines[0], `${'x'.repeat(8192)}… [truncated 808 bytes]`);
    assert.equal(lines[49], 'line 49');
    const dropped = events.filter((e) => e.type === 'console_dropped' && e.data.serverId === id);
    assert.deepEqual(
      dropped.map((e) => (e.data as { count: number }).count),
      [11], // lines 50…59 and the unfinished one, flushed when the stream ended
    );
    // the drop report comes before the end of the install
    const order = events
      .filter(
        (e) => e.data.serverId === id && (e.type === 'console_dropped' || e.type === 'install_completed'),
      )
      .map((e) => e.type);
    assert.deepEqual(order, ['console_dropped', 'install_completed']);
    assert.equal(manager.servers.get(id)?.status, 'offline');
  });

  it('a stop the game ignores is killed after its timeout: stages, no crash, the operation succeeds', async () => {
    const id = `s${++n}`;
    const egg = { ...EGG, stopTimeout: 1 };
    assert.equal(
      (await send('create_server', { serverId: id, eggConfig: egg }, { serverId: id })).success,
      true,
    );
    assert.equal((await send('start_server', {}, { serverId: id })).success, true);
    env.onSignal = (signal) => (signal === 'SIGKILL' ? 137 : null); // deaf to SIGTERM
    try {
      const ack = await send('stop_server', {}, { serverId: id, operationId: `st-${id}` });
      assert.equal(ack.success, true);
      await until(
        'the stop to end',
        () => events.some((e) => e.type === 'operation_completed' && e.data.operationId === `st-${id}`),
        5000,
      );
    } finally {
      env.onSignal = (signal) => (signal === 'SIGKILL' ? 137 : 0);
    }
    const mine = events.filter((e) => e.data.serverId === id);
    const stages = mine
      .filter((e) => e.type === 'operation_progress' && e.data.operationId === `st-${id}`)
      .map((e) => (e.data as { stage: string }).stage);
    assert.deepEqual(stages, ['accepted', 'stopping', 'killing', 'offline']);
    assert.equal(completedOf(`st-${id}`)?.success, true);
    assert.equal(mine.filter((e) => e.type === 'crashed').length, 0);
    assert.deepEqual(env.of(id)?.signals, ['SIGTERM', 'SIGKILL']);
  });

  it('a kill pre-empts a hanging stop: the stop is OPERATION_SUPERSEDED, a start meanwhile is SERVER_BUSY', async () => {
    const id = `s${++n}`;
    const egg = { ...EGG, stopTimeout: 600 };
    assert.equal(
      (await send('create_server', { serverId: id, eggConfig: egg }, { serverId: id })).success,
      true,
    );
    assert.equal((await send('start_server', {}, { serverId: id })).success, true);
    env.onSignal = (signal) => (signal === 'SIGKILL' ? 137 : null);
    try {
      assert.equal((await send('stop_server', {}, { serverId: id, operationId: `hs-${id}` })).success, true);
      await until('stopping', () => manager.servers.get(id)?.status === 'stopping');
      const busy = await send('start_server', {}, { serverId: id, operationId: `hb-${id}` });
      assert.equal(busy.error?.code, 'SERVER_BUSY');
      assert.match(busy.error?.message ?? '', /stop_server \(operation hs-/);
      const kill = await send('kill_server', {}, { serverId: id });
      assert.equal(kill.success, true, JSON.stringify(kill.error));
    } finally {
      env.onSignal = (signal) => (signal === 'SIGKILL' ? 137 : 0);
    }
    await until('the stop to end', () =>
      events.some((e) => e.type === 'operation_completed' && e.data.operationId === `hs-${id}`),
    );
    assert.equal(completedOf(`hs-${id}`)?.error?.code, 'OPERATION_SUPERSEDED');
    assert.equal(manager.servers.get(id)?.status, 'offline');
  });
});
