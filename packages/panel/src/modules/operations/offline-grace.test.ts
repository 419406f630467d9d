/**
 * OperationsService's offline grace with an in-memory repository, a gateway whose nodes go on and
 * offline as told and the in-process bus: a waiter whose node stays offline hears AGENT_OFFLINE
 * (`pending`) after the grace while the operation stays open; a link back within the grace
 * changes nothing; an end after the waiter gave up still closes the row once. And `startedHere`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { InProcessBus } from '../../bus/index.ts';
import type { OperationsTable } from '../../db/schema.ts';
import type { AgentGateway } from '../../relay/agent-gateway.ts';
import type { OperationsRepo } from './repo.ts';
import { OPERATION_TIMEOUT_MS, type OperationResult, OperationsService } from './service.ts';

const GRACE = 400;

function rig() {
  const rows = new Map<string, OperationsTable>();
  const repo = {
    insert: async (r: OperationsTable) => void rows.set(r.id, { ...r }),
    findById: async (id: string) => rows.get(id),
    listOpen: async () => [...rows.values()].filter((r) => r.finished_at === null),
    setStage: async (id: string, stage: string, at: string, onlyFrom?: string) => {
      const r = rows.get(id);
      if (!r || r.finished_at !== null || (onlyFrom !== undefined && r.stage !== onlyFrom)) return false;
      Object.assign(r, { stage, updated_at: at });
      return true;
    },
    finish: async (id: string, res: OperationResult, at: string) => {
      const r = rows.get(id);
      if (!r || r.finished_at !== null) return false;
      Object.assign(r, {
        finished_at: at,
        success: res.success ? 1 : 0,
        stage: res.success ? 'completed' : 'failed',
        error_code: res.code ?? null,
      });
      return true;
    },
  } as unknown as OperationsRepo;
  const online = new Set(['n1']);
  const bus = new InProcessBus({ error: () => undefined });
  const gateway = {
    request: async () => ({}),
    isOnline: (n: string) => online.has(n),
    disconnect: () => undefined,
  } as unknown as AgentGateway;
  const ops = new OperationsService({
    repo,
    gateway,
    bus,
    log: pino({ level: 'silent' }),
    offlineGraceMs: GRACE,
  });
  const offline = (n: string) => {
    online.delete(n);
    bus.publish({ kind: 'node.offline', nodeId: n });
  };
  const back = (n: string) => {
    online.add(n);
    bus.publish({ kind: 'node.online', nodeId: n });
  };
  return { ops, rows, offline, back };
}

const server = { id: 's1', node_id: 'n1' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a waiter whose node stays offline hears AGENT_OFFLINE after the grace; the operation stays open', async () => {
  const { ops, rows, offline } = rig();
  let end: Promise<OperationResult> | undefined;
  const id = await ops.start(server, 'stop', 'stop_server', {}, null, { awaitEnd: (e) => (end = e) });
  const waited = ops.waitFor(id).then(({ end }) => end);
  offline('n1');
  const gone = Date.now();
  const [r, w] = await Promise.all([end, waited]);
  const after = Date.now() - gone;
  assert.ok(after >= GRACE && after < GRACE + 1000, `answered after the grace: ${after} ms`);
  for (const x of [r, w]) {
    assert.equal(x?.success, false);
    assert.equal(x?.code, 'AGENT_OFFLINE');
    assert.equal(x?.pending, true);
  }
  assert.equal(rows.get(id)?.finished_at, null, 'the stored operation stays open');
  assert.equal(rows.get(id)?.stage, 'accepted');
  // the Agent's end, later (its hello): closed once
  assert.equal(await ops.completed('n1', 's1', id, { success: true }), true);
  assert.equal(rows.get(id)?.success, 1);
  ops.close();
});

test('a link back within the grace changes nothing: the waiter gets the real end', async () => {
  const { ops, offline, back } = rig();
  let end: Promise<OperationResult> | undefined;
  const id = await ops.start(server, 'stop', 'stop_server', {}, null, { awaitEnd: (e) => (end = e) });
  let heard: OperationResult | undefined;
  void end?.then((r) => (heard = r));
  offline('n1');
  await sleep(GRACE / 2);
  back('n1');
  await sleep(GRACE * 2);
  assert.equal(heard, undefined, 'still waiting');
  await ops.completed('n1', 's1', id, { success: true });
  assert.deepEqual(await end, { success: true });
  ops.close();
});

test('waitFor an operation whose node is offline already: the grace counts from then', async () => {
  const { ops, rows, offline } = rig();
  const id = await ops.start(server, 'stop', 'stop_server', {}, null);
  offline('n1');
  const asked = Date.now();
  const { end } = await ops.waitFor(id);
  const r = await end;
  assert.equal(r.code, 'AGENT_OFFLINE');
  assert.ok(Date.now() - asked >= GRACE, 'not before the grace');
  assert.equal(rows.get(id)?.finished_at, null);
  ops.close();
});

test('startedHere: an operation this process opened, until its end was heard (by every subscriber of that turn)', async () => {
  const { ops } = rig();
  const id = await ops.start(server, 'update', 'update_server', {} as never, null);
  assert.equal(ops.startedHere(id), true);
  assert.equal(ops.startedHere('op_elsewhere'), false);
  await ops.completed('n1', 's1', id, { success: true });
  assert.equal(ops.startedHere(id), true, 'still, for the end event’s other subscribers');
  await new Promise((r) => setImmediate(r));
  assert.equal(ops.startedHere(id), false);
  ops.close();
});

test('startedHere: an end never heard (lost in a broker outage) is forgotten after the operation timeout', async () => {
  const { ops } = rig();
  const id = await ops.start(server, 'update', 'update_server', {} as never, null);
  const at = Date.now();
  // no end arrives: still this process's until the timeout (OPERATION_TIMEOUT_MS, 2 h)
  assert.equal(ops.startedHere(id, at + OPERATION_TIMEOUT_MS - 60_000), true);
  assert.equal(ops.startedHere(id, at + OPERATION_TIMEOUT_MS + 1000), false);
  // and one opened since is not forgotten with it
  const next = await ops.start(server, 'update', 'update_server', {} as never, null);
  assert.equal(ops.startedHere(next), true);
  ops.close();
});
