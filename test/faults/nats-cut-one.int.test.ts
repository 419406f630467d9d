/**
 * Fault: one replica's road to NATS is black-holed (a `tcpProxy` cut) while it keeps
 * PostgreSQL, two replicas on a private PostgreSQL and NATS, the Agent linked to A. A does not
 * fence (its beats go on; readiness stays 200) and keeps the link; commands through A run, each
 * once. Through B (which no longer hears A's presence lists) a command for A's node sent in the
 * first presence TTL waits out the command timeout; after that it is refused at once with
 * AGENT_OFFLINE; a refused one never runs.
 * Healed, commands through B reach the Agent again. (relay/nats-agent-gateway.ts says why.)
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { until } from '../../packages/panel/test/helpers.ts';
import { Client, CommandLedger, figures, loadAvg, readiness, replicaStack, sleep } from './lib.ts';

describe('fault: one replica cut off from NATS only (two replicas, PostgreSQL, NATS)', () => {
  let stack: Awaited<ReturnType<typeof replicaStack>> | undefined;
  before(async () => {
    stack = await replicaStack('capf-ncut', { natsRoad: true });
  });
  after(async () => {
    await stack?.stop();
  });

  it('no fence, the link stays on A, commands through A run once; through B refused (never run) until healed', async () => {
    const st = stack as NonNullable<typeof stack>;
    const { aPort, bPort, aUrl, bUrl, lbUrl } = await st.balanced();
    const shared = { PANEL_URL: lbUrl, PANEL_REPLICA_HEARTBEAT_MS: '500', LOG_LEVEL: 'info' };
    const data = st.dir('');
    const { log: aLog } = await st.panel(data, aPort, { ...shared, PANEL_NATS_URL: st.natsRoadUrl });
    const { log: bLog } = await st.panel(data, bPort, shared);
    const aClient = new Client(aUrl);
    await aClient.login();
    const bClient = new Client(bUrl);
    await bClient.login();
    const node = await aClient.node('capf-ncut-node');
    const agent = st.agent(aUrl, node);
    const logs = () => `\nA:\n${aLog.tail()}\nB:\n${bLog.tail()}\nAgent:\n${agent.out.slice(-3000)}`;
    await until(() => aClient.online(node.id), 60_000);
    const serverId = await aClient.tickServer(node.id, 'ncut-1');
    await until(() => bClient.online(node.id), 30_000);
    const viaA = new CommandLedger(aClient, serverId, 'via-a');
    const viaB = new CommandLedger(bClient, serverId, 'via-b');
    assert.equal((await viaB.send()).status, 202, 'through B before the cut');
    const linksBefore = aLog.times('agent connected').length + bLog.times('agent connected').length;

    const loadAtCut = await loadAvg();
    const cutAt = Date.now();
    st.natsRoad.cut();
    const unready: string[] = [];
    const pending: Promise<unknown>[] = [];
    while (Date.now() - cutAt < 8000) {
      pending.push(viaA.send(), viaB.send());
      const r = await readiness(aUrl);
      if (r.status !== 200) unready.push(`${Date.now() - cutAt} ms: ${r.status} ${r.code ?? ''}`);
      await sleep(400);
    }
    await Promise.all(pending);
    const bOffline = await bClient.online(node.id);
    const loadAtHeal = await loadAvg();
    st.natsRoad.heal();
    const healedAt = Date.now();
    await until(() => bClient.online(node.id), 30_000).catch((e) => {
      throw new Error(`${(e as Error).message}: B never saw the node again${logs()}`);
    });
    const backOnBMs = Date.now() - healedAt;
    const after: { status: number; code?: string }[] = [];
    for (let i = 0; i < 3; i++) after.push(await viaB.send());
    await sleep(1500);
    const cmdsLog = path.join(st.agentDir, 'servers', serverId, 'cmds.log');
    const a = viaA.check(cmdsLog);
    const b = viaB.check(cmdsLog);
    const linksAfter = aLog.times('agent connected').length + bLog.times('agent connected').length;
    const inCut = viaB.sent.filter((c) => c.at >= cutAt && c.at < healedAt);
    // past the presence TTL (3 beats of 500 ms) and a margin: refused at once
    const late = inCut.filter((c) => c.at - cutAt > 3000);
    const fenced = aLog.times('replica fenced').length;
    figures('nats-cut-one', {
      load_at_cut: loadAtCut,
      load_at_heal: loadAtHeal,
      a_unready: unready.length,
      a_fenced: fenced,
      agent_links: `${linksBefore}->${linksAfter}`,
      via_a_sent: a.sent,
      via_a_accepted: a.accepted,
      via_a_lost: a.lost,
      via_b_in_cut: inCut.length,
      via_b_in_cut_codes: [...new Set(inCut.map((c) => c.code ?? String(c.status)))].join(','),
      via_b_in_cut_accepted: inCut.filter((c) => c.status === 202).length,
      via_b_late_max_ms: Math.max(0, ...late.map((c) => c.ms)),
      via_b_early_hung: inCut.filter((c) => c.status === 0 || c.code === 'TIMEOUT').length,
      via_b_refused_but_ran: b.refusedButRan,
      b_saw_node_offline: !bOffline,
      back_on_b_ms: backOnBMs,
      via_b_after_heal: after.map((r) => r.status).join(','),
      commands_twice: a.twice,
    });
    assert.deepEqual(unready, [], `A stayed ready (it keeps PostgreSQL)${logs()}`);
    assert.equal(fenced, 0, 'A did not fence');
    assert.equal(linksAfter, linksBefore, "the Agent's link stayed on A");
    assert.equal(a.accepted, a.sent, `every command through A accepted (${a.refusedCodes})${logs()}`);
    assert.equal(a.lost, 0, 'no command through A lost');
    assert.equal(a.twice, 0, 'no command ran twice');
    assert.equal(bOffline, false, "B no longer counts A's node online");
    assert.ok(late.length >= 8, `commands through B past the presence TTL (${late.length})`);
    for (const c of late) {
      assert.equal(c.code, 'AGENT_OFFLINE', `${c.cmd} at ${c.at - cutAt} ms: ${c.status} ${c.code}`);
      assert.ok(c.ms < 2000, `${c.cmd} refused at once (${c.ms} ms)`);
    }
    assert.equal(b.refusedButRan, 0, 'no command refused through B ran');
    assert.deepEqual(
      after.map((r) => r.status),
      [202, 202, 202],
      'healed: commands through B reach the Agent again',
    );
    assert.equal(b.lost, 0, 'no command accepted through B lost');
  });
});
