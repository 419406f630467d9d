/**
 * Every route in the app's route table × anonymous / user / spectator / admin / owner. A route
 * that is missing from EXPECTED (or whose rule differs) fails here, so no route ships without a
 * rule; a server route's rule is `user` plus what requireAccess checks (`view` = seeing the
 * server). Per-server permission profiles × routes and socket messages, against real servers:
 * test/security/per-server-access.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { build } from '../app.ts';
import { loadPanelConfig } from '../config/index.ts';
import type { AuthRule } from './auth.ts';

const EXPECTED: Record<string, string> = {
  'GET /api/health': 'public',
  'GET /api/setup': 'public',
  'POST /api/setup': 'public',
  'POST /api/auth/login': 'public',
  'POST /api/auth/logout': 'user',
  'GET /api/auth/me': 'user',
  'POST /api/auth/password': 'user',
  'POST /api/auth/login/2fa': 'public',
  'GET /api/auth/2fa': 'user',
  'POST /api/auth/2fa/enrol': 'user',
  'POST /api/auth/2fa/confirm': 'user',
  'POST /api/auth/2fa/disable': 'user',
  'POST /api/auth/2fa/recovery-codes': 'user',
  'GET /api/auth/sessions': 'user',
  'DELETE /api/auth/sessions/:id': 'user',
  'POST /api/auth/sessions/revoke-others': 'user',
  'GET /api/users': 'admin',
  'POST /api/users': 'admin',
  'PATCH /api/users/:id': 'admin',
  'DELETE /api/users/:id': 'admin',
  'GET /api/api-keys': 'user',
  'POST /api/api-keys': 'user',
  'DELETE /api/api-keys/:id': 'user',
  'GET /api/nodes': 'spectator',
  'POST /api/nodes': 'admin',
  'GET /api/nodes/:id': 'spectator',
  'PATCH /api/nodes/:id': 'admin',
  'GET /api/nodes/:id/agent-commands': 'admin',
  'DELETE /api/nodes/:id': 'admin',
  'GET /api/nodes/:id/allocations': 'spectator',
  'POST /api/nodes/:id/allocations': 'admin',
  'DELETE /api/nodes/:id/allocations/:allocId': 'admin',
  'GET /api/templates': 'user',
  'POST /api/templates/import': 'admin',
  'GET /api/templates/:id': 'user',
  'GET /api/templates/:id/export': 'admin',
  'POST /api/templates/:id/update': 'admin',
  'PUT /api/templates/:id/remote-console': 'admin',
  'DELETE /api/templates/:id': 'admin',
  'POST /api/agents/register': 'agent',
  'POST /api/agents/refresh': 'agent',
  'POST /api/agents/sftp/auth': 'agent',
  'GET /api/auth/ssh-keys': 'user',
  'POST /api/auth/ssh-keys': 'user',
  'DELETE /api/auth/ssh-keys/:id': 'user',
  'PUT /api/auth/username': 'user',
  'GET /api/servers': 'user',
  'POST /api/servers': 'admin',
  'GET /api/servers/:id': 'user view',
  'PATCH /api/servers/:id': 'user settings.rename for the name alone, else admin',
  'DELETE /api/servers/:id': 'user admin',
  'POST /api/servers/:id/power': 'user by action: control.start, control.stop (stop, kill), control.restart',
  'POST /api/servers/:id/reinstall': 'user settings.reinstall',
  'POST /api/servers/:id/features/eula': 'user file.update+control.restart',
  'POST /api/servers/:id/command': 'user control.command',
  'PUT /api/servers/:id/config': 'user startup.update; with limits admin',
  'GET /api/servers/:id/operations': 'user view',
  'GET /api/operations/:id': 'user',
  'GET /api/servers/:id/telemetry': 'user view',
  'GET /api/servers/:id/metrics': 'user view',
  'GET /api/servers/:id/players': 'user view',
  'GET /api/servers/:id/players/history': 'user view',
  'GET /api/servers/:id/files': 'user file.read',
  'GET /api/servers/:id/files/content': 'user file.read-content',
  'POST /api/servers/:id/files/transfers':
    'user by direction: download file.read-content, upload file.create',
  'GET /api/servers/:id/files/stat': 'user file.read',
  'GET /api/servers/:id/files/search': 'user file.read',
  'PUT /api/servers/:id/files/content': 'user file.update; createOnly file.create',
  'POST /api/servers/:id/files/directories': 'user file.create',
  'POST /api/servers/:id/files/rename': 'user file.update',
  'POST /api/servers/:id/files/copy': 'user file.create',
  'POST /api/servers/:id/files/delete': 'user file.delete',
  'POST /api/servers/:id/files/chmod': 'user file.update',
  'GET /api/servers/:id/backups': 'user backup.read',
  'POST /api/servers/:id/backups': 'user backup.create',
  'POST /api/servers/:id/backups/:backupId/download': 'user backup.download',
  'POST /api/servers/:id/backups/:backupId/restore': 'user backup.restore',
  'POST /api/servers/:id/backups/:backupId/lock': 'user backup.delete',
  'DELETE /api/servers/:id/backups/:backupId': 'user backup.delete',
  'GET /api/servers/:id/schedules': 'user schedule.read',
  'POST /api/servers/:id/schedules': 'user schedule.create + each task’s permission',
  'GET /api/servers/:id/schedules/:sid': 'user schedule.read',
  'PATCH /api/servers/:id/schedules/:sid': 'user schedule.update + each new task’s permission',
  'DELETE /api/servers/:id/schedules/:sid': 'user schedule.delete',
  'POST /api/servers/:id/schedules/:sid/run': 'user schedule.update',
  'GET /api/servers/:id/schedules/:sid/runs': 'user schedule.read',
  'GET /api/webhooks': 'admin',
  'POST /api/webhooks': 'admin',
  'GET /api/webhooks/:hid': 'admin',
  'PATCH /api/webhooks/:hid': 'admin',
  'DELETE /api/webhooks/:hid': 'admin',
  'POST /api/webhooks/:hid/test': 'admin',
  'GET /api/webhooks/:hid/deliveries': 'admin',
  'GET /api/servers/:id/webhooks': 'user webhook.read',
  'POST /api/servers/:id/webhooks': 'user webhook.create',
  'GET /api/servers/:id/webhooks/:hid': 'user webhook.read',
  'PATCH /api/servers/:id/webhooks/:hid': 'user webhook.update',
  'DELETE /api/servers/:id/webhooks/:hid': 'user webhook.delete',
  'POST /api/servers/:id/webhooks/:hid/test': 'user webhook.update',
  'GET /api/servers/:id/webhooks/:hid/deliveries': 'user webhook.read',
  'GET /api/servers/:id/mods': 'user file.read',
  'POST /api/servers/:id/mods/toggle': 'user file.update',
  'POST /api/servers/:id/mods/remove': 'user file.delete',
  'GET /api/servers/:id/mods/catalog': 'user file.read',
  'POST /api/servers/:id/mods/install': 'user file.create',
  'POST /api/servers/:id/files/compress': 'user file.archive',
  'POST /api/servers/:id/files/decompress': 'user file.archive',
  'POST /api/nodes/:id/volumes/:name/archive': 'admin',
  'POST /api/nodes/:id/volumes/:name/restore': 'admin',
  'GET /api/nodes/:id/volumes/:name/files': 'user',
  'GET /api/nodes/:id/volumes/:name/file': 'user',
  'POST /api/nodes/:id/volumes/:name/file-download': 'user',
  'POST /api/nodes/:id/volumes/:name/file-upload': 'user',
  'POST /api/nodes/:id/volumes/:name/mkdir': 'user',
  'POST /api/nodes/:id/volumes/:name/rename': 'user',
  'POST /api/nodes/:id/volumes/:name/delete': 'user',
  'GET /api/registries': 'admin',
  'POST /api/registries': 'admin',
  'PATCH /api/registries/:rid': 'admin',
  'DELETE /api/registries/:rid': 'admin',
  'POST /api/registries/:rid/test': 'admin',
  'GET /api/nodes/:id/docker/*': 'user',
  'POST /api/nodes/:id/docker/*': 'user',
  'PUT /api/nodes/:id/docker/*': 'user',
  'DELETE /api/nodes/:id/docker/*': 'user',
  'GET /ws/nodes/:id/docker/exec/:execId': 'user',
  'GET /api/nodes/:id/docker-policy': 'admin',
  'PUT /api/nodes/:id/docker-policy': 'owner',
  'GET /api/nodes/:id/docker-access': 'admin',
  'PUT /api/nodes/:id/docker-access/:userId': 'admin',
  'GET /api/nodes/:id/stacks': 'user',
  'POST /api/nodes/:id/stacks': 'user',
  'GET /api/nodes/:id/stacks/:name': 'user',
  'PUT /api/nodes/:id/stacks/:name': 'user',
  'DELETE /api/nodes/:id/stacks/:name': 'user',
  'POST /api/nodes/:id/stacks/:name/stop': 'user',
  'POST /api/nodes/:id/stacks/:name/start': 'user',
  'GET /api/docker/nodes': 'user',
  'GET /api/nodes/:id/docker-cache/containers': 'user',
  'GET /api/transfers/:ticket': 'public',
  'PUT /api/transfers/:ticket': 'public',
  'GET /api/agent/transfers/:ticket': 'agent',
  'POST /api/agent/transfers/:ticket': 'agent',
  'POST /api/agent/transfers/:ticket/result': 'agent',
  'GET /api/dashboard': 'user',
  'GET /api/activity': 'admin',
  'GET /api/servers/:id/activity': 'user activity.read',
  'GET /api/permissions': 'user',
  'GET /api/servers/:id/users': 'user user.read',
  'POST /api/servers/:id/users': 'user user.create',
  'PATCH /api/servers/:id/users/:userId': 'user user.update',
  'DELETE /api/servers/:id/users/:userId': 'user user.delete',
  'POST /api/servers/:id/transfer': 'user admin',
  'GET /api/servers/:id/transfers': 'user admin',
  'GET /ws/agents': 'agent',
  'GET /ws/client': 'user',
  'GET /api/servers/:id/failovers': 'user activity.read',
  'GET /api/nodes/:id/fences': 'admin',
  'POST /api/servers/:id/players/kick': 'user player.kick',
  'POST /api/servers/:id/players/ban': 'user player.ban',
  'GET /api/servers/:id/image': 'user startup.read',
  'POST /api/servers/:id/image/check': 'user startup.read',
  'POST /api/servers/:id/image/update': 'user settings.image-update',
  'GET /api/image-updates/settings': 'admin',
  'PUT /api/image-updates/settings': 'admin',
};

// Bodies that pass validation where the handler decides (agent credentials).
const BODIES: Record<string, unknown> = {
  'PUT /api/nodes/:id/docker-access/:userId': { permissions: [] },
  'PUT /api/nodes/:id/docker-policy': { bindAllow: [] },
  'POST /api/agents/register': {
    name: 'n',
    hostname: 'h',
    port: 1,
    capabilities: { maxMemory: '1g', maxCpuCores: 1, dockerVersion: '1', supportedArchitectures: [] },
  },
  'POST /api/agents/refresh': { refreshToken: 'car_nope' },
  'POST /api/agents/sftp/auth': { username: 'a.s1', ip: '127.0.0.1', password: 'x' },
  'PUT /api/image-updates/settings': { intervalSeconds: 3600 },
};

type Who = 'anonymous' | 'user' | 'spectator' | 'admin' | 'owner';
const WHO: Who[] = ['anonymous', 'user', 'spectator', 'admin', 'owner'];
const RANK: Record<Exclude<Who, 'anonymous'>, number> = { user: 0, spectator: 1, admin: 2, owner: 3 };

describe('authorisation: every route × every role', () => {
  let app: FastifyInstance;
  let dir: string;
  const headers: Record<Who, Record<string, string>> = {
    anonymous: {},
    user: {},
    spectator: {},
    admin: {},
    owner: {},
  };

  const login = async (email: string, password: string) => {
    const r = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email, password } });
    assert.equal(r.statusCode, 200, r.body);
    const cookie = r.cookies.find((c) => c.name === 'cap_session');
    assert.ok(cookie);
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Lax');
    return { cookie: `cap_session=${cookie.value}`, 'x-csrf-token': r.json().csrfToken as string };
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cap-authz-'));
    app = await build(
      loadPanelConfig({ DATA_DIR: dir, ADMIN_EMAIL: 'o@x.test', ADMIN_PASSWORD: 'owner-pass-1' }),
      { logger: pino({ level: 'silent' }) },
    );
    headers.owner = await login('o@x.test', 'owner-pass-1');
    for (const role of ['admin', 'spectator', 'user'] as const) {
      const r = await app.inject({
        method: 'POST',
        url: '/api/users',
        headers: headers.owner,
        payload: { email: `${role}@x.test`, password: `${role}-pass-1`, role },
      });
      assert.equal(r.statusCode, 201, r.body);
      headers[role] = await login(`${role}@x.test`, `${role}-pass-1`);
    }
  });
  after(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the route table matches the expected rules exactly', () => {
    const actual: Record<string, string> = {};
    for (const r of app.panel.routes) {
      if (r.method === 'HEAD' || r.url.startsWith('/api/docs') || r.url === '/api/openapi.json') continue;
      actual[`${r.method} ${r.url}`] = r.access === undefined ? r.auth : `${r.auth} ${r.access}`;
    }
    assert.deepEqual(actual, EXPECTED);
  });

  for (const [key, expected] of Object.entries(EXPECTED)) {
    const [rule, access] = expected.split(/ (.*)/s) as [AuthRule, string | undefined];
    for (const who of WHO) {
      test(`${key} as ${who} (${rule})`, async () => {
        const [method, path] = key.split(' ') as [string, string];
        const url = path
          .replace(':id', 'zz-missing')
          .replace(':allocId', 'zz-missing')
          .replace(':userId', 'zz-missing');
        const hasBody = method !== 'GET' && method !== 'DELETE';
        // logging out ends the session: use a throwaway one
        const h =
          key === 'POST /api/auth/logout' && who !== 'anonymous'
            ? await login(
                who === 'owner' ? 'o@x.test' : `${who}@x.test`,
                who === 'owner' ? 'owner-pass-1' : `${who}-pass-1`,
              )
            : headers[who];
        const r = await app.inject({
          method: method as 'GET',
          url,
          headers: h,
          ...(hasBody ? { payload: (BODIES[key] ?? {}) as object } : {}),
        });
        const code = r.statusCode;
        const body = code >= 400 && r.body ? r.json() : undefined;
        if (body) assert.ok(body.code && body.requestId, `error shape: ${r.body}`);
        if (rule === 'public') {
          assert.ok(code !== 401 && code !== 403, `${code} ${r.body}`);
        } else if (rule === 'agent') {
          // a user's session is not an agent credential
          assert.equal(code, 401, r.body);
          assert.equal(body.code, 'AUTH_FAILED');
        } else if (who === 'anonymous') {
          assert.equal(code, 401, r.body);
          assert.equal(body.code, 'UNAUTHENTICATED');
        } else if (rule !== 'user' && RANK[who] < RANK[rule as 'admin']) {
          assert.equal(code, 403, r.body);
          assert.equal(body.code, 'FORBIDDEN');
        } else if (access !== undefined) {
          // a server that does not exist (or that the caller may not see): 404, never 403
          assert.equal(code, 404, r.body);
          assert.equal(body.code, 'SERVER_NOT_FOUND');
        } else {
          assert.ok(code !== 401 && code !== 403, `${code} ${r.body}`);
        }
      });
    }
  }

  test('a cookie-authenticated write without X-CSRF-Token is refused; an API key needs none', async () => {
    const noCsrf = await app.inject({
      method: 'POST',
      url: '/api/api-keys',
      headers: { cookie: headers.admin.cookie },
      payload: { name: 'k', currentPassword: 'admin-pass-1' },
    });
    assert.equal(noCsrf.statusCode, 403);
    assert.equal(noCsrf.json().code, 'CSRF_FAILED');
    const wrong = await app.inject({
      method: 'POST',
      url: '/api/api-keys',
      headers: { cookie: headers.admin.cookie, 'x-csrf-token': headers.spectator['x-csrf-token'] ?? '' },
      payload: { name: 'k', currentPassword: 'admin-pass-1' },
    });
    assert.equal(wrong.json().code, 'CSRF_FAILED');
    const made = await app.inject({
      method: 'POST',
      url: '/api/api-keys',
      headers: headers.admin,
      payload: { name: 'k', currentPassword: 'admin-pass-1' },
    });
    assert.equal(made.statusCode, 201);
    const key = made.json().key as string;
    assert.match(key, /^cap_/);
    const viaKey = await app.inject({
      method: 'POST',
      url: '/api/nodes',
      headers: { authorization: `Bearer ${key}` },
      payload: { name: 'via-key' },
    });
    assert.equal(viaKey.statusCode, 201);
    const list = await app.inject({ method: 'GET', url: '/api/api-keys', headers: headers.admin });
    assert.equal(list.json()[0].key, undefined, 'the key is shown once only');
    const del = await app.inject({
      method: 'DELETE',
      url: `/api/api-keys/${made.json().id}`,
      headers: headers.admin,
    });
    assert.equal(del.statusCode, 204);
    const revoked = await app.inject({
      method: 'GET',
      url: '/api/nodes',
      headers: { authorization: `Bearer ${key}` },
    });
    assert.equal(revoked.statusCode, 401);
  });

  test('admins cannot manage owners; the last owner stays', async () => {
    const users = (await app.inject({ method: 'GET', url: '/api/users', headers: headers.admin })).json();
    const owner = users.find((u: { role: string }) => u.role === 'owner');
    const patch = await app.inject({
      method: 'PATCH',
      url: `/api/users/${owner.id}`,
      headers: headers.admin,
      payload: { role: 'spectator' },
    });
    assert.equal(patch.json().code, 'FORBIDDEN');
    const mk = await app.inject({
      method: 'POST',
      url: '/api/users',
      headers: headers.admin,
      payload: { email: 'o2@x.test', password: 'password-2', role: 'owner' },
    });
    assert.equal(mk.json().code, 'FORBIDDEN');
    const demote = await app.inject({
      method: 'PATCH',
      url: `/api/users/${owner.id}`,
      headers: headers.owner,
      payload: { role: 'admin' },
    });
    assert.equal(demote.json().code, 'INVALID_STATE');
  });

  test('logout ends the session', async () => {
    const s = await login('spectator@x.test', 'spectator-pass-1');
    const out = await app.inject({ method: 'POST', url: '/api/auth/logout', headers: s });
    assert.equal(out.statusCode, 204);
    const me = await app.inject({ method: 'GET', url: '/api/auth/me', headers: s });
    assert.equal(me.statusCode, 401);
  });
});
