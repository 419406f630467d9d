/**
 * Agent health (issue 16 item 4): per node, the link's quality (heartbeat gaps, reconnects, the
 * Agent's clock skew from its pongs' timestamps) and its Docker Engine (as the pongs report it)
 * are on GET /api/nodes/:id `health` and exported on /metrics, with the node's capacity.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FakeAgent } from './fake-agent.ts';
import { type Json, type Session, startTestPanel, type TestPanel, until } from './helpers.ts';

const TOKEN = 'metrics-token-0123456789';

describe('node health', () => {
  let panel: TestPanel;
  let owner: Session;
  const agents: FakeAgent[] = [];

  const node = async (id: string): Promise<Json> => (await panel.api(owner, 'GET', `/api/nodes/${id}`)).body;
  const metrics = async () =>
    (await fetch(`${panel.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();

  before(async () => {
    panel = await startTestPanel({ PANEL_AGENT_PING_MS: '100', PANEL_METRICS_TOKEN: TOKEN });
    owner = await panel.login();
  });
  after(async () => {
    for (const a of agents) await a.close();
    await panel.stop();
  });

  test('heartbeat gaps, round trip and clock skew come from the pongs', async () => {
    const n = await panel.createNode(owner, 'skewed');
    agents.push(
      await FakeAgent.start({ panelUrl: panel.url, agentSecret: n.agentSecret, clockSkewMs: 5000 }),
    );
    await until(async () => (await node(n.id)).health?.lastGapMs !== null, 5000);
    const h = (await node(n.id)).health;
    assert.equal(h.connects, 1);
    assert.equal(h.reconnects, 0);
    assert.ok(h.connectedSince);
    assert.ok(Math.abs(h.clockSkewMs - 5000) < 500, `skew ${h.clockSkewMs}`);
    assert.ok(h.rttMs >= 0 && h.rttMs < 1000, `rtt ${h.rttMs}`);
    assert.ok(h.lastGapMs >= 50 && h.lastGapMs < 2000, `gap ${h.lastGapMs}`);
    assert.ok(h.maxGapMs >= h.lastGapMs);
    assert.deepEqual(h.docker && [h.docker.reachable, h.docker.errors], [true, 0]);
    const text = await metrics();
    const skew = new RegExp(`cap_node_clock_skew_seconds\\{node="${n.id}",name="skewed"\\} ([0-9.]+)`).exec(
      text,
    );
    assert.ok(skew && Math.abs(Number(skew[1]) - 5) < 0.5, text.slice(0, 300));
    assert.match(text, new RegExp(`cap_node_docker_up\\{node="${n.id}",name="skewed"\\} 1`));
    assert.match(
      text,
      new RegExp(`cap_node_capacity\\{node="${n.id}",name="skewed",resource="memory"\\} ${8 * 1024 ** 3}`),
    );
    assert.match(text, new RegExp(`cap_node_heartbeat_gap_seconds\\{node="${n.id}",name="skewed"\\} `));
  });

  test('a reconnect is counted; a Docker Engine the Agent cannot reach shows', async () => {
    const n = await panel.createNode(owner, 'flaky');
    const first = await FakeAgent.start({ panelUrl: panel.url, agentSecret: n.agentSecret });
    await until(async () => (await node(n.id)).health?.lastPongAt !== null);
    await first.close();
    await until(async () => !(await node(n.id)).online);
    const down = await FakeAgent.start({
      panelUrl: panel.url,
      agentSecret: n.agentSecret,
      docker: { reachable: false, version: null, errors: 7 },
    });
    agents.push(down);
    await until(async () => (await node(n.id)).health?.docker?.reachable === false);
    const h = (await node(n.id)).health;
    assert.deepEqual([h.connects, h.reconnects, h.disconnects], [2, 1, 1]);
    assert.deepEqual([h.docker.reachable, h.docker.errors], [false, 7]);
    const text = await metrics();
    assert.match(text, new RegExp(`cap_node_docker_up\\{node="${n.id}",name="flaky"\\} 0`));
    assert.match(text, new RegExp(`cap_node_docker_errors\\{node="${n.id}",name="flaky"\\} 7`));
    assert.match(text, new RegExp(`cap_node_reconnects\\{node="${n.id}",name="flaky"\\} 1`));
  });

  test('a node never linked since the Panel started has no health', async () => {
    const n = await panel.createNode(owner, 'never');
    assert.equal((await node(n.id)).health, null);
  });
});
