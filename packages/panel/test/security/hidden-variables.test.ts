/**
 * Hidden template variables (user_viewable: false) stay hidden from spectators where the game
 * itself writes them out (issue 8 item 25): in config files read through Files (OpenTTD's
 * admin_password in openttd.cfg) and in console lines. Admins and owners see everything.
 * With per-server access (issue 9 item 3) it keys off the access check, not the role: the
 * server's owner (any user) sees the values, a subuser never does, and the values of viewable
 * variables need startup.read.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { FakeAgent } from '../fake-agent.ts';
import { type Json, type Session, startTestPanel, type TestPanel, until } from '../helpers.ts';

const SECRET = 'Sup3r-Secret-Admin-Pw';
const EGG = {
  meta: { version: 'PTDL_v2' },
  name: 'Hidden game',
  author: 'test@example.test',
  docker_images: { Main: 'ctrl-alt-play/busybox:latest' },
  startup: './game --admin {{ADMIN_PASSWORD}} --mode {{MODE}}',
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
    {
      name: 'Short hidden',
      description: '',
      env_variable: 'SHORT',
      default_value: '1',
      user_viewable: false,
      user_editable: false,
      rules: 'nullable|string',
      field_type: 'text',
    },
    {
      name: 'Mode',
      description: '',
      env_variable: 'MODE',
      default_value: 'ffa',
      user_viewable: true,
      user_editable: true,
      rules: 'required|string',
      field_type: 'text',
    },
  ],
};

describe('hidden variables are redacted for spectators', () => {
  let panel: TestPanel;
  let owner: Session;
  let spectator: Session;
  let agent: FakeAgent;
  let serverId: string;
  const writes: string[] = [];
  const fileText = `[network]\nadmin_password = ${SECRET}\nserver_port = 3979\nmode = ffa\nlevel = 1\n`;

  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
    spectator = await panel.userWithRole('spectator');
    const node = await panel.createNode(owner);
    agent = await FakeAgent.start({
      panelUrl: panel.url,
      agentSecret: node.agentSecret,
      handlers: {
        get_file: () => ({
          path: '/openttd.cfg',
          size: Buffer.byteLength(fileText),
          encoding: 'utf8',
          content: fileText,
          sha256: createHash('sha256').update(fileText).digest('hex'),
        }),
        write_file: (cmd) => {
          const p = cmd.payload as { path: string; content: string };
          writes.push(p.path);
          return { path: p.path, size: Buffer.byteLength(p.content) };
        },
      },
    });
    await until(() => panel.app.panel.hub.isOnline(node.id));
    const imp = await panel.api(owner, 'POST', '/api/templates/import', {
      content: JSON.stringify(EGG),
      filename: 'egg.json',
    });
    assert.equal(imp.status, 201, JSON.stringify(imp.body));
    const created = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'hidden',
      nodeId: node.id,
      templateId: imp.body.template.id,
      environment: { ADMIN_PASSWORD: SECRET, MODE: 'ffa' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    serverId = created.body.id;
  });
  after(async () => {
    await agent.close();
    await panel.stop();
  });

  test('file content: the spectator gets [hidden], the owner the value', async () => {
    const path = `/api/servers/${serverId}/files/content?path=/openttd.cfg`;
    const asSpectator = await panel.api(spectator, 'GET', path);
    assert.equal(asSpectator.status, 200, JSON.stringify(asSpectator.body));
    assert.ok(!asSpectator.body.content.includes(SECRET), asSpectator.body.content);
    assert.match(asSpectator.body.content, /admin_password = \[hidden\]/);
    // a short hidden value ("1") is not redacted: it would blank every 1 in the file
    assert.match(asSpectator.body.content, /level = 1/);
    const asOwner = await panel.api(owner, 'GET', path);
    assert.equal(asOwner.body.content, fileText);
  });

  test('console lines, live and in history and telemetry: redacted for the spectator only', async () => {
    const spec = await panel.clientSocket(spectator);
    const own = await panel.clientSocket(owner);
    for (const s of [spec, own]) {
      s.send({ type: 'subscribe', serverId });
      await s.next((m) => m.type === 'subscribed');
    }
    agent.emit('server_log', { serverId, message: `Admin password is ${SECRET} (set by the egg)` });
    const line = (m: Json) =>
      m.type === 'console' && m.lines.some((l: string) => l.startsWith('Admin password'));
    const seenBySpec = (await spec.next(line)).lines.join('\n');
    const seenByOwner = (await own.next(line)).lines.join('\n');
    assert.ok(!seenBySpec.includes(SECRET), seenBySpec);
    assert.match(seenBySpec, /Admin password is \[hidden\]/);
    assert.ok(seenByOwner.includes(SECRET));

    // a page opened later: history on subscribe and the telemetry call
    const late = await panel.clientSocket(spectator);
    late.send({ type: 'subscribe', serverId });
    const sub = await late.next((m) => m.type === 'subscribed');
    assert.ok(sub.history.some((l: string) => l.includes('[hidden]')));
    assert.ok(!JSON.stringify(sub.history).includes(SECRET));
    const tel = await panel.api(spectator, 'GET', `/api/servers/${serverId}/telemetry`);
    assert.equal(tel.status, 200);
    assert.ok(!JSON.stringify(tel.body).includes(SECRET));
    const telOwner = await panel.api(owner, 'GET', `/api/servers/${serverId}/telemetry`);
    assert.ok(telOwner.body.console.some((l: string) => l.includes(SECRET)));
    for (const s of [spec, own, late]) s.close();
  });

  test('per-server access: the server owner sees hidden values, a subuser never; startup.read for the rest', async () => {
    const mk = async (name: string) => {
      const email = `${name}-${Math.random().toString(36).slice(2, 7)}@example.test`;
      const r = await panel.api(owner, 'POST', '/api/users', {
        email,
        password: 'user-password-1',
        role: 'user',
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return { id: r.body.id as string, email, s: await panel.login(email, 'user-password-1') };
    };
    const own = await mk('own');
    const sub = await mk('sub');
    const blind = await mk('blind');
    assert.equal(
      (await panel.api(owner, 'PATCH', `/api/servers/${serverId}`, { ownerId: own.id })).status,
      200,
    );
    for (const [who, permissions] of [
      [sub, ['startup.read', 'file.read-content', 'control.console']],
      [blind, ['file.read-content']],
    ] as const) {
      const r = await panel.api(owner, 'POST', `/api/servers/${serverId}/users`, {
        email: who.email,
        permissions,
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    const path = `/api/servers/${serverId}/files/content?path=/openttd.cfg`;
    // the owner (a `user`): everything, in the API, the file and the console
    const ownServer = await panel.api(own.s, 'GET', `/api/servers/${serverId}`);
    assert.equal(ownServer.body.environment.ADMIN_PASSWORD, SECRET);
    assert.equal((await panel.api(own.s, 'GET', path)).body.content, fileText);
    // the subuser with startup.read: viewable values, never hidden ones, anywhere
    const subServer = await panel.api(sub.s, 'GET', `/api/servers/${serverId}`);
    assert.equal(subServer.status, 200);
    assert.equal(subServer.body.environment.MODE, 'ffa');
    assert.ok(!JSON.stringify(subServer.body).includes(SECRET), JSON.stringify(subServer.body));
    assert.match(subServer.body.startupDisplay, /--mode ffa/);
    const subFile = await panel.api(sub.s, 'GET', path);
    assert.match(subFile.body.content, /admin_password = \[hidden\]/);
    const ws = await panel.clientSocket(sub.s);
    ws.send({ type: 'subscribe', serverId });
    const subscribed = await ws.next((m) => m.type === 'subscribed');
    assert.ok(!JSON.stringify(subscribed.history).includes(SECRET));
    agent.emit('server_log', { serverId, message: `again: ${SECRET}` });
    const line = await ws.next(
      (m) => m.type === 'console' && m.lines.some((l: string) => l.startsWith('again')),
    );
    assert.ok(!line.lines.join('\n').includes(SECRET), line.lines.join('\n'));
    ws.close();
    // without startup.read: no variables, no values in the startup line
    const blindServer = await panel.api(blind.s, 'GET', `/api/servers/${serverId}`);
    assert.equal(blindServer.status, 200);
    assert.deepEqual(blindServer.body.variables, []);
    assert.deepEqual(blindServer.body.environment, {});
    assert.ok(!blindServer.body.startupDisplay.includes('ffa'), blindServer.body.startupDisplay);
    assert.ok(!JSON.stringify(blindServer.body).includes(SECRET));
    assert.match((await panel.api(blind.s, 'GET', path)).body.content, /admin_password = \[hidden\]/);
  });

  test('a subuser who gets the file redacted cannot save it over the hidden values', async () => {
    const email = `editor-${Math.random().toString(36).slice(2, 7)}@example.test`;
    const made = await panel.api(owner, 'POST', '/api/users', {
      email,
      password: 'user-password-1',
      role: 'user',
    });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const added = await panel.api(owner, 'POST', `/api/servers/${serverId}/users`, {
      email,
      permissions: ['file.read-content', 'file.update'],
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    const editor = await panel.login(email, 'user-password-1');
    const read = await panel.api(editor, 'GET', `/api/servers/${serverId}/files/content?path=/openttd.cfg`);
    assert.match(read.body.content, /\[hidden\]/);
    // the hash is of what the editor saw, not of the real bytes: a checked save could never match
    assert.notEqual(read.body.sha256, createHash('sha256').update(fileText).digest('hex'));
    writes.length = 0;
    const saved = await panel.api(editor, 'PUT', `/api/servers/${serverId}/files/content`, {
      path: '/openttd.cfg',
      content: read.body.content,
    });
    assert.equal(saved.status, 403, JSON.stringify(saved.body));
    assert.equal(saved.body.code, 'FILE_DENIED');
    assert.deepEqual(writes, [], 'nothing reached the Agent');
    // an admin (who sees the values) saves it
    const asOwner = await panel.api(owner, 'PUT', `/api/servers/${serverId}/files/content`, {
      path: '/openttd.cfg',
      content: fileText,
    });
    assert.equal(asOwner.status, 200, JSON.stringify(asOwner.body));
    assert.deepEqual(writes, ['/openttd.cfg']);
  });
});
