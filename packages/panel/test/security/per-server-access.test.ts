/**
 * Per-server access (issue 9 item 3): roles were global, so anyone with an account saw every
 * server and nobody could be given one server. Now a `user` sees only what it owns or is a
 * subuser of; a server it may not see is 404 (REST and socket), a permission it lacks is 403
 * naming it; subusers can never grant what they do not hold; removing a subuser stops their
 * socket at once. Against a real Panel with the fake Agent.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FakeAgent } from '../fake-agent.ts';
import {
  type Account,
  type ClientSocket,
  createAccount,
  createServer,
  fakeAgentNode,
  grantPermissions,
  type Json,
  type Session,
  startTestPanel,
  type TestPanel,
  until,
} from '../helpers.ts';

/** Every server route with a request whose permission need is known (the test's own table). */
interface Probe {
  route: string;
  method: string;
  path: (id: string) => string;
  body?: unknown;
  /** what it needs: a permission, all of a list, `view` (seeing the server) or `admin` */
  need: string | string[];
}
const PROBES: Probe[] = [
  { route: 'GET /api/servers/:id', method: 'GET', path: (id) => `/api/servers/${id}`, need: 'view' },
  {
    route: 'PATCH /api/servers/:id',
    method: 'PATCH',
    path: (id) => `/api/servers/${id}`,
    body: { name: 'renamed' },
    need: 'settings.rename',
  },
  {
    route: 'PATCH /api/servers/:id',
    method: 'PATCH',
    path: (id) => `/api/servers/${id}`,
    body: { stopTimeout: 12 },
    need: 'admin',
  },
  { route: 'DELETE /api/servers/:id', method: 'DELETE', path: (id) => `/api/servers/${id}`, need: 'admin' },
  ...(['start', 'stop', 'restart', 'kill'] as const).map((action) => ({
    route: 'POST /api/servers/:id/power',
    method: 'POST',
    path: (id: string) => `/api/servers/${id}/power`,
    body: { action },
    need: action === 'kill' ? 'control.stop' : `control.${action}`,
  })),
  {
    route: 'POST /api/servers/:id/features/eula',
    method: 'POST',
    path: (id) => `/api/servers/${id}/features/eula`,
    body: { accept: true },
    need: ['file.update', 'control.restart'],
  },
  {
    route: 'POST /api/servers/:id/reinstall',
    method: 'POST',
    path: (id) => `/api/servers/${id}/reinstall`,
    need: 'settings.reinstall',
  },
  {
    route: 'POST /api/servers/:id/command',
    method: 'POST',
    path: (id) => `/api/servers/${id}/command`,
    body: { command: 'echo probe' },
    need: 'control.command',
  },
  {
    route: 'PUT /api/servers/:id/config',
    method: 'PUT',
    path: (id) => `/api/servers/${id}/config`,
    // (a raw server's environment itself is for admins: FORBIDDEN from the use case, not the check)
    body: {},
    need: 'startup.update',
  },
  {
    route: 'PUT /api/servers/:id/config',
    method: 'PUT',
    path: (id) => `/api/servers/${id}/config`,
    body: { limits: { memory: '512m' } },
    need: 'admin',
  },
  ...['operations', 'telemetry', 'metrics', 'players', 'players/history'].map((x) => ({
    route: `GET /api/servers/:id/${x}`,
    method: 'GET',
    path: (id: string) => `/api/servers/${id}/${x}`,
    need: 'view',
  })),
  {
    route: 'GET /api/servers/:id/files',
    method: 'GET',
    path: (id) => `/api/servers/${id}/files`,
    need: 'file.read',
  },
  {
    route: 'GET /api/servers/:id/files/content',
    method: 'GET',
    path: (id) => `/api/servers/${id}/files/content?path=/a.txt`,
    need: 'file.read-content',
  },
  {
    route: 'GET /api/servers/:id/files/stat',
    method: 'GET',
    path: (id) => `/api/servers/${id}/files/stat?path=/a.txt`,
    need: 'file.read',
  },
  {
    route: 'GET /api/servers/:id/files/search',
    method: 'GET',
    path: (id) => `/api/servers/${id}/files/search?query=a`,
    need: 'file.read',
  },
  {
    route: 'GET /api/servers/:id/mods',
    method: 'GET',
    path: (id) => `/api/servers/${id}/mods`,
    need: 'file.read',
  },
  {
    route: 'GET /api/servers/:id/mods/catalog',
    method: 'GET',
    path: (id) => `/api/servers/${id}/mods/catalog?folder=plugins`,
    need: 'file.read',
  },
  {
    route: 'POST /api/servers/:id/mods/toggle',
    method: 'POST',
    path: (id) => `/api/servers/${id}/mods/toggle`,
    body: { path: 'plugins/a.jar', enabled: false },
    need: 'file.update',
  },
  {
    route: 'POST /api/servers/:id/mods/remove',
    method: 'POST',
    path: (id) => `/api/servers/${id}/mods/remove`,
    body: { path: 'plugins/a.jar' },
    need: 'file.delete',
  },
  {
    route: 'POST /api/servers/:id/mods/install',
    method: 'POST',
    path: (id) => `/api/servers/${id}/mods/install`,
    body: { folder: 'plugins', projectId: 'x' },
    need: 'file.create',
  },
  {
    route: 'PUT /api/servers/:id/files/content',
    method: 'PUT',
    path: (id) => `/api/servers/${id}/files/content`,
    body: { path: '/a.txt', content: 'x' },
    need: 'file.update',
  },
  {
    route: 'PUT /api/servers/:id/files/content',
    method: 'PUT',
    path: (id) => `/api/servers/${id}/files/content`,
    body: { path: '/new.txt', content: 'x', createOnly: true },
    need: 'file.create',
  },
  {
    route: 'POST /api/servers/:id/files/directories',
    method: 'POST',
    path: (id) => `/api/servers/${id}/files/directories`,
    body: { path: '/d' },
    need: 'file.create',
  },
  {
    route: 'POST /api/servers/:id/files/rename',
    method: 'POST',
    path: (id) => `/api/servers/${id}/files/rename`,
    body: { from: '/a.txt', to: '/b.txt' },
    need: 'file.update',
  },
  {
    route: 'POST /api/servers/:id/files/copy',
    method: 'POST',
    path: (id) => `/api/servers/${id}/files/copy`,
    body: { from: '/a.txt', to: '/c.txt' },
    need: 'file.create',
  },
  {
    route: 'POST /api/servers/:id/files/delete',
    method: 'POST',
    path: (id) => `/api/servers/${id}/files/delete`,
    body: { root: '/', names: ['c.txt'] },
    need: 'file.delete',
  },
  {
    route: 'POST /api/servers/:id/files/chmod',
    method: 'POST',
    path: (id) => `/api/servers/${id}/files/chmod`,
    body: { path: '/a.txt', mode: '644' },
    need: 'file.update',
  },
  {
    route: 'POST /api/servers/:id/files/compress',
    method: 'POST',
    path: (id) => `/api/servers/${id}/files/compress`,
    body: { names: ['a.txt'] },
    need: 'file.archive',
  },
  {
    route: 'POST /api/servers/:id/files/decompress',
    method: 'POST',
    path: (id) => `/api/servers/${id}/files/decompress`,
    body: { path: '/a.tar.gz' },
    need: 'file.archive',
  },
  {
    route: 'POST /api/servers/:id/files/transfers',
    method: 'POST',
    path: (id) => `/api/servers/${id}/files/transfers`,
    body: { direction: 'download', path: '/a.txt' },
    need: 'file.read-content',
  },
  {
    route: 'POST /api/servers/:id/files/transfers',
    method: 'POST',
    path: (id) => `/api/servers/${id}/files/transfers`,
    body: { direction: 'upload', path: '/up.bin', size: 1 },
    need: 'file.create',
  },
  {
    route: 'GET /api/servers/:id/backups',
    method: 'GET',
    path: (id) => `/api/servers/${id}/backups`,
    need: 'backup.read',
  },
  {
    route: 'POST /api/servers/:id/backups',
    method: 'POST',
    path: (id) => `/api/servers/${id}/backups`,
    body: { name: 'probe' },
    need: 'backup.create',
  },
  ...(
    [
      ['download', 'backup.download', {}],
      ['restore', 'backup.restore', {}],
      ['lock', 'backup.delete', { locked: true }],
    ] as const
  ).map(([x, need, body]) => ({
    route: `POST /api/servers/:id/backups/:backupId/${x}`,
    method: 'POST',
    path: (id: string) => `/api/servers/${id}/backups/no-such-backup/${x}`,
    body,
    need,
  })),
  {
    route: 'DELETE /api/servers/:id/backups/:backupId',
    method: 'DELETE',
    path: (id) => `/api/servers/${id}/backups/no-such-backup`,
    need: 'backup.delete',
  },
  {
    route: 'GET /api/servers/:id/schedules',
    method: 'GET',
    path: (id) => `/api/servers/${id}/schedules`,
    need: 'schedule.read',
  },
  {
    route: 'POST /api/servers/:id/schedules',
    method: 'POST',
    path: (id) => `/api/servers/${id}/schedules`,
    body: { name: 'probe', intervalSeconds: 3600, tasks: [{ action: 'command', command: 'say probe' }] },
    need: ['schedule.create', 'control.command'],
  },
  ...(
    [
      ['GET', '', 'schedule.read', undefined],
      ['PATCH', '', 'schedule.update', { enabled: false }],
      ['DELETE', '', 'schedule.delete', undefined],
      ['POST', '/run', 'schedule.update', undefined],
      ['GET', '/runs', 'schedule.read', undefined],
    ] as const
  ).map(([method, tail, need, body]) => ({
    route: `${method} /api/servers/:id/schedules/:sid${tail}`,
    method,
    path: (id: string) => `/api/servers/${id}/schedules/no-such-schedule${tail}`,
    ...(body === undefined ? {} : { body }),
    need,
  })),
  {
    route: 'GET /api/servers/:id/webhooks',
    method: 'GET',
    path: (id) => `/api/servers/${id}/webhooks`,
    need: 'webhook.read',
  },
  {
    route: 'POST /api/servers/:id/webhooks',
    method: 'POST',
    path: (id) => `/api/servers/${id}/webhooks`,
    body: { name: 'probe', kind: 'json', url: 'http://127.0.0.1:9/probe', events: ['server.status'] },
    need: 'webhook.create',
  },
  ...(
    [
      ['GET', '', 'webhook.read', undefined],
      ['PATCH', '', 'webhook.update', { enabled: false }],
      ['DELETE', '', 'webhook.delete', undefined],
      ['POST', '/test', 'webhook.update', undefined],
      ['GET', '/deliveries', 'webhook.read', undefined],
    ] as const
  ).map(([method, tail, need, body]) => ({
    route: `${method} /api/servers/:id/webhooks/:hid${tail}`,
    method,
    path: (id: string) => `/api/servers/${id}/webhooks/no-such-hook${tail}`,
    ...(body === undefined ? {} : { body }),
    need,
  })),
  {
    route: 'GET /api/servers/:id/activity',
    method: 'GET',
    path: (id) => `/api/servers/${id}/activity`,
    need: 'activity.read',
  },
  {
    route: 'GET /api/servers/:id/users',
    method: 'GET',
    path: (id) => `/api/servers/${id}/users`,
    need: 'user.read',
  },
  {
    route: 'POST /api/servers/:id/users',
    method: 'POST',
    path: (id) => `/api/servers/${id}/users`,
    body: { email: 'nobody@example.test', permissions: [] },
    need: 'user.create',
  },
  {
    route: 'PATCH /api/servers/:id/users/:userId',
    method: 'PATCH',
    path: (id) => `/api/servers/${id}/users/u-nobody`,
    body: { permissions: [] },
    need: 'user.update',
  },
  {
    route: 'DELETE /api/servers/:id/users/:userId',
    method: 'DELETE',
    path: (id) => `/api/servers/${id}/users/u-nobody`,
    need: 'user.delete',
  },
  {
    route: 'GET /api/servers/:id/failovers',
    method: 'GET',
    path: (id) => `/api/servers/${id}/failovers`,
    need: 'activity.read',
  },
  ...(['kick', 'ban'] as const).map((a) => ({
    route: `POST /api/servers/:id/players/${a}`,
    method: 'POST',
    path: (id: string) => `/api/servers/${id}/players/${a}`,
    body: { name: 'probe' },
    need: `player.${a}`,
  })),
  {
    route: 'POST /api/servers/:id/transfer',
    method: 'POST',
    path: (id) => `/api/servers/${id}/transfer`,
    body: { nodeId: 'n-nowhere' },
    need: 'admin',
  },
  {
    route: 'GET /api/servers/:id/transfers',
    method: 'GET',
    path: (id) => `/api/servers/${id}/transfers`,
    need: 'admin',
  },
  {
    route: 'GET /api/servers/:id/image',
    method: 'GET',
    path: (id) => `/api/servers/${id}/image`,
    need: 'startup.read',
  },
  {
    route: 'POST /api/servers/:id/image/check',
    method: 'POST',
    path: (id) => `/api/servers/${id}/image/check`,
    need: 'startup.read',
  },
  {
    route: 'POST /api/servers/:id/image/update',
    method: 'POST',
    path: (id) => `/api/servers/${id}/image/update`,
    body: {},
    need: 'settings.image-update',
  },
];

const holds = (perms: readonly string[], need: string | string[]) =>
  need === 'view' ||
  (need !== 'admin' && (typeof need === 'string' ? [need] : need).every((n) => perms.includes(n)));

describe('per-server access', () => {
  let panel: TestPanel;
  let owner: Session;
  let agent: FakeAgent;
  let serverA: string;
  let serverB: string;
  let catalog: string[];
  const users = {} as Record<'alice' | 'bob' | 'carol' | 'spec' | 'admin', Account>;

  const account = (name: string, role: 'user' | 'spectator' | 'admin') =>
    createAccount(panel, owner, name, role);
  const grant = (serverId: string, who: Account, permissions: string[]) =>
    grantPermissions(panel, owner, serverId, who, permissions);
  const socketReply = async (ws: ClientSocket, msg: Json, want: (m: Json) => boolean) => {
    ws.send(msg);
    return ws.next(want);
  };

  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
    const node = await fakeAgentNode(panel, owner, {
      handlers: {
        get_file: () => ({ path: '/a.txt', size: 2, encoding: 'utf8', content: 'hi' }),
      },
    });
    agent = node.agent;
    users.alice = await account('alice', 'user');
    users.bob = await account('bob', 'user');
    users.carol = await account('carol', 'user');
    users.spec = await account('spec', 'spectator');
    users.admin = await account('adm', 'admin');
    serverA = await createServer(panel, owner, node.id, 'A');
    serverB = await createServer(panel, owner, node.id, 'B', { ownerId: users.carol.id });
    const started = await panel.api(owner, 'POST', `/api/servers/${serverA}/power`, { action: 'start' });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    await until(
      async () => (await panel.api(owner, 'GET', `/api/servers/${serverA}`)).body.status === 'running',
    );
    const cat = await panel.api(users.bob, 'GET', '/api/permissions');
    assert.equal(cat.status, 200);
    catalog = cat.body.flatMap((g: Json) => g.permissions.map((p: Json) => p.name));
  });
  after(async () => {
    await agent.close();
    await panel.stop();
  });

  test('the catalog has the Pterodactyl names; the probe table covers every server route', () => {
    for (const p of [
      'control.console',
      'control.command',
      'control.start',
      'control.stop',
      'control.restart',
      'file.read',
      'file.read-content',
      'file.create',
      'file.update',
      'file.delete',
      'file.archive',
      'file.sftp',
      'backup.create',
      'backup.read',
      'backup.delete',
      'backup.download',
      'backup.restore',
      'schedule.create',
      'schedule.read',
      'schedule.update',
      'schedule.delete',
      'webhook.create',
      'webhook.read',
      'webhook.update',
      'webhook.delete',
      'user.create',
      'user.read',
      'user.update',
      'user.delete',
      'startup.read',
      'startup.update',
      'settings.rename',
      'settings.reinstall',
      'settings.image-update',
      'activity.read',
      'player.kick',
      'player.ban',
    ])
      assert.ok(catalog.includes(p), p);
    const serverRoutes = panel.app.panel.routes
      .filter((r) => r.access !== undefined && r.method !== 'HEAD')
      .map((r) => `${r.method} ${r.url}`);
    assert.deepEqual([...new Set(PROBES.map((p) => p.route))].sort(), [...new Set(serverRoutes)].sort());
  });

  test('a subuser with control.console + control.command sends commands, cannot stop or read files', async () => {
    const sub = await grant(serverA, users.alice, ['control.console', 'control.command']);
    assert.deepEqual(sub.permissions, ['control.command', 'control.console']);
    const alice = users.alice;
    const cmd = await panel.api(alice, 'POST', `/api/servers/${serverA}/command`, {
      command: 'echo from-alice',
    });
    assert.equal(cmd.status, 202, JSON.stringify(cmd.body));
    await agent.waitForCommand(
      (c) => c.action === 'send_command' && JSON.stringify(c.payload).includes('from-alice'),
    );
    const stop = await panel.api(alice, 'POST', `/api/servers/${serverA}/power`, { action: 'stop' });
    assert.equal(stop.status, 403, JSON.stringify(stop.body));
    assert.equal(stop.body.code, 'FORBIDDEN');
    assert.match(stop.body.message, /control\.stop/);
    for (const path of [
      `/api/servers/${serverA}/files`,
      `/api/servers/${serverA}/files/content?path=/a.txt`,
    ]) {
      const r = await panel.api(alice, 'GET', path);
      assert.equal(r.status, 403, `${path} ${JSON.stringify(r.body)}`);
      assert.match(r.body.message, /file\.read/);
    }
    assert.equal(
      agent.commands.some((c) => c.action === 'stop_server'),
      false,
    );
    // over the socket: the console and the command, not the stop
    const ws = await panel.clientSocket(alice);
    const subd = await socketReply(
      ws,
      { type: 'subscribe', serverId: serverA },
      (m) => m.type === 'subscribed',
    );
    assert.ok(
      subd.history.some((l: string) => l.includes('from-alice')),
      JSON.stringify(subd.history),
    );
    await socketReply(
      ws,
      { type: 'send_command', serverId: serverA, command: 'echo via-socket' },
      (m) => m.type === 'ack' && m.requestType === 'send_command',
    );
    await ws.next((m) => m.type === 'console' && m.lines.includes('via-socket'));
    const refused = await socketReply(
      ws,
      { type: 'power', serverId: serverA, action: 'stop' },
      (m) => m.type === 'error' && m.requestType === 'power',
    );
    assert.equal(refused.code, 'FORBIDDEN');
    assert.match(refused.message, /control\.stop/);
    ws.close();
  });

  test('a `user` sees only its servers; another server is 404 on every route and socket message', async () => {
    const list = async (who: Session) => (await panel.api(who, 'GET', '/api/servers')).body as Json[];
    const alice = await list(users.alice);
    assert.deepEqual(
      alice.map((s) => s.id),
      [serverA],
    );
    assert.deepEqual(alice[0].permissions, ['control.command', 'control.console']);
    assert.deepEqual(await list(users.bob), []);
    const carol = await list(users.carol);
    assert.deepEqual(
      carol.map((s) => s.id),
      [serverB],
    );
    assert.deepEqual([...carol[0].permissions].sort(), [...catalog].sort());
    assert.equal(carol[0].ownerId, users.carol.id);
    assert.equal((await list(users.spec)).length, 2);
    assert.equal((await list(users.admin)).length, 2);
    const dash = await panel.api(users.bob, 'GET', '/api/dashboard');
    assert.equal(dash.status, 200);
    assert.deepEqual(dash.body.servers, []);
    assert.equal(dash.body.totals.servers, 0);
    assert.deepEqual(dash.body.nodes, []);
    for (const who of [users.bob, users.alice]) {
      for (const p of PROBES) {
        const target = who === users.bob ? serverA : serverB;
        const r = await panel.api(who, p.method, p.path(target), p.body);
        assert.equal(r.status, 404, `${who.email} ${p.method} ${p.path(target)} ${JSON.stringify(r.body)}`);
        assert.equal(r.body.code, 'SERVER_NOT_FOUND');
      }
    }
    // the operation of a server it may not see does not exist for it either
    const op = (await panel.api(owner, 'GET', `/api/servers/${serverA}/operations`)).body[0];
    const foreign = await panel.api(users.bob, 'GET', `/api/operations/${op.id}`);
    assert.equal(foreign.status, 404);
    assert.equal(foreign.body.code, 'NOT_FOUND');
    const ws = await panel.clientSocket(users.bob);
    for (const msg of [
      { type: 'subscribe', serverId: serverA },
      { type: 'send_command', serverId: serverA, command: 'echo bob' },
      ...['start', 'stop', 'restart', 'kill'].map((action) => ({ type: 'power', serverId: serverA, action })),
    ]) {
      const e = await socketReply(ws, msg, (m) => m.type === 'error' && m.requestType === msg.type);
      assert.equal(e.code, 'SERVER_NOT_FOUND', JSON.stringify(msg));
    }
    ws.close();
    assert.equal(
      agent.commands.some((c) => JSON.stringify(c.payload ?? {}).includes('echo bob')),
      false,
    );
    // the API key of a `user` holds what the user holds
    const key = await panel.api(users.alice, 'POST', '/api/api-keys', {
      name: 'k',
      currentPassword: 'alice-password-1',
    });
    assert.equal(key.status, 201, JSON.stringify(key.body));
    const viaKey = async (path: string) =>
      fetch(`${panel.url}${path}`, { headers: { authorization: `Bearer ${key.body.key}` } });
    const keyList = (await (await viaKey('/api/servers')).json()) as Json[];
    assert.deepEqual(
      keyList.map((s) => s.id),
      [serverA],
    );
    assert.equal((await viaKey(`/api/servers/${serverB}`)).status, 404);
    assert.equal((await viaKey(`/api/servers/${serverA}/files`)).status, 403);
  });

  test('every permission profile × every server route: 403 naming the permission exactly when it is not held', async () => {
    const subuserProfiles: string[][] = [[], ...catalog.map((p) => [p]), ['file.update', 'control.restart']];
    // a spectator: the global read-only role, the same on every server
    const readOnly = [
      'control.console',
      'file.read',
      'file.read-content',
      'backup.read',
      'allocation.read',
      'startup.read',
      'schedule.read',
      'user.read',
      'activity.read',
    ];
    const profiles: { who: Account; perms: string[]; grant: boolean }[] = [
      ...subuserProfiles.map((perms) => ({ who: users.alice, perms, grant: true })),
      { who: users.spec, perms: readOnly, grant: false },
    ];
    for (const { who, perms, grant: isSubuser } of profiles) {
      if (isSubuser) await grant(serverA, who, perms);
      else {
        const listed = (await panel.api(who, 'GET', `/api/servers/${serverA}`)).body.permissions;
        assert.deepEqual(listed, [...readOnly].sort());
      }
      for (const p of PROBES) {
        const r = await panel.api(who, p.method, p.path(serverA), p.body);
        const label = `${who.email} [${perms.join(',')}] ${p.method} ${p.path(serverA)} ${JSON.stringify(p.body ?? null)}`;
        if (holds(perms, p.need)) {
          assert.notEqual(r.status, 403, `${label} → ${JSON.stringify(r.body)}`);
          assert.notEqual(r.body?.code, 'SERVER_NOT_FOUND', label);
        } else {
          assert.equal(r.status, 403, `${label} → ${JSON.stringify(r.body)}`);
          assert.equal(r.body.code, 'FORBIDDEN');
          const lacking =
            p.need === 'admin'
              ? ['admin']
              : (typeof p.need === 'string' ? [p.need] : p.need).filter((n) => !perms.includes(n));
          for (const n of lacking) assert.match(r.body.message, new RegExp(n.replace('.', '\\.')), label);
        }
      }
      // the socket: subscribe needs only to see the server; commands and power need theirs
      const ws = await panel.clientSocket(who);
      const sub = await socketReply(
        ws,
        { type: 'subscribe', serverId: serverA },
        (m) => m.type === 'subscribed',
      );
      assert.equal(sub.history.length > 0, perms.includes('control.console'), `history for [${perms}]`);
      const sent = await socketReply(
        ws,
        { type: 'send_command', serverId: serverA, command: 'echo profile' },
        (m) => m.requestType === 'send_command',
      );
      assert.equal(sent.type === 'error' && sent.code === 'FORBIDDEN', !perms.includes('control.command'));
      for (const action of ['start', 'stop', 'restart', 'kill']) {
        const need = action === 'kill' ? 'control.stop' : `control.${action}`;
        const r = await socketReply(
          ws,
          { type: 'power', serverId: serverA, action },
          (m) => m.requestType === 'power',
        );
        assert.equal(
          r.type === 'error' && r.code === 'FORBIDDEN',
          !perms.includes(need),
          `${action} [${perms}]`,
        );
        await new Promise((res) => setTimeout(res, 25)); // under the socket's rate limit
      }
      ws.close();
    }
    // put A back running for the tests after this one
    await until(async () => {
      const s = (await panel.api(owner, 'GET', `/api/servers/${serverA}`)).body.status;
      if (s === 'offline')
        await panel.api(owner, 'POST', `/api/servers/${serverA}/power`, { action: 'start' });
      return s === 'running';
    }, 10_000);
  });

  test('privilege escalation is refused: granting what one lacks, adding oneself, changing the owner', async () => {
    await grant(serverA, users.alice, ['user.create', 'user.update', 'user.read', 'control.console']);
    const alice = users.alice;
    const lacking = await panel.api(alice, 'POST', `/api/servers/${serverA}/users`, {
      email: users.bob.email,
      permissions: ['control.console', 'file.read'],
    });
    assert.equal(lacking.status, 403, JSON.stringify(lacking.body));
    assert.match(lacking.body.message, /file\.read/);
    const self = await panel.api(alice, 'PATCH', `/api/servers/${serverA}/users/${alice.id}`, {
      permissions: ['user.create', 'user.update', 'user.read', 'control.console', 'control.stop'],
    });
    assert.equal(self.status, 403, JSON.stringify(self.body));
    const addSelf = await panel.api(alice, 'POST', `/api/servers/${serverA}/users`, {
      email: alice.email,
      permissions: [],
    });
    assert.equal(addSelf.status, 403, JSON.stringify(addSelf.body));
    const unknown = await panel.api(alice, 'POST', `/api/servers/${serverA}/users`, {
      email: users.bob.email,
      permissions: ['control.everything'],
    });
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.code, 'VALIDATION_FAILED');
    const takeOver = await panel.api(alice, 'PATCH', `/api/servers/${serverA}`, { ownerId: alice.id });
    assert.equal(takeOver.status, 403, JSON.stringify(takeOver.body));
    // even the server's owner cannot hand it over: admins only
    const handOver = await panel.api(users.carol, 'PATCH', `/api/servers/${serverB}`, {
      ownerId: users.bob.id,
    });
    assert.equal(handOver.status, 403, JSON.stringify(handOver.body));
    // what alice holds she may grant
    const ok = await panel.api(alice, 'POST', `/api/servers/${serverA}/users`, {
      email: users.bob.email,
      permissions: ['control.console'],
    });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    // and she may not widen bob beyond herself
    const widen = await panel.api(alice, 'PATCH', `/api/servers/${serverA}/users/${users.bob.id}`, {
      permissions: ['control.console', 'control.start'],
    });
    assert.equal(widen.status, 403, JSON.stringify(widen.body));
    const owned = (await panel.api(owner, 'GET', `/api/servers/${serverA}`)).body;
    assert.notEqual(owned.ownerId, alice.id);
    await panel.api(owner, 'DELETE', `/api/servers/${serverA}/users/${users.bob.id}`);
  });

  test('the server owner manages its subusers; admins change the owner', async () => {
    const carol = users.carol;
    const add = await panel.api(carol, 'POST', `/api/servers/${serverB}/users`, {
      email: users.bob.email,
      permissions: ['file.read', 'file.read-content'],
    });
    assert.equal(add.status, 201, JSON.stringify(add.body));
    assert.equal((await panel.api(users.bob, 'GET', `/api/servers/${serverB}/files`)).status, 200);
    const del = await panel.api(carol, 'DELETE', `/api/servers/${serverB}/users/${users.bob.id}`);
    assert.equal(del.status, 204);
    assert.equal((await panel.api(users.bob, 'GET', `/api/servers/${serverB}`)).status, 404);
    const move = await panel.api(users.admin, 'PATCH', `/api/servers/${serverB}`, { ownerId: users.bob.id });
    assert.equal(move.status, 200, JSON.stringify(move.body));
    assert.equal(move.body.ownerId, users.bob.id);
    assert.equal((await panel.api(carol, 'GET', `/api/servers/${serverB}`)).status, 404);
    assert.equal((await panel.api(users.bob, 'GET', `/api/servers/${serverB}`)).status, 200);
    const noSuchUser = await panel.api(owner, 'PATCH', `/api/servers/${serverB}`, { ownerId: 'u-nobody' });
    assert.equal(noSuchUser.status, 400);
    assert.equal(noSuchUser.body.code, 'VALIDATION_FAILED');
  });

  test('removing a subuser (or taking control.console) stops their socket at once', async () => {
    await grant(serverA, users.alice, ['control.console', 'control.command']);
    const ws = await panel.clientSocket(users.alice);
    await socketReply(ws, { type: 'subscribe', serverId: serverA }, (m) => m.type === 'subscribed');
    await panel.api(owner, 'POST', `/api/servers/${serverA}/command`, { command: 'echo before' });
    await ws.next((m) => m.type === 'console' && m.lines.includes('before'));
    // fewer permissions: the subscription ends; a new one hears no console without control.console
    await grant(serverA, users.alice, ['control.command']);
    await ws.next((m) => m.type === 'unsubscribed' && m.serverId === serverA);
    const again = await socketReply(
      ws,
      { type: 'subscribe', serverId: serverA },
      (m) => m.type === 'subscribed',
    );
    assert.deepEqual(again.history, []);
    await panel.api(owner, 'POST', `/api/servers/${serverA}/command`, { command: 'echo unseen' });
    // removed: unsubscribed at once, and nothing of the server after it
    const del = await panel.api(owner, 'DELETE', `/api/servers/${serverA}/users/${users.alice.id}`);
    assert.equal(del.status, 204);
    await ws.next((m) => m.type === 'unsubscribed' && m.serverId === serverA);
    const mark = ws.messages.length;
    await panel.api(owner, 'POST', `/api/servers/${serverA}/command`, { command: 'echo after' });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(
      ws.messages.slice(mark).some((m) => m.serverId === serverA),
      false,
      JSON.stringify(ws.messages.slice(mark)),
    );
    assert.equal(
      ws.messages.some((m) => m.type === 'console' && m.lines.includes('unseen')),
      false,
    );
    const sub = await socketReply(ws, { type: 'subscribe', serverId: serverA }, (m) => m.type === 'error');
    assert.equal(sub.code, 'SERVER_NOT_FOUND');
    ws.close();
  });

  test('subuser changes are in the server activity log, with who and which permissions', async () => {
    await panel.app.panel.activity.settled();
    const log = await panel.api(owner, 'GET', `/api/servers/${serverA}/activity?action=server.subuser`);
    assert.equal(log.status, 200, JSON.stringify(log.body));
    const actions = (log.body.entries as Json[]).map((e) => e.action);
    for (const a of ['server.subuser.create', 'server.subuser.update', 'server.subuser.delete'])
      assert.ok(actions.includes(a), `${a} in ${actions}`);
    const made = await panel.api(
      owner,
      'GET',
      `/api/servers/${serverA}/activity?action=server.subuser.create&result=ok`,
    );
    const created = (made.body.entries as Json[]).find(
      (e) => e.action === 'server.subuser.create' && e.details?.userId === users.alice.id,
    );
    assert.ok(created, JSON.stringify(log.body.entries));
    assert.equal(created.result, 'ok');
    assert.match(created.details.permissions, /control\.console/);
    const refused = (log.body.entries as Json[]).find(
      (e) => e.action === 'server.subuser.create' && e.result === 'FORBIDDEN',
    );
    assert.ok(refused, 'the refused escalation is logged too');
  });
});
