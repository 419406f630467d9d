/**
 * Operation ends on the Panel link (issue 15: nothing lost when the Panel dies right after an end
 * was sent): an end sent on a live link is kept until a ping acks it (`operationAcks`); a link
 * that dies first sends it again after the reconnect, in its place among the console lines; an
 * acked one is not sent again; a Panel that never acks (an older release) leaves only the latest
 * KEPT_ENDS_UNACKED kept, and what gives way is counted.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { type EventMessage, event, PROTOCOL_VERSION } from '@cap/protocol';
import { pino } from 'pino';
import { FakePanel } from '../../test/fake-panel.ts';
import { loadAgentConfig } from '../config/config.ts';
import { AgentMetrics } from '../metrics.ts';
import { KEPT_ENDS, KEPT_ENDS_UNACKED, PanelLink } from './link.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) assert.fail(`timed out: ${what}`);
    await sleep(10);
  }
}

async function rig(t: import('node:test').TestContext) {
  const panel = await new FakePanel({ secret: 'secret-secret-secret' }).start();
  panel.fenced = null;
  const dataDir = await mkdtemp(path.join(tmpdir(), 'cap-ends-'));
  const config = loadAgentConfig({
    PANEL_URL: panel.url,
    NODE_ID: 'node-ends',
    AGENT_SECRET: panel.secret,
    AGENT_DATA_DIR: dataDir,
  });
  const link = new PanelLink(config, pino({ level: 'silent' }), {
    onCommand: async () => assert.fail('no commands here'),
    hello: () => ({ protocolVersion: PROTOCOL_VERSION, agentVersion: 'test', servers: [] }),
    pong: async () => ({
      agentStatus: 'healthy',
      activeServers: 0,
      systemLoad: { cpu: 0, memory: 0, disk: 0 },
    }),
    registration: async () => ({ port: 1, dockerVersion: '27.0.0' }),
  });
  link.start();
  t.after(async () => {
    await link.stop();
    await panel.stop();
    await rm(dataDir, { recursive: true, force: true });
  });
  await until('connected', () => link.connected);
  let pings = 0;
  /** a ping from the Panel; resolves once answered (the Agent handled the acks before the pong) */
  const ping = async (fields: Record<string, unknown>) => {
    const id = `ping_${++pings}`;
    const answered = panel.waitFor((m) => m.type === 'pong' && m.id === id);
    panel.sendRaw(JSON.stringify({ id, type: 'ping', timestamp: new Date().toISOString(), ...fields }));
    await answered;
  };
  const end = (n: number) =>
    event('operation_completed', {
      operationId: `op_${n}`,
      serverId: 's1',
      action: 'restart_server',
      success: true,
    });
  const ends = (since = 0) =>
    panel.received
      .slice(since)
      .filter((m) => m.type === 'event' && m.event === 'operation_completed')
      .map((m) => (m as EventMessage<'operation_completed'>).data.operationId);
  /** drops the link from the Panel's side, waits for the next hello; returns where it starts */
  const reconnect = async () => {
    const before = link.connections;
    const hellos = () => panel.received.filter((m) => m.type === 'event' && m.event === 'agent_hello').length;
    const hellosBefore = hellos();
    panel.dropAgent();
    // the Panel's side saw the new hello (the Agent may say connected before it was read there)
    await until('reconnected', () => link.connections > before && link.connected && hellos() > hellosBefore);
    const at = panel.received.findLastIndex((m) => m.type === 'event' && m.event === 'agent_hello');
    // what was queued is sent right after the hello; a ping round trip makes sure it all arrived
    await ping({ operationAcks: [] });
    return at;
  };
  return { panel, link, ping, end, ends, reconnect };
}

test('an end the link lost before its ack is sent again after the reconnect, in order; an acked one is not', async (t) => {
  const { panel, link, ping, end, ends, reconnect } = await rig(t);
  await ping({ operationAcks: [] });
  link.send(event('server_log', { serverId: 's1', message: 'before', seq: 1, epoch: 'ep' }));
  link.send(end(1));
  link.send(event('server_log', { serverId: 's1', message: 'after', seq: 2, epoch: 'ep' }));
  link.send(end(2));
  await until('both ends arrived', () => ends().length === 2);
  assert.equal(link.unackedEnds, 2);
  // op_1 stored and acked; op_2 read by a Panel that died before storing it
  await ping({ operationAcks: ['op_1'] });
  assert.equal(link.unackedEnds, 1);
  const at = await reconnect();
  assert.deepEqual(ends(at), ['op_2'], 'only the unacked end goes again');
  // in the order they went out: the unacked lines before it, the later line after it
  const order = panel.received
    .slice(at)
    .filter((m) => m.type === 'event' && (m.event === 'operation_completed' || m.event === 'server_log'))
    .map((m) =>
      (m as EventMessage).event === 'server_log'
        ? (m as EventMessage<'server_log'>).data.message
        : (m as EventMessage<'operation_completed'>).data.operationId,
    );
  assert.deepEqual(order, ['before', 'after', 'op_2']);
  // kept again on the new link until acked; once acked, a further reconnect sends nothing
  assert.equal(link.unackedEnds, 1);
  await ping({ operationAcks: ['op_2'] });
  assert.equal(link.unackedEnds, 0);
  const at2 = await reconnect();
  assert.deepEqual(ends(at2), []);
  assert.equal(link.endsEvicted, 0);
  assert.deepEqual(panel.invalid, []);
});

test('a Panel that never acks ends (an older release): only the latest are kept, the rest counted', async (t) => {
  const { link, ping, end, ends, reconnect } = await rig(t);
  for (let i = 0; i < KEPT_ENDS_UNACKED + 50; i++) link.send(end(i));
  await until('all sent', () => ends().length === KEPT_ENDS_UNACKED + 50);
  // no ping yet: this Panel may ack, every end is kept
  assert.equal(link.unackedEnds, KEPT_ENDS_UNACKED + 50);
  await ping({});
  assert.equal(link.unackedEnds, KEPT_ENDS_UNACKED);
  assert.equal(link.endsEvicted, 50);
  for (let i = 0; i < 30; i++) link.send(end(1000 + i));
  assert.equal(link.unackedEnds, KEPT_ENDS_UNACKED);
  assert.equal(link.endsEvicted, 80);
  // a resend is harmless (the Panel closes an operation once): the latest go again, bounded
  const at = await reconnect();
  const again = ends(at);
  assert.equal(again.length, KEPT_ENDS_UNACKED);
  assert.equal(again.at(-1), 'op_1029');
  assert.equal(again[0], `op_${80}`);
});

test('a Panel that acks: ends are kept up to KEPT_ENDS, what gives way past it is counted', async (t) => {
  const { link, ping, end } = await rig(t);
  await ping({ operationAcks: [] });
  for (let i = 0; i < KEPT_ENDS + 3; i++) link.send(end(i));
  assert.equal(link.unackedEnds, KEPT_ENDS);
  assert.equal(link.endsEvicted, 3);
  // and scraped
  const metrics = new AgentMetrics();
  t.after(() => metrics.stop());
  const { body } = await metrics.render({
    servers: () => [],
    linkUp: () => true,
    linkConnections: () => link.connections,
    linkEndsEvicted: () => link.endsEvicted,
  });
  assert.match(body, /^cap_agent_operation_ends_unacked_dropped_total 3$/m);
  // the same end sent twice is kept once
  link.send(end(KEPT_ENDS + 2));
  assert.equal(link.unackedEnds, KEPT_ENDS);
});
