/**
 * Attack class: oversize messages on the link, with the real Panel, a real Agent and the real
 * Docker Engine. A folder of 70k long file names (≈20 MB as one listing, over the Panel's 16 MiB
 * frame limit for /ws/agents) once made the Panel close the node's link; now it lists page by page
 * through `GET /api/servers/:id/files?offset=&limit=` with a total, the node stays online, and
 * requests in flight meanwhile succeed.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadAgentConfig, type RunningAgent, startAgent } from '@cap/agent';
import Docker from 'dockerode';
import { pino } from 'pino';
import { type Session, startTestPanel, type TestPanel, until } from '../packages/panel/test/helpers.ts';

const IMAGE = 'ctrl-alt-play/busybox:latest';
const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const COUNT = 70_000;

describe('Panel + Agent: a folder of 70k long file names', () => {
  let panel: TestPanel;
  let agent: RunningAgent | undefined;
  let agentDir: string;
  let owner: Session;
  let nodeId: string;
  let serverId: string | undefined;

  before(async () => {
    panel = await startTestPanel({ PANEL_AGENT_PING_MS: '1000' });
    agentDir = await mkdtemp(path.join(tmpdir(), 'cap-oversize-agent-'));
    owner = await panel.login();
    const node = await panel.createNode(owner, 'oversize-node');
    nodeId = node.id;
    const config = loadAgentConfig({
      PANEL_URL: panel.url,
      NODE_ID: nodeId,
      AGENT_SECRET: node.agentSecret,
      AGENT_DATA_DIR: agentDir,
      AGENT_HTTP_PORT: '0',
      AGENT_HTTP_HOST: '127.0.0.1',
      LOG_LEVEL: 'silent',
    });
    agent = await startAgent(config, { logger: pino({ level: 'silent' }) });
    await until(() => panel.app.panel.hub.isOnline(nodeId), 20_000);
    const r = await panel.api(owner, 'POST', '/api/servers', {
      name: 'oversize',
      nodeId,
      image: IMAGE,
      startup: 'sleep 3600',
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    serverId = r.body.id as string;
    const dir = path.join(agentDir, 'servers', serverId);
    const pad = 'y'.repeat(190);
    const names = Array.from({ length: COUNT }, (_, i) => `g${String(i).padStart(6, '0')}-${pad}`);
    for (let i = 0; i < names.length; i += 1000) {
      await Promise.all(names.slice(i, i + 1000).map((n) => writeFile(path.join(dir, n), '')));
    }
    await writeFile(path.join(dir, 'a-small.txt'), 'hello\n');
  });

  after(async () => {
    if (serverId) {
      const list = await docker.listContainers({
        all: true,
        filters: { label: [`ctrl-alt-play.server=${serverId}`] },
      });
      for (const c of list) await docker.getContainer(c.Id).remove({ force: true });
    }
    await agent?.stop();
    await panel?.stop();
    await rm(agentDir, { recursive: true, force: true });
  });

  it('pages through the folder with a total while the node stays online and other requests succeed', async () => {
    const total = COUNT + 1;
    const first = await panel.api(owner, 'GET', `/api/servers/${serverId}/files?path=/`);
    assert.equal(first.status, 200, JSON.stringify(first.body).slice(0, 300));
    assert.equal(first.body.total, total);
    assert.equal(first.body.entries.length, 200, 'the default page');
    assert.equal(first.body.entries[0].name, 'a-small.txt');
    const names: string[] = [];
    for (let offset = 0; offset < total; offset += 1000) {
      const [page, content] = await Promise.all([
        panel.api(owner, 'GET', `/api/servers/${serverId}/files?path=/&offset=${offset}&limit=1000`),
        panel.api(owner, 'GET', `/api/servers/${serverId}/files/content?path=/a-small.txt`),
      ]);
      assert.equal(page.status, 200, JSON.stringify(page.body).slice(0, 300));
      assert.equal(page.body.total, total);
      assert.equal(page.body.offset, offset);
      assert.equal(content.status, 200);
      assert.equal(content.body.content, 'hello\n');
      names.push(...page.body.entries.map((e: { name: string }) => e.name));
    }
    assert.equal(names.length, total);
    assert.equal(new Set(names).size, total);
    assert.deepEqual(names, [...names].sort());
    assert.ok(panel.app.panel.hub.isOnline(nodeId), 'the Panel dropped the node');
    const node = await panel.api(owner, 'GET', `/api/nodes/${nodeId}`);
    assert.equal(node.body.online, true);
    assert.equal(agent?.panelConnected, true);
  });

  it('refuses a bad page with a code (400 VALIDATION_FAILED), asking the Agent nothing', async () => {
    for (const q of ['limit=1001', 'limit=0', 'offset=-1', 'offset=1e400', 'limit=abc', 'offset=1.5']) {
      const r = await panel.api(owner, 'GET', `/api/servers/${serverId}/files?path=/&${q}`);
      assert.equal(r.status, 400, `${q}: ${r.status}`);
      assert.equal(r.body.code, 'VALIDATION_FAILED', q);
    }
  });
});
