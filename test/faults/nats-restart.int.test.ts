/**
 * Fault: the NATS broker between two Panel replicas restarts (issue 15 item 3). A private
 * nats-server and a private PostgreSQL; replica A holds the Agent's link, a console subscriber
 * watches through replica B, so its lines cross the broker. After the broker is back the lines
 * flow again (the reconnect time is printed); lines published meanwhile are delivered late (the
 * client buffers them) or lost, and B reports the lost ones as dropped (reason `bus`: it sees the
 * jump in the lines' numbers), so printed = delivered + reported, exactly. Commands go through
 * A's link, not the bus: they keep working throughout, each once.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../packages/panel/test/helpers.ts';
import {
  Client,
  CommandLedger,
  containerStarts,
  faultStack,
  figures,
  lineAccount,
  type Proc,
  panelEnv,
  privateNats,
  privatePostgres,
  sleep,
  spawnPanel,
  stoppedCount,
  TickWatcher,
  tempDir,
} from './lib.ts';

describe('fault: NATS restart between two replicas', () => {
  let pg: Awaited<ReturnType<typeof privatePostgres>> | undefined;
  let nats: Awaited<ReturnType<typeof privateNats>> | undefined;
  let stack: Awaited<ReturnType<typeof faultStack>> | undefined;
  let replicaB: Proc | undefined;
  const bDir = tempDir('capf-nt-b-');
  let watcher: TickWatcher | undefined;
  before(async () => {
    pg = await privatePostgres('capf-nt');
    nats = await privateNats();
    const shared = { DATABASE_URL: pg.url, PANEL_NATS_URL: nats.url };
    stack = await faultStack('capf-nt', { panelEnv: shared });
    const portB = await freePort();
    replicaB = await spawnPanel(panelEnv(bDir.dir, portB, shared));
    (stack as { replicaB?: string }).replicaB = `http://127.0.0.1:${portB}`;
  });
  after(async () => {
    watcher?.close();
    await replicaB?.stop();
    await stack?.stop();
    await nats?.stop();
    await pg?.close();
    bDir.rm();
  });

  it('lines cross the broker again after its restart; commands never stop working', async () => {
    const s = stack as NonNullable<typeof stack> & { replicaB: string };
    const n = nats as NonNullable<typeof nats>;
    const { client } = s;
    const id = await client.tickServer(s.nodeId, 'nt-1');
    const b = new Client(s.replicaB);
    await b.login();
    watcher = new TickWatcher(b.url, b.cookie, id);
    await watcher.open();
    await watcher.nextTick(20_000);
    const ledger = new CommandLedger(client, id, 'nt');
    for (let i = 0; i < 3; i++) assert.equal((await ledger.send()).status, 202);
    const before = await containerStarts(s.docker, [id]);

    const maxBefore = watcher.max;
    await n.down();
    const downAt = Date.now();
    for (let i = 0; i < 3; i++) await ledger.send();
    await sleep(Math.max(0, 5000 - (Date.now() - downAt)));
    await n.up();
    const upAt = Date.now();
    const reconnectMs = await watcher.nextTick(60_000).catch(() => -1);
    for (let i = 0; i < 3; i++) await ledger.send();
    await sleep(2000);
    const cmds = ledger.check(path.join(s.serverDir(id), 'cmds.log'));
    const stopped = stoppedCount(before, await containerStarts(s.docker, [id]));
    const lines = lineAccount(watcher, ledger);
    figures('nats-restart', {
      nats_down_ms: upAt - downAt,
      reconnect_ms: reconnectMs,
      lines_before: maxBefore,
      lines_seen: watcher.ticks.size,
      lines_printed: lines.printed,
      lines_delivered: lines.delivered,
      lines_missing: watcher.missing,
      lines_dropped_reported: watcher.dropped,
      lines_unaccounted: lines.unaccounted,
      lines_duplicated: watcher.duplicates,
      lines_out_of_order: watcher.outOfOrder,
      servers_stopped: stopped,
      commands_sent: cmds.sent,
      commands_accepted: cmds.accepted,
      commands_lost: cmds.lost,
      commands_twice: cmds.twice,
    });
    assert.ok(reconnectMs >= 0, 'lines reach replica B again');
    assert.equal(stopped, 0);
    assert.equal(cmds.accepted, cmds.sent, 'commands go over the Agent link, not the broker');
    assert.equal(cmds.lost, 0);
    assert.equal(cmds.twice, 0);
    assert.equal(watcher.duplicates, 0, 'no line twice');
    assert.equal(watcher.outOfOrder, 0, 'lines in order');
    // lost between the replicas while the broker was away: B sees the jump in the lines' numbers
    assert.equal(
      lines.unaccounted,
      0,
      `lines printed = delivered + reported dropped: ${JSON.stringify(lines)}`,
    );
  });
});
