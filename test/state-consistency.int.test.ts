/**
 * Panel, Agent and Docker must agree after what users do at once or change: a variable removed
 * through the Panel is gone from the container; twenty parallel power actions ending with a kill
 * leave the server offline everywhere. Real Panel (in-process), real Agent, real Docker Engine.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RunningAgent } from '@cap/agent';
import Docker from 'dockerode';
import type { Session, TestPanel } from '../packages/panel/test/helpers.ts';
import { type Stack, startStack } from './harness.ts';

const IMAGE = 'ctrl-alt-play/busybox:latest';
const docker = new Docker({ socketPath: '/var/run/docker.sock' });

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('Panel, Agent and Docker agree (real Docker)', () => {
  let stack: Stack | undefined;
  let panel: TestPanel;
  let agent: RunningAgent;
  let owner: Session;
  let nodeId: string;

  before(async () => {
    stack = await startStack('consistency');
    ({ panel, agent, owner, nodeId } = stack);
  });

  after(async () => {
    await stack?.stop();
  });

  const containerEnv = async (serverId: string) => {
    const [c] = await docker.listContainers({
      all: true,
      filters: { label: [`ctrl-alt-play.server=${serverId}`] },
    });
    assert.ok(c, 'no container');
    return (await docker.getContainer(c.Id).inspect()).Config.Env as string[];
  };

  it('a variable removed through the Panel is gone from the recreated container', async () => {
    const created = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'env removal',
      nodeId,
      image: IMAGE,
      startup: 'sleep 600',
      environment: { KEEP: 'k', DROP_ME: 'gone', SECRET_TOKEN: 's3cret' },
      port: 43517,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    let env = await containerEnv(id);
    assert.ok(env.includes('DROP_ME=gone') && env.includes('SECRET_TOKEN=s3cret'));

    // through the config route
    const put = await panel.api(owner, 'PUT', `/api/servers/${id}/config?wait=true`, {
      environment: { KEEP: 'k2', SECRET_TOKEN: 's3cret' },
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    env = await containerEnv(id);
    assert.ok(env.includes('KEEP=k2'), env.join(' '));
    assert.ok(!env.some((e) => e.startsWith('DROP_ME=')), `DROP_ME still there: ${env.join(' ')}`);
    // the system ones are set again by the Agent, the allocation's port with them
    assert.ok(env.includes('SERVER_PORT=43517'), env.join(' '));
    assert.ok(
      env.some((e) => e.startsWith('SERVER_MEMORY=')),
      env.join(' '),
    );
    assert.ok(
      env.some((e) => e.startsWith('TZ=')),
      env.join(' '),
    );

    // and through PATCH
    const patch = await panel.api(owner, 'PATCH', `/api/servers/${id}?wait=true`, {
      environment: { KEEP: 'k3' },
    });
    assert.equal(patch.status, 200, JSON.stringify(patch.body));
    env = await containerEnv(id);
    assert.ok(env.includes('KEEP=k3'), env.join(' '));
    assert.ok(!env.some((e) => e.startsWith('SECRET_TOKEN=')), `SECRET_TOKEN still there: ${env.join(' ')}`);
    assert.ok(env.includes('SERVER_PORT=43517'), env.join(' '));
  });

  it('twenty parallel power actions ending with kill: offline in the Panel, the Agent and Docker', async () => {
    const created = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'power storm',
      nodeId,
      image: IMAGE,
      // ignores SIGTERM, so every stop takes its timeout: the actions really overlap
      startup: "trap '' TERM; echo ready; while true; do sleep 1; done",
      done: 'ready',
      stopTimeout: 2,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    const actions = ['start', 'stop', 'restart', 'start', 'restart'];
    const rs = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        panel.api(owner, 'POST', `/api/servers/${id}/power`, { action: actions[i % actions.length] }),
      ),
    );
    // the per-server try-lock: one runs, the others are refused at once (never queued)
    assert.ok(
      rs.every((r) => r.status === 202 || (r.status === 409 && r.body.code === 'SERVER_BUSY')),
      rs.map((r) => r.status).join(','),
    );
    assert.ok(rs.some((r) => r.status === 202));
    const kill = await panel.api(owner, 'POST', `/api/servers/${id}/power`, { action: 'kill' });
    assert.equal(kill.status, 202);
    // everything settles: the Agent works off (or cancels) what was queued
    await until(
      'the Agent idle and offline',
      async () => {
        const r = await agent!.handleCommand({
          id: 'st',
          type: 'command',
          timestamp: new Date().toISOString(),
          serverId: id,
          action: 'get_status',
          payload: {},
        });
        return (r.data as { status?: string } | undefined)?.status === 'offline' ? true : undefined;
      },
      90_000,
    );
    // nothing queued runs later: it stays so
    await new Promise((r) => setTimeout(r, 8000));
    const server = await panel.api(owner, 'GET', `/api/servers/${id}`);
    assert.equal(server.body.desiredState, 'offline');
    assert.equal(server.body.status, 'offline', 'the Panel says otherwise');
    const r = await agent!.handleCommand({
      id: 'st2',
      type: 'command',
      timestamp: new Date().toISOString(),
      serverId: id,
      action: 'get_status',
      payload: {},
    });
    assert.equal((r.data as { status: string }).status, 'offline', 'the Agent says otherwise');
    const [c] = await docker.listContainers({
      all: true,
      filters: { label: [`ctrl-alt-play.server=${id}`] },
    });
    assert.ok(c);
    assert.notEqual(c.State, 'running', 'the container runs on after the kill');
  });
});
