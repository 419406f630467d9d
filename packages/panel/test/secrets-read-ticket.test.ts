/**
 * A GET re-reads a server's hidden values for the console's redaction; one that read the row
 * before a change of them was stored and ends after it must not put the old values back (it takes
 * a ticket before it reads, as the replicas' re-reads do: the newest read or write wins).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NodesRepo } from '../src/modules/nodes/repo.ts';
import { FakeAgent } from './fake-agent.ts';
import { startTestPanel, type TestPanel, until } from './helpers.ts';

const OLD = 'Read-Ticket-Secret-Old';
const NEW = 'Read-Ticket-Secret-New';
const EGG = {
  meta: { version: 'PTDL_v2' },
  name: 'Hidden game (read ticket)',
  author: 'test@example.test',
  docker_images: { Main: 'ctrl-alt-play/busybox:latest' },
  startup: './game --admin {{ADMIN_PASSWORD}}',
  config: { files: '{}', startup: JSON.stringify({ done: 'ready' }), logs: '{}', stop: 'quit' },
  variables: [
    {
      name: 'Admin password',
      description: '',
      env_variable: 'ADMIN_PASSWORD',
      default_value: '',
      user_viewable: false,
      user_editable: false,
      rules: 'nullable|string',
      field_type: 'text',
    },
  ],
};

describe('a slow GET does not put old hidden values back', () => {
  let panel: TestPanel;
  let agent: FakeAgent | undefined;
  before(async () => {
    panel = await startTestPanel();
  });
  after(async () => {
    await agent?.close();
    await panel?.stop();
  });

  it('a GET that read the row before a PUT /config stored it, ending after: the new value stays', async () => {
    const owner = await panel.login();
    const node = await panel.createNode(owner, 'ticket-node');
    agent = await FakeAgent.start({ panelUrl: panel.url, agentSecret: node.agentSecret });
    await until(() => panel.app.panel.hub.isOnline(node.id));
    const imp = await panel.api(owner, 'POST', '/api/templates/import', {
      content: JSON.stringify(EGG),
      filename: 'egg.json',
    });
    assert.equal(imp.status, 201, JSON.stringify(imp.body));
    const created = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'ticket',
      nodeId: node.id,
      templateId: imp.body.template.id,
      environment: { ADMIN_PASSWORD: OLD },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const serverId = created.body.id as string;
    assert.ok(panel.app.panel.live.secrets(serverId).includes(OLD));

    // the GET's load stalls after it read the row (at the node lookup) until released
    const original = NodesRepo.prototype.findById;
    let release: () => void = () => undefined;
    let stalled: () => void = () => undefined;
    const reached = new Promise<void>((r) => {
      stalled = r;
    });
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let armed = true;
    NodesRepo.prototype.findById = async function (this: NodesRepo, id: string) {
      if (armed) {
        armed = false;
        stalled();
        await gate;
      }
      return original.call(this, id);
    };
    try {
      const slow = panel.api(owner, 'GET', `/api/servers/${serverId}`);
      await reached;
      NodesRepo.prototype.findById = original;
      const edit = await panel.api(owner, 'PUT', `/api/servers/${serverId}/config?wait=true`, {
        environment: { ADMIN_PASSWORD: NEW },
      });
      assert.ok(edit.status === 200 || edit.status === 202, JSON.stringify(edit.body));
      assert.ok(panel.app.panel.live.secrets(serverId).includes(NEW));
      release();
      assert.equal((await slow).status, 200);
      const now = panel.app.panel.live.secrets(serverId);
      assert.ok(now.includes(NEW), `the slow GET put the old values back: ${JSON.stringify(now)}`);
    } finally {
      NodesRepo.prototype.findById = original;
      release();
    }
  });
});
