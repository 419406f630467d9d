/**
 * Kick/ban through the game's console (issue 12): a player's name is put into a console command,
 * so a name is an injection vector. A name with a newline, `;`, a quote or a control character is
 * refused with PLAYER_NAME_UNSAFE and nothing reaches the Agent; the id from the player list is
 * preferred; a subuser without player.kick / player.ban gets 403; the action is in the activity log.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FakeAgent } from '../fake-agent.ts';
import {
  type Account,
  createAccount,
  fakeAgentNode,
  grantPermissions,
  type Session,
  startTestPanel,
  type TestPanel,
  until,
} from '../helpers.ts';

const EGG = {
  meta: { version: 'PTDL_v2' },
  name: 'Kick game',
  author: 'test@example.test',
  docker_images: { Main: 'ctrl-alt-play/busybox:latest' },
  startup: './game',
  config: { files: '{}', startup: JSON.stringify({ done: 'ready' }), logs: '{}', stop: 'quit' },
  variables: [],
  players: { query: 'command:quake3-status', kick: ['clientkick {id}', 'kick "{name}"'], ban: 'ban {name}' },
};

describe('player kick/ban: names cannot inject console commands', () => {
  let panel: TestPanel;
  let owner: Session;
  let agent: FakeAgent;
  let serverId: string;
  let plain: string;
  let alice: Account;

  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
    const node = await fakeAgentNode(panel, owner, {
      handlers: {
        player_action: (cmd) => {
          const p = cmd.payload as { id?: string; name?: string };
          return {
            transport: 'quake3-rcon',
            command: p.id !== undefined ? `clientkick ${p.id}` : `kick "${p.name}"`,
            response: 'Sarge was kicked\n',
          };
        },
      },
    });
    agent = node.agent;
    const imp = await panel.api(owner, 'POST', '/api/templates/import', {
      content: JSON.stringify(EGG),
      filename: 'egg.json',
    });
    assert.equal(imp.status, 201, JSON.stringify(imp.body));
    const created = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'kick',
      nodeId: node.id,
      templateId: imp.body.template.id,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    serverId = created.body.id;
    const raw = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'raw',
      nodeId: node.id,
      image: 'img',
    });
    assert.equal(raw.status, 201, JSON.stringify(raw.body));
    plain = raw.body.id;
    alice = await createAccount(panel, owner, 'alice', 'user');
  });
  after(async () => {
    await agent.close();
    await panel.stop();
  });

  const sent = () =>
    agent.commands.filter((c) => c.action === 'player_action' || c.action === 'send_command');

  test('a name with a newline, ";", a quote, a backslash or a control character: PLAYER_NAME_UNSAFE, nothing sent', async () => {
    const before = sent().length;
    for (const name of [
      'Sarge\nquit',
      'Sarge;quit',
      'a"; quit; "',
      'a\\',
      'a\u0000b',
      'a\rkill',
      'x\u001b[2J',
    ]) {
      const r = await panel.api(owner, 'POST', `/api/servers/${serverId}/players/kick`, { name });
      assert.equal(r.status, 400, `${JSON.stringify(name)} ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'PLAYER_NAME_UNSAFE', JSON.stringify(name));
    }
    // ban {name} is not quoted: a space is refused too
    const ban = await panel.api(owner, 'POST', `/api/servers/${serverId}/players/ban`, { name: 'two words' });
    assert.equal(ban.body.code, 'PLAYER_NAME_UNSAFE');
    // an id is digits only
    const id = await panel.api(owner, 'POST', `/api/servers/${serverId}/players/kick`, { id: '1;quit' });
    assert.equal(id.status, 400);
    assert.equal(id.body.code, 'VALIDATION_FAILED');
    assert.equal(sent().length, before);
  });

  test('by id (preferred) or name: the command and the response come back, and the activity log has it', async () => {
    const r = await panel.api(owner, 'POST', `/api/servers/${serverId}/players/kick`, {
      id: '2',
      name: 'Sarge',
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, {
      command: 'clientkick 2',
      transport: 'quake3-rcon',
      response: 'Sarge was kicked\n',
    });
    const c = await agent.waitForCommand((x) => x.action === 'player_action');
    assert.deepEqual(c.payload, { action: 'kick', id: '2', name: 'Sarge' });
    const list = await panel.api(owner, 'GET', `/api/servers/${serverId}/players`);
    assert.deepEqual(list.body.commands, { kick: true, ban: true, needsId: { kick: false, ban: false } });
    await until(async () => {
      const log = await panel.api(owner, 'GET', `/api/servers/${serverId}/activity`);
      return log.body.entries.some(
        (e: { action: string; result: string; details: Record<string, string> | null }) =>
          e.action === 'server.players.kick' && e.result === 'ok' && e.details?.['playerId'] === '2',
      );
    });
  });

  test('a template without the command: PLAYER_ACTION_UNSUPPORTED, nothing sent', async () => {
    const before = sent().length;
    const r = await panel.api(owner, 'POST', `/api/servers/${plain}/players/ban`, { name: 'Sarge' });
    assert.equal(r.status, 409, JSON.stringify(r.body));
    assert.equal(r.body.code, 'PLAYER_ACTION_UNSUPPORTED');
    assert.deepEqual((await panel.api(owner, 'GET', `/api/servers/${plain}/players`)).body.commands, {
      kick: false,
      ban: false,
      needsId: { kick: false, ban: false },
    });
    assert.equal(sent().length, before);
  });

  test('a subuser without player.kick / player.ban gets 403; with them, it may', async () => {
    await grantPermissions(panel, owner, serverId, alice, ['control.console', 'control.command']);
    const before = sent().length;
    for (const a of ['kick', 'ban']) {
      const r = await panel.api(alice, 'POST', `/api/servers/${serverId}/players/${a}`, { name: 'Sarge' });
      assert.equal(r.status, 403, JSON.stringify(r.body));
      assert.match(r.body.message, new RegExp(`player\\.${a}`));
    }
    assert.equal(sent().length, before);
    await grantPermissions(panel, owner, serverId, alice, ['player.kick']);
    const ok = await panel.api(alice, 'POST', `/api/servers/${serverId}/players/kick`, { name: 'Sarge' });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  });
});
