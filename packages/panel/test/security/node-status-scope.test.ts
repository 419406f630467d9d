/**
 * A `user` sees only its servers, so node news reaches it only for nodes those servers run on:
 * a node_status frame about another node would tell it that node's id and whether it is online.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FakeAgent } from '../fake-agent.ts';
import { type Json, type Session, startTestPanel, type TestPanel, until } from '../helpers.ts';

describe('node_status reaches a `user` only for the nodes of its servers', () => {
  let panel: TestPanel;
  let owner: Session;
  const nodes: { id: string; agentSecret: string }[] = [];
  const agents: FakeAgent[] = [];
  let alice: Session & { email: string };
  let aliceServer: string;

  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
    for (const name of ['mine', 'other']) {
      const node = await panel.createNode(owner, name);
      nodes.push(node);
      agents.push(await FakeAgent.start({ panelUrl: panel.url, agentSecret: node.agentSecret }));
      await until(() => panel.app.panel.hub.isOnline(node.id));
    }
    alice = await panel.userWithRole('user');
    const me = (await panel.api(owner, 'GET', '/api/users')).body.find((u: Json) => u.email === alice.email);
    const made = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'alice',
      nodeId: nodes[0]!.id,
      image: 'img',
      ownerId: me.id,
    });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    aliceServer = made.body.id;
  });
  after(async () => {
    for (const a of agents) await a.close().catch(() => undefined);
    await panel.stop();
  });

  test('another node going offline is not told to her; her own node is', async () => {
    const ws = await panel.clientSocket(alice);
    const admin = await panel.clientSocket(owner);
    try {
      ws.send({ type: 'subscribe', serverId: aliceServer });
      await ws.next((m) => m.type === 'subscribed' && m.serverId === aliceServer);
      await agents[1]!.close();
      // the admin hears of the other node; then alice's own node goes: she hears only of that one
      await admin.next((m) => m.type === 'node_status' && m.nodeId === nodes[1]!.id && m.online === false);
      await agents[0]!.close();
      await ws.next((m) => m.type === 'node_status' && m.nodeId === nodes[0]!.id && m.online === false);
      const leaked = ws.messages.filter((m: Json) => m.type === 'node_status' && m.nodeId === nodes[1]!.id);
      assert.deepEqual(leaked, [], 'a node with none of her servers is not reported to her');
    } finally {
      ws.close();
      admin.close();
    }
  });
});
