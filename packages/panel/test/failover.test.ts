/**
 * Failover (issue 16 item 3) at the Panel's level, with fake Agents and the local S3 stand-in:
 * a failover-enabled server whose node stays offline is restored on another node from its S3
 * backup and started there, the old node is fenced (told first thing when its Agent comes back);
 * without a backup the Panel can reach it fails, said clearly, and the server stays; a Panel
 * restart mid-failover finishes it once.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import type { Command } from '@cap/protocol';
import { type FakeAgent, NO_REPLY } from './fake-agent.ts';
import {
  fakeAgentNode,
  freePort,
  type Session,
  scratchDatabase,
  startTestPanel,
  type TestPanel,
  until,
} from './helpers.ts';
import { startTestS3, type TestS3 } from './s3.ts';
import { startReceiver } from './webhook-receiver.ts';

let s3: TestS3;
before(async () => {
  s3 = await startTestS3();
});
after(async () => {
  await s3.stop();
});

const ARCHIVE = randomBytes(50_000);
const SHA = createHash('sha256').update(ARCHIVE).digest('hex');

/** A fake Agent that takes relayed backup imports (what it received, per backup) and restores. */
function restoringAgent(got: Map<string, Buffer>, opts: { holdImports?: () => boolean } = {}) {
  let agent: FakeAgent | undefined;
  const imports = new Map<string, Command<'backup_import'>['payload']>();
  const handlers = {
    backup_import: (cmd: Command) => {
      if (opts.holdImports?.()) return NO_REPLY;
      const p = (cmd as Command<'backup_import'>).payload;
      const ticket = randomBytes(32).toString('base64url');
      imports.set(ticket, p);
      return { ticket, expiresAt: new Date(Date.now() + 60_000).toISOString(), size: p.size, name: 'x' };
    },
    relay_transfer: (cmd: Command) => {
      const { ticket } = (cmd as Command<'relay_transfer'>).payload;
      const a = agent;
      if (!a) throw new Error('no agent');
      const base = a.credentials.websocketUrl.replace(/^ws/, 'http').replace(/\/ws\/agents$/, '');
      const headers = { authorization: `Bearer ${a.credentials.token}`, 'x-agent-id': a.id };
      void (async () => {
        const res = await fetch(`${base}/api/agent/transfers/${ticket}`, { headers });
        const body = Buffer.from(await res.arrayBuffer());
        const p = imports.get(ticket);
        if (p) got.set(p.backupId, body);
        await fetch(`${base}/api/agent/transfers/${ticket}/result`, {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json' },
          body: JSON.stringify({ ok: true, path: '/', size: body.length }),
        });
      })();
      return {};
    },
    backup_list: (cmd: Command) => ({
      backups: [...imports.values()]
        .filter(() => cmd.serverId !== undefined)
        .map((p) => ({
          backupId: p.backupId,
          serverId: cmd.serverId,
          name: p.name,
          format: p.format,
          state: 'completed',
          size: p.size,
          sha256: p.sha256,
          bytes: p.bytes,
          entries: p.entries,
          locked: false,
          createdAt: new Date().toISOString(),
          completedAt: new Date().toISOString(),
        })),
      total: imports.size,
      offset: 0,
      limit: 100,
    }),
    backup_restore: (cmd: Command) => ({
      backupId: (cmd as Command<'backup_restore'>).payload.backupId,
      bytes: 10,
      entries: 1,
    }),
    backup_delete: () => ({ deleted: true }),
  };
  return {
    handlers,
    bind(a: FakeAgent) {
      agent = a;
    },
  };
}

async function s3Backup(panel: TestPanel, serverId: string, nodeId: string): Promise<string> {
  const svc = panel.app.panel;
  const store = svc.s3;
  assert.ok(store);
  const backupId = `b${randomBytes(6).toString('hex')}`;
  await store.put(store.keyOf(serverId, backupId, 'tar.gz'), Readable.from([ARCHIVE]), {
    size: ARCHIVE.length,
    sha256: SHA,
  });
  const at = new Date().toISOString();
  await svc.db
    .insertInto('backups')
    .values({
      id: backupId,
      server_id: serverId,
      node_id: nodeId,
      name: 'nightly',
      format: 'tar.gz',
      state: 'completed',
      size: ARCHIVE.length,
      sha256: SHA,
      bytes: 10,
      entries: 1,
      locked: 0,
      storage: 's3',
      created_by: null,
      operation_id: null,
      created_at: at,
      completed_at: at,
      error_code: null,
      error_message: null,
    })
    .execute();
  return backupId;
}

async function failoverServer(panel: TestPanel, owner: Session, nodeId: string): Promise<string> {
  const r = await panel.api(owner, 'POST', '/api/servers?wait=true', {
    name: 'fo',
    nodeId,
    image: 'img',
    port: 26000 + Math.floor(Math.random() * 1000),
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const id = r.body.id as string;
  const p = await panel.api(owner, 'PATCH', `/api/servers/${id}`, {
    failover: { enabled: true, afterSeconds: 1 },
  });
  assert.equal(p.status, 200, JSON.stringify(p.body));
  assert.deepEqual(p.body.failover, { enabled: true, afterSeconds: 1 });
  const start = await panel.api(owner, 'POST', `/api/servers/${id}/power?wait=true`, { action: 'start' });
  assert.ok(start.status < 300, JSON.stringify(start.body));
  return id;
}

const env = () => ({
  ...s3.env(),
  PANEL_FAILOVER_TICK_MS: '100',
  PANEL_FAILOVER_MIN_SECONDS: '1',
  PANEL_WEBHOOK_ALLOW_PRIVATE: '1',
});

test('a server whose node stays offline is restored on another node from its S3 backup, and the old node is fenced', async () => {
  const panel = await startTestPanel(env());
  const agents: FakeAgent[] = [];
  try {
    const owner = await panel.login();
    const a = await fakeAgentNode(panel, owner, {}, 'node-a');
    agents.push(a.agent);
    const got = new Map<string, Buffer>();
    const b = restoringAgent(got);
    const nodeB = await fakeAgentNode(panel, owner, { handlers: b.handlers }, 'node-b');
    b.bind(nodeB.agent);
    agents.push(nodeB.agent);
    await panel.api(owner, 'POST', `/api/nodes/${nodeB.id}/allocations`, { ip: '0.0.0.0', ports: ['27000'] });
    const id = await failoverServer(panel, owner, a.id);
    const backupId = await s3Backup(panel, id, a.id);
    // too short a wait is refused with a code
    const short = await panel.api(owner, 'PATCH', `/api/servers/${id}`, {
      failover: { enabled: true, afterSeconds: 0 },
    });
    assert.equal(short.status, 400);
    assert.equal(short.body.code, 'VALIDATION_FAILED');

    await a.agent.close(); // node A goes away (and stays away)
    await until(async () => {
      const r = await panel.api(owner, 'GET', `/api/servers/${id}/failovers`);
      return r.body.failovers?.[0]?.state === 'started' || r.body.failovers?.[0]?.state === 'failed';
    }, 20_000);
    const fo = await panel.api(owner, 'GET', `/api/servers/${id}/failovers`);
    assert.equal(fo.body.failovers[0].state, 'started', JSON.stringify(fo.body));
    assert.equal(fo.body.failovers[0].toNodeId, nodeB.id);
    assert.deepEqual(
      fo.body.fences.map((f: { nodeId: string }) => f.nodeId),
      [a.id],
    );
    const server = await panel.api(owner, 'GET', `/api/servers/${id}`);
    assert.equal(server.body.nodeId, nodeB.id);
    assert.equal(server.body.allocation?.port, 27000);
    // byte for byte what the bucket holds, then restored and started on B
    assert.ok(got.get(backupId)?.equals(ARCHIVE), 'the backup did not arrive intact');
    const actions = nodeB.agent.commands
      .filter((c) => c.serverId === id || (c.payload as { serverId?: string })?.serverId === id)
      .map((c) => c.action);
    assert.deepEqual(
      actions.filter((x) => ['create_server', 'backup_restore', 'start_server'].includes(x)),
      ['create_server', 'backup_restore', 'start_server'],
    );
    const created = nodeB.agent.commands.find(
      (c) => c.action === 'create_server',
    ) as Command<'create_server'>;
    assert.equal(
      created.payload.eggConfig.install,
      undefined,
      'the files come from the backup, not an install',
    );
    await until(() => nodeB.agent.servers.get(id)?.status === 'running', 5000);

    // node A comes back: the fence list is the first thing it is told
    const before = a.agent.commands.length;
    await a.agent.reconnect();
    await until(() => a.agent.commands.length > before, 5000);
    await a.agent.waitForCommand((c) => c.action === 'fence_servers');
    const told = a.agent.commands.slice(before);
    const first = told.findIndex((c) => c.action === 'fence_servers');
    assert.deepEqual(
      (told[first] as Command<'fence_servers'>).payload.servers.map((f) => f.serverId),
      [id],
    );
    // before anything about that server
    assert.equal(
      told.slice(0, first).some((c) => c.serverId === id),
      false,
    );
    // and nothing asks A to run it
    assert.equal(
      a.agent.commands.slice(before).some((c) => c.serverId === id && c.action === 'start_server'),
      false,
    );
    // the activity log has every step
    await panel.app.panel.activity.settled();
    const log = await panel.api(owner, 'GET', `/api/servers/${id}/activity`);
    const steps = (log.body.entries as { action: string }[]).map((e) => e.action);
    for (const step of ['server.failover.pending', 'server.failover.restoring', 'server.failover.started'])
      assert.ok(steps.includes(step), `${step} not in ${steps.join(', ')}`);
  } finally {
    for (const ag of agents) await ag.close();
    await panel.stop();
  }
});

test('without a backup the Panel can reach, the failover fails clearly and the server stays on its node', async () => {
  const panel = await startTestPanel(env());
  const agents: FakeAgent[] = [];
  try {
    const owner = await panel.login();
    const a = await fakeAgentNode(panel, owner, {}, 'node-a');
    const nodeB = await fakeAgentNode(panel, owner, {}, 'node-b');
    agents.push(a.agent, nodeB.agent);
    const id = await failoverServer(panel, owner, a.id);
    const rx = await startReceiver();
    const hook = await panel.api(owner, 'POST', '/api/webhooks', {
      name: 'failover',
      kind: 'json',
      url: `${rx.url}/failover`,
      events: ['server.failover'],
    });
    assert.equal(hook.status, 201, JSON.stringify(hook.body));
    await a.agent.close();
    await until(async () => {
      const r = await panel.api(owner, 'GET', `/api/servers/${id}/failovers`);
      return r.body.failovers?.[0]?.state === 'failed';
    }, 20_000);
    // each step reaches the webhook: pending, then failed with the code
    await until(() => rx.got.some((g) => g.json?.data?.phase === 'failed'), 10_000);
    const phases = rx.got.map((g) => [g.json.event, g.json.data.phase, g.json.data.outcome]);
    assert.deepEqual(phases, [
      ['server.failover', 'pending', 'ok'],
      ['server.failover', 'failed', 'BACKUP_NOT_FOUND'],
    ]);
    await rx.close();
    const fo = await panel.api(owner, 'GET', `/api/servers/${id}/failovers`);
    assert.equal(fo.body.failovers[0].error.code, 'BACKUP_NOT_FOUND');
    assert.match(fo.body.failovers[0].error.message, /failover needs off-node backups/);
    assert.deepEqual(fo.body.fences, []);
    const server = await panel.api(owner, 'GET', `/api/servers/${id}`);
    assert.equal(server.body.nodeId, a.id);
    assert.equal(
      nodeB.agent.commands.some(
        (c) =>
          c.action === 'create_server' && c.payload && (c.payload as { serverId: string }).serverId === id,
      ),
      false,
    );
    // once per outage: no second attempt while the node stays away
    await new Promise((r) => setTimeout(r, 500));
    const again = await panel.api(owner, 'GET', `/api/servers/${id}/failovers`);
    assert.equal(again.body.failovers.length, 1);
  } finally {
    for (const ag of agents) await ag.close();
    await panel.stop();
  }
});

for (const engine of ['sqlite', 'postgres'] as const)
  test(`a Panel restart mid-failover resumes it and finishes it once (${engine})`, async () => {
    const db = await scratchDatabase(engine, 'failover');
    const dataDir = mkdtempSync(join(tmpdir(), 'cap-failover-'));
    const port = await freePort();
    const fixed = {
      ...env(),
      ...db.env,
      DATA_DIR: dataDir,
      PORT: String(port),
      PANEL_URL: `http://127.0.0.1:${port}`,
    };
    let panel = await startTestPanel(fixed);
    const agents: FakeAgent[] = [];
    let hold = true;
    try {
      let owner = await panel.login();
      const a = await fakeAgentNode(panel, owner, {}, 'node-a');
      const got = new Map<string, Buffer>();
      const b = restoringAgent(got, { holdImports: () => hold });
      const nodeB = await fakeAgentNode(panel, owner, { handlers: b.handlers }, 'node-b');
      b.bind(nodeB.agent);
      agents.push(a.agent, nodeB.agent);
      await panel.api(owner, 'POST', `/api/nodes/${nodeB.id}/allocations`, {
        ip: '0.0.0.0',
        ports: ['27001'],
      });
      const id = await failoverServer(panel, owner, a.id);
      const backupId = await s3Backup(panel, id, a.id);
      await a.agent.close();
      // the failover reaches the import on B, which does not answer: the Panel stops there
      await nodeB.agent
        .waitForCommand((c) => c.action === 'backup_import', 20_000)
        .catch(async (e) => {
          const r = await panel.api(owner, 'GET', `/api/servers/${id}/failovers`);
          throw new Error(`${e.message}: ${JSON.stringify(r.body)}`);
        });
      await panel.stop();
      hold = false;
      panel = await startTestPanel(fixed);
      owner = await panel.login();
      await nodeB.agent.reconnect();
      await until(async () => {
        const r = await panel.api(owner, 'GET', `/api/servers/${id}/failovers`);
        return ['started', 'failed'].includes(r.body.failovers?.[0]?.state);
      }, 20_000);
      const fo = await panel.api(owner, 'GET', `/api/servers/${id}/failovers`);
      assert.equal(fo.body.failovers.length, 1, 'one failover, resumed');
      assert.equal(fo.body.failovers[0].state, 'started', JSON.stringify(fo.body.failovers[0]));
      assert.ok(got.get(backupId)?.equals(ARCHIVE));
      const count = (action: string) =>
        nodeB.agent.commands.filter(
          (c) =>
            c.action === action &&
            (c.serverId === id || (c.payload as { serverId?: string })?.serverId === id),
        ).length;
      assert.equal(count('create_server'), 1, 'created once');
      assert.equal(count('backup_restore'), 1, 'restored once');
      assert.equal(count('start_server'), 1, 'started once');
      const server = await panel.api(owner, 'GET', `/api/servers/${id}`);
      assert.equal(server.body.nodeId, nodeB.id);
    } finally {
      for (const ag of agents) await ag.close();
      await panel.stop();
      rmSync(dataDir, { recursive: true, force: true });
      await db.drop();
    }
  });
