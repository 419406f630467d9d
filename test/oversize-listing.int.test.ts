/**
 * Attack class: oversize messages on the link, with the real Panel, a real Agent and the real
 * Docker Engine. A folder of 70k long file names (≈20 MB as one listing, over the Panel's 16 MiB
 * frame limit for /ws/agents) once made the Panel close the node's link; now it lists page by page
 * through `GET /api/servers/:id/files?offset=&limit=` with a total, the node stays online, and
 * requests in flight meanwhile succeed.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunningAgent } from '@cap/agent';
import type { Session, TestPanel } from '../packages/panel/test/helpers.ts';
import { type Stack, startStack } from './harness.ts';

const IMAGE = 'ctrl-alt-play/busybox:latest';
const COUNT = 70_000;

describe('Panel + Agent: a folder of 70k long file names', () => {
  let stack: Stack | undefined;
  let panel: TestPanel;
  let agent: RunningAgent;
  let agentDir: string;
  let owner: Session;
  let nodeId: string;
  let serverId: string | undefined;

  before(async () => {
    stack = await startStack('oversize');
    ({ panel, agent, agentDir, owner, nodeId } = stack);
    const r = await panel.api(owner, 'POST', '/api/servers?wait=true', {
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
    await stack?.stop();
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
