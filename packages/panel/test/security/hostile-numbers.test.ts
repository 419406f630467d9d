/**
 * Numbers from an Agent are data from outside (issue 8 item 5): `resource_update` values such as
 * ±1.7e308 turned the running average into NaN and every metrics, telemetry and dashboard call
 * into a 500. Values are checked for finite, sane ranges at the edge, and a failed metrics flush
 * is logged while later flushes go on.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ResourceSnapshot } from '@cap/protocol';
import { MetricsService } from '../../src/modules/metrics/service.ts';
import type { FakeAgent } from '../fake-agent.ts';
import {
  createServer,
  fakeAgentNode,
  type Session,
  startTestPanel,
  type TestPanel,
  until,
} from '../helpers.ts';

const snapshot = (serverId: string, over: Partial<Record<string, number>> = {}): ResourceSnapshot => ({
  serverId,
  cpu: over.cpu ?? 12.5,
  memory: {
    used: '1m',
    percentage: over.memPct ?? 1,
    usedBytes: over.memBytes ?? 1_000_000,
    limitBytes: 64_000_000,
  },
  network: { rx: over.rx ?? 10, tx: 20 },
  disk: { used: '0m', percentage: 0, usedBytes: 0, limitBytes: 0 },
  uptime: over.uptime ?? 5,
});

describe('hostile numbers from an Agent', () => {
  let panel: TestPanel;
  let owner: Session;
  let agent: FakeAgent;
  let serverId: string;

  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
    const node = await fakeAgentNode(panel, owner);
    agent = node.agent;
    serverId = await createServer(panel, owner, node.id, 'nums');
  });
  after(async () => {
    await agent.close();
    await panel.stop();
  });

  test('±1.7e308, negative and absurd values are refused; metrics, telemetry and dashboard stay 200', async () => {
    agent.emit('resource_update', snapshot(serverId));
    const hostile = [
      { cpu: 1.7e308 },
      { cpu: -1.7e308 },
      { cpu: -1 },
      { memBytes: 1.7e308 },
      { memBytes: -5 },
      { rx: 2 ** 60 },
      { memPct: 1e300 },
      { uptime: 1e300 },
    ];
    const before = panel.app.panel.hub.invalidMessages;
    for (const h of hostile) agent.emit('resource_update', snapshot(serverId, h));
    // a pong with absurd load too
    agent.send({
      id: 'pong_1',
      type: 'pong',
      timestamp: new Date().toISOString(),
      data: { agentStatus: 'healthy', activeServers: 1, systemLoad: { cpu: 1.7e308, memory: -1, disk: 0 } },
    });
    await until(() => panel.app.panel.hub.invalidMessages >= before + hostile.length + 1);
    agent.emit('resource_update', snapshot(serverId, { cpu: 30 }));
    await until(async () => {
      const t = await panel.api(owner, 'GET', `/api/servers/${serverId}/telemetry`);
      return t.status === 200 && t.body.stats?.cpu === 30;
    });
    await panel.app.panel.metrics.flush(true);
    for (const path of [
      `/api/servers/${serverId}/metrics?range=1h`,
      `/api/servers/${serverId}/telemetry`,
      '/api/dashboard',
    ]) {
      const r = await panel.api(owner, 'GET', path);
      assert.equal(r.status, 200, `${path}: ${JSON.stringify(r.body)}`);
    }
    const m = await panel.api(owner, 'GET', `/api/servers/${serverId}/metrics?range=1h`);
    for (const b of m.body) assert.ok(Number.isFinite(b.cpu) && b.cpu >= 0 && b.cpu <= 100, `cpu ${b.cpu}`);
  });

  test('sane values at the edges are accepted', async () => {
    const before = panel.app.panel.hub.invalidMessages;
    agent.emit('resource_update', snapshot(serverId, { cpu: 6400, memBytes: 2 ** 40, uptime: 3e7 }));
    await until(async () => {
      const t = await panel.api(owner, 'GET', `/api/servers/${serverId}/telemetry`);
      return t.body.stats?.cpu === 6400;
    });
    assert.equal(panel.app.panel.hub.invalidMessages, before);
  });

  test('a failed metrics flush does not stop later flushes or reads', async () => {
    let fail = true;
    const written: unknown[] = [];
    const errors: unknown[] = [];
    const svc = new MetricsService(
      {
        async upsert(rows: unknown[]) {
          if (fail) throw new Error('database is locked');
          written.push(...rows);
        },
        async range() {
          return [];
        },
        async pruneBefore() {},
      } as never,
      { onError: (e) => errors.push(e) },
    );
    svc.record('s1', snapshot('s1'), 0);
    await svc.flush(true);
    assert.equal(errors.length, 1, 'the failure is reported');
    fail = false;
    svc.record('s1', snapshot('s1', { cpu: 40 }), 60_000);
    await svc.flush(true);
    assert.ok(written.length > 0, 'a later flush writes');
    const r = await svc.range('s1', '1h', 60_000);
    assert.ok(Array.isArray(r));
  });
});
