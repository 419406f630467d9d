/**
 * Operation ends acked to the Agent (issue 15: an end is never lost when the Panel dies right
 * after it was sent): the projection acks an `operation_completed` once the operation service
 * stored it (or had it already: a repeat, sent again after a reconnect, is acked again but
 * neither published nor run through its end hook twice); an end that could not be stored is not
 * acked (the Agent sends it again); the hub's pings carry the acks, and the field every time.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import type { EventMessage } from '@cap/protocol';
import { pino } from 'pino';
import { type DomainEvent, InProcessBus } from '../../bus/index.ts';
import type { OperationsTable } from '../../db/schema.ts';
import type { AgentGateway } from '../../relay/agent-gateway.ts';
import { AgentHub } from '../../relay/agent-hub.ts';
import type { LiveStore } from '../../relay/live-store.ts';
import type { OperationsRepo } from '../operations/repo.ts';
import { type OperationResult, OperationsService } from '../operations/service.ts';
import type { TemplatesService } from '../templates/service.ts';
import { AgentEventProjection } from './projection.ts';
import type { ServersRepo } from './repo.ts';

function rig() {
  const rows = new Map<string, OperationsTable>();
  const failing = { finish: false };
  const repo = {
    insert: async (r: OperationsTable) => void rows.set(r.id, { ...r }),
    findById: async (id: string) => rows.get(id),
    listOpen: async () => [...rows.values()].filter((r) => r.finished_at === null),
    setStage: async () => true,
    finish: async (id: string, res: OperationResult, at: string) => {
      if (failing.finish) throw new Error('database unavailable');
      const r = rows.get(id);
      if (!r || r.finished_at !== null) return false;
      Object.assign(r, { finished_at: at, success: res.success ? 1 : 0, stage: 'completed' });
      return true;
    },
  } as unknown as OperationsRepo;
  const bus = new InProcessBus({ error: () => undefined });
  const published: DomainEvent[] = [];
  bus.subscribe('operation', (e) => void published.push(e));
  const operations = new OperationsService({
    repo,
    gateway: { request: async () => ({}), isOnline: () => true } as unknown as AgentGateway,
    bus,
    log: pino({ level: 'silent' }),
  });
  const hooks: string[] = [];
  operations.onEnd('restart', async (op) => void hooks.push(op.id));
  const projection = new AgentEventProjection({
    repo: { findById: async () => undefined } as unknown as ServersRepo,
    templates: {} as TemplatesService,
    live: { status: () => 'running' } as unknown as LiveStore,
    bus,
    log: pino({ level: 'silent' }),
    operations,
  });
  projection.track('s1', 'n1', null);
  const end = (operationId: string, serverId = 's1') =>
    projection.handleEvent('n1', {
      type: 'event',
      timestamp: new Date().toISOString(),
      event: 'operation_completed',
      data: { operationId, serverId, action: 'restart_server', success: true },
    } as EventMessage);
  return { rows, failing, operations, projection, published, hooks, end };
}

describe('operation ends acked to the Agent', () => {
  it('an end is acked once stored; a repeat is acked again, not published nor hooked twice', async () => {
    const { operations, projection, published, hooks, end, rows } = rig();
    const id = await operations.open({ id: 's1', node_id: 'n1' }, 'restart', null);
    assert.deepEqual(projection.takeOperationAcks('n1'), [], 'nothing stored yet');
    await end(id);
    assert.equal(rows.get(id)?.success, 1);
    assert.deepEqual(projection.takeOperationAcks('n1'), [id]);
    assert.deepEqual(projection.takeOperationAcks('n1'), [], 'taken by the ping');
    // the Agent sends it again (the ack was lost with the link): a no-op, acked again
    await end(id);
    assert.deepEqual(projection.takeOperationAcks('n1'), [id]);
    assert.equal(published.filter((e) => e.kind === 'operation' && e.success !== undefined).length, 1);
    assert.deepEqual(hooks, [id]);
  });

  it('an end that could not be stored is not acked (the Agent sends it again); an unknown one is', async () => {
    const { operations, projection, failing, end } = rig();
    const id = await operations.open({ id: 's1', node_id: 'n1' }, 'restart', null);
    failing.finish = true;
    await assert.rejects(end(id), /database unavailable/);
    assert.deepEqual(projection.takeOperationAcks('n1'), []);
    failing.finish = false;
    await end(id);
    // sending again can change nothing for an operation that is not the node's, nor for a
    // server not on it: the Agent may forget those too
    await end('op_unknown');
    await end('op_elsewhere', 's-not-here');
    assert.deepEqual(projection.takeOperationAcks('n1'), [id, 'op_unknown', 'op_elsewhere']);
  });

  it('at most `max` per ping, the rest with the next; a hostile id is not kept', async () => {
    const { projection, end } = rig();
    for (let i = 0; i < 5; i++) await end(`op_${i}`);
    await end('x'.repeat(129));
    assert.deepEqual(projection.takeOperationAcks('n1', 3), ['op_0', 'op_1', 'op_2']);
    assert.deepEqual(projection.takeOperationAcks('n1', 3), ['op_3', 'op_4']);
  });

  it("the hub's ping carries the node's acks, and an empty list when there are none", async (t) => {
    const acks = [['op_a', 'op_b'], []];
    const hub = new AgentHub({
      log: pino({ level: 'silent' }),
      pingMs: 20,
      commandTimeoutMs: 1000,
      events: {
        onConnect: () => undefined,
        onDisconnect: () => undefined,
        onEvent: () => undefined,
        onPong: () => undefined,
        operationAcks: () => acks.shift() ?? [],
      },
    });
    const sent: Record<string, unknown>[] = [];
    const ws = Object.assign(new EventEmitter(), {
      OPEN: 1,
      readyState: 1,
      send: (text: string) => void sent.push(JSON.parse(text) as Record<string, unknown>),
      close: () => undefined,
      terminate: () => undefined,
    });
    hub.attach('n1', ws as never);
    t.after(() => hub.release('n1', 'test over'));
    while (sent.length < 2) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(
      sent.slice(0, 2).map((m) => [m.type, m.operationAcks]),
      [
        ['ping', ['op_a', 'op_b']],
        ['ping', []],
      ],
    );
  });
});
