/**
 * The Agent gateway across two Panel replicas (issue 15 item 1): two Panels in this process on
 * one real PostgreSQL database and one real nats-server (Debian's, on a free port), a fake Agent
 * (the real protocol over a real WebSocket) linked to replica A. Through replica B: commands reach
 * it, the Agent's failed answers keep their code, silence is TIMEOUT, an unknown node
 * AGENT_OFFLINE, an operation waited for on B ends there; the Agent linking again to B closes
 * A's older link (newest wins); a replica that vanished without a word stops counting once its
 * heartbeats stop; hostile messages on the subjects are dropped and counted.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CodedError } from '@cap/protocol';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { NatsAgentGateway } from '../src/relay/nats-agent-gateway.ts';
import { FakeAgent, FakeAgentError, NO_REPLY } from './fake-agent.ts';
import { freePort, type Session, scratchDatabase, startTestPanel, type TestPanel, until } from './helpers.ts';

const NATS = '/usr/sbin/nats-server';

async function reachable(port: number): Promise<boolean> {
  try {
    const nc = await connect({ servers: `127.0.0.1:${port}` });
    await nc.close();
    return true;
  } catch {
    return false;
  }
}

async function rejects(p: Promise<unknown>): Promise<CodedError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CodedError, `a CodedError, got ${String(e)}`);
    return e;
  }
  assert.fail('resolved');
}

describe('NatsAgentGateway: two replicas, one NATS, one PostgreSQL', () => {
  let broker: ChildProcess | undefined;
  let db: Awaited<ReturnType<typeof scratchDatabase>>;
  let a: TestPanel;
  let b: TestPanel;
  let ownerA: Session;
  let ownerB: Session;
  let agent: FakeAgent;
  let nodeId = '';
  let raw: NatsConnection;
  const prefix = `capgw${process.pid}`;
  const shared = mkdtempSync(path.join(tmpdir(), 'cap-gw-'));
  const gw = (p: TestPanel) => p.app.panel.gateway as NatsAgentGateway;

  before(async () => {
    assert.ok(existsSync(NATS), `${NATS} is missing: apt-get install nats-server`);
    const port = await freePort();
    broker = spawn(NATS, ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    await until(() => reachable(port), 10_000);
    db = await scratchDatabase('postgres', 'cap_gw');
    const env = {
      ...db.env,
      // the replicas share the key files (Agent tokens signed by one verify on the other)
      DATA_DIR: shared,
      PANEL_NATS_URL: `nats://127.0.0.1:${port}`,
      PANEL_NATS_PREFIX: prefix,
      PANEL_REPLICA_HEARTBEAT_MS: '200',
      // low, to see the limit counted over both replicas (the owners' logins use 2)
      PANEL_LOGIN_RATE_PER_MIN: '5',
    };
    a = await startTestPanel(env);
    b = await startTestPanel(env);
    ownerA = await a.login();
    ownerB = await b.login();
    raw = await connect({ servers: `127.0.0.1:${port}` });
    const node = await a.createNode(ownerA, 'gw-node');
    nodeId = node.id;
    agent = await FakeAgent.start({
      panelUrl: a.url,
      agentSecret: node.agentSecret,
      handlers: {
        send_command: (cmd) => {
          const text = (cmd.payload as { command: string }).command;
          if (text === 'fail') throw new FakeAgentError('SERVER_BUSY', 'busy right now');
          if (text === 'silence') return NO_REPLY;
          return { ok: true, echoed: text };
        },
      },
    });
    await until(() => a.app.panel.hub.isOnline(nodeId));
    await until(() => gw(b).isOnline(nodeId), 5000);
  });

  after(async () => {
    await agent?.close();
    await raw?.close();
    await b?.stop();
    await a?.stop();
    if (broker && broker.exitCode === null) {
      const exited = new Promise((r) => broker?.once('exit', r));
      broker.kill('SIGTERM');
      await exited;
    }
    await db?.drop();
    rmSync(shared, { recursive: true, force: true });
  });

  it('B sees the node online, held by A; B holds no socket of it', () => {
    assert.equal(b.app.panel.hub.isOnline(nodeId), false);
    assert.equal(gw(b).isOnline(nodeId), true);
    assert.equal(gw(b).holderOf(nodeId), gw(a).replicaId);
  });

  it('a command from B reaches the Agent on A and its answer comes back; errors keep their codes', async () => {
    const served = gw(a).stats.served;
    const data = await gw(b).request(nodeId, 'send_command', { command: 'hello' }, { serverId: 'srv-x' });
    assert.deepEqual(data, { ok: true, echoed: 'hello' });
    assert.equal(gw(a).stats.served, served + 1);
    const cmd = agent.commands.findLast((c) => c.action === 'send_command');
    assert.equal(cmd?.serverId, 'srv-x');

    const busy = await rejects(
      gw(b).request(nodeId, 'send_command', { command: 'fail' }, { serverId: 'srv-x' }),
    );
    assert.equal(busy.code, 'SERVER_BUSY');
    assert.equal(busy.message, 'busy right now');

    const t0 = Date.now();
    const timeout = await rejects(
      gw(b).request(nodeId, 'send_command', { command: 'silence' }, { serverId: 'srv-x', timeoutMs: 300 }),
    );
    assert.equal(timeout.code, 'TIMEOUT');
    assert.ok(Date.now() - t0 < 2000, 'the holder answers TIMEOUT after the request timeout');

    const offline = await rejects(gw(b).request('no-such-node', 'system_info', {}));
    assert.equal(offline.code, 'AGENT_OFFLINE');
  });

  it('latency: a request via the other replica against one on the holder (figures)', async () => {
    const time = async (p: TestPanel, n: number) => {
      const ms: number[] = [];
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        await gw(p).request(nodeId, 'send_command', { command: `n${i}` }, { serverId: 'srv-x' });
        ms.push(performance.now() - t);
      }
      ms.sort((x, y) => x - y);
      return { p50: ms[Math.floor(n / 2)] ?? 0, p99: ms[Math.floor(n * 0.99)] ?? 0 };
    };
    await time(b, 20);
    const local = await time(a, 200);
    const remote = await time(b, 200);
    console.log(
      `# gateway request latency (200 each): on the holder p50 ${local.p50.toFixed(2)} ms p99 ${local.p99.toFixed(2)} ms; ` +
        `via the other replica p50 ${remote.p50.toFixed(2)} ms p99 ${remote.p99.toFixed(2)} ms`,
    );
  });

  it('an operation started on B (create ?wait=true, power) ends on B: its end comes through the bus', async () => {
    const created = await b.api(ownerB, 'POST', '/api/servers?wait=true', {
      name: 'gw-srv',
      nodeId,
      image: 'img',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const serverId = created.body.id as string;
    assert.ok(agent.servers.has(serverId), 'the Agent on A made it');
    const power = await b.api(ownerB, 'POST', `/api/servers/${serverId}/power`, { action: 'start' });
    assert.equal(power.status, 202, JSON.stringify(power.body));
    const opId = power.body.operationId as string;
    await until(async () => {
      const op = await b.api(ownerB, 'GET', `/api/servers/${serverId}/operations`);
      return (op.body as { id: string; success: boolean | null }[]).some(
        (o: { id: string; success: boolean | null }) => o.id === opId && o.success === true,
      );
    }, 5000);
    // the status B's API reports follows the Agent's events on A
    await until(
      async () => (await b.api(ownerB, 'GET', `/api/servers/${serverId}`)).body.status === 'running',
      5000,
    );
    // once, not twice
    assert.equal(
      agent.commands.filter((c) => c.action === 'start_server' && c.serverId === serverId).length,
      1,
    );
  });

  it('the Agent linking again to B closes its older link on A (newest wins)', async () => {
    const old = agent.ws;
    const closed = new Promise<number>((r) => old.once('close', (code) => r(code)));
    await agent.linkAlso(`${b.url.replace(/^http/, 'ws')}/ws/agents`);
    assert.equal(await closed, 4000, 'A closed its link as replaced');
    await until(() => b.app.panel.hub.isOnline(nodeId) && !a.app.panel.hub.isOnline(nodeId), 5000);
    assert.equal(gw(a).stats.replaced >= 1, true);
    // it stays online everywhere (no node.offline from the replaced link)
    await until(() => gw(a).holderOf(nodeId) === gw(b).replicaId, 5000);
    assert.equal(gw(a).isOnline(nodeId), true);
    const nodeOnA = await a.api(ownerA, 'GET', `/api/nodes/${nodeId}`);
    assert.equal(nodeOnA.body.online, true);
  });

  it('disconnect on A reaches the link held by B', async () => {
    const ws = agent.ws;
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    gw(a).disconnect(nodeId, 'removed in a test');
    assert.equal(await closed, 4410);
    await until(() => !gw(a).isOnline(nodeId) && !gw(b).isOnline(nodeId), 5000);
  });

  it('a replica that vanished (no offline, no release) stops counting once its heartbeats stop', async () => {
    const enc = new TextEncoder();
    const ghostNode = 'ghost-node-1';
    const beat = () =>
      raw.publish(
        `${prefix}.agent.presence`,
        enc.encode(JSON.stringify({ replica: 'ghost', nodes: [ghostNode] })),
      );
    beat();
    await raw.flush();
    await until(() => gw(b).isOnline(ghostNode), 2000);
    const timer = setInterval(beat, 200);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(gw(b).isOnline(ghostNode), true, 'online while it beats');
    clearInterval(timer);
    const stopped = Date.now();
    await until(() => !gw(b).isOnline(ghostNode), 3000);
    const gone = Date.now() - stopped;
    console.log(`# a silent replica's node stopped counting after ${gone} ms (heartbeat 200 ms, ttl 600 ms)`);
    assert.ok(gone >= 300, `not before the TTL (${gone} ms)`);
    // and a request for it meets nobody: AGENT_OFFLINE at once
    beat();
    await raw.flush();
    await until(() => gw(b).isOnline(ghostNode), 2000);
    const e = await rejects(gw(b).request(ghostNode, 'system_info', {}));
    assert.equal(e.code, 'AGENT_OFFLINE');
  });

  it('hostile messages on the gateway subjects are dropped and counted, never fatal', async () => {
    const enc = new TextEncoder();
    const before = gw(b).stats.dropped;
    for (const body of [
      'not json',
      '[]',
      '{"replica":1}',
      '{"replica":"x","nodes":"y"}',
      '{"__proto__":{"replica":"x"}}',
    ])
      raw.publish(`${prefix}.agent.presence`, enc.encode(body));
    raw.publish(`${prefix}.agent.claim`, enc.encode('{"replica":"x","nodeId":"../../etc","since":1}'));
    raw.publish(`${prefix}.agent.claim`, enc.encode('{"replica":"x","nodeId":"n","since":"later"}'));
    raw.publish(`${prefix}.agent.disconnect`, enc.encode('{"nodeId":5}'));
    await raw.flush();
    await until(() => gw(b).stats.dropped >= before + 8, 3000);
    // a request with an unknown action, straight to a node's subject, is refused with a code
    const node = await b.createNode(ownerB, 'gw-node-2');
    const second = await FakeAgent.start({ panelUrl: b.url, agentSecret: node.agentSecret });
    try {
      await until(() => b.app.panel.hub.isOnline(second.id));
      const reply = await raw.request(
        `${prefix}.agent.req.${second.id}`,
        enc.encode('{"action":"rm -rf","timeoutMs":100}'),
      );
      assert.equal(JSON.parse(new TextDecoder().decode(reply.data)).code, 'INVALID_MESSAGE');
      assert.ok(!second.commands.some((c) => (c.action as string) === 'rm -rf'));
      // and the replicas still work
      assert.ok(await gw(a).request(second.id, 'system_info', {}));
    } finally {
      await second.close();
    }
  });

  it('the login rate limit is counted over both replicas (PostgreSQL rate_limits)', async () => {
    const attempt = async (p: TestPanel) =>
      (
        await fetch(`${p.url}/api/auth/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ email: 'victim@example.test', password: 'wrong-password-1' }),
        })
      ).status;
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push(await attempt(i % 2 === 0 ? a : b));
    // 5 a minute per address and email: the sixth is refused although each replica saw only 3
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429]);
  });
});
