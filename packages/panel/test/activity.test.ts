/**
 * The activity log (issue 9 item 5) against the real Panel and a fake Agent, on SQLite and on a
 * fresh PostgreSQL database: logins (failed and not) with the address and the email tried and no
 * password anywhere, a power action with its actor and server and the Agent-side end of its
 * operation, admins-only Panel-wide reads, filters, pagination and retention.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FakeAgent } from './fake-agent.ts';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  createServer,
  fakeAgentNode,
  type Json,
  type Session,
  scratchDatabase,
  startTestPanel,
  type TestPanel,
  until,
} from './helpers.ts';

const WRONG_PASSWORD = 'not-the-password-xyz-123';

for (const engine of ['sqlite', 'postgres'] as const)
  describe(`activity log (${engine})`, () => {
    let panel: TestPanel;
    let owner: Session;
    let ownerId: string;
    let agent: FakeAgent;
    let serverId: string;
    let db: Awaited<ReturnType<typeof scratchDatabase>> | undefined;

    const rows = async (): Promise<Json[]> => {
      await panel.app.panel.activity.settled();
      return panel.app.panel.db.selectFrom('activity').selectAll().orderBy('at').execute();
    };
    const list = async (q: string, s: Session = owner) => {
      await panel.app.panel.activity.settled();
      return panel.api(s, 'GET', `/api/activity${q}`);
    };

    before(async () => {
      db = await scratchDatabase(engine, 'cap_act');
      panel = await startTestPanel(db.env);
      const bad = await panel.api(null, 'POST', '/api/auth/login', {
        email: ADMIN_EMAIL,
        password: WRONG_PASSWORD,
      });
      assert.equal(bad.status, 401);
      owner = await panel.login();
      ownerId = (await panel.api(owner, 'GET', '/api/auth/me')).body.user.id;
      const node = await fakeAgentNode(panel, owner);
      agent = node.agent;
      serverId = await createServer(panel, owner, node.id, 'act');
    });
    after(async () => {
      await agent.close();
      await panel.stop();
      await db?.drop();
    });

    test('a failed and a successful login are logged with the address and the email; no password stored', async () => {
      const logins = (await rows()).filter((r) => r.action === 'auth.login');
      const failed = logins.find((r) => r.result === 'AUTH_FAILED');
      const ok = logins.find((r) => r.result === 'ok');
      assert.ok(failed, JSON.stringify(logins));
      assert.equal(failed.actor_email, ADMIN_EMAIL);
      assert.equal(failed.actor_user_id, null);
      assert.equal(failed.ip, '127.0.0.1');
      assert.ok(ok, JSON.stringify(logins));
      assert.equal(ok.actor_user_id, ownerId);
      assert.equal(ok.actor_email, ADMIN_EMAIL);
      assert.equal(ok.ip, '127.0.0.1');
      const all = JSON.stringify(await rows());
      assert.ok(!all.includes(WRONG_PASSWORD), 'the tried password is nowhere');
      assert.ok(!all.includes(ADMIN_PASSWORD), 'the password is nowhere');
      assert.ok(!all.includes(owner.csrf), 'no CSRF token');
    });

    test("an admin's power action shows with actor and server, then the Agent's operation end", async () => {
      const admin = await panel.userWithRole('admin');
      const adminId = (await panel.api(admin, 'GET', '/api/auth/me')).body.user.id;
      const r = await panel.api(admin, 'POST', `/api/servers/${serverId}/power`, { action: 'stop' });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      // (the create was an operation too: this stop's end is the one with its id)
      const isStopEnd = (details: unknown) =>
        String(typeof details === 'string' ? details : JSON.stringify(details)).includes(r.body.operationId);
      await until(async () =>
        (await rows()).some((x) => x.action === 'operation.completed' && isStopEnd(x.details)),
      );
      const page = await panel.api(owner, 'GET', `/api/servers/${serverId}/activity`);
      assert.equal(page.status, 200, JSON.stringify(page.body));
      const stop = page.body.entries.find((e: Json) => e.action === 'server.power.stop');
      const done = page.body.entries.find(
        (e: Json) => e.action === 'operation.completed' && e.details?.operationId === r.body.operationId,
      );
      assert.ok(stop && done, JSON.stringify(page.body.entries));
      assert.equal(stop.action, 'server.power.stop');
      assert.equal(stop.actorUserId, adminId);
      assert.equal(stop.serverId, serverId);
      assert.equal(stop.actorEmail, admin.email);
      assert.equal(stop.ip, '127.0.0.1');
      assert.equal(stop.result, 'ok');
      assert.equal(done.action, 'operation.completed');
      assert.equal(done.serverId, serverId);
      assert.equal(done.actorUserId, adminId);
      assert.equal(done.actorEmail, admin.email);
      assert.equal(done.result, 'ok');
      assert.deepEqual(done.details, { operationId: r.body.operationId, kind: 'stop' });
    });

    test('commands and power over /ws/client are logged like their REST twins; a refused one with its code', async () => {
      const admin = await panel.userWithRole('admin');
      const spectator = await panel.userWithRole('spectator');
      const ws = await panel.clientSocket(admin);
      ws.send({ type: 'send_command', serverId, command: 'say secret-word-42' });
      // the fake Agent answers as it will (the server may be stopped by now): the log says the same
      const answer = await ws.next(
        (m) => (m.type === 'ack' || m.type === 'error') && m.requestType === 'send_command',
      );
      ws.close();
      const spec = await panel.clientSocket(spectator);
      spec.send({ type: 'power', serverId, action: 'kill' });
      await spec.next((m) => m.type === 'error' && m.requestType === 'power');
      spec.close();
      await until(async () => (await rows()).some((x) => x.action === 'server.power.kill'));
      const page = await list(`?serverId=${serverId}&action=server`);
      const cmd = page.body.entries.find((e: Json) => e.action === 'server.command');
      const kill = page.body.entries.find((e: Json) => e.action === 'server.power.kill');
      assert.ok(cmd && kill, JSON.stringify(page.body.entries));
      assert.equal(cmd.actorEmail, admin.email);
      assert.equal(cmd.result, answer.type === 'ack' ? 'ok' : answer.code);
      assert.equal(kill.actorEmail, spectator.email);
      assert.equal(kill.result, 'FORBIDDEN');
      // what was typed is not kept
      assert.ok(!JSON.stringify(await rows()).includes('secret-word-42'));
    });

    test('a refused mutation is logged with its error code', async () => {
      const r = await panel.api(owner, 'PATCH', `/api/servers/${serverId}`, { name: '' });
      assert.equal(r.status, 400);
      const page = await list(`?action=server.update&serverId=${serverId}`);
      assert.equal(page.body.entries[0]?.result, 'VALIDATION_FAILED');
    });

    test('a spectator gets 403 on /api/activity and may read a server it can see', async () => {
      const spectator = await panel.userWithRole('spectator');
      assert.equal((await list('', spectator)).status, 403);
      const r = await panel.api(spectator, 'GET', `/api/servers/${serverId}/activity`);
      assert.equal(r.status, 200);
      assert.ok(r.body.entries.length > 0);
      assert.equal((await panel.api(spectator, 'GET', '/api/servers/nope/activity')).status, 404);
    });

    test('filters and pagination', async () => {
      const auth = await list('?action=auth');
      assert.ok(auth.body.entries.length >= 2);
      assert.ok(auth.body.entries.every((e: Json) => e.action.startsWith('auth.')));
      // a prefix is dotted: `auth.log` is no prefix of `auth.login`
      assert.equal((await list('?action=auth.log')).body.entries.length, 0);
      const failed = await list('?result=AUTH_FAILED');
      assert.ok(failed.body.entries.length >= 1);
      assert.ok(failed.body.entries.every((e: Json) => e.result === 'AUTH_FAILED'));
      const mine = await list(`?actor=${ownerId}`);
      assert.ok(mine.body.entries.every((e: Json) => e.actorUserId === ownerId));
      const full = (await list('?limit=200')).body;
      assert.equal(full.nextOffset, null);
      const seen: string[] = [];
      let offset: number | null = 0;
      while (offset !== null) {
        const p: Json = (await list(`?limit=2&offset=${offset}`)).body;
        assert.ok(p.entries.length <= 2);
        seen.push(...p.entries.map((e: Json) => e.id));
        offset = p.nextOffset;
      }
      assert.deepEqual(
        seen,
        full.entries.map((e: Json) => e.id),
        'pages together are the whole, newest first',
      );
      const ats = full.entries.map((e: Json) => e.at);
      assert.deepEqual(ats, [...ats].sort().reverse());
      const future = new Date(Date.now() + 3600_000).toISOString();
      assert.equal((await list(`?since=${future}`)).body.entries.length, 0);
      assert.equal(
        (await list(`?until=${encodeURIComponent('2000-01-01T00:00:00Z')}`)).body.entries.length,
        0,
      );
      assert.equal((await list('?limit=201')).status, 400);
    });

    test('retention prunes entries older than PANEL_ACTIVITY_RETENTION_DAYS', async () => {
      const old = new Date(Date.now() - 91 * 86_400_000).toISOString();
      await panel.app.panel.db
        .insertInto('activity')
        .values({
          id: 'act_old',
          at: old,
          action: 'server.delete',
          actor_user_id: null,
          actor_email: null,
          ip: null,
          server_id: null,
          result: 'ok',
          details: null,
        })
        .execute();
      const before = (await rows()).length;
      assert.equal(await panel.app.panel.activity.prune(), 1);
      const after = await rows();
      assert.equal(after.length, before - 1);
      assert.ok(!after.some((r) => r.id === 'act_old'));
    });
  });
