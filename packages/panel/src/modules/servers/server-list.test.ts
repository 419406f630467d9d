/** GET /api/servers: allocations in one query (no N+1), and servers of an offline node flagged. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type KyselyPlugin, SelectQueryNode } from 'kysely';
import { FakeAgent } from '../../../test/fake-agent.ts';
import { type Json, type Session, startTestPanel, type TestPanel, until } from '../../../test/helpers.ts';
import { loadPanelConfig } from '../../config/index.ts';
import { type Db, openDatabase } from '../../db/index.ts';

/** Counts SELECTs that read the allocations table. */
class AllocationSelects implements KyselyPlugin {
  count = 0;
  transformQuery: KyselyPlugin['transformQuery'] = (args) => {
    if (SelectQueryNode.is(args.node) && JSON.stringify(args.node.from).includes('"allocations"'))
      this.count += 1;
    return args.node;
  };
  transformResult: KyselyPlugin['transformResult'] = async (args) => args.result;
}

describe('the server list', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cap-list-'));
  const counter = new AllocationSelects();
  let db: Db;
  let panel: TestPanel;
  let owner: Session;
  let secret: string;
  let agent: FakeAgent;
  const ids: string[] = [];

  before(async () => {
    db = (await openDatabase(loadPanelConfig({ DATA_DIR: dir }))).withPlugin(counter);
    panel = await startTestPanel({}, { db });
    owner = await panel.login();
    const node = await panel.createNode(owner);
    secret = node.agentSecret;
    agent = await FakeAgent.start({ panelUrl: panel.url, agentSecret: secret });
    await until(() => panel.app.panel.hub.isOnline(node.id));
    for (let i = 0; i < 6; i++) {
      const r = await panel.api(owner, 'POST', '/api/servers?wait=true', {
        name: `s${i}`,
        nodeId: node.id,
        image: 'img',
        port: 34000 + i,
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      ids.push(r.body.id);
    }
  });
  after(async () => {
    await agent.close();
    await panel.stop();
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('reads every allocation in one query, not one per server', async () => {
    counter.count = 0;
    const list = await panel.api(owner, 'GET', '/api/servers');
    assert.equal(list.status, 200);
    assert.deepEqual(
      list.body.map((s: Json) => s.allocation?.port),
      ids.map((_, i) => 34000 + i),
    );
    assert.equal(counter.count, 1, `${counter.count} allocation queries for ${ids.length} servers`);
  });

  test('a node going offline flags its servers (status kept); agent_hello reconciles', async () => {
    const [first, second] = ids as [string, string];
    const power = await panel.api(owner, 'POST', `/api/servers/${first}/power`, { action: 'start' });
    assert.equal(power.status, 202);
    const get = async (id: string) => (await panel.api(owner, 'GET', `/api/servers/${id}`)).body;
    await until(async () => (await get(first)).status === 'running');
    assert.equal((await get(first)).nodeOnline, true);

    await agent.close();
    await until(async () => (await get(first)).nodeOnline === false);
    const list = (await panel.api(owner, 'GET', '/api/servers')).body as Json[];
    assert.ok(list.length === ids.length && list.every((s) => s.nodeOnline === false));
    assert.equal(list.find((s) => s.id === first).status, 'running', 'the last known status stays');
    const dash = (await panel.api(owner, 'GET', '/api/dashboard')).body;
    assert.ok(dash.servers.every((s: Json) => s.nodeOnline === false));

    // back online: the Agent's hello says only `second` runs now
    agent = await FakeAgent.start({ panelUrl: panel.url, agentSecret: secret });
    agent.emit('agent_hello', {
      protocolVersion: 1,
      agentVersion: 'fake',
      servers: [{ serverId: second, status: 'running', containerId: null }],
    });
    await until(async () => (await get(second)).status === 'running');
    const back = await get(first);
    assert.equal(back.nodeOnline, true);
    assert.equal(back.status, 'offline');
  });
});

describe('changing ports', () => {
  test('a change the Agent refuses leaves the server holding its old port, the new one free', async () => {
    const panel = await startTestPanel();
    const owner = await panel.login();
    const node = await panel.createNode(owner);
    const agent = await FakeAgent.start({ panelUrl: panel.url, agentSecret: node.agentSecret });
    try {
      await until(() => panel.app.panel.hub.isOnline(node.id));
      const made = await panel.api(owner, 'POST', '/api/servers?wait=true', {
        name: 'ported',
        nodeId: node.id,
        image: 'img',
        ports: { '7000': 37000 },
      });
      assert.equal(made.status, 201, JSON.stringify(made.body));
      const id = made.body.id as string;
      const held = async () =>
        ((await panel.api(owner, 'GET', `/api/nodes/${node.id}/allocations`)).body as Json[])
          .filter((a) => a.serverId === id)
          .map((a) => a.port);
      assert.deepEqual(await held(), [37000]);
      // the Agent lost the server: update_server fails with SERVER_NOT_FOUND
      agent.servers.delete(id);
      const refused = await panel.api(owner, 'PATCH', `/api/servers/${id}`, { ports: { '7000': 37001 } });
      assert.equal(refused.body.code, 'SERVER_NOT_FOUND');
      assert.deepEqual(await held(), [37000]);
      assert.deepEqual((await panel.api(owner, 'GET', `/api/servers/${id}`)).body.ports, { '7000': 37000 });
      // and offline: refused before anything is claimed
      await agent.close();
      await until(() => !panel.app.panel.hub.isOnline(node.id));
      const offline = await panel.api(owner, 'PATCH', `/api/servers/${id}`, { ports: { '7000': 37002 } });
      assert.equal(offline.body.code, 'AGENT_OFFLINE');
      assert.deepEqual(await held(), [37000]);
    } finally {
      await agent.close();
      await panel.stop();
    }
  });
});
