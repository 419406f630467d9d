/**
 * A transfer cut by a Panel restart (issue 16): the real Panel (SQLite in a data dir kept across
 * the restart, the same port), two real Agents (nodes A and B) and the real Docker Engine. A
 * running server with a large incompressible file is being transferred A → B; in its streaming
 * step the Panel stops and a new one starts on the same database. The new Panel finds the
 * transfer in flight (not switched) and fails it (its operation too); once the Agents are back
 * the copy on B is removed (container and folder), the transfer archive on A goes, and the server
 * runs on A again, its files as they were; the target's allocation is free again.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadAgentConfig, type RunningAgent, startAgent } from '@cap/agent';
import { pino } from 'pino';
import {
  freePort,
  type Json,
  type Session,
  startTestPanel,
  type TestPanel,
  until,
} from '../packages/panel/test/helpers.ts';
import { docker, IMAGE, removeNodeContainers } from './harness.ts';
import { exists, treeHashes } from './tree.ts';

interface Node {
  id: string;
  dir: string;
  agent: RunningAgent | null;
}

describe('Panel restart during a transfer', () => {
  let panel: TestPanel;
  let owner: Session;
  let panelDir: string;
  let env: Record<string, string>;
  const nodes: Node[] = [];
  const api = (method: string, url: string, body?: unknown) => panel.api(owner, method, url, body);

  const online = (id: string) =>
    until(async () => (await api('GET', `/api/nodes/${id}`)).body?.online === true, 60_000);

  const addNode = async (name: string): Promise<Node> => {
    const n = await panel.createNode(owner, name);
    const dir = await mkdtemp(path.join(tmpdir(), `cap-${name}-agent-`));
    const agent = await startAgent(
      loadAgentConfig({
        PANEL_URL: panel.url,
        NODE_ID: n.id,
        AGENT_SECRET: n.agentSecret,
        AGENT_DATA_DIR: dir,
        AGENT_HTTP_PORT: '0',
        AGENT_HTTP_HOST: '127.0.0.1',
        AGENT_SFTP_PORT: '0',
        AGENT_CONTAINER_PREFIX: `cap-${name}-`,
        LOG_LEVEL: 'silent',
      }),
      { logger: pino({ level: 'silent' }) },
    );
    const node = { id: n.id, dir, agent };
    nodes.push(node);
    await online(n.id);
    return node;
  };

  before(async () => {
    panelDir = await mkdtemp(path.join(tmpdir(), 'cap-xfer-restart-panel-'));
    const port = await freePort();
    env = {
      DATA_DIR: panelDir,
      PORT: String(port),
      PANEL_URL: `http://127.0.0.1:${port}`,
      PANEL_AGENT_PING_MS: '1000',
    };
    panel = await startTestPanel(env);
    owner = await panel.login();
  });
  after(async () => {
    for (const n of nodes) {
      await n.agent?.stop().catch(() => undefined);
      await removeNodeContainers(n.id).catch(() => undefined);
      await rm(n.dir, { recursive: true, force: true });
    }
    await panel?.stop().catch(() => undefined);
    await rm(panelDir, { recursive: true, force: true });
  });

  it('fails the cut transfer, cleans the target and starts the source again', {
    timeout: 400_000,
  }, async () => {
    const a = await addNode('xr-a');
    const b = await addNode('xr-b');
    const pool = async (nodeId: string) => {
      const port = await freePort();
      const r = await api('POST', `/api/nodes/${nodeId}/allocations`, {
        ip: '0.0.0.0',
        ports: [String(port)],
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body[0] as Json;
    };
    const alloc = await pool(a.id);
    const created = await api('POST', '/api/servers?wait=true', {
      name: 'cut',
      nodeId: a.id,
      image: IMAGE,
      startup: 'sleep 3600',
      allocationId: alloc.id,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    const srcDir = path.join(a.dir, 'servers', id);
    // large and incompressible: the streaming step lasts long enough to be cut
    const big = path.join(srcDir, 'big.bin');
    const chunk = randomBytes(16 * 1024 * 1024);
    await writeFile(big, chunk);
    for (let i = 0; i < 15; i++) await writeFile(big, chunk, { flag: 'a' });
    await writeFile(path.join(srcDir, 'keep.txt'), 'keep me\n');
    const original = await treeHashes(srcDir);
    const start = await api('POST', `/api/servers/${id}/power`, { action: 'start' });
    assert.equal(start.status, 202, JSON.stringify(start.body));
    await until(async () => (await api('GET', `/api/servers/${id}`)).body.status === 'running', 90_000);
    const target = await pool(b.id);

    const r = await api('POST', `/api/servers/${id}/transfer`, { nodeId: b.id, allocationId: target.id });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const opId = r.body.transfer.operationId as string;
    await until(
      async () => (await api('GET', `/api/operations/${opId}`)).body.stage === 'streaming',
      120_000,
    );
    // the copy on B exists now (created before streaming)
    assert.equal(await exists(path.join(b.dir, 'servers', id)), true, 'the target copy was made');

    // the Panel goes away mid-stream; a new one starts on the same database and port
    await panel.stop();
    panel = await startTestPanel(env);
    owner = await panel.login();

    const list = (await api('GET', `/api/servers/${id}/transfers`)).body.transfers as Json[];
    assert.equal(list[0]?.state, 'failed', JSON.stringify(list[0]));
    assert.match(String(list[0]?.errorMessage), /Panel restarted/);
    const op = (await api('GET', `/api/operations/${opId}`)).body;
    assert.notEqual(op.finishedAt, null, 'its operation ended');
    assert.equal(op.success, false);
    assert.equal((await api('GET', `/api/servers/${id}`)).body.nodeId, a.id, 'still on A');

    await online(a.id);
    await online(b.id);
    // B's copy goes once its Agent is back; the server runs on A again with its files as they were
    await until(async () => !(await exists(path.join(b.dir, 'servers', id))), 120_000);
    await until(
      async () =>
        (
          await docker.listContainers({
            all: true,
            filters: { label: [`ctrl-alt-play.server=${id}`, `ctrl-alt-play.node=${b.id}`] },
          })
        ).length === 0,
      60_000,
    );
    await until(async () => (await api('GET', `/api/servers/${id}`)).body.status === 'running', 120_000);
    assert.deepEqual(await treeHashes(srcDir), original, 'the source is whole');
    const allocs = (await api('GET', `/api/nodes/${b.id}/allocations`)).body as Json[];
    assert.equal(
      allocs.find((x) => x.id === target.id)?.serverId ?? null,
      null,
      "the target's allocation is free",
    );
    // the transfer archive on A went too (the server had no other backup)
    const archives = async () =>
      (await readdir(path.join(a.dir, 'backups', id)).catch(() => [] as string[])).filter((f) =>
        /\.tar\.(zst|gz)$/.test(f),
      );
    await until(async () => (await archives()).length === 0, 60_000).catch(() => undefined);
    assert.deepEqual(await archives(), [], 'no transfer archive left on A');
    const after = (await api('GET', `/api/servers/${id}/transfers`)).body.transfers as Json[];
    assert.equal(after[0]?.state, 'failed');
  });
});
