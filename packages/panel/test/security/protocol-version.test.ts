/**
 * Agents of another release (issue 14 item 7): one speaking an older or a newer protocol version
 * gets a clear refusal, PROTOCOL_INCOMPATIBLE, at registration (400, before any token is issued)
 * and on /ws/agents (close 4406); the Panel logs it and the node shows it (`agentRefusal`) until
 * an Agent of a supported version connects. The previous release spoke the same version (1): it works.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from '@cap/protocol';
import { connectAgentSocket, FakeAgent, registerAgent } from '../fake-agent.ts';
import { type Json, type Session, startTestPanel, type TestPanel, until } from '../helpers.ts';

let panel: TestPanel;
let owner: Session;

async function registerSpeaking(agentSecret: string, version: number | undefined, header?: string) {
  const res = await fetch(`${panel.url}/api/agents/register`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${agentSecret}`,
      'content-type': 'application/json',
      ...(header === undefined ? {} : { 'x-protocol-version': header }),
    },
    body: JSON.stringify({
      name: 'other-release',
      hostname: '127.0.0.1',
      port: 0,
      capabilities: {
        maxMemory: '8g',
        maxCpuCores: 4,
        dockerVersion: '20.10.0',
        supportedArchitectures: ['amd64'],
      },
      ...(version === undefined ? {} : { protocolVersion: version }),
    }),
  });
  return { status: res.status, body: (await res.json()) as Json };
}

describe('an Agent of another protocol version', () => {
  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
  });
  after(() => panel.stop());

  for (const [label, version, hint] of [
    ['older', Math.min(...SUPPORTED_PROTOCOL_VERSIONS) - 1, /older Agent, upgrade it/],
    ['newer', Math.max(...SUPPORTED_PROTOCOL_VERSIONS) + 1, /newer Agent, upgrade the Panel/],
  ] as const) {
    test(`${label} (${version}): registration is refused with PROTOCOL_INCOMPATIBLE, and the node shows it`, async () => {
      const node = await panel.createNode(owner);
      const r = await registerSpeaking(node.agentSecret, version);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.code, 'PROTOCOL_INCOMPATIBLE');
      assert.match(
        r.body.message,
        new RegExp(`supports \\[${SUPPORTED_PROTOCOL_VERSIONS.join(',')}\\], agent sent ${version}`),
      );
      assert.match(r.body.message, hint);
      assert.equal(r.body.agent, undefined, 'no token for it');
      const n = (await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body;
      assert.equal(n.agentRefusal?.code, 'PROTOCOL_INCOMPATIBLE');
      assert.equal(n.agentRefusal?.protocolVersion, version);
      assert.match(n.agentRefusal?.message, hint);
      assert.equal(n.online, false);
    });

    test(`${label} (${version}) in the header only: refused the same way`, async () => {
      const node = await panel.createNode(owner);
      const r = await registerSpeaking(node.agentSecret, undefined, String(version));
      assert.equal(r.status, 400);
      assert.equal(r.body.code, 'PROTOCOL_INCOMPATIBLE');
    });

    test(`${label} (${version}) on /ws/agents: closed 4406 with the reason, shown on the node; a supported Agent then clears it`, async () => {
      const node = await panel.createNode(owner);
      const reg = await registerAgent(panel.url, node.agentSecret);
      assert.equal(reg.status, 200);
      const ws = connectAgentSocket(reg.body.agent.websocketUrl, reg.body.agent.token, node.id, version);
      const [code, reason] = await new Promise<[number, string]>((resolve) =>
        ws.once('close', (c, why) => resolve([c, why.toString()])),
      );
      assert.equal(code, 4406);
      assert.match(reason, /^PROTOCOL_INCOMPATIBLE: panel supports/);
      assert.match(reason, hint);
      await until(
        async () => (await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body.agentRefusal !== null,
      );
      assert.equal(
        (await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body.agentRefusal.protocolVersion,
        version,
      );

      const agent = await FakeAgent.start({ panelUrl: panel.url, agentSecret: node.agentSecret });
      try {
        await until(async () => {
          const n = (await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body;
          return n.online && n.agentRefusal === null;
        });
        assert.equal(
          (await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body.protocolVersion,
          PROTOCOL_VERSION,
        );
      } finally {
        await agent.close();
      }
    });
  }

  test('junk in X-Protocol-Version is refused too, with no version recorded', async () => {
    const node = await panel.createNode(owner);
    const r = await registerSpeaking(node.agentSecret, undefined, 'v1; drop table');
    assert.equal(r.status, 400);
    assert.equal(r.body.code, 'PROTOCOL_INCOMPATIBLE');
    assert.equal(
      (await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body.agentRefusal.protocolVersion,
      null,
    );
  });
});
