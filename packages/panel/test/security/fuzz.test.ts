/**
 * Fuzzing both of the Panel's sockets with hostile input: inherited property names
 * (`constructor`, `__proto__`, …) as type/event/action/field names, huge, negative and
 * non-finite numbers (1e400 parses to Infinity), deep nesting and long strings. The Panel stays
 * up, the Agent's link stays up, every bad Agent message is refused (counted, never handled),
 * every bad browser message gets an `error` with a code, and later valid messages still work.
 * Seeded: the seed is printed; rerun with FUZZ_SEED=<seed>.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CLIENT_MAX_FRAME_BYTES, ErrorCode, newMessageId } from '@cap/protocol';
import { Fuzz, seedFromEnv, toWire } from '@cap/protocol/testing/fuzz.ts';
import WebSocket from 'ws';
import type { FakeAgent } from '../fake-agent.ts';
import {
  type ClientSocket,
  createServer,
  fakeAgentNode,
  type Session,
  startTestPanel,
  type TestPanel,
  until,
} from '../helpers.ts';

const SEED = seedFromEnv();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => new Date().toISOString();

describe(`fuzz: the Panel's /ws/agents and /ws/client (FUZZ_SEED=${SEED})`, () => {
  let panel: TestPanel;
  let owner: Session;
  let agent: FakeAgent;
  let nodeId: string;
  let serverId: string;

  before(async () => {
    console.log(`fuzz seed: FUZZ_SEED=${SEED}`);
    panel = await startTestPanel();
    owner = await panel.login();
    const node = await fakeAgentNode(panel, owner);
    nodeId = node.id;
    agent = node.agent;
    serverId = await createServer(panel, owner, nodeId, 'fuzz');
  });
  after(async () => {
    await agent.close();
    await panel.stop();
  });

  /** The link still carries events both ways: a status event lands and a command is answered. */
  async function linkWorks(status: 'running' | 'offline'): Promise<void> {
    assert.equal(agent.ws.readyState, WebSocket.OPEN, 'the Panel closed the agent link');
    assert.ok(panel.app.panel.hub.isOnline(nodeId));
    agent.emit('server_status_changed', {
      serverId,
      previousStatus: status === 'running' ? 'offline' : 'running',
      currentStatus: status,
    });
    await until(
      async () => (await panel.api(owner, 'GET', `/api/servers/${serverId}`)).body.status === status,
    );
    const files = await panel.api(owner, 'GET', `/api/servers/${serverId}/files?path=/`);
    assert.equal(files.status, 200, JSON.stringify(files.body));
  }

  test('agent messages whose type or event is an inherited name are all refused; the link stays up', async () => {
    const fuzz = new Fuzz(SEED);
    const hub = panel.app.panel.hub;
    const before = hub.invalidMessages;
    const n = 200;
    for (let i = 0; i < n; i++) {
      const msg =
        i % 2 === 0
          ? {
              type: 'event',
              id: newMessageId('evt'),
              timestamp: now(),
              event: fuzz.name(),
              data: fuzz.mutate({ serverId }),
            }
          : fuzz.mutate({ type: fuzz.name(), id: newMessageId('x'), timestamp: now(), data: {} });
      agent.send(toWire(msg));
    }
    await until(() => hub.invalidMessages - before >= n, 10_000);
    assert.equal(hub.invalidMessages - before, n);
    await linkWorks('running');
  });

  test('known events and responses with hostile fields and values: the Panel and the link stay up', async () => {
    const fuzz = new Fuzz(SEED + 1);
    const bases: (() => Record<string, unknown>)[] = [
      () => ({ serverId, previousStatus: 'offline', currentStatus: 'running' }),
      () => ({ serverId, message: 'hello', stream: 'stdout' }),
      () => ({ serverId, count: 3, reason: 'throttled' }),
      () => ({ serverId, exitCode: 1, oomKilled: false, restarting: false }),
      () => ({ serverId, stage: 'done' }),
      () => ({ serverId, online: 1, max: 2, list: ['a'] }),
      () => ({ serverId, success: true, exitCode: 0 }),
      () => ({ protocolVersion: 1, agentVersion: 'x', servers: [] }),
      () => ({
        serverId,
        cpu: fuzz.number(),
        memory: { used: '1m', percentage: fuzz.number(), usedBytes: fuzz.number(), limitBytes: 1 },
        network: { rx: fuzz.number(), tx: -1 },
        disk: { used: '1m', percentage: 1, usedBytes: 1, limitBytes: 1 },
        uptime: fuzz.number(),
      }),
    ];
    const events = [
      'server_status_changed',
      'server_log',
      'server_log_dropped',
      'server_crashed',
      'server_update_progress',
      'players_update',
      'install_completed',
      'agent_hello',
      'resource_update',
    ];
    for (let i = 0; i < 300; i++) {
      const k = fuzz.int(bases.length);
      const kind = fuzz.int(4);
      let msg: unknown;
      if (kind === 0) {
        msg = {
          type: 'event',
          id: newMessageId('evt'),
          timestamp: now(),
          event: events[k],
          data: fuzz.mutate(bases[k]!()),
        };
      } else if (kind === 1) {
        msg = fuzz.mutate({
          type: 'event',
          id: newMessageId('evt'),
          timestamp: now(),
          event: events[k],
          data: bases[k]!(),
        });
      } else if (kind === 2) {
        msg = fuzz.mutate({
          type: 'response',
          id: fuzz.name(),
          timestamp: now(),
          success: false,
          error: { code: fuzz.name(), message: 'x' },
        });
      } else {
        msg = fuzz.mutate({
          type: 'pong',
          id: fuzz.name(),
          timestamp: now(),
          data: {
            agentStatus: 'healthy',
            activeServers: fuzz.number(),
            systemLoad: { cpu: fuzz.number(), memory: 1, disk: 1 },
          },
        });
      }
      agent.send(toWire(msg));
      if (i % 50 === 49) await sleep(20);
    }
    await linkWorks('offline');
    await linkWorks('running');
  });

  test('a browser socket: every hostile message gets an error with a code; valid ones still work', async () => {
    // frames over 32 KiB close a browser socket by design: stay under that here
    const fuzz = new Fuzz(SEED + 2, { maxString: 8000, maxDepth: 4000 });
    const s: ClientSocket = await panel.clientSocket(owner);
    const make = (): unknown => {
      switch (fuzz.int(5)) {
        case 0:
          return fuzz.mutate({ type: fuzz.name(), serverId });
        case 1:
          return { type: 'subscribe', serverId: fuzz.value() };
        case 2:
          return { type: 'power', serverId, action: fuzz.value() };
        case 3:
          return {
            type: 'send_command',
            serverId,
            command: fuzz.pick([fuzz.number(), fuzz.longString(5000), { [fuzz.name()]: 1 }, [fuzz.name()]]),
          };
        default:
          return { type: 'subscribe', serverId: fuzz.name() };
      }
    };
    for (let i = 0; i < 80; i++) {
      let msg = make();
      // (an oversize frame closes the socket, as client-flood.test.ts shows: draw another)
      while (Buffer.byteLength(toWire(msg)) >= CLIENT_MAX_FRAME_BYTES) msg = make();
      s.send(toWire(msg));
      const reply = await s
        .next(() => true, 5000)
        .catch((e: Error) => {
          throw new Error(`no answer to ${toWire(msg).slice(0, 300)}: ${e.message}`);
        });
      assert.equal(reply.type, 'error', `${toWire(msg).slice(0, 200)} → ${JSON.stringify(reply)}`);
      assert.ok(ErrorCode.safeParse(reply.code).success, `no code: ${JSON.stringify(reply)}`);
      assert.notEqual(reply.code, 'RATE_LIMITED');
      assert.notEqual(
        reply.code,
        'INTERNAL_ERROR',
        `${toWire(msg).slice(0, 200)} → ${JSON.stringify(reply)}`,
      );
      if (i % 4 === 3) await sleep(110); // under the 10 messages / 200 ms budget
    }
    assert.equal(s.ws.readyState, WebSocket.OPEN);
    s.send({ type: 'ping' });
    await s.next((m) => m.type === 'pong');
    s.send({ type: 'subscribe', serverId });
    assert.equal((await s.next((m) => m.type === 'subscribed')).serverId, serverId);
    s.close();
    await linkWorks('offline');
  });
});
