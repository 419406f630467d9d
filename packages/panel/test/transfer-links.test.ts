/**
 * Direct transfer URLs (issue 10 item 2): a node's `transferUrl` (admin; http(s), no credentials,
 * query or fragment) decides where a transfer ticket's `url` points: straight to the Agent
 * (`<transferUrl>/transfers/<ticket>`) when set and the Agent is connected, else the Panel's relay;
 * `relayUrl` is always the relay. The same for file transfers and backup downloads. A real Panel
 * with the fake Agent.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Command } from '@cap/protocol';
import { transferUrlsOf } from '../src/modules/files/transfer-links.ts';
import { FakeAgent } from './fake-agent.ts';
import { type Session, startTestPanel, type TestPanel, until } from './helpers.ts';

test('transferUrlsOf: direct only with a transfer URL and the Agent online; relayUrl always', () => {
  const t = 'T'.repeat(43);
  const relay = `/api/transfers/${t}`;
  assert.deepEqual(transferUrlsOf(t, { transferUrl: null, online: true }), { url: relay, relayUrl: relay });
  assert.deepEqual(transferUrlsOf(t, { transferUrl: 'https://n1.example:8443', online: false }), {
    url: relay,
    relayUrl: relay,
  });
  assert.deepEqual(transferUrlsOf(t, { transferUrl: 'https://n1.example:8443', online: true }), {
    url: `https://n1.example:8443/transfers/${t}`,
    relayUrl: relay,
  });
  assert.deepEqual(transferUrlsOf(t, { transferUrl: 'https://proxy.example/agent1/', online: true }), {
    url: `https://proxy.example/agent1/transfers/${t}`,
    relayUrl: relay,
  });
});

describe('node transferUrl and the URLs of transfer tickets', () => {
  let panel: TestPanel;
  let owner: Session;
  let agent: FakeAgent;
  let nodeId: string;
  let serverId: string;
  const tickets: string[] = [];

  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
    const node = await panel.createNode(owner);
    nodeId = node.id;
    agent = await FakeAgent.start({
      panelUrl: panel.url,
      agentSecret: node.agentSecret,
      // its HTTP API serves transfer tickets (AGENT_API_KEY set)
      transfers: true,
      handlers: {
        create_transfer: (cmd) => {
          const p = (cmd as Command<'create_transfer'>).payload;
          const ticket = randomBytes(32).toString('base64url');
          tickets.push(ticket);
          return {
            ticket,
            expiresAt: new Date(Date.now() + p.ttlSeconds * 1000).toISOString(),
            size: p.backupId ? 42 : p.direction === 'upload' ? (p.size ?? 0) : 5,
            name: p.backupId ? `${p.backupId}.tar.zst` : 'a.txt',
            ...(p.backupId ? { sha256: 'cd'.repeat(32) } : {}),
          };
        },
      },
    });
    await until(() => panel.app.panel.hub.isOnline(nodeId));
    const r = await panel.api(owner, 'POST', '/api/servers?wait=true', { name: 's', nodeId, image: 'img' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    serverId = r.body.id;
    // a completed backup, as the Agent would have reported it
    await panel.app.panel.db
      .insertInto('backups')
      .values({
        id: 'bk1',
        server_id: serverId,
        node_id: nodeId,
        name: null,
        format: 'tar.zst',
        state: 'completed',
        size: 42,
        sha256: 'cd'.repeat(32),
        bytes: 100,
        entries: 3,
        locked: 0,
        storage: 'node',
        created_by: null,
        operation_id: null,
        created_at: new Date().toISOString(),
        completed_at: new Date().toISOString(),
        error_code: null,
        error_message: null,
      })
      .execute();
  });
  after(async () => {
    await agent?.close();
    await panel?.stop();
  });

  const setUrl = (transferUrl: unknown) => panel.api(owner, 'PATCH', `/api/nodes/${nodeId}`, { transferUrl });
  const fileTicket = (direction: 'upload' | 'download') =>
    panel.api(owner, 'POST', `/api/servers/${serverId}/files/transfers`, {
      direction,
      path: 'a.txt',
      ...(direction === 'upload' ? { size: 5 } : {}),
    });
  const backupTicket = () => panel.api(owner, 'POST', `/api/servers/${serverId}/backups/bk1/download`);

  test('transferUrl: null by default; set (trailing slash dropped), read back, cleared', async () => {
    assert.equal((await panel.api(owner, 'GET', `/api/nodes/${nodeId}`)).body.transferUrl, null);
    const set = await setUrl('https://node1.example.com:8443/');
    assert.equal(set.status, 200, JSON.stringify(set.body));
    assert.equal(set.body.transferUrl, 'https://node1.example.com:8443');
    assert.equal(
      (await panel.api(owner, 'GET', '/api/nodes')).body.find((n: { id: string }) => n.id === nodeId)
        .transferUrl,
      'https://node1.example.com:8443',
    );
    // a PATCH of the limits alone leaves it as it is
    const limits = await panel.api(owner, 'PATCH', `/api/nodes/${nodeId}`, { defaultLimits: null });
    assert.equal(limits.body.transferUrl, 'https://node1.example.com:8443');
    const cleared = await setUrl(null);
    assert.equal(cleared.body.transferUrl, null);
    const created = await panel.api(owner, 'POST', '/api/nodes', {
      name: 'with-url',
      transferUrl: 'http://10.0.0.5:8081/agent/',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.node.transferUrl, 'http://10.0.0.5:8081/agent');
  });

  test('a bad transferUrl is 400 VALIDATION_FAILED and changes nothing', async () => {
    await setUrl('https://ok.example');
    for (const bad of [
      'ftp://node1.example',
      'javascript:alert(1)',
      'node1.example:8443',
      'https://user:pw@node1.example',
      'https://user@node1.example',
      'https://node1.example/?x=1',
      'https://node1.example?',
      'https://node1.example/#frag',
      `https://node1.example/${'a'.repeat(2100)}`,
      '',
      42,
    ]) {
      const r = await setUrl(bad);
      assert.equal(r.status, 400, `${String(bad).slice(0, 40)}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'VALIDATION_FAILED');
    }
    const bad = await panel.api(owner, 'POST', '/api/nodes', { name: 'bad-url', transferUrl: 'gopher://x' });
    assert.equal(bad.status, 400);
    assert.equal(
      (await panel.api(owner, 'GET', `/api/nodes/${nodeId}`)).body.transferUrl,
      'https://ok.example',
    );
    const names = (await panel.api(owner, 'GET', '/api/nodes')).body.map((n: { name: string }) => n.name);
    assert.ok(!names.includes('bad-url'));
  });

  test('only admins set it', async () => {
    const spectator = await panel.userWithRole('spectator');
    const r = await panel.api(spectator, 'PATCH', `/api/nodes/${nodeId}`, {
      transferUrl: 'https://x.example',
    });
    assert.equal(r.status, 403);
  });

  test('without transferUrl: files and backup tickets are relayed (url = relayUrl)', async () => {
    await setUrl(null);
    for (const make of [() => fileTicket('download'), () => fileTicket('upload'), backupTicket]) {
      const r = await make();
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const ticket = tickets.at(-1);
      assert.equal(r.body.url, `/api/transfers/${ticket}`);
      assert.equal(r.body.relayUrl, `/api/transfers/${ticket}`);
    }
  });

  test('with transferUrl and the Agent connected: url is the Agent, relayUrl the relay (files and backups)', async () => {
    await setUrl('https://node1.example.com:8443');
    for (const make of [() => fileTicket('download'), () => fileTicket('upload'), backupTicket]) {
      const r = await make();
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const ticket = tickets.at(-1);
      assert.equal(r.body.url, `https://node1.example.com:8443/transfers/${ticket}`);
      assert.equal(r.body.relayUrl, `/api/transfers/${ticket}`);
    }
    const backup = await backupTicket();
    assert.equal(backup.body.sha256, 'cd'.repeat(32));
    assert.equal(backup.body.size, 42);
  });

  test('a node whose Agent reports no transfer endpoint (no AGENT_API_KEY, or an older Agent) is relayed even with transferUrl', async () => {
    await setUrl('https://node1.example.com:8443');
    const reported = async (v: boolean | undefined) => {
      agent.transfers = v;
      await agent.reconnect();
      await until(
        async () =>
          (await panel.api(owner, 'GET', `/api/nodes/${nodeId}`)).body.systemInfo?.transfers === v &&
          panel.app.panel.hub.isOnline(nodeId),
      );
    };
    try {
      for (const v of [false, undefined]) {
        await reported(v);
        for (const make of [() => fileTicket('download'), () => fileTicket('upload'), backupTicket]) {
          const r = await make();
          assert.equal(r.status, 201, JSON.stringify(r.body));
          const ticket = tickets.at(-1);
          assert.equal(r.body.url, `/api/transfers/${ticket}`, `transfers: ${v}`);
          assert.equal(r.body.relayUrl, `/api/transfers/${ticket}`);
        }
      }
    } finally {
      await reported(true);
    }
    const again = await fileTicket('download');
    assert.equal(again.body.url, `https://node1.example.com:8443/transfers/${tickets.at(-1)}`);
  });

  test('the relay still knows a direct ticket (the fallback works): an unknown one is 404, a known one is not', async () => {
    await setUrl('https://node1.example.com:8443');
    const r = await fileTicket('download');
    assert.equal(r.status, 201);
    // the relay takes the ticket (and would tell the Agent to dial in); an unknown ticket is 404 at once
    const unknown = await fetch(`${panel.url}/api/transfers/${randomBytes(32).toString('base64url')}`, {
      headers: owner.headers,
    });
    assert.equal(unknown.status, 404);
    assert.equal(panel.app.panel.transferRelay.take(tickets.at(-1) ?? '').nodeId, nodeId);
  });
});
