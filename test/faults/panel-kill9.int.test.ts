/**
 * Fault: the Panel process (one replica, SQLite) is killed with SIGKILL while an operation runs,
 * then started again on the same data and port (issue 15 item 3; the two-replica kill is the
 * failover suite's). The game servers keep running, the Agent is back soon after the Panel is up,
 * the operation in flight ends as completed or failed (never open for ever, never run twice), and
 * no command is lost or run twice.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { until } from '../../packages/panel/test/helpers.ts';
import {
  CommandLedger,
  containerStarts,
  faultStack,
  figures,
  fileLines,
  sleep,
  stoppedCount,
  TickWatcher,
  timeUntil,
} from './lib.ts';

describe('fault: Panel kill -9', () => {
  let stack: Awaited<ReturnType<typeof faultStack>> | undefined;
  let watcher: TickWatcher | undefined;
  before(async () => {
    stack = await faultStack('capf-p9');
  });
  after(async () => {
    watcher?.close();
    await stack?.stop();
  });

  it('the Agent is back, servers kept, the operation in flight ends once', async () => {
    const s = stack as NonNullable<typeof stack>;
    const { client } = s;
    const ids = [await client.tickServer(s.nodeId, 'p9-1'), await client.tickServer(s.nodeId, 'p9-2')];
    const [kept, restarted] = ids as [string, string];
    watcher = new TickWatcher(client.url, client.cookie, kept);
    await watcher.open();
    await watcher.nextTick(10_000);
    const ledger = new CommandLedger(client, kept, 'p9');
    for (let i = 0; i < 5; i++) assert.equal((await ledger.send()).status, 202);
    const before = await containerStarts(s.docker, [kept]);

    // a restart of the second server (its stop waits out stopTimeout 2 s), then the kill mid-way
    const op = await client.api('POST', `/api/servers/${restarted}/power`, { action: 'restart' });
    assert.equal(op.status, 202, JSON.stringify(op.body));
    const operationId = op.body.operationId as string;
    await sleep(300);
    await s.panel.kill9();
    const killedAt = Date.now();
    await sleep(2000);
    const panelUpMs = await s.startPanel();
    const upAt = Date.now();
    await until(() => client.online(s.nodeId), 60_000);
    const reconnectMs = Date.now() - upAt;
    const opEndMs = await timeUntil(
      async () => (await client.api('GET', `/api/operations/${operationId}`)).body?.finishedAt != null,
      60_000,
    );
    const opEnd = (await client.api('GET', `/api/operations/${operationId}`)).body;
    const statusMs = await timeUntil(
      async () => (await Promise.all(ids.map((id) => client.status(id)))).every((x) => x === 'running'),
      30_000,
    );
    const consoleMs = await watcher.nextTick(20_000);
    for (let i = 0; i < 5; i++) assert.equal((await ledger.send()).status, 202);
    await sleep(1500);
    const cmds = ledger.check(path.join(s.serverDir(kept), 'cmds.log'));
    const stopped = stoppedCount(before, await containerStarts(s.docker, [kept]));
    const boots = fileLines(path.join(s.serverDir(restarted), 'boots.log')).length;
    const ops = (await client.api('GET', `/api/servers/${restarted}/operations`)).body as { kind: string }[];
    figures('panel-kill9', {
      panel_down_ms: upAt - killedAt,
      panel_start_ms: panelUpMs,
      reconnect_ms: reconnectMs,
      op_end_ms: opEndMs,
      op_stage: opEnd.stage,
      op_success: String(opEnd.success),
      op_error: opEnd.errorCode ?? '-',
      restarted_server_boots: boots,
      status_running_ms: statusMs,
      console_back_ms: consoleMs,
      servers_stopped: stopped,
      commands_sent: cmds.sent,
      commands_lost: cmds.lost,
      commands_twice: cmds.twice,
      lines_missing: watcher.missing,
      lines_dropped_reported: watcher.dropped,
      lines_duplicated: watcher.duplicates,
    });
    assert.equal(stopped, 0, 'the other server kept running, the same container');
    assert.equal(cmds.lost, 0);
    assert.equal(cmds.twice, 0);
    assert.ok(opEnd.success === true || opEnd.success === false, 'the operation ended');
    // one boot for the create's start, one for the restart: a restart run twice would be three
    assert.ok(boots <= 2, `the restarted server booted ${boots} times`);
    if (opEnd.success) assert.equal(boots, 2, 'a restart reported done ran once');
    assert.equal(ops.filter((o) => o.kind === 'restart' || o.kind === 'restart_server').length, 1);
    assert.equal(watcher.duplicates, 0, 'no console line twice');
    // lines made while the Panel was dead are counted by the Agent's outbox; only what was in the
    // dead process's hands (under a second of output) may be missing without a count
    assert.ok(watcher.dropped > 0, 'the gap was reported as dropped lines');
    assert.ok(
      watcher.missing - watcher.dropped <= 10,
      `${watcher.missing} lines missing, ${watcher.dropped} reported dropped`,
    );
  });
});
