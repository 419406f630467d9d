/**
 * Players in the Panel (issue 12 item 2): an Agent's players_update becomes the server's current
 * list (with time online), join/leave sessions, a per-minute history and a live `players` frame;
 * whoever may see the server sees them, nobody else; a stop closes the sessions.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FakeAgent } from './fake-agent.ts';
import {
  type Account,
  type ClientSocket,
  createAccount,
  createServer,
  fakeAgentNode,
  grantPermissions,
  type Session,
  startTestPanel,
  type TestPanel,
  until,
} from './helpers.ts';

describe('players through the Panel', () => {
  let panel: TestPanel;
  let owner: Session;
  let agent: FakeAgent;
  let serverId: string;
  let ws: ClientSocket;
  let subuser: Account;
  let stranger: Account;

  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
    const node = await fakeAgentNode(panel, owner);
    agent = node.agent;
    serverId = await createServer(panel, owner, node.id, 'arena');
    const started = await panel.api(owner, 'POST', `/api/servers/${serverId}/power`, { action: 'start' });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    await until(
      async () => (await panel.api(owner, 'GET', `/api/servers/${serverId}`)).body.status === 'running',
    );
    subuser = await createAccount(panel, owner, 'sub', 'user');
    stranger = await createAccount(panel, owner, 'stranger', 'user');
    // no permission at all beyond seeing the server
    await grantPermissions(panel, owner, serverId, subuser, []);
    ws = await panel.clientSocket(owner);
    ws.send({ type: 'subscribe', serverId });
    await ws.next((m) => m.type === 'subscribed' && m.serverId === serverId);
  });
  after(async () => {
    ws?.close();
    await panel?.stop();
  });

  test('untracked until the Agent reports; then the list, the live frame and the history', async () => {
    const none = await panel.api(owner, 'GET', `/api/servers/${serverId}/players`);
    assert.equal(none.status, 200);
    assert.deepEqual(none.body, {
      tracked: false,
      online: 0,
      max: 0,
      players: [],
      updatedAt: null,
      commands: { kick: false, ban: false, needsId: { kick: false, ban: false } },
    });

    agent.emit('players_update', {
      serverId,
      online: 2,
      max: 12,
      list: [
        { name: 'Sarge', score: 3, bot: true },
        { name: 'Grunt', bot: true },
      ],
    });
    const frame = await ws.next((m) => m.type === 'players' && m.serverId === serverId);
    assert.equal(frame.online, 2);
    assert.deepEqual(
      frame.list.map((p: { name: string }) => p.name),
      ['Sarge', 'Grunt'],
    );
    const now = await panel.api(owner, 'GET', `/api/servers/${serverId}/players`);
    assert.equal(now.body.tracked, true);
    assert.equal(now.body.max, 12);
    assert.deepEqual(
      now.body.players.map((p: { name: string; bot: boolean }) => [p.name, p.bot]),
      [
        ['Sarge', true],
        ['Grunt', true],
      ],
    );
    for (const p of now.body.players) {
      assert.ok(p.onlineSeconds >= 0 && p.onlineSeconds < 60);
      assert.ok(Date.parse(p.joinedAt) <= Date.now());
    }
    const hist = await panel.api(owner, 'GET', `/api/servers/${serverId}/players/history?range=1h`);
    assert.equal(hist.status, 200);
    assert.ok(hist.body.length >= 1);
    assert.equal(hist.body.at(-1).peak, 2);
    assert.equal(hist.body.at(-1).capacity, 12);
    assert.equal(
      (await panel.api(owner, 'GET', `/api/servers/${serverId}/players/history?range=2y`)).status,
      400,
    );
    // the dashboard's donut reads the same
    const dash = await panel.api(owner, 'GET', '/api/dashboard');
    assert.deepEqual(dash.body.players.byServer, [
      { serverId, online: 2, max: 12, list: ['Sarge', 'Grunt'] },
    ]);
  });

  test('whoever sees the server sees its players; others get 404', async () => {
    const seen = await panel.api(subuser, 'GET', `/api/servers/${serverId}/players`);
    assert.equal(seen.status, 200, JSON.stringify(seen.body));
    assert.equal(seen.body.online, 2);
    for (const path of ['players', 'players/history'])
      assert.equal((await panel.api(stranger, 'GET', `/api/servers/${serverId}/${path}`)).status, 404);
    assert.equal((await panel.api(null, 'GET', `/api/servers/${serverId}/players`)).status, 401);
  });

  test('sessions: a leave closes one, a join opens one, a stop closes all', async () => {
    agent.emit('players_update', {
      serverId,
      online: 2,
      max: 12,
      list: [{ name: 'Sarge' }, { name: 'Doom' }],
    });
    await until(async () => {
      const r = await panel.api(owner, 'GET', `/api/servers/${serverId}/players`);
      return r.body.players.some((p: { name: string }) => p.name === 'Doom');
    });
    await panel.app.panel.players.settled();
    const db = panel.app.panel.db;
    const rows = async () =>
      (await db.selectFrom('player_sessions').selectAll().where('server_id', '=', serverId).execute()).map(
        (r) => [r.name, r.left_at === null],
      );
    assert.deepEqual((await rows()).sort(), [
      ['Doom', true],
      ['Grunt', false],
      ['Sarge', true],
    ]);
    const stopped = await panel.api(owner, 'POST', `/api/servers/${serverId}/power`, { action: 'stop' });
    assert.equal(stopped.status, 202, JSON.stringify(stopped.body));
    await until(async () => {
      await panel.app.panel.players.settled();
      return (await rows()).every(([, open]) => open === false);
    });
    const after = await panel.api(owner, 'GET', `/api/servers/${serverId}/players`);
    assert.equal(after.body.tracked, false);
    // the Agent's last word on a stopped server (nobody online) does not make it tracked again
    agent.emit('players_update', { serverId, online: 0, max: 12, list: [] });
    agent.emit('server_log', { serverId, message: 'barrier' });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await panel.api(owner, 'GET', `/api/servers/${serverId}/players`)).body.tracked, false);
  });

  test('a players_update over the protocol bounds is refused (nothing changes)', async () => {
    const before = await panel.api(owner, 'GET', `/api/servers/${serverId}/players`);
    agent.emit('players_update', {
      serverId,
      online: 1,
      max: 1,
      list: Array.from({ length: 300 }, (_, i) => ({ name: `p${i}` })),
    } as never);
    agent.emit('players_update', { serverId, online: -1, max: Number.MAX_VALUE, list: [] } as never);
    agent.emit('players_update', { serverId, online: 1, max: 1, list: [{ name: 'x'.repeat(65) }] } as never);
    // a well-formed one after them is handled (events of a node are handled in order)
    agent.emit('server_log', { serverId, message: 'barrier' });
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual((await panel.api(owner, 'GET', `/api/servers/${serverId}/players`)).body, before.body);
  });
});
