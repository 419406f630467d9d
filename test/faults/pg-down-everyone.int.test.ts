/**
 * Fault: PostgreSQL unreachable for every replica at once (one `tcpProxy` in front of it for
 * both, cut: bytes and closes dropped) for ~10 s, longer than the heartbeat TTL (3 s), two
 * replicas on a private PostgreSQL and NATS, an Agent linked to A through a load balancer.
 * Nothing is split: each replica hears the other on NATS failing the database too, so no one
 * fences (lib/replicas.ts), the Agent's link stays on A, and the game's console keeps reaching a
 * browser on the balancer. Healed: both serve again under the registry ids they had (nobody
 * took the other for dead on the way back) and the console still flows.
 * The case of one replica cut off alone (it must fence) is replica-fence.int.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { until } from '../../packages/panel/test/helpers.ts';
import {
  Client,
  figures,
  loadAvg,
  printedTicks,
  readiness,
  replicaStack,
  sleep,
  TickWatcher,
  timeUntil,
} from './lib.ts';

describe('fault: PostgreSQL down for every replica fences none (two replicas, NATS)', () => {
  let stack: Awaited<ReturnType<typeof replicaStack>> | undefined;
  const watchers: TickWatcher[] = [];

  before(async () => {
    stack = await replicaStack('capf-pgall', { road: true });
  });
  after(async () => {
    for (const w of watchers) w.close();
    await stack?.stop();
  });

  it('no replica fences, the link stays, the console flows over NATS; healed, both keep their ids', async () => {
    const st = stack as NonNullable<typeof stack>;
    const { road, db: q, docker } = st;
    const { aPort, bPort, aUrl, bUrl, lbUrl } = await st.balanced();
    // both reach PostgreSQL through the one road that is cut; one data folder for both
    const shared = {
      PANEL_URL: lbUrl,
      PANEL_REPLICA_HEARTBEAT_MS: '500',
      LOG_LEVEL: 'info',
      DATABASE_URL: st.roadUrl,
    };
    const data = st.dir('');
    const { log: aLog } = await st.panel(data, aPort, shared);
    const { log: bLog } = await st.panel(data, bPort, shared);
    let agent: { out: string } | undefined;
    const logs = () => `\nA:\n${aLog.tail()}\nB:\n${bLog.tail()}\nAgent:\n${agent?.out.slice(-3000)}`;
    const aClient = new Client(aUrl);
    await aClient.login();
    const node = await aClient.node('capf-pgall-node');
    const nodeId = node.id;
    agent = st.agent(aUrl, node);
    await until(() => aClient.online(node.id), 60_000);
    const serverId = await aClient.tickServer(node.id, 'pgall-1');
    // the browser is on B: the console it sees crosses NATS from A
    const bClient = new Client(bUrl);
    await bClient.login();
    const watcher = new TickWatcher(bUrl, bClient.cookie, serverId);
    watchers.push(watcher);
    await watcher.open();
    await until(() => watcher.ticks.size >= 5, 30_000);
    const [ra0, rb0] = [await readiness(aUrl, 1500), await readiness(bUrl, 1500)];
    assert.equal(ra0.status, 200, JSON.stringify(ra0));
    assert.equal(rb0.status, 200, JSON.stringify(rb0));
    // both have beaten with each other alive (a peer at their last good beat)
    await sleep(1500);
    const linksBefore = aLog.times('agent connected').length + bLog.times('agent connected').length;

    const loadAtCut = await loadAvg();
    const cutAt = Date.now();
    road.cut();
    const fencedSeen: string[] = [];
    const ticksAtCut = watcher.ticks.size;
    const maxAtCut = watcher.max;
    while (Date.now() - cutAt < 10_000) {
      const [ra, rb] = [await readiness(aUrl, 1500), await readiness(bUrl, 1500)];
      if (ra.code === 'REPLICA_FENCED') fencedSeen.push(`A at ${Date.now() - cutAt} ms`);
      if (rb.code === 'REPLICA_FENCED') fencedSeen.push(`B at ${Date.now() - cutAt} ms`);
      await sleep(250);
    }
    const ticksInCut = watcher.ticks.size - ticksAtCut;
    const cutMs = Date.now() - cutAt;
    const loadAtHeal = await loadAvg();
    road.heal();
    const healedAt = Date.now();
    const readyMs = await timeUntil(
      async () =>
        (await readiness(aUrl, 1500)).status === 200 && (await readiness(bUrl, 1500)).status === 200,
      20_000,
    ).catch((e) => {
      throw new Error(`${(e as Error).message}: not ready after the heal${logs()}`);
    });
    // a few beats after the heal: nobody took the other for dead (its row reaped, a fresh id)
    await sleep(4000);
    const [ra1, rb1] = [await readiness(aUrl, 1500), await readiness(bUrl, 1500)];
    const rows = (await q.query('SELECT id FROM panel_replicas ORDER BY id')).rows.map((r) => r.id as string);
    const ticksAfter = watcher.ticks.size;
    // what the game printed during the cut, from the Engine's log of its container: the ticks
    // that must have reached the browser by now (4 s after the heal)
    const printedInCut = await printedTicks(docker, nodeId, cutAt, healedAt);
    const cutMissing = printedInCut.filter((n) => !watcher.ticks.has(n));
    // live: a tick printed up to 3 s before the heal arrived before it (a console mark's write
    // holds its lines at most WRITE_WAIT_MS = 2 s, then they go on without it)
    const printedEarly = await printedTicks(docker, nodeId, cutAt, healedAt - 3000);
    const notLive = printedEarly.filter((n) => !((watcher.arrived.get(n) ?? Infinity) < healedAt));
    const tickAfterHealMs = await watcher.nextTick(10_000);
    const linksAfter = aLog.times('agent connected').length + bLog.times('agent connected').length;
    const fencedLogged = aLog.times('replica fenced').length + bLog.times('replica fenced').length;
    figures('pg-down-everyone', {
      load_at_cut: loadAtCut,
      load_at_heal: loadAtHeal,
      cut_ms: cutMs,
      ticks_during_cut: ticksInCut,
      ticks_cut_to_heal_plus_4s: ticksAfter - ticksAtCut,
      ticks_printed_in_cut: printedInCut.length,
      printed_in_cut: `${printedInCut[0] ?? '-'}..${printedInCut.at(-1) ?? '-'}`,
      ticks_hz: ((printedInCut.length * 1000) / cutMs).toFixed(1),
      seen_at_cut: maxAtCut,
      cut_ticks_missing: cutMissing.length,
      cut_ticks_not_live: `${notLive.length}/${printedEarly.length}`,
      dropped_reported: watcher.dropped,
      ready_after_heal_ms: readyMs,
      tick_after_heal_ms: tickAfterHealMs,
      fenced_seen: fencedSeen.length,
      fenced_logged: fencedLogged,
      agent_links: `${linksBefore}->${linksAfter}`,
      ids: `${ra0.replicaId}/${rb0.replicaId} -> ${ra1.replicaId}/${rb1.replicaId}`,
    });
    void healedAt;
    assert.deepEqual(fencedSeen, [], `no replica fenced${logs()}`);
    assert.equal(fencedLogged, 0, `no 'replica fenced' logged${logs()}`);
    assert.equal(linksAfter, linksBefore, `the Agent's link never dropped${logs()}`);
    // the console stays live through the outage (before the fix in console-marks.ts it stalled
    // behind two hung mark writes: 2 of the 98 printed arrived during the cut, load 6.4)
    assert.ok(printedEarly.length >= 10 * 3, `the game printed before heal - 3 s (${printedEarly.length})`);
    assert.deepEqual(
      notLive,
      [],
      `ticks printed until 3 s before the heal arrived before it (${printedEarly.length - notLive.length} of ${printedEarly.length})`,
    );
    assert.equal(ra1.replicaId, ra0.replicaId, 'A kept its registry id');
    assert.equal(rb1.replicaId, rb0.replicaId, 'B kept its registry id');
    assert.deepEqual(rows, [ra0.replicaId, rb0.replicaId].sort(), 'both rows, nothing reaped');
    // every tick the game printed during the cut (the Engine's log says which: the loop prints
    // about 10 a second) reached the browser by 4 s after the heal, none lost
    assert.ok(
      printedInCut.length >= 10 * 5,
      `the game printed through the cut (${printedInCut.length} ticks)`,
    );
    assert.ok(
      (printedInCut[0] ?? 0) > maxAtCut,
      `the Engine's log starts after what the browser had at the cut (${printedInCut[0]} > ${maxAtCut})`,
    );
    assert.deepEqual(
      cutMissing,
      [],
      `every tick printed during the cut reached the browser (${printedInCut.length - cutMissing.length} of ${printedInCut.length}; ${watcher.dropped} reported dropped)${logs()}`,
    );
  });
});
