/**
 * Operations (issue 9 item 1) through the Panel's REST API with a real Agent and the real Docker
 * Engine: a server that ignores SIGTERM with a 45 s stop timeout stops as a `completed` operation
 * (no TIMEOUT anywhere); a second action meanwhile is SERVER_BUSY; kill pre-empts a hanging stop;
 * an operation outlives a Panel restart; an Agent restart mid-operation ends it with a clear code;
 * a create and a PATCH that recreates the container are operations too (a failed create removes
 * the server); an Agent stopped mid-operation has its waiter answered AGENT_OFFLINE after the offline
 * grace while the operation stays open until the Agent's hello settles it. The scenarios run side by side (each with its own Panel and Agent): one 45 s wait in all.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadAgentConfig, type RunningAgent, startAgent } from '@cap/agent';
import Docker from 'dockerode';
import { pino } from 'pino';
import {
  freePort,
  type Json,
  type Session,
  startTestPanel,
  type TestPanel,
} from '../packages/panel/test/helpers.ts';
import { removeNodeContainers } from './harness.ts';

const IMAGE = 'ctrl-alt-play/busybox:latest';
const docker = new Docker({ socketPath: '/var/run/docker.sock' });
// sh as PID 1 ignores TERM: only the kill after the stop timeout ends it
const IGNORES_TERM = `trap "" TERM; echo up; while true; do sleep 1; done`;

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
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

interface Rig {
  panel: TestPanel;
  owner: Session;
  nodeId: string;
  agent: RunningAgent;
  startAgent(): Promise<RunningAgent>;
  /** stops the Panel and starts a new one on the same database and port */
  restartPanel(between?: () => Promise<void>): Promise<void>;
  server(stopTimeout: number): Promise<string>;
  cleanup(): Promise<void>;
}

async function rig(name: string): Promise<Rig> {
  const panelDir = await mkdtemp(path.join(tmpdir(), 'cap-ops-panel-'));
  const port = await freePort();
  const env = {
    DATA_DIR: panelDir,
    PORT: String(port),
    PANEL_URL: `http://127.0.0.1:${port}`,
    PANEL_AGENT_PING_MS: '1000',
  };
  const agentDir = await mkdtemp(path.join(tmpdir(), 'cap-ops-agent-'));
  const panel = await startTestPanel(env);
  const owner = await panel.login();
  const node = await panel.createNode(owner, `ops-${name}`);
  const config = loadAgentConfig({
    PANEL_URL: panel.url,
    NODE_ID: node.id,
    AGENT_SECRET: node.agentSecret,
    AGENT_DATA_DIR: agentDir,
    AGENT_HTTP_PORT: '0',
    AGENT_HTTP_HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
  });
  const r: Rig = {
    panel,
    owner,
    nodeId: node.id,
    agent: undefined as unknown as RunningAgent,
    async startAgent() {
      r.agent = await startAgent(config, { logger: pino({ level: 'silent' }) });
      await until('node online', async () =>
        (await r.panel.api(r.owner, 'GET', `/api/nodes/${node.id}`)).body?.online ? true : undefined,
      );
      return r.agent;
    },
    async restartPanel(between) {
      await r.panel.stop();
      await between?.();
      r.panel = await startTestPanel(env);
      r.owner = await r.panel.login();
    },
    async server(stopTimeout) {
      const created = await r.panel.api(r.owner, 'POST', '/api/servers?wait=true', {
        name: `ops ${name}`,
        nodeId: node.id,
        image: IMAGE,
        startup: IGNORES_TERM,
        stopTimeout,
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const id = created.body.id as string;
      const started = await r.panel.api(r.owner, 'POST', `/api/servers/${id}/power`, { action: 'start' });
      assert.equal(started.status, 202, JSON.stringify(started.body));
      await ended(r, started.body.operationId);
      await until('running', async () =>
        (await r.panel.api(r.owner, 'GET', `/api/servers/${id}`)).body.status === 'running'
          ? true
          : undefined,
      );
      return id;
    },
    async cleanup() {
      // the Agent first: a boot restart or crash restart could make a container after the removal
      await r.agent?.stop().catch(() => undefined);
      await removeNodeContainers(node.id);
      await r.panel.stop().catch(() => undefined);
      await rm(agentDir, { recursive: true, force: true });
      await rm(panelDir, { recursive: true, force: true });
    },
  };
  await r.startAgent();
  return r;
}

/** The operation once it has ended. */
async function ended(r: Rig, id: string, timeoutMs = 20_000): Promise<Json> {
  return until(
    `operation ${id} to end`,
    async () => {
      const op = (await r.panel.api(r.owner, 'GET', `/api/operations/${id}`)).body;
      return op?.finishedAt ? (op as Json) : undefined;
    },
    timeoutMs,
  );
}

describe('operations through the Panel (real Agent, real Docker)', { concurrency: true }, () => {
  it('a 45 s stop of a server ignoring SIGTERM: 202 at once, SERVER_BUSY meanwhile, completed with no error', async () => {
    const r = await rig('slow');
    try {
      const id = await r.server(45);
      const ws = await r.panel.clientSocket(r.owner);
      ws.send({ type: 'subscribe', serverId: id });
      await ws.next((m) => m.type === 'subscribed' && m.serverId === id);
      const t0 = Date.now();
      const stop = await r.panel.api(r.owner, 'POST', `/api/servers/${id}/power`, { action: 'stop' });
      assert.equal(stop.status, 202, JSON.stringify(stop.body));
      assert.ok(Date.now() - t0 < 3000, `the 202 took ${Date.now() - t0} ms`);
      const opId = stop.body.operationId as string;
      assert.match(opId, /^op_/);
      const stopping = await ws.next(
        (m) => m.type === 'operation' && m.operationId === opId && m.stage === 'stopping',
        10_000,
      );
      assert.match(stopping.message, /kill after 45 s/);

      const busy = await r.panel.api(r.owner, 'POST', `/api/servers/${id}/power`, { action: 'start' });
      assert.equal(busy.status, 409, JSON.stringify(busy.body));
      assert.equal(busy.body.code, 'SERVER_BUSY');
      const list = (await r.panel.api(r.owner, 'GET', `/api/servers/${id}/operations`)).body as Json[];
      assert.equal(list[0].kind, 'start');
      assert.equal(list[0].errorCode, 'SERVER_BUSY', 'the refused action is recorded as such');
      assert.equal(list[1].id, opId);
      assert.equal(list[1].finishedAt, null, 'the stop is still running');

      const op = await ended(r, opId, 70_000);
      const took = Date.now() - t0;
      assert.ok(took >= 44_000 && took < 60_000, `the stop took ${took} ms`);
      assert.equal(op.success, true, JSON.stringify(op));
      assert.equal(op.stage, 'completed');
      assert.equal(op.errorCode, null);
      assert.equal(op.kind, 'stop');
      assert.equal(typeof op.actorUserId, 'string');
      const done = ws.messages.find(
        (m) => m.type === 'operation' && m.operationId === opId && m.stage === 'completed',
      );
      assert.equal(done?.success, true);
      assert.ok(
        ws.messages.some((m) => m.type === 'operation' && m.operationId === opId && m.stage === 'killing'),
      );
      assert.deepEqual(
        ws.messages.filter((m) => m.type === 'error'),
        [],
        'no error anywhere (no TIMEOUT)',
      );
      assert.equal((await docker.getContainer(`cap-${id}`).inspect()).State.Running, false);
      const server = (await r.panel.api(r.owner, 'GET', `/api/servers/${id}`)).body;
      assert.equal(server.status, 'offline');
      assert.equal(server.desiredState, 'offline');
      ws.close();
    } finally {
      await r.cleanup();
    }
  });

  it('kill pre-empts a hanging stop; an Agent restart mid-operation ends it as AGENT_RESTARTED', async () => {
    const r = await rig('kill');
    try {
      const id = await r.server(300);
      const stop = await r.panel.api(r.owner, 'POST', `/api/servers/${id}/power`, { action: 'stop' });
      assert.equal(stop.status, 202, JSON.stringify(stop.body));
      await until('stopping', async () =>
        (await r.panel.api(r.owner, 'GET', `/api/operations/${stop.body.operationId}`)).body.stage ===
        'stopping'
          ? true
          : undefined,
      );
      const kill = await r.panel.api(r.owner, 'POST', `/api/servers/${id}/power`, { action: 'kill' });
      assert.equal(kill.status, 202, JSON.stringify(kill.body));
      const killed = await ended(r, kill.body.operationId);
      assert.equal(killed.success, true, JSON.stringify(killed));
      const stopped = await ended(r, stop.body.operationId);
      assert.equal(stopped.success, false);
      assert.equal(stopped.errorCode, 'OPERATION_SUPERSEDED');
      assert.equal((await docker.getContainer(`cap-${id}`).inspect()).State.Running, false);

      // an Agent restart in the middle of a stop
      const started = await r.panel.api(r.owner, 'POST', `/api/servers/${id}/power`, { action: 'start' });
      await ended(r, started.body.operationId);
      const stop2 = await r.panel.api(r.owner, 'POST', `/api/servers/${id}/power`, { action: 'stop' });
      assert.equal(stop2.status, 202, JSON.stringify(stop2.body));
      await until('stopping', async () =>
        (await r.panel.api(r.owner, 'GET', `/api/operations/${stop2.body.operationId}`)).body.stage ===
        'stopping'
          ? true
          : undefined,
      );
      await r.agent.stop();
      await r.startAgent();
      const cut = await ended(r, stop2.body.operationId);
      assert.equal(cut.success, false);
      assert.equal(cut.errorCode, 'AGENT_RESTARTED');
    } finally {
      await r.cleanup();
    }
  });

  it('a create and a recreating PATCH are 202 operations; a create the Agent cannot do removes the server', async () => {
    const r = await rig('create');
    try {
      const created = await r.panel.api(r.owner, 'POST', '/api/servers', {
        name: 'ops async create',
        nodeId: r.nodeId,
        image: IMAGE,
        startup: 'echo up; while true; do sleep 1; done',
      });
      assert.equal(created.status, 202, JSON.stringify(created.body));
      const id = created.body.server.id as string;
      const op = await ended(r, created.body.operationId);
      assert.equal(op.kind, 'create');
      assert.equal(op.success, true, JSON.stringify(op));
      const started = await r.panel.api(r.owner, 'POST', `/api/servers/${id}/power`, { action: 'start' });
      assert.equal(started.status, 202, JSON.stringify(started.body));
      assert.equal((await ended(r, started.body.operationId)).success, true);

      const startup = 'echo again; while true; do sleep 1; done';
      const patched = await r.panel.api(r.owner, 'PATCH', `/api/servers/${id}`, { startup });
      assert.equal(patched.status, 202, JSON.stringify(patched.body));
      const upd = await ended(r, patched.body.operationId, 60_000);
      assert.equal(upd.kind, 'update');
      assert.equal(upd.success, true, JSON.stringify(upd));
      await until('the change stored', async () =>
        (await r.panel.api(r.owner, 'GET', `/api/servers/${id}`)).body.startup === startup ? true : undefined,
      );
      const [c] = await docker.listContainers({ all: true, filters: { name: [id] } });
      assert.ok(c, 'the recreated container');
      assert.ok((await docker.getContainer(c.Id).inspect()).Config.Cmd?.join(' ').includes('echo again'));

      // an image this machine does not have (no registry reachable): acknowledged, then failed
      const doomed = await r.panel.api(r.owner, 'POST', '/api/servers', {
        name: 'ops doomed',
        nodeId: r.nodeId,
        image: 'ctrl-alt-play/not-here:missing',
      });
      assert.equal(doomed.status, 202, JSON.stringify(doomed.body));
      const failed = await ended(r, doomed.body.operationId, 120_000);
      assert.equal(failed.success, false, JSON.stringify(failed));
      assert.ok(failed.errorCode, JSON.stringify(failed));
      assert.equal(
        (await r.panel.api(r.owner, 'GET', `/api/servers/${doomed.body.server.id}`)).status,
        404,
        'a failed create leaves no server',
      );
    } finally {
      await r.cleanup();
    }
  });

  it('an Agent stopped mid-operation: the waiter hears AGENT_OFFLINE after the grace, the operation stays open and its hello settles it', async () => {
    const r = await rig('offline');
    try {
      // ignores TERM, stop timeout 300 s: the recreating PATCH's stop runs for minutes
      const id = await r.server(300);
      const startup = 'echo patched; while true; do sleep 1; done';
      const waiting = r.panel.api(r.owner, 'PATCH', `/api/servers/${id}?wait=true`, { startup });
      const op = await until('the update stopping the container', async () => {
        const [o] = (await r.panel.api(r.owner, 'GET', `/api/servers/${id}/operations`)).body as Json[];
        return o?.kind === 'update' && o.stage === 'stopping' ? (o as Json) : undefined;
      });
      await r.agent.stop();
      const gone = Date.now();
      const answer = await Promise.race([
        waiting,
        new Promise<undefined>((resolve) => setTimeout(resolve, 30_000)),
      ]);
      const waited = Date.now() - gone;
      console.log(`# Agent gone mid-update: the ?wait=true PATCH answered after ${waited} ms`);
      assert.ok(answer, 'the waiter is answered while the Agent is away (not at its return)');
      assert.equal(answer.status, 503, JSON.stringify(answer.body));
      assert.equal(answer.body.code, 'AGENT_OFFLINE');
      assert.ok(waited >= 9_000 && waited < 15_000, `answered after the 10 s grace: ${waited} ms`);
      const open = (await r.panel.api(r.owner, 'GET', `/api/operations/${op.id}`)).body;
      assert.equal(open.finishedAt, null, 'the operation stays open while its Agent is away');
      assert.equal(open.success, null);
      assert.notEqual(
        (await r.panel.api(r.owner, 'GET', `/api/servers/${id}`)).body.startup,
        startup,
        'nothing stored',
      );
      // the Agent back: its hello settles the operation its restart cut
      await r.startAgent();
      const settled = await ended(r, op.id);
      assert.equal(settled.success, false, JSON.stringify(settled));
      assert.equal(settled.errorCode, 'AGENT_RESTARTED');
    } finally {
      await r.cleanup();
    }
  });

  it("a config update whose Agent goes away: the waiter hears AGENT_OFFLINE, the server's last update says pending until the Agent's hello settles it", async () => {
    const r = await rig('offline-config');
    try {
      const id = await r.server(300);
      const waiting = r.panel.api(r.owner, 'PUT', `/api/servers/${id}/config?wait=true`, {
        environment: { MOTD: 'offline test' },
      });
      const op = await until('the config update stopping the container', async () => {
        const [o] = (await r.panel.api(r.owner, 'GET', `/api/servers/${id}/operations`)).body as Json[];
        return o?.kind === 'update' && o.stage === 'stopping' ? (o as Json) : undefined;
      });
      await r.agent.stop();
      const answer = await Promise.race([
        waiting,
        new Promise<undefined>((resolve) => setTimeout(resolve, 30_000)),
      ]);
      assert.ok(answer, 'the waiter is answered while the Agent is away');
      assert.equal(answer.status, 503, JSON.stringify(answer.body));
      assert.equal(answer.body.code, 'AGENT_OFFLINE');
      const away = (await r.panel.api(r.owner, 'GET', `/api/servers/${id}`)).body.lastUpdate as Json;
      assert.equal(away?.operationId, op.id, JSON.stringify(away));
      assert.equal(away.stage, 'pending', 'not called failed while the update may still happen');
      await r.startAgent();
      const settled = await ended(r, op.id);
      assert.equal(settled.errorCode, 'AGENT_RESTARTED', JSON.stringify(settled));
      const last = await until('the settled end recorded on the server', async () => {
        const u = (await r.panel.api(r.owner, 'GET', `/api/servers/${id}`)).body.lastUpdate as Json;
        return u?.stage === 'pending' ? undefined : u;
      });
      assert.equal(last.operationId, op.id);
      assert.equal(last.stage, 'failed', JSON.stringify(last));
      assert.equal(last.code, 'AGENT_RESTARTED');
    } finally {
      await r.cleanup();
    }
  });

  it('an operation survives a Panel restart: the row completes when the Agent reports', async () => {
    const r = await rig('panel');
    try {
      const id = await r.server(6);
      const stop = await r.panel.api(r.owner, 'POST', `/api/servers/${id}/power`, { action: 'stop' });
      assert.equal(stop.status, 202, JSON.stringify(stop.body));
      const opId = stop.body.operationId as string;
      // the Panel goes away mid-stop and a new one comes up on the same database after the stop ended
      await r.restartPanel(async () => {
        await until(
          'container stopped',
          async () => ((await docker.getContainer(`cap-${id}`).inspect()).State.Running ? undefined : true),
          20_000,
        );
      });
      const op = await ended(r, opId, 60_000);
      assert.equal(op.success, true, JSON.stringify(op));
      assert.equal(op.errorCode, null);
      const listed = (await r.panel.api(r.owner, 'GET', `/api/servers/${id}/operations`)).body as Json[];
      assert.equal(listed[0].id, opId);
      assert.equal(listed[1].kind, 'start');
    } finally {
      await r.cleanup();
    }
  });
});
