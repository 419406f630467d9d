/**
 * Fault: one replica's road to PostgreSQL is black-holed (a `tcpProxy` cut: bytes and closes
 * dropped, nothing refused) for longer than the heartbeat TTL, two replicas on a private
 * PostgreSQL and NATS. Replica A leads the periodic jobs and holds the Agent's link (through a
 * load balancer of the test's that follows `/readyz`); a schedule's slot falls due during the
 * cut. A must fence itself (readiness 503 REPLICA_FENCED, the link closed and taken by B within
 * 5 s), B must lead (the survivors end A's PostgreSQL sessions once it is past the TTL: the
 * server would keep them, and their advisory locks, until TCP keepalive notices), the schedule
 * must run exactly once, no game server stop, and every console line be delivered or reported
 * dropped. Then the road is healed: A must unfence under a fresh registry id and serve again.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { until } from '../../packages/panel/test/helpers.ts';
import {
  Client,
  CommandLedger,
  containerStarts,
  figures,
  fileLines,
  hourlySchedule,
  leaderOf,
  lineAccount,
  loadAvg,
  readiness,
  replicaStack,
  sleep,
  stoppedCount,
  TickWatcher,
  timeUntil,
} from './lib.ts';

/** A WebSocket upgrade that must be refused: its status and error code (status 101: it was not). */
function refusedUpgrade(url: string, cookie: string): Promise<{ status: number; code?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers: { cookie }, handshakeTimeout: 5000 });
    ws.on('open', () => {
      ws.close();
      resolve({ status: 101 });
    });
    ws.on('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (d: Buffer) => {
        text += d.toString();
      });
      res.on('end', () => {
        let code: string | undefined;
        try {
          code = (JSON.parse(text) as { code?: string }).code;
        } catch {}
        resolve({ status: res.statusCode ?? 0, ...(code ? { code } : {}) });
      });
    });
    ws.on('error', () => resolve({ status: 0 }));
  });
}

describe('fault: a replica cut off from PostgreSQL fences itself (two replicas, PostgreSQL, NATS)', () => {
  let stack: Awaited<ReturnType<typeof replicaStack>> | undefined;
  let sending = false;
  const watchers: TickWatcher[] = [];

  before(async () => {
    stack = await replicaStack('capf-fence', { road: true });
  });
  after(async () => {
    sending = false;
    for (const w of watchers) w.close();
    await stack?.stop();
  });

  it('fences, the survivor leads and holds the link, the schedule runs once; unfences with a fresh id', async () => {
    const st = stack as NonNullable<typeof stack>;
    const { road, db: q, docker } = st;
    const { aPort, bPort, aUrl, bUrl, lb, lbUrl } = await st.balanced();
    const shared = {
      PANEL_URL: lbUrl,
      PANEL_REPLICA_HEARTBEAT_MS: '500',
      LOG_LEVEL: 'info',
    };
    // A reaches PostgreSQL through the road that will be cut; it starts first and leads
    const data = st.dir('');
    const { proc: a, log: aLog } = await st.panel(data, aPort, { ...shared, DATABASE_URL: st.roadUrl });
    await until(async () => (await leaderOf(q, 'schedules')) === a.pid, 30_000);
    const { proc: b, log: bLog } = await st.panel(data, bPort, shared);
    let agent: { out: string } | undefined;
    const logs = () => `\nA:\n${aLog.tail()}\nB:\n${bLog.tail()}\nAgent:\n${agent?.out.slice(-3000)}`;
    const aClient = new Client(aUrl);
    await aClient.login();
    const node = await aClient.node('capf-fence-node');
    agent = st.agent(lbUrl, node);
    await until(() => aClient.online(node.id), 60_000);
    assert.equal(aLog.times('agent connected').length, 1, 'the Agent linked to A');
    const serverId = await aClient.tickServer(node.id, 'fence-1');
    const scheduleId = await hourlySchedule(aClient, serverId, 'fence hourly');
    // the browser and the API caller go through the balancer too
    const lbClient = new Client(lbUrl);
    await lbClient.login();
    const watcher = new TickWatcher(lbUrl, lbClient.cookie, serverId);
    watchers.push(watcher);
    await watcher.open();
    await until(() => watcher.ticks.size >= 10, 30_000);
    const startsBefore = await containerStarts(docker, [serverId]);
    const ready0 = await readiness(aUrl);
    assert.equal(ready0.status, 200, JSON.stringify(ready0));
    const oldId = ready0.replicaId ?? '';
    assert.ok(oldId, 'A says its registry id');
    const ledger = new CommandLedger(lbClient, serverId, 'fence');
    sending = true;
    const sender = (async () => {
      while (sending) {
        void ledger.send();
        await sleep(400);
      }
    })();

    // the cut; the schedule's slot falls due 1.5 s into it (A cannot run it, B does not lead yet)
    const loadAtCut = await loadAvg();
    await q.query('UPDATE schedules SET next_run_at = $1 WHERE id = $2', [
      new Date(Date.now() + 1500).toISOString(),
      scheduleId,
    ]);
    const cutAt = Date.now();
    road.cut();
    const fenceMs = await timeUntil(async () => (await readiness(aUrl)).code === 'REPLICA_FENCED', 20_000);
    const fencedAt = Date.now();
    const refusedWs = await refusedUpgrade(`${aUrl.replace(/^http/, 'ws')}/ws/client`, lbClient.cookie);
    const leadMs = await timeUntil(async () => (await leaderOf(q, 'schedules')) === b.pid, 30_000).catch(
      (e) => {
        throw new Error(`${(e as Error).message}: B never led (A is pid ${a.pid})${logs()}`);
      },
    );
    // the Agent's link: closed by A, taken by B through the balancer
    await until(() => bLog.times('agent connected').length > 0, 30_000).catch((e) => {
      throw new Error(`${(e as Error).message}: the link never reached B${logs()}`);
    });
    const linkedOnB = bLog.times('agent connected')[0] as number;
    const bClient = new Client(bUrl);
    await bClient.login();
    let runs: { trigger: string; state: string; startedAt?: string }[] = [];
    await until(async () => {
      runs =
        (await bClient.api('GET', `/api/servers/${serverId}/schedules/${scheduleId}/runs`)).body?.runs ?? [];
      return runs.length > 0 && runs.every((r) => r.state !== 'running');
    }, 30_000);
    const ranAfterCutMs = Date.parse(runs[0]?.startedAt ?? '') - cutAt;
    // the console on B: ticks arrive again through the moved link
    await watcher.nextTick(15_000);
    const cutMs = Date.now() - cutAt;
    const stillFenced = await readiness(aUrl);

    // healed: A's first good beat gives it a fresh id and it serves again
    const loadAtHeal = await loadAvg();
    road.heal();
    const healedAt = Date.now();
    const unfenceMs = await timeUntil(async () => (await readiness(aUrl)).status === 200, 20_000).catch(
      (e) => {
        throw new Error(`${(e as Error).message}: A never unfenced${logs()}`);
      },
    );
    const ready1 = await readiness(aUrl);
    const rows = (await q.query('SELECT id FROM panel_replicas')).rows.map((r) => r.id as string);
    const again = new Client(aUrl);
    await again.login();
    const nodeOnA = await again.api('GET', `/api/nodes/${node.id}`);
    const watcherA = new TickWatcher(aUrl, again.cookie, serverId);
    watchers.push(watcherA);
    await watcherA.open();
    const tickOnAMs = await watcherA.nextTick(15_000);
    watcherA.close();
    // a second schedules round after the heal must not run the slot again (the tick is 5 s)
    await sleep(6000);
    sending = false;
    await sender;
    await sleep(3000);
    watcher.close();
    runs =
      (await bClient.api('GET', `/api/servers/${serverId}/schedules/${scheduleId}/runs`)).body?.runs ?? [];
    const cmdsLog = path.join(st.agentDir, 'servers', serverId, 'cmds.log');
    const scheduledRan = fileLines(cmdsLog).filter((c) => c === 'flt-scheduled').length;
    const tally = ledger.check(cmdsLog);
    const account = lineAccount(watcher, ledger);
    const stopped = stoppedCount(startsBefore, await containerStarts(docker, [serverId]));
    figures('replica-fence', {
      load_at_cut: loadAtCut,
      load_at_heal: loadAtHeal,
      fence_ms: fenceMs,
      lead_ms: leadMs,
      link_on_b_after_fence_ms: linkedOnB - fencedAt,
      schedule_ran_after_cut_ms: ranAfterCutMs,
      cut_ms: cutMs,
      unfence_ms: unfenceMs,
      tick_on_a_again_ms: tickOnAMs,
      balancer_switches: lb.switches.length,
      servers_stopped: stopped,
      schedule_runs: runs.length,
      scheduled_command_ran: scheduledRan,
      cmds_sent: tally.sent,
      cmds_accepted: tally.accepted,
      cmds_refused: `${tally.refused}(${tally.refusedCodes || '-'})`,
      commands_lost: tally.lost,
      commands_twice: tally.twice,
      refused_but_ran: tally.refusedButRan,
      lines_printed: account.printed,
      lines_delivered: account.delivered,
      lines_in_history: account.inHistory,
      lines_dropped_reported: account.dropped,
      lines_unaccounted: account.unaccounted,
      lines_twice: account.duplicates,
    });
    assert.equal(fenceMs < 3000 + 1000, true, `A fenced within its TTL (${fenceMs} ms)`);
    assert.equal(refusedWs.status, 503, 'a fenced replica refuses /ws upgrades');
    assert.equal(refusedWs.code, 'REPLICA_FENCED');
    assert.equal(stillFenced.code, 'REPLICA_FENCED', 'A stays fenced while the road is cut');
    assert.ok(
      linkedOnB - fencedAt <= 5000,
      `the Agent's link on B ${linkedOnB - fencedAt} ms after the fence`,
    );
    assert.equal(runs.length, 1, JSON.stringify(runs));
    assert.equal(runs[0]?.state, 'completed', JSON.stringify(runs[0]));
    assert.equal(scheduledRan, 1, 'the scheduled command ran once');
    assert.equal(stopped, 0, 'no game server stopped');
    const ranTimes = new Map<string, number>();
    for (const c of fileLines(cmdsLog)) ranTimes.set(c, (ranTimes.get(c) ?? 0) + 1);
    const ledgerText = ledger.sent
      .map(
        (c) =>
          `${c.cmd} at ${c.at - cutAt} ms (${c.ms} ms): ${c.status}${c.code ? ` ${c.code}` : ''}, ran ${ranTimes.get(c.cmd) ?? 0}`,
      )
      .join('\n');
    if (tally.lost + tally.twice + tally.refusedButRan > 0) process.stdout.write(`${ledgerText}${logs()}\n`);
    // which lines never came, and the watcher's sockets (moved from A to B) with what each
    // resubscribe's history gave
    if (account.unaccounted !== 0)
      process.stdout.write(
        `lines missing: ${account.missing.join(', ')}\ncut at ${cutAt}, fenced at ${fencedAt}, link on B at ${linkedOnB}\nwatcher:\n${watcher.trail.join('\n')}\n${ledgerText}${logs()}\n`,
      );
    else if (account.inHistory > 0)
      process.stdout.write(`cut at ${cutAt}, fenced at ${fencedAt}; watcher:\n${watcher.trail.join('\n')}\n`);
    assert.equal(tally.lost, 0, 'no accepted command lost');
    assert.equal(tally.twice, 0, 'no command ran twice');
    assert.equal(tally.refusedButRan, 0, 'no refused command ran');
    assert.equal(
      account.unaccounted,
      0,
      `${account.printed} printed = ${account.delivered} + ${account.dropped}`,
    );
    assert.equal(account.duplicates, 0, 'no console line twice');
    assert.equal(ready1.status, 200);
    assert.ok(
      ready1.replicaId && ready1.replicaId !== oldId,
      `a fresh registry id (${oldId} → ${ready1.replicaId})`,
    );
    assert.ok(rows.includes(ready1.replicaId ?? ''), 'its new row is there');
    assert.ok(!rows.includes(oldId), 'its old row is gone');
    assert.equal(nodeOnA.status, 200, 'A serves the API again');
    void healedAt;
  });
});
