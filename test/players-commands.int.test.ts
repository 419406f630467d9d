/**
 * Players by a remote-console command and kick through the Panel (issue 12), real Agent, real
 * Docker, real OpenArena: a template using `command:quake3-status` over Quake 3 rcon lists the bots
 * added with `addbot` (client numbers as ids); a bot kicked by id (clientkick) and one by name
 * (kick "name") leave the next poll; an unsafe name is refused and never reaches the game.
 * Image: `bash scripts/images/build.sh games`; fails, never skips.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { freePort } from '../packages/agent/test/helpers.ts';
import type { Json, Session, TestPanel } from '../packages/panel/test/helpers.ts';
import { type Stack, startStack } from './harness.ts';

const READY_MS = 90_000;
const PASSWORD = 'oa-players-Secret-5521';

describe('players by rcon command, and kick, on a real OpenArena through the Panel', () => {
  let stack: Stack;
  let panel: TestPanel;
  let owner: Session;
  let nodeId: string;
  let serverId: string | undefined;
  const api = (m: string, p: string, b?: unknown) => panel.api(owner, m, p, b);

  before(async () => {
    await new Docker()
      .getImage('ctrl-alt-play/openarena:latest')
      .inspect()
      .catch(() => {
        throw new Error('image ctrl-alt-play/openarena missing: run bash scripts/images/build.sh games');
      });
    stack = await startStack('players-cmd');
    ({ panel, owner, nodeId } = stack);
  });
  after(async () => {
    if (serverId) await api('DELETE', `/api/servers/${serverId}?force=true`).catch(() => undefined);
    await stack?.stop();
  });

  async function players(id: string, want: (list: Json[]) => boolean, ms = 30_000): Promise<Json[]> {
    const t = Date.now();
    let last: Json = null;
    while (Date.now() - t < ms) {
      last = (await api('GET', `/api/servers/${id}/players`)).body;
      if (last.tracked && want(last.players)) return last.players;
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`players not as wanted: ${JSON.stringify(last)}`);
  }

  it('command:quake3-status lists the bots with ids; kick by id and by name; unsafe names refused', {
    timeout: 300_000,
  }, async () => {
    // the built-in OpenArena egg, counting players by rcon `status` every 5 s
    const egg = JSON.parse(
      readFileSync(new URL('../templates/builtin/openarena.json', import.meta.url), 'utf8'),
    );
    egg.name = `OpenArena rcon players ${Date.now().toString(36)}`;
    delete egg.uuid;
    egg.players = {
      query: 'command:quake3-status',
      intervalSeconds: 5,
      kick: ['clientkick {id}', 'kick "{name}"'],
    };
    const imp = await api('POST', '/api/templates/import', {
      content: JSON.stringify(egg),
      filename: 'oa.json',
    });
    assert.equal(imp.status, 201, JSON.stringify(imp.body));
    const port = await freePort('0.0.0.0');
    const pool = await api('POST', `/api/nodes/${nodeId}/allocations`, {
      ip: '0.0.0.0',
      ports: [String(port)],
    });
    assert.equal(pool.status, 201, JSON.stringify(pool.body));
    const res = await api('POST', '/api/servers?wait=true', {
      name: 'rcon players',
      nodeId,
      templateId: imp.body.template.id,
      environment: { RCON_PASSWORD: PASSWORD, MAP: 'oa_dm1' },
      allocationId: pool.body[0].id,
      limits: { memory: 1024 },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const id = res.body.id as string;
    serverId = id;
    const ws = await panel.clientSocket(owner);
    ws.send({ type: 'subscribe', serverId: id });
    await ws.next((m) => m.type === 'subscribed');
    const t = Date.now();
    while ((await api('GET', `/api/servers/${id}`)).body.status !== 'offline') {
      if (Date.now() - t > READY_MS) throw new Error('install did not end');
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal((await api('POST', `/api/servers/${id}/power`, { action: 'start' })).status, 202);
    await ws.next((m) => m.type === 'status' && m.status === 'running', READY_MS);
    await ws.next((m) => m.type === 'remote_console' && m.state === 'authenticated', 30_000);

    for (const bot of ['Sarge', 'Angelyss', 'Major']) {
      const r = await api('POST', `/api/servers/${id}/command`, { command: `addbot ${bot} 1` });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    const three = await players(id, (l) => l.length === 3);
    assert.deepEqual(three.map((p) => [p.name, p.bot]).sort(), [
      ['Angelyss', true],
      ['Major', true],
      ['Sarge', true],
    ]);
    for (const p of three) assert.match(p.id, /^\d+$/);
    const list = await api('GET', `/api/servers/${id}/players`);
    assert.deepEqual(list.body.commands, { kick: true, ban: false, needsId: { kick: false, ban: false } });

    // unsafe names: refused, the bots stay
    for (const name of ['Sarge\nquit', 'Sarge;quit', 'x";quit;"']) {
      const r = await api('POST', `/api/servers/${id}/players/kick`, { name });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.code, 'PLAYER_NAME_UNSAFE');
    }
    assert.equal((await api('GET', `/api/servers/${id}`)).body.status, 'running');

    // by id (the list's client number), then by name (no id given)
    const sarge = three.find((p) => p.name === 'Sarge')!;
    const byId = await api('POST', `/api/servers/${id}/players/kick`, { id: sarge.id, name: 'Sarge' });
    assert.equal(byId.status, 200, JSON.stringify(byId.body));
    assert.equal(byId.body.command, `clientkick ${sarge.id}`);
    assert.equal(byId.body.transport, 'quake3-rcon');
    await players(id, (l) => l.length === 2 && !l.some((p) => p.name === 'Sarge'));
    const byName = await api('POST', `/api/servers/${id}/players/kick`, { name: 'Major' });
    assert.equal(byName.status, 200, JSON.stringify(byName.body));
    assert.equal(byName.body.command, 'kick "Major"');
    const left = await players(id, (l) => l.length === 1);
    assert.equal(left[0].name, 'Angelyss');

    // the remote console gone (server stopped): no crash, nobody online
    assert.equal((await api('POST', `/api/servers/${id}/power`, { action: 'kill' })).status, 202);
    await ws.next((m) => m.type === 'remote_console' && m.state === 'idle', 30_000);
    ws.close();
    assert.equal((await api('DELETE', `/api/servers/${id}?force=true`)).status, 204);
    serverId = undefined;
  });
});
