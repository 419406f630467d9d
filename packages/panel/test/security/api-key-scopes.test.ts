/**
 * API-key scopes, enforced in the auth layer (issue 9 item 4): a read-only key makes only GET
 * requests and only listens on the live socket; a key limited to some servers gets 404 for every
 * other server (REST and socket alike), sees only its servers in the list, and reaches no other
 * route. Excessive privilege of a leaked automation key is the attack class.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import type { FakeAgent } from '../fake-agent.ts';
import {
  ADMIN_PASSWORD,
  createServer,
  fakeAgentNode,
  type Json,
  type Session,
  startTestPanel,
  type TestPanel,
  until,
} from '../helpers.ts';

describe('API keys with scopes', () => {
  let panel: TestPanel;
  let owner: Session;
  let agent: FakeAgent;
  let serverA: string;
  let serverB: string;

  const withKey = async (key: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${panel.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : null) as Json };
  };
  const mint = async (extra: Record<string, unknown>) => {
    const r = await panel.api(owner, 'POST', '/api/api-keys', {
      name: `k-${Math.random()}`,
      currentPassword: ADMIN_PASSWORD,
      ...extra,
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body as { key: string; scope: string; serverIds: string[] | null; id: string };
  };
  /** a live socket authenticated by the key; resolves the first answer to `msg` */
  const socketAsk = async (key: string, msgs: unknown[]): Promise<Json[]> => {
    const ws = new WebSocket(`${panel.url.replace(/^http/, 'ws')}/ws/client`, {
      headers: { authorization: `Bearer ${key}` },
    });
    const got: Json[] = [];
    ws.on('message', (d) => got.push(JSON.parse(d.toString())));
    await new Promise<void>((res, rej) => {
      ws.once('open', () => res());
      ws.once('error', rej);
    });
    for (const m of msgs) ws.send(JSON.stringify(m));
    await until(
      () =>
        got.filter((m) => ['subscribed', 'error', 'ack', 'unsubscribed'].includes(m.type)).length >=
        msgs.length,
    );
    ws.close();
    return got.filter((m) => ['subscribed', 'error', 'ack', 'unsubscribed'].includes(m.type));
  };

  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
    const node = await fakeAgentNode(panel, owner);
    agent = node.agent;
    serverA = await createServer(panel, owner, node.id, 'key-a');
    serverB = await createServer(panel, owner, node.id, 'key-b');
  });
  after(async () => {
    await agent.close();
    await panel.stop();
  });

  test('minting: scope and serverIds are checked and listed', async () => {
    for (const bad of [{ scope: 'admin' }, { serverIds: [] }, { serverIds: ['no-such-server'] }]) {
      const r = await panel.api(owner, 'POST', '/api/api-keys', {
        name: 'bad',
        currentPassword: ADMIN_PASSWORD,
        ...bad,
      });
      assert.equal(r.status, 400, JSON.stringify(bad));
      assert.equal(r.body.code, 'VALIDATION_FAILED');
    }
    const k = await mint({ scope: 'read', serverIds: [serverA] });
    assert.equal(k.scope, 'read');
    assert.deepEqual(k.serverIds, [serverA]);
    const listed = (await panel.api(owner, 'GET', '/api/api-keys')).body.find((x: Json) => x.id === k.id);
    assert.equal(listed.scope, 'read');
    assert.deepEqual(listed.serverIds, [serverA]);
    const full = await mint({});
    assert.equal(full.scope, 'full');
    assert.equal(full.serverIds, null);
  });

  test('a read-only key can GET and subscribe, and is refused on POST/PATCH/DELETE and socket commands', async () => {
    const { key } = await mint({ scope: 'read' });
    assert.equal((await withKey(key, 'GET', '/api/servers')).body.length, 2);
    assert.equal((await withKey(key, 'GET', `/api/servers/${serverA}`)).status, 200);
    for (const [method, path, body] of [
      ['POST', `/api/servers/${serverA}/power`, { action: 'start' }],
      ['POST', `/api/servers/${serverA}/command`, { command: 'say hi' }],
      ['PATCH', `/api/servers/${serverA}`, { name: 'renamed' }],
      ['DELETE', `/api/servers/${serverB}`, undefined],
      ['POST', '/api/nodes', { name: 'by-read-key' }],
      ['POST', '/api/api-keys', { name: 'more', currentPassword: ADMIN_PASSWORD }],
      ['POST', '/api/auth/password', { currentPassword: ADMIN_PASSWORD, newPassword: 'x-new-password-1' }],
    ] as const) {
      const r = await withKey(key, method, path, body);
      assert.equal(r.status, 403, `${method} ${path}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'FORBIDDEN');
    }
    assert.equal(
      (await withKey(key, 'GET', `/api/servers/${serverA}`)).body.name,
      'key-a',
      'nothing changed',
    );
    const answers = await socketAsk(key, [
      { type: 'subscribe', serverId: serverA },
      { type: 'send_command', serverId: serverA, command: 'say hi' },
      { type: 'power', serverId: serverA, action: 'start' },
    ]);
    // answers come in the order they finish
    assert.deepEqual(answers.map((m) => `${m.type} ${m.code ?? m.serverId}`).sort(), [
      'error FORBIDDEN',
      'error FORBIDDEN',
      `subscribed ${serverA}`,
    ]);
  });

  test('a server-limited key: 404 for other servers, only its servers listed, no other routes', async () => {
    const { key } = await mint({ serverIds: [serverA] });
    const list = await withKey(key, 'GET', '/api/servers');
    assert.deepEqual(
      list.body.map((x: Json) => x.id),
      [serverA],
    );
    assert.equal((await withKey(key, 'GET', `/api/servers/${serverA}`)).status, 200);
    for (const [method, path, body] of [
      ['GET', `/api/servers/${serverB}`, undefined],
      ['GET', `/api/servers/${serverB}/metrics`, undefined],
      ['POST', `/api/servers/${serverB}/power`, { action: 'start' }],
      ['DELETE', `/api/servers/${serverB}`, undefined],
    ] as const) {
      const r = await withKey(key, method, path, body);
      assert.equal(r.status, 404, `${method} ${path}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'SERVER_NOT_FOUND');
    }
    // the same answer as a server that does not exist
    assert.equal((await withKey(key, 'GET', '/api/servers/nope')).status, 404);
    // its own server: a full key may act on it
    const power = await withKey(key, 'POST', `/api/servers/${serverA}/power`, { action: 'start' });
    assert.ok(power.status < 300, JSON.stringify(power.body));
    for (const path of ['/api/nodes', '/api/dashboard', '/api/users', '/api/templates']) {
      const r = await withKey(key, 'GET', path);
      assert.equal(r.status, 403, path);
    }
    assert.equal(
      (await withKey(key, 'POST', '/api/servers?wait=true', { name: 'x', image: 'i' })).status,
      403,
    );
    assert.equal((await withKey(key, 'GET', `/api/servers/${serverB}`)).status, 404, 'B still exists');
    assert.equal((await panel.api(owner, 'GET', `/api/servers/${serverB}`)).status, 200);

    const answers = await socketAsk(key, [
      { type: 'subscribe', serverId: serverB },
      { type: 'send_command', serverId: serverB, command: 'stop' },
      { type: 'subscribe', serverId: serverA },
    ]);
    assert.deepEqual(answers.map((m) => `${m.type} ${m.code ?? m.serverId}`).sort(), [
      'error SERVER_NOT_FOUND',
      'error SERVER_NOT_FOUND',
      `subscribed ${serverA}`,
    ]);
  });
});
