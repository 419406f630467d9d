/**
 * Fault: the Agent process is killed with SIGKILL and started again (issue 15 item 3). Its game
 * servers (containers on the shared Engine, prefixed capf-a9-: two busybox "games" and a real OpenTTD) keep running; commands sent while it
 * is away fail with AGENT_OFFLINE and never run later; the Agent re-adopts the servers; the figures
 * line gives the reconnect time.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CommandLedger,
  containerStarts,
  faultStack,
  figures,
  lineAccount,
  sleep,
  stoppedCount,
  TickWatcher,
  timeUntil,
} from './lib.ts';

describe('fault: Agent kill -9', () => {
  let stack: Awaited<ReturnType<typeof faultStack>> | undefined;
  let watcher: TickWatcher | undefined;
  const watchers: TickWatcher[] = [];
  before(async () => {
    stack = await faultStack('capf-a9');
  });
  after(async () => {
    watcher?.close();
    for (const w of watchers) w.close();
    await stack?.stop();
  });

  it('servers keep running, commands in the gap are refused and never run, the Agent re-adopts them', async () => {
    const s = stack as NonNullable<typeof stack>;
    const { client } = s;
    // two busybox "games" and a real one: OpenTTD from its built-in template (install, start)
    const [main, second, openttd] = await Promise.all([
      client.tickServer(s.nodeId, 'a9-1'),
      client.tickServer(s.nodeId, 'a9-2'),
      client.gameServer(s.nodeId, 'OpenTTD', { SERVER_NAME: 'fault agent-kill9' }),
    ]);
    const ids = [main, second, openttd];
    watcher = new TickWatcher(client.url, client.cookie, main);
    await watcher.open();
    await watcher.nextTick(10_000);
    const ledger = new CommandLedger(client, main, 'a9');
    for (let i = 0; i < 5; i++) assert.equal((await ledger.send()).status, 202);

    const before = await containerStarts(s.docker, ids);
    assert.equal(before.size, 3);
    const killedAt = Date.now();
    await s.agent?.kill9();
    const offlineMs = await timeUntil(async () => !(await client.online(s.nodeId)), 30_000);
    const gap: string[] = [];
    for (let i = 0; i < 3; i++) gap.push((await ledger.send()).code ?? 'accepted');
    await sleep(1000);
    const deadMs = Date.now() - killedAt;

    const reconnect = await s.startAgent();
    const statusMs = await timeUntil(
      async () => (await Promise.all(ids.map((id) => client.status(id)))).every((x) => x === 'running'),
      20_000,
    );
    const consoleMs = await watcher.nextTick(20_000);
    for (let i = 0; i < 5; i++) assert.equal((await ledger.send()).status, 202);
    // the real game answers its console through the re-adopted Agent
    const game = new TickWatcher(client.url, client.cookie, openttd);
    watchers.push(game);
    await game.open();
    const say = await client.api('POST', `/api/servers/${openttd}/command`, { command: 'say "fault-a9"' });
    assert.equal(say.status, 202, JSON.stringify(say.body));
    const gameAnswerMs = await timeUntil(
      () => game.lines.some((l) => /\[All\] [^\r\n]*: fault-a9/.test(l)),
      30_000,
    );
    await sleep(1500);
    const afterStarts = await containerStarts(s.docker, ids);
    const cmds = ledger.check(path.join(s.serverDir(main), 'cmds.log'));
    const stopped = stoppedCount(before, afterStarts);
    const lines = lineAccount(watcher, ledger);
    figures('agent-kill9', {
      agent_dead_ms: deadMs,
      panel_saw_offline_ms: offlineMs,
      agent_restart_to_online_ms: reconnect.totalMs,
      reconnect_ms: reconnect.linkMs,
      status_running_ms: statusMs,
      console_back_ms: consoleMs,
      game_answer_ms: gameAnswerMs,
      servers_stopped: stopped,
      commands_sent: cmds.sent,
      commands_refused: cmds.refused,
      refused_codes: cmds.refusedCodes || '-',
      commands_lost: cmds.lost,
      commands_twice: cmds.twice,
      refused_but_ran: cmds.refusedButRan,
      lines_seen: watcher.ticks.size,
      lines_printed: lines.printed,
      lines_delivered: lines.delivered,
      lines_missing: watcher.missing,
      lines_dropped_reported: watcher.dropped,
      lines_unaccounted: lines.unaccounted,
      lines_duplicated: watcher.duplicates,
      lines_out_of_order: watcher.outOfOrder,
    });
    assert.equal(stopped, 0, 'no game server stopped or replaced (OpenTTD included)');
    assert.deepEqual(gap, ['AGENT_OFFLINE', 'AGENT_OFFLINE', 'AGENT_OFFLINE'], 'commands in the gap refused');
    assert.equal(cmds.lost, 0, 'no accepted command lost');
    assert.equal(cmds.twice, 0, 'no command run twice');
    assert.equal(cmds.refusedButRan, 0, 'no refused command ran later');
    assert.equal(watcher.duplicates, 0, 'no console line twice');
    assert.equal(watcher.outOfOrder, 0, 'console lines in order');
    // what the game printed while no Agent ran is read back from the container's log
    assert.equal(
      lines.unaccounted,
      0,
      `lines printed = delivered + reported dropped: ${JSON.stringify(lines)}`,
    );
  });
});
