/**
 * Fault: the Panel's PostgreSQL restarts (issue 15 item 3). A private cluster (initdb in a temp
 * dir, its own port) so the shared one on :55432 is never touched. While it is down every request
 * answers with a clear error code within its deadline (none hangs); once it is back the Panel
 * works again without a restart; no operation runs twice, the game server keeps running.
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
  privatePostgres,
  sleep,
  stoppedCount,
  timeUntil,
} from './lib.ts';

describe('fault: PostgreSQL restart (a private cluster)', () => {
  let pg: Awaited<ReturnType<typeof privatePostgres>> | undefined;
  let stack: Awaited<ReturnType<typeof faultStack>> | undefined;
  before(async () => {
    pg = await privatePostgres('capf-pg');
    stack = await faultStack('capf-pg', { panelEnv: { DATABASE_URL: pg.url } });
  });
  after(async () => {
    await stack?.stop();
    await pg?.close();
  });

  it('requests during the outage fail with a code, none hangs; after it the Panel works, nothing ran twice', async () => {
    const s = stack as NonNullable<typeof stack>;
    const db = pg as NonNullable<typeof pg>;
    const { client } = s;
    const id = await client.tickServer(s.nodeId, 'pg-1');
    const ledger = new CommandLedger(client, id, 'pg');
    for (let i = 0; i < 3; i++) assert.equal((await ledger.send()).status, 202);
    const before = await containerStarts(s.docker, [id]);

    db.down();
    const downAt = Date.now();
    // what a user does meanwhile: read, a command, a power action
    const during: { what: string; status: number; code: string; ms: number }[] = [];
    const tryIt = async (what: string, method: string, p: string, body?: unknown) => {
      const r = await client.api(method, p, body, 30_000);
      during.push({ what, status: r.status, code: r.body?.code ?? r.error ?? '-', ms: r.ms });
    };
    await tryIt('list', 'GET', '/api/servers');
    await tryIt('get', 'GET', `/api/servers/${id}`);
    await ledger.send();
    during.push({ what: 'command', ...ledgerLast(ledger) });
    await tryIt('restart', 'POST', `/api/servers/${id}/power`, { action: 'restart' });
    await sleep(Math.max(0, 5000 - (Date.now() - downAt)));
    db.up();
    const upAt = Date.now();
    const recoveryMs = await timeUntil(
      async () => (await client.api('GET', '/api/servers', undefined, 5000)).status === 200,
      60_000,
    );
    const online = await client.online(s.nodeId);

    // after: a command and a restart go through, once
    for (let i = 0; i < 3; i++) assert.equal((await ledger.send()).status, 202);
    const stoppedByOutage = stoppedCount(before, await containerStarts(s.docker, [id]));
    const op = await client.api('POST', `/api/servers/${id}/power`, { action: 'restart' });
    assert.equal(op.status, 202, JSON.stringify(op.body));
    await until(
      async () =>
        (await client.api('GET', `/api/operations/${op.body.operationId}`)).body?.finishedAt != null,
      60_000,
    );
    const opEnd = (await client.api('GET', `/api/operations/${op.body.operationId}`)).body;
    await until(async () => (await client.status(id)) === 'running', 30_000);
    await sleep(1000);
    const cmds = ledger.check(path.join(s.serverDir(id), 'cmds.log'));
    const boots = fileLines(path.join(s.serverDir(id), 'boots.log')).length;
    const ops = (await client.api('GET', `/api/servers/${id}/operations`)).body as {
      kind: string;
      success: boolean | null;
    }[];
    const duringRestart = during.find((x) => x.what === 'restart');
    figures('postgres-restart', {
      pg_down_ms: upAt - downAt,
      recovery_ms: recoveryMs,
      during: during.map((x) => `${x.what}:${x.status}:${x.code}:${x.ms}ms`).join(','),
      slowest_during_ms: Math.max(...during.map((x) => x.ms)),
      node_online_after: online,
      op_after_success: String(opEnd.success),
      boots,
      operations: ops.length,
      servers_stopped: stoppedByOutage,
      commands_sent: cmds.sent,
      commands_lost: cmds.lost,
      commands_twice: cmds.twice,
      refused_but_ran: cmds.refusedButRan,
    });
    for (const x of during) {
      assert.ok(x.status >= 500 && x.status < 600, `${x.what} during the outage: ${x.status}`);
      assert.notEqual(x.code, '-', `${x.what} during the outage answers a code`);
    }
    for (const what of ['list', 'get']) {
      const x = during.find((d) => d.what === what);
      assert.equal(x?.status, 503, `${what} during the outage: ${JSON.stringify(x)}`);
      assert.equal(x?.code, 'DATABASE_UNAVAILABLE', `${what} during the outage: ${JSON.stringify(x)}`);
    }
    assert.equal(stoppedByOutage, 0, 'the outage stopped no server');
    assert.ok(online, 'the Agent stayed (or came back) online');
    assert.equal(opEnd.success, true, 'a restart after the outage works');
    // create's start + the restart after; the refused one during the outage never ran
    assert.equal(boots, 2 + (duringRestart?.status === 202 ? 1 : 0), `boots: ${boots}`);
    assert.equal(cmds.lost, 0);
    assert.equal(cmds.twice, 0);
    assert.equal(cmds.refusedButRan, 0);
  });
});

function ledgerLast(l: CommandLedger): { status: number; code: string; ms: number } {
  const e = l.sent[l.sent.length - 1];
  return { status: e?.status ?? 0, code: e?.code ?? '-', ms: 0 };
}
