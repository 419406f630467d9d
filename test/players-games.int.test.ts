/**
 * Players from real game servers through the Panel (issue 12 item 2), real Agent and Docker:
 * OpenArena (gamedig `openarena`) with bots added on its console shows them as players within
 * one poll; OpenTTD (gamedig `openttd`) reports 0 clients of its MAX_CLIENTS; Teeworlds answers
 * our own 0.7 query with 0 of its 8 slots. Each through GET /api/servers/:id/players, the
 * history and get_status. Images: `bash scripts/images/build.sh games`; fails, never skips.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RunningAgent } from '@cap/agent';
import { command } from '@cap/protocol';
import Docker from 'dockerode';
import { freePort } from '../packages/agent/test/helpers.ts';
import type { Json, Session, TestPanel } from '../packages/panel/test/helpers.ts';
import { type Stack, startStack } from './harness.ts';

const READY_MS = 90_000;
/** one poll: the built-ins poll every 30 s (±10 %), the first within 5 s of running */
const ONE_POLL_MS = 40_000;

describe('players of real game servers through the Panel', { concurrency: true }, () => {
  let stack: Stack;
  let panel: TestPanel;
  let owner: Session;
  let agent: RunningAgent;
  let nodeId: string;
  const created: string[] = [];
  const api = (m: string, p: string, b?: unknown) => panel.api(owner, m, p, b);

  before(async () => {
    const docker = new Docker();
    for (const image of ['openttd', 'openarena', 'teeworlds', 'debian'])
      await docker
        .getImage(`ctrl-alt-play/${image}:latest`)
        .inspect()
        .catch(() => {
          throw new Error(`image ctrl-alt-play/${image} missing: run bash scripts/images/build.sh games`);
        });
    stack = await startStack('players-games');
    ({ panel, owner, agent, nodeId } = stack);
  });
  after(async () => {
    for (const id of created) await api('DELETE', `/api/servers/${id}?force=true`).catch(() => undefined);
    await stack?.stop();
  });

  /** A server from the built-in template, installed and running. */
  async function running(name: string, environment: Record<string, string>): Promise<string> {
    const templates = (await api('GET', '/api/templates')).body as Json[];
    const tpl = templates.find((t) => t.name === name && t.builtin);
    assert.ok(tpl, `built-in template ${name}`);
    const port = await freePort('0.0.0.0');
    const pool = await api('POST', `/api/nodes/${nodeId}/allocations`, {
      ip: '0.0.0.0',
      ports: [String(port)],
    });
    assert.equal(pool.status, 201, JSON.stringify(pool.body));
    const res = await api('POST', '/api/servers?wait=true', {
      name: `players ${name}`,
      nodeId,
      templateId: tpl.id,
      environment,
      allocationId: pool.body[0].id,
      limits: { memory: 1024 },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const id = res.body.id as string;
    created.push(id);
    await until(id, async () => (await api('GET', `/api/servers/${id}`)).body.status === 'offline', READY_MS);
    assert.equal((await api('POST', `/api/servers/${id}/power`, { action: 'start' })).status, 202);
    await until(id, async () => (await api('GET', `/api/servers/${id}`)).body.status === 'running', READY_MS);
    return id;
  }

  async function until(
    id: string,
    ok: () => Promise<boolean>,
    ms: number,
    what = 'condition',
  ): Promise<void> {
    const t = Date.now();
    while (!(await ok())) {
      if (Date.now() - t > ms) {
        const p = await api('GET', `/api/servers/${id}/players`);
        throw new Error(`${id}: ${what} not met in ${ms} ms; players ${JSON.stringify(p.body)}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  const players = async (id: string) => (await api('GET', `/api/servers/${id}/players`)).body as Json;

  it('OpenArena: bots added on the console show up as players within one poll', {
    timeout: 300_000,
  }, async () => {
    const id = await running('OpenArena', { MAX_PLAYERS: '10' });
    await until(id, async () => (await players(id)).tracked === true, 15_000, 'tracked');
    assert.deepEqual([(await players(id)).online, (await players(id)).max], [0, 10]);
    for (const bot of ['sarge', 'grunt']) {
      const r = await api('POST', `/api/servers/${id}/command`, { command: `addbot ${bot} 1` });
      assert.equal(r.status, 202, JSON.stringify(r.body));
    }
    const t = Date.now();
    await until(id, async () => (await players(id)).online === 2, ONE_POLL_MS, 'two bots online');
    const p = await players(id);
    assert.deepEqual(p.players.map((x: Json) => [x.name.toLowerCase(), x.bot]).sort(), [
      ['grunt', true],
      ['sarge', true],
    ]);
    for (const x of p.players) assert.ok(x.onlineSeconds >= 0 && x.onlineSeconds < 120);
    // get_status on the Agent carries them too (seed 003)
    const st = await agent.handleCommand(command('get_status', {}, { serverId: id }));
    assert.equal(st.success, true, JSON.stringify(st));
    assert.deepEqual((st.data as Json).players.online, 2);
    const hist = (await api('GET', `/api/servers/${id}/players/history`)).body as Json[];
    assert.equal(hist.at(-1).peak, 2);
    assert.equal(hist.at(-1).capacity, 10);
    console.log(`# OpenArena: 2 bots seen ${Date.now() - t} ms after addbot`);
    // stopped: nobody online, not tracked
    assert.equal((await api('POST', `/api/servers/${id}/power`, { action: 'stop' })).status, 202);
    await until(id, async () => (await players(id)).tracked === false, 30_000, 'untracked after the stop');
  });

  it('OpenTTD: 0 clients of MAX_CLIENTS', { timeout: 300_000 }, async () => {
    const id = await running('OpenTTD', { MAX_CLIENTS: '7' });
    await until(id, async () => (await players(id)).tracked === true, 15_000, 'tracked');
    const p = await players(id);
    assert.deepEqual([p.online, p.max, p.players], [0, 7, []]);
  });

  it('Teeworlds: our own 0.7 query, 0 of its slots', { timeout: 300_000 }, async () => {
    const id = await running('Teeworlds', { MAX_PLAYERS: '6' });
    await until(id, async () => (await players(id)).tracked === true, 15_000, 'tracked');
    const p = await players(id);
    assert.deepEqual([p.online, p.max, p.players], [0, 6, []]);
  });
});
