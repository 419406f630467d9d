/**
 * Fault: the Docker Engine restarts under a running Agent (issue 15 item 3). A private dockerd
 * (own data root and socket, a bridge of its own (never --bridge=none: that deletes the host's docker0), no iptables, --live-restore, the busybox image loaded from
 * the shared Engine) so the shared Engine is never touched. Its containers stay up through the
 * restart; the Agent notices, follows the Engine's events again (a container killed afterwards
 * shows at the Panel), its console stream comes back, commands run once.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  BUSYBOX,
  CommandLedger,
  containerStarts,
  faultStack,
  figures,
  lineAccount,
  privateDockerd,
  sleep,
  stoppedCount,
  TickWatcher,
  timeUntil,
} from './lib.ts';

describe('fault: dockerd restart (a private dockerd, --live-restore)', () => {
  let dockerd: Awaited<ReturnType<typeof privateDockerd>> | undefined;
  let stack: Awaited<ReturnType<typeof faultStack>> | undefined;
  const watchers: TickWatcher[] = [];
  before(async () => {
    dockerd = await privateDockerd('capf-dd', [BUSYBOX]);
    stack = await faultStack('capf-dd', {
      docker: dockerd.docker,
      // servers on network none (nothing of the private Engine's bridge is used), no port guard
      agentEnv: { DOCKER_HOST: dockerd.host, AGENT_DOCKER_NETWORK: 'none', AGENT_FIREWALL: 'false' },
    });
  });
  after(async () => {
    for (const w of watchers) w.close();
    await stack?.stop();
    await dockerd?.stop();
  });

  it('containers stay up, the Agent follows the new Engine: console, commands and events', async () => {
    const s = stack as NonNullable<typeof stack>;
    const d = dockerd as NonNullable<typeof dockerd>;
    const { client } = s;
    const ids = [await client.tickServer(s.nodeId, 'dd-1'), await client.tickServer(s.nodeId, 'dd-2')];
    const [main, other] = ids as [string, string];
    const watcher = new TickWatcher(client.url, client.cookie, main);
    const otherWatcher = new TickWatcher(client.url, client.cookie, other);
    watchers.push(watcher, otherWatcher);
    await watcher.open();
    await otherWatcher.open();
    await watcher.nextTick(10_000);
    const ledger = new CommandLedger(client, main, 'dd');
    for (let i = 0; i < 5; i++) assert.equal((await ledger.send()).status, 202);
    const before = await containerStarts(d.docker, ids);
    assert.equal(before.size, 2);

    const downMs = await d.restart(1000);
    const upAt = Date.now();
    const afterStarts = await containerStarts(d.docker, ids);
    const stopped = stoppedCount(before, afterStarts);
    const consoleMs = await watcher.nextTick(60_000).catch(() => -1);
    const consoleBackAfterUpMs = Date.now() - upAt;
    const statusOk = (await Promise.all(ids.map((id) => client.status(id)))).every((x) => x === 'running');
    const cmdResults: number[] = [];
    for (let i = 0; i < 5; i++) cmdResults.push((await ledger.send()).status);
    await sleep(1500);
    const cmds = ledger.check(path.join(s.serverDir(main), 'cmds.log'));

    // the Engine's events: a container killed behind the Agent's back must show at the Panel
    const [otherContainer] = await d.docker.listContainers({
      filters: { label: [`ctrl-alt-play.server=${other}`] },
    });
    assert.ok(otherContainer);
    await d.docker.getContainer(otherContainer.Id).kill();
    const eventsMs = await timeUntil(
      () => otherWatcher.statuses.some((x) => x !== 'running' && x !== 'starting'),
      30_000,
    ).catch(() => -1);
    const lines = lineAccount(watcher, ledger);
    figures('dockerd-restart', {
      dockerd_down_ms: downMs,
      console_back_ms: consoleMs,
      console_back_after_up_ms: consoleMs < 0 ? -1 : consoleBackAfterUpMs,
      events_seen_ms: eventsMs,
      other_statuses: otherWatcher.statuses.join('>') || '-',
      status_running_after: statusOk,
      servers_stopped: stopped,
      commands_sent: cmds.sent,
      commands_refused: cmds.refused,
      refused_codes: cmds.refusedCodes || '-',
      commands_lost: cmds.lost,
      commands_twice: cmds.twice,
      lines_printed: lines.printed,
      lines_delivered: lines.delivered,
      lines_missing: watcher.missing,
      lines_dropped_reported: watcher.dropped,
      lines_unaccounted: lines.unaccounted,
      lines_duplicated: watcher.duplicates,
      lines_out_of_order: watcher.outOfOrder,
    });
    assert.equal(stopped, 0, 'live-restore kept both containers running');
    assert.ok(statusOk, 'the Panel says running');
    assert.ok(consoleMs >= 0, 'the console stream came back');
    assert.deepEqual(cmdResults, [202, 202, 202, 202, 202], 'commands after the restart accepted');
    assert.equal(cmds.lost, 0);
    assert.equal(cmds.twice, 0);
    assert.ok(eventsMs >= 0, 'a container killed after the restart shows at the Panel');
    assert.equal(watcher.duplicates, 0, 'no console line twice');
    assert.equal(watcher.outOfOrder, 0, 'console lines in order');
    // what the game printed while dockerd was down is read back from the container's log
    assert.equal(
      lines.unaccounted,
      0,
      `lines printed = delivered + reported dropped: ${JSON.stringify(lines)}`,
    );
  });
});
