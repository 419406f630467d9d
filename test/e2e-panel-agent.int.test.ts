/**
 * End to end through the Panel's HTTP API with a real Agent and the real Docker Engine:
 * log in, create a node, register the Agent, create a server, start it, see `running`,
 * console over /ws/client, a command's effect, an environment change that recreates the
 * container, stop, delete. Nothing here is faked.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadAgentConfig, type RunningAgent, startAgent } from '@cap/agent';
import Docker from 'dockerode';
import { pino } from 'pino';
import { type Json, type Session, startTestPanel, type TestPanel } from '../packages/panel/test/helpers.ts';

const IMAGE = 'ctrl-alt-play/busybox:latest';
const docker = new Docker({ socketPath: '/var/run/docker.sock' });

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

describe('Panel + real Agent + real Docker, end to end', () => {
  let panel: TestPanel;
  let agent: RunningAgent | undefined;
  let agentDir: string;
  let owner: Session;
  let nodeId: string;
  let serverId: string | undefined;

  before(async () => {
    panel = await startTestPanel({ PANEL_AGENT_PING_MS: '1000' });
    agentDir = await mkdtemp(path.join(tmpdir(), 'cap-e2e-agent-'));
  });

  after(async () => {
    // clean up what this test made, even when it failed half-way
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

  it('logs in and creates a node', async () => {
    owner = await panel.login();
    const me = await panel.api(owner, 'GET', '/api/auth/me');
    assert.equal(me.status, 200);
    assert.equal(me.body.user.role, 'owner');
    const node = await panel.createNode(owner, 'e2e-node');
    nodeId = node.id;
    const config = loadAgentConfig({
      PANEL_URL: panel.url,
      NODE_ID: nodeId,
      AGENT_SECRET: node.agentSecret,
      AGENT_DATA_DIR: agentDir,
      AGENT_HTTP_PORT: '0',
      AGENT_HTTP_HOST: '127.0.0.1',
      AGENT_STATS_INTERVAL_MS: '300',
      LOG_LEVEL: 'silent',
    });
    agent = await startAgent(config, { logger: pino({ level: 'silent' }) });
  });

  it('sees the registered Agent online with its system info', async () => {
    const node = await until('node online with system info', async () => {
      const r = await panel.api(owner, 'GET', `/api/nodes/${nodeId}`);
      return r.body?.online && r.body.systemInfo ? (r.body as Json) : undefined;
    });
    assert.match(node.systemInfo.dockerVersion, /^\d+\./);
    assert.ok(node.systemInfo.kernel.length > 0);
    assert.ok(node.systemInfo.cpus >= 1);
  });

  it('creates a server, starts it and streams its console', async () => {
    const created = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'e2e busybox',
      nodeId,
      image: IMAGE,
      startup:
        'echo "hello {{GREETING}}"; echo ready; while read l; do echo "got:$l greeting=$GREETING"; done',
      environment: { GREETING: 'first' },
      limits: { memory: '64m', cpu: '0.5' },
      done: 'ready',
      stop: '^C',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    serverId = created.body.id as string;

    const ws = await panel.clientSocket(owner);
    ws.send({ type: 'subscribe', serverId });
    await ws.next((m) => m.type === 'subscribed' && m.serverId === serverId);

    const power = await panel.api(owner, 'POST', `/api/servers/${serverId}/power`, { action: 'start' });
    assert.equal(power.status, 202);
    await ws.next((m) => m.type === 'status' && m.status === 'running', 20_000);
    await ws.next(
      (m) => m.type === 'console' && m.lines.some((l: string) => l.includes('hello first')),
      10_000,
    );

    ws.send({ type: 'send_command', serverId, command: 'ping-from-e2e' });
    await ws.next(
      (m) =>
        m.type === 'console' && m.lines.some((l: string) => l.includes('got:ping-from-e2e greeting=first')),
      10_000,
    );

    // the same through REST
    const cmd = await panel.api(owner, 'POST', `/api/servers/${serverId}/command`, { command: 'via-rest' });
    assert.equal(cmd.status, 202);
    await ws.next(
      (m) => m.type === 'console' && m.lines.some((l: string) => l.includes('got:via-rest')),
      10_000,
    );

    const server = await panel.api(owner, 'GET', `/api/servers/${serverId}`);
    assert.equal(server.body.status, 'running');
    const stats = await until('stats in telemetry', async () => {
      const t = await panel.api(owner, 'GET', `/api/servers/${serverId}/telemetry`);
      return t.body?.stats ? (t.body as Json) : undefined;
    });
    assert.ok(stats.stats.memory.usedBytes > 0);
    assert.ok(stats.console.some((l: string) => l.includes('hello first')));
    ws.close();
  });

  it('changes an environment variable: container recreated with it, running again', async () => {
    const before = await docker.listContainers({ filters: { label: [`ctrl-alt-play.server=${serverId}`] } });
    assert.equal(before.length, 1);
    const oldId = before[0]!.Id;

    const r = await panel.api(owner, 'PUT', `/api/servers/${serverId}/config?wait=true`, {
      environment: { GREETING: 'second' },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.ok, true);
    assert.equal(r.body.status, 'running');

    const now = await docker.listContainers({ filters: { label: [`ctrl-alt-play.server=${serverId}`] } });
    assert.equal(now.length, 1);
    assert.notEqual(now[0]!.Id, oldId, 'a new container');
    const inspect = await docker.getContainer(now[0]!.Id).inspect();
    assert.ok(inspect.Config.Env.includes('GREETING=second'));

    const ws = await panel.clientSocket(owner);
    ws.send({ type: 'subscribe', serverId });
    await ws.next((m) => m.type === 'subscribed');
    ws.send({ type: 'send_command', serverId, command: 'after-update' });
    await ws.next(
      (m) =>
        m.type === 'console' && m.lines.some((l: string) => l.includes('got:after-update greeting=second')),
      10_000,
    );
    ws.close();
  });

  it('stops and deletes the server', async () => {
    const stop = await panel.api(owner, 'POST', `/api/servers/${serverId}/power`, { action: 'stop' });
    assert.equal(stop.status, 202);
    await until('offline', async () => {
      const s = await panel.api(owner, 'GET', `/api/servers/${serverId}`);
      return s.body.status === 'offline' ? true : undefined;
    });
    const del = await panel.api(owner, 'DELETE', `/api/servers/${serverId}`);
    assert.ok(del.status === 204 || del.status === 200, `delete: ${del.status}`);
    const left = await docker.listContainers({
      all: true,
      filters: { label: [`ctrl-alt-play.server=${serverId}`] },
    });
    assert.equal(left.length, 0);
    const gone = await panel.api(owner, 'GET', `/api/servers/${serverId}`);
    assert.equal(gone.status, 404);
    assert.equal(gone.body.code, 'SERVER_NOT_FOUND');
  });
});
