/**
 * Fault: the Panel process (one replica, SQLite) is frozen 1.5 s (SIGSTOP: what the Agent sends
 * meanwhile waits unread in its socket) and killed with SIGKILL while an operation runs,
 * then started again on the same data and port (issue 15 item 3; the two-replica kill is the
 * failover suite's). The game servers keep running, the Agent is back soon after the Panel is up,
 * the operation in flight ends as completed or failed (never open for ever, never run twice), and
 * no command is lost or run twice.
 *
 * Second case: two replicas on a private PostgreSQL and NATS; the one leading the periodic jobs
 * (PgLeaderLock: an advisory lock per job) is killed with SIGKILL just before a schedule's slot is
 * due. The other takes the jobs over (its next round finds the locks free: PostgreSQL ends the
 * dead replica's session as its socket closes) and runs the slot, once. The takeover time is
 * printed.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, until } from '../../packages/panel/test/helpers.ts';
import {
  Client,
  CommandLedger,
  containerStarts,
  faultStack,
  figures,
  fileLines,
  hourlySchedule,
  leaderOf,
  lineAccount,
  locksHeld,
  type Proc,
  replicaStack,
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
    // frozen first (SIGSTOP), 1.5 s: the Agent's lines of that time sit in the process's socket
    // unread (under the Agent's 3 missed heartbeats, so it does not call the link dead), and the
    // kill takes them with it: the lines a dead Panel had received and not handled
    s.panel.child.kill('SIGSTOP');
    await sleep(1500);
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
    const lines = lineAccount(watcher, ledger);
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
      lines_seen: watcher.ticks.size,
      lines_missing: watcher.missing,
      lines_dropped_reported: watcher.dropped,
      lines_duplicated: watcher.duplicates,
      lines_resent_dropped: watcher.resent,
      lines_out_of_order: watcher.outOfOrder,
      lines_printed: lines.printed,
      lines_delivered: lines.delivered,
      lines_unaccounted: lines.unaccounted,
    });
    assert.equal(stopped, 0, 'the other server kept running, the same container');
    assert.equal(cmds.lost, 0);
    assert.equal(cmds.twice, 0);
    // the restart's end is never lost with the dead Panel: the Agent keeps it until a ping acks
    // it as stored and sends it again after the reconnect (it was OPERATION_LOST 4 runs in 5)
    assert.equal(opEnd.success, true, `the restart completed (${opEnd.stage} ${opEnd.errorCode ?? ''})`);
    // one boot for the create's start, one for the restart: a restart run twice would be three
    assert.equal(boots, 2, `the restart ran once (the restarted server booted ${boots} times)`);
    assert.equal(ops.filter((o) => o.kind === 'restart' || o.kind === 'restart_server').length, 1);
    assert.equal(watcher.duplicates, 0, 'no console line twice');
    // lines made while the Panel was dead wait in the Agent's outbox and arrive; what the dead
    // process had read and not handled is sent again (the Agent keeps lines until the Panel acks
    // them), and what it had published is skipped by the stored console marks (seq <= shown), or,
    // when the dead process stored its intent but perhaps not its publish (shown < seq <= intent),
    // published again flagged `resent` and dropped by number as the web console does: exact
    assert.equal(watcher.outOfOrder, 0, 'console lines in order');
    assert.equal(
      lines.unaccounted,
      0,
      `${lines.printed} printed = ${lines.delivered} delivered + ${lines.dropped} reported dropped + ${lines.unaccounted}`,
    );
    assert.equal(
      watcher.missing - watcher.dropped,
      0,
      `${watcher.missing} ticks missing, ${watcher.dropped} reported`,
    );
  });
});

describe('fault: the periodic-job leader replica kill -9 (two replicas, PostgreSQL, NATS)', () => {
  let stack: Awaited<ReturnType<typeof replicaStack>> | undefined;
  const replicas: { proc: Proc; url: string }[] = [];
  before(async () => {
    stack = await replicaStack('capf-ld');
    // one after the other (the first runs the migrations), each with its own data folder
    for (let i = 0; i < 2; i++) replicas.push(await stack.panel(stack.dir(`${i}-`), await freePort()));
  });
  after(async () => {
    await stack?.stop();
  });

  it('the other replica takes the jobs over; a schedule due in the gap runs once', async () => {
    const st = stack as NonNullable<typeof stack>;
    const q = st.db;
    // who leads the schedules (each replica tries at its first round, 5 s after its start)
    let leaderPid: number | null = null;
    await until(async () => {
      leaderPid = await leaderOf(q, 'schedules');
      return leaderPid !== null;
    }, 60_000);
    const leader = replicas.find((r) => r.proc.pid === leaderPid);
    const survivor = replicas.find((r) => r.proc.pid !== leaderPid);
    assert.ok(leader && survivor, `the leader ${leaderPid} is one of ours`);
    // the Agent on the survivor: the schedule's command must reach it after the leader is gone
    const client = new Client(survivor.url);
    await client.login();
    const node = await client.node('capf-ld-node');
    st.agent(survivor.url, node);
    await until(() => client.online(node.id), 60_000);
    const serverId = await client.tickServer(node.id, 'ld-1');
    const scheduleId = await hourlySchedule(client, serverId, 'flt hourly');
    const jobsBefore = await locksHeld(q);

    // its slot falls due 1.5 s after the leader dies: in the gap, before the survivor leads
    const dueInMs = 1500;
    const killedAt = Date.now();
    await q.query('UPDATE schedules SET next_run_at = $1 WHERE id = $2', [
      new Date(killedAt + dueInMs).toISOString(),
      scheduleId,
    ]);
    await leader.proc.kill9();
    const takeoverMs = await timeUntil(
      async () => (await leaderOf(q, 'schedules')) === survivor.proc.pid,
      60_000,
    );
    let runs: { trigger: string; state: string; startedAt?: string }[] = [];
    await until(async () => {
      runs =
        (await client.api('GET', `/api/servers/${serverId}/schedules/${scheduleId}/runs`)).body?.runs ?? [];
      return runs.length > 0 && runs.every((r) => r.state !== 'running');
    }, 60_000);
    const ranAfterKillMs = Date.parse(runs[0]?.startedAt ?? '') - killedAt;
    // a second round (the schedule tick is 5 s) must not run the slot again
    await sleep(7000);
    runs =
      (await client.api('GET', `/api/servers/${serverId}/schedules/${scheduleId}/runs`)).body?.runs ?? [];
    const ran = fileLines(path.join(st.agentDir, 'servers', serverId, 'cmds.log')).filter(
      (c) => c === 'flt-scheduled',
    ).length;
    const jobsAfter = await locksHeld(q);
    figures('leader-kill9', {
      schedule_due_after_kill_ms: dueInMs,
      takeover_ms: takeoverMs,
      schedule_ran_after_kill_ms: ranAfterKillMs,
      runs: runs.length,
      run_state: runs[0]?.state ?? '-',
      command_ran_times: ran,
      jobs_led_by_killed_before: jobsBefore.get(leader.proc.pid) ?? 0,
      jobs_led_by_survivor_before: jobsBefore.get(survivor.proc.pid) ?? 0,
      jobs_led_by_survivor_after: jobsAfter.get(survivor.proc.pid) ?? 0,
      jobs_led_by_killed_after: jobsAfter.get(leader.proc.pid) ?? 0,
    });
    assert.equal(await leaderOf(q, 'schedules'), survivor.proc.pid, 'the survivor leads the schedules');
    assert.equal(jobsAfter.get(leader.proc.pid) ?? 0, 0, 'the dead replica holds no lock');
    assert.ok(
      (jobsAfter.get(survivor.proc.pid) ?? 0) >= (jobsBefore.get(leader.proc.pid) ?? 0),
      'every job the dead replica led is led by the survivor',
    );
    assert.equal(runs.length, 1, JSON.stringify(runs));
    assert.equal(runs[0]?.trigger, 'schedule');
    assert.equal(runs[0]?.state, 'completed', JSON.stringify(runs[0]));
    assert.equal(ran, 1, 'the scheduled command ran once');
  });
});
