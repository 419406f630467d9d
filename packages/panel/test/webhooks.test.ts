/**
 * Webhooks (issue 13 item 2) against a local HTTP receiver on loopback (PANEL_OUTBOUND_ALLOW_PRIVATE=1):
 * a JSON hook's deliveries are signed (HMAC-SHA256 over the raw body, checked as a receiver
 * would) and carry the timestamp; 5xx answers are retried with backoff until a 2xx, a 404 is
 * not; a Discord hook's crash embed fits Discord's limits and carries the exit code and the
 * last console lines; "send test"; the delivery log; secrets shown once and sealed at rest;
 * per-server scope and permissions.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  type Account,
  createAccount,
  createServer,
  fakeAgentNode,
  grantPermissions,
  type Json,
  type Session,
  startTestPanel,
  type TestPanel,
  until,
} from './helpers.ts';
import { assertDiscordShape, type Receiver, signatureValid, startReceiver } from './webhook-receiver.ts';

describe('webhooks', () => {
  let panel: TestPanel;
  let owner: Session;
  let rx: Receiver;
  let serverA: string;
  let serverB: string;
  let sub: Account;
  const api = (m: string, p: string, b?: unknown) => panel.api(owner, m, p, b);
  const deliveries = async (base: string, id: string) =>
    (await api('GET', `${base}/${id}/deliveries`)).body.deliveries as Json[];

  before(async () => {
    panel = await startTestPanel({ PANEL_OUTBOUND_ALLOW_PRIVATE: '1', PANEL_WEBHOOK_RETRY_BASE_MS: '50' });
    owner = await panel.login();
    const node = await fakeAgentNode(panel, owner);
    serverA = await createServer(panel, owner, node.id, 'hook-a');
    serverB = await createServer(panel, owner, node.id, 'hook-b');
    sub = await createAccount(panel, owner, 'hooksub', 'user');
    rx = await startReceiver();
  });
  after(async () => {
    await panel?.stop();
    await rx?.close();
  });

  test('a JSON hook: signed deliveries of its server’s events; the secret shown once, sealed at rest', async () => {
    const base = `/api/servers/${serverA}/webhooks`;
    const created = await api('POST', base, {
      name: 'ci',
      kind: 'json',
      url: `${rx.url}/hook/json?token=abcdefghijklmnop`,
      events: ['server.status'],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const secret = created.body.secret as string;
    assert.match(secret, /^whsec_[A-Za-z0-9_-]{43}$/);
    assert.equal(created.body.url, `${rx.url}/hook/json?…`);
    const again = await api('GET', `${base}/${created.body.id}`);
    assert.equal(again.body.secret, undefined);
    assert.ok(!JSON.stringify((await api('GET', base)).body).includes(secret));
    const row = await panel.app.panel.db
      .selectFrom('webhooks')
      .selectAll()
      .where('id', '=', created.body.id)
      .executeTakeFirstOrThrow();
    assert.ok(!row.url.includes('abcdefghijklmnop') && !row.url.includes('127.0.0.1'));
    assert.ok(!String(row.secret).includes(secret.slice(6)));

    rx.got.length = 0;
    assert.equal((await api('POST', `/api/servers/${serverA}/power`, { action: 'start' })).status, 202);
    // server B's events do not reach server A's hook
    assert.equal((await api('POST', `/api/servers/${serverB}/power`, { action: 'start' })).status, 202);
    await until(() => rx.got.some((g) => g.json?.data?.status === 'running'), 10_000);
    await new Promise((r) => setTimeout(r, 200));
    for (const g of rx.got) {
      assert.equal(g.path, '/hook/json?token=abcdefghijklmnop');
      assert.ok(signatureValid(secret, g.raw, g.headers['x-signature-256']), 'signature verifies');
      assert.ok(!signatureValid('whsec_wrong', g.raw, g.headers['x-signature-256']));
      assert.equal(g.headers['x-webhook-timestamp'], String(g.json.timestamp));
      assert.ok(Math.abs(g.json.timestamp - Date.now() / 1000) < 60);
      assert.equal(g.headers['x-webhook-event'], 'server.status');
      assert.equal(g.json.event, 'server.status');
      assert.equal(g.json.data.kind, 'server.status');
      assert.equal(g.json.data.serverId, serverA);
      assert.equal(g.headers['x-webhook-id'], g.json.id);
    }
    const log = await deliveries(base, created.body.id);
    assert.ok(log.length >= 1 && log.every((d) => d.state === 'delivered' && d.lastStatus === 204));
    // a changed body no longer verifies
    const g = rx.got.find((x) => x.json?.data?.status === 'running') as Json;
    assert.ok(!signatureValid(secret, g.raw.replace('running', 'offline'), g.headers['x-signature-256']));
  });

  test('a server’s JSON hook gets console lines with the hidden values redacted (a Panel-wide one: as printed)', async () => {
    const SECRET = 'Hook-Hidden-Value-4417';
    const hook = await api('POST', `/api/servers/${serverA}/webhooks`, {
      name: 'console',
      kind: 'json',
      url: `${rx.url}/hook/console`,
      events: ['server.console'],
    });
    assert.equal(hook.status, 201, JSON.stringify(hook.body));
    const wide = await api('POST', '/api/webhooks', {
      name: 'console (Panel-wide)',
      kind: 'json',
      url: `${rx.url}/hook/console-wide`,
      events: ['server.console'],
    });
    assert.equal(wide.status, 201, JSON.stringify(wide.body));
    // (as an update holds them: relay/secrets-sync.ts)
    panel.app.panel.live.holdSecrets(serverA, 'hooktest', [SECRET]);
    rx.got.length = 0;
    panel.app.panel.bus.publish({ kind: 'server.console', serverId: serverA, lines: [`pw: ${SECRET}`] });
    await until(
      () =>
        rx.got.some((g) => g.path === '/hook/console') && rx.got.some((g) => g.path === '/hook/console-wide'),
    );
    const server = rx.got.find((g) => g.path === '/hook/console') as Json;
    assert.deepEqual(server.json.data.lines, ['pw: [hidden]']);
    assert.ok(!server.raw.includes(SECRET));
    const panelWide = rx.got.find((g) => g.path === '/hook/console-wide') as Json;
    assert.deepEqual(panelWide.json.data.lines, [`pw: ${SECRET}`]);
    panel.app.panel.live.releaseSecrets(serverA, 'hooktest');
    for (const id of [hook.body.id]) await api('DELETE', `/api/servers/${serverA}/webhooks/${id}`);
    await api('DELETE', `/api/webhooks/${wide.body.id}`);
  });

  test('retries with backoff until a 2xx; a 404 or a redirect ends it; the log has each status', async () => {
    const created = await api('POST', '/api/webhooks', {
      name: 'retry',
      kind: 'json',
      url: `${rx.url}/retry`,
      events: ['node.online'],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id;
    rx.got.length = 0;
    rx.answers.push({ status: 500 }, { status: 503 }, { status: 200 });
    const first = await api('POST', `/api/webhooks/${id}/test`);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.state, 'pending');
    assert.equal(first.body.lastStatus, 500);
    await until(async () => (await deliveries('/api/webhooks', id))[0]?.state === 'delivered', 10_000);
    const [d] = await deliveries('/api/webhooks', id);
    assert.equal(d.attempts, 3);
    assert.deepEqual(
      d.log.map((x: Json) => x.status),
      [500, 503, 200],
    );
    // the waits doubled: 50 ms then 100 ms (at least)
    const t = d.log.map((x: Json) => Date.parse(x.at));
    assert.ok(t[1] - t[0] >= 45 && t[2] - t[1] >= 95, JSON.stringify(d.log));
    assert.equal(rx.got.length, 3);
    // all three carried the same delivery id, each signed afresh
    assert.equal(new Set(rx.got.map((g) => g.json.id)).size, 1);

    rx.answers.push({ status: 404 });
    const gone = await api('POST', `/api/webhooks/${id}/test`);
    assert.equal(gone.body.state, 'failed');
    assert.equal(gone.body.attempts, 1);
    assert.equal(gone.body.lastStatus, 404);
    rx.answers.push({ status: 302, headers: { location: `${rx.url}/elsewhere` } });
    const moved = await api('POST', `/api/webhooks/${id}/test`);
    assert.equal(moved.body.state, 'failed');
    assert.match(moved.body.lastError, /redirect \(302\) not followed/);
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(!rx.got.some((g) => g.path === '/elsewhere'));
  });

  test('a Discord hook: the crash embed (exit code, last console lines) fits Discord’s limits; send test', async () => {
    const created = await api('POST', '/api/webhooks', {
      name: 'discord',
      kind: 'discord',
      url: `${rx.url}/api/webhooks/123456/discord-token-abcdefghijklmnopqrstuvwxyz`,
      events: ['server.crashed'],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.secret, null);
    assert.ok(!created.body.url.includes('discord-token'), created.body.url);
    rx.got.length = 0;
    const test1 = await api('POST', `/api/webhooks/${created.body.id}/test`);
    assert.equal(test1.body.state, 'delivered');
    assertDiscordShape(rx.got[0]?.json);

    // a console that ran long: 300 lines of 200 characters, then the last words
    const lines = Array.from({ length: 300 }, (_, i) => `line ${i} ${'x'.repeat(190)}`);
    lines.push('FATAL: out of cheese ```');
    panel.app.panel.live.appendConsole(serverA, lines);
    rx.got.length = 0;
    panel.app.panel.bus.publish({
      kind: 'server.crashed',
      serverId: serverA,
      exitCode: 137,
      restarting: false,
    });
    await until(() => rx.got.length === 1, 10_000);
    const body = rx.got[0]?.json;
    assertDiscordShape(body);
    const e = body.embeds[0];
    assert.match(e.title, /hook-a crashed/);
    assert.match(e.description, /Exit code \*\*137\*\*/);
    assert.match(e.description, /FATAL: out of cheese '''\n```$/);
    assert.ok(e.description.length <= 4096 && e.description.length > 3000, String(e.description.length));
    assert.deepEqual(e.fields[0], { name: 'Exit code', value: '137', inline: true });
    // other kinds are refused for Discord hooks
    const bad = await api('POST', '/api/webhooks', {
      name: 'x',
      kind: 'discord',
      url: `${rx.url}/x`,
      events: ['user_action'],
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'VALIDATION_FAILED');
    assert.equal(bad.body.location, 'events');
  });

  test('scope and permissions: webhook.* on the server; another server’s hook is not there; Panel-wide is admin', async () => {
    const b = await api('POST', `/api/servers/${serverB}/webhooks`, {
      name: 'b',
      kind: 'json',
      url: `${rx.url}/b`,
      events: ['server.status'],
    });
    assert.equal(b.status, 201);
    await grantPermissions(panel, owner, serverA, sub, ['webhook.read', 'webhook.update', 'webhook.delete']);
    for (const [m, p] of [
      ['GET', `/api/servers/${serverA}/webhooks/${b.body.id}`],
      ['PATCH', `/api/servers/${serverA}/webhooks/${b.body.id}`],
      ['DELETE', `/api/servers/${serverA}/webhooks/${b.body.id}`],
      ['POST', `/api/servers/${serverA}/webhooks/${b.body.id}/test`],
      ['GET', `/api/servers/${serverA}/webhooks/${b.body.id}/deliveries`],
    ] as const) {
      const r = await panel.api(sub, m, p, m === 'PATCH' ? { enabled: false } : undefined);
      assert.equal(r.status, 404, `${m} ${p}`);
      assert.equal(r.body.code, 'WEBHOOK_NOT_FOUND');
    }
    const create = await panel.api(sub, 'POST', `/api/servers/${serverA}/webhooks`, {
      name: 'x',
      kind: 'json',
      url: `${rx.url}/x`,
      events: ['server.status'],
    });
    assert.equal(create.status, 403);
    assert.deepEqual(create.body.details.missing, ['webhook.create']);
    assert.equal((await panel.api(sub, 'GET', '/api/webhooks')).status, 403);
    // a Panel-wide hook id is not a server's
    const panelWide = (await api('GET', '/api/webhooks')).body.webhooks[0];
    const r = await api('GET', `/api/servers/${serverA}/webhooks/${panelWide.id}`);
    assert.equal(r.status, 404);
  });
});
