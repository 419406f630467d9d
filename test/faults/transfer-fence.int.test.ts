/**
 * Fault: the replica running a transfer is cut off from PostgreSQL mid-stream (a `tcpProxy`
 * cut) and fences itself; two replicas on a private PostgreSQL and NATS, two nodes whose Agents
 * link through a load balancer (to A first), a running server with a large incompressible file
 * being moved node 1 → node 2 by A. A stops the transfer where it is and undoes nothing
 * (modules/transfers `fence`); B, leading once A's sessions are ended, takes A for dead after
 * the TTL, fails the transfer once and undoes it where the Agents are linked now (B): the
 * target's copy removed, the source started again, its files whole. Healed, A unfences and does
 * not take the transfer up again: the server stays on node 1.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { until } from '../../packages/panel/test/helpers.ts';
import { Client, figures, leaderOf, loadAvg, readiness, replicaStack, sleep, timeUntil } from './lib.ts';

describe("fault: a fenced replica's transfer is failed and undone by the leader, once (two replicas, two nodes)", () => {
  let stack: Awaited<ReturnType<typeof replicaStack>> | undefined;
  before(async () => {
    stack = await replicaStack('capf-tfen', { road: true });
  });
  after(async () => {
    await stack?.stop();
  });

  it('A leaves it, B fails and undoes it once, the server runs on its source with its files; A does not switch after the heal', async () => {
    const st = stack as NonNullable<typeof stack>;
    const { road, db: q } = st;
    const { aPort, bPort, aUrl, bUrl, lbUrl } = await st.balanced();
    const shared = { PANEL_URL: lbUrl, PANEL_REPLICA_HEARTBEAT_MS: '500', LOG_LEVEL: 'info' };
    const data = st.dir('');
    const { proc: a, log: aLog } = await st.panel(data, aPort, { ...shared, DATABASE_URL: st.roadUrl });
    await until(async () => (await leaderOf(q, 'transfer-orphans')) === a.pid, 30_000);
    const { proc: b, log: bLog } = await st.panel(data, bPort, shared);
    const logs = () => `\nA:\n${aLog.tail()}\nB:\n${bLog.tail()}`;
    const aClient = new Client(aUrl);
    await aClient.login();
    const n1 = await aClient.node('capf-tfen-n1');
    const n2 = await aClient.node('capf-tfen-n2');
    st.agent(lbUrl, n1);
    st.agent(lbUrl, n2, 'n2');
    await until(async () => (await aClient.online(n1.id)) && (await aClient.online(n2.id)), 60_000);
    const serverId = await aClient.tickServer(n1.id, 'tfen-1');
    // large and incompressible: archiving and streaming last long enough to be cut
    const big = path.join(st.agentDir, 'servers', serverId, 'big.bin');
    const chunk = randomBytes(16 * 1024 * 1024);
    for (let i = 0; i < 16; i++) writeFileSync(big, chunk, { flag: i === 0 ? 'w' : 'a' });
    const bigSize = statSync(big).size;
    const r = await aClient.api('POST', `/api/servers/${serverId}/transfer`, { nodeId: n2.id });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const transferId = r.body.transfer.id as string;
    const opId = r.body.transfer.operationId as string;
    await until(
      async () => (await aClient.api('GET', `/api/operations/${opId}`)).body?.stage === 'streaming',
      120_000,
    ).catch((e) => {
      throw new Error(`${(e as Error).message}: never streaming${logs()}`);
    });
    const row = async () =>
      (
        await q.query(
          'SELECT state, step, cleanup_pending, restart_pending, archive_id, owner_replica FROM transfers WHERE id = $1',
          [transferId],
        )
      ).rows[0] as Record<string, unknown>;
    const atCut = await row();

    const loadAtCut = await loadAvg();
    const cutAt = Date.now();
    road.cut();
    const fenceMs = await timeUntil(async () => (await readiness(aUrl)).code === 'REPLICA_FENCED', 20_000);
    await timeUntil(async () => (await row()).state !== 'running', 60_000).catch((e) => {
      throw new Error(`${(e as Error).message}: the transfer stayed running${logs()}`);
    });
    const failedMs = Date.now() - cutAt;
    const failed = await row();
    // undone where the Agents are now: the copy on node 2 gone, node 1's server running again
    const bClient = new Client(bUrl);
    await bClient.login();
    await timeUntil(async () => {
      const t = await row();
      return Number(t.cleanup_pending) === 0 && Number(t.restart_pending) === 0 && t.archive_id === null;
    }, 90_000).catch(async (e) => {
      throw new Error(`${(e as Error).message}: not undone ${JSON.stringify(await row())}${logs()}`);
    });
    const undoneMs = Date.now() - cutAt;
    await timeUntil(async () => (await bClient.status(serverId)) === 'running', 60_000);
    const runningMs = Date.now() - cutAt;
    const loadAtHeal = await loadAvg();
    road.heal();
    const unfenceMs = await timeUntil(async () => (await readiness(aUrl)).status === 200, 30_000);
    // what A would do with the transfer after the heal, it would have done by now
    await sleep(8000);
    const end = await row();
    const server = (await q.query('SELECT node_id FROM servers WHERE id = $1', [serverId])).rows[0] as {
      node_id: string;
    };
    const failedBy = (log: typeof aLog) =>
      log.lines.filter((l) => l.includes('"msg":"transfer cut by a Panel restart"')).length;
    const leftByA = aLog.lines.filter((l) => l.includes('transfer left to the replica that fails it')).length;
    const undoneByA = aLog.lines.filter((l) => l.includes('"msg":"transfer failed; undoing"')).length;
    const statusEnd = await bClient.status(serverId);
    figures('transfer-fence', {
      load_at_cut: loadAtCut,
      load_at_heal: loadAtHeal,
      step_at_cut: String(atCut.step),
      fence_after_cut_ms: fenceMs,
      failed_after_cut_ms: failedMs,
      undone_after_cut_ms: undoneMs,
      running_after_cut_ms: runningMs,
      unfence_after_heal_ms: unfenceMs,
      failed_by_a: failedBy(aLog),
      failed_by_b: failedBy(bLog),
      left_by_a: leftByA,
      undone_by_a: undoneByA,
      state_end: String(end.state),
      server_node: server.node_id === n1.id ? 'source' : server.node_id === n2.id ? 'target' : server.node_id,
      status_end: statusEnd,
      pid_b: b.pid,
    });
    assert.equal(atCut.state, 'running');
    assert.equal(failed.state, 'failed', JSON.stringify(failed));
    assert.equal(failedBy(aLog) + failedBy(bLog), 1, 'failed once');
    assert.equal(leftByA, 1, 'A left it at the fence');
    assert.equal(undoneByA, 0, 'A undid nothing');
    assert.equal(end.state, 'failed', 'still failed after the heal');
    assert.equal(server.node_id, n1.id, 'the server stays on its source');
    assert.equal(statusEnd, 'running', 'and runs there');
    assert.equal(existsSync(big) && statSync(big).size, bigSize, "the source's files are whole");
  });
});
