/**
 * Managed containers through the Docker relay (issue 11): a game server's container (the labels
 * the Agent puts on it) is the game server's. Power actions on it through
 * `/api/nodes/:id/docker/containers/{id}/start|stop|restart|kill` run the server's power action
 * (so the Panel's state stays right) and answer in Docker's shape (204, 304 when nothing to do);
 * removing or updating it is refused with DOCKER_MANAGED_CONTAINER (delete the server instead).
 * Real Panel, real Agent, real Docker Engine.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { until } from '../packages/panel/test/helpers.ts';
import { createTestServer, docker, IMAGE, type Stack, startStack } from './harness.ts';

const LABEL = 'ctrl-alt-play.test';
const label = `docker-managed-${process.pid}`;

describe('Panel + Agent: managed containers through the Docker relay', () => {
  let stack: Stack;
  let base = '';
  let serverId = '';
  let containerId = '';
  const post = (p: string, body?: unknown) =>
    fetch(`${base}${p}`, {
      method: 'POST',
      headers: { ...stack.owner.headers, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
  const server = async () => (await stack.panel.api(stack.owner, 'GET', `/api/servers/${serverId}`)).body;

  before(async () => {
    stack = await startStack('docker-managed');
    base = `${stack.panel.url}/api/nodes/${stack.nodeId}/docker`;
    serverId = (await createTestServer(stack, 'managed-one')).serverId;
    const [c] = await stack.containers(serverId);
    assert.ok(c, 'the server has its container');
    containerId = c.Id;
  });
  after(async () => {
    const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL}=${label}`] } });
    await Promise.all(
      list.map((c) =>
        docker
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => undefined),
      ),
    );
    await stack?.stop();
  });

  it('start/kill/stop of a managed container run the server power action (204/304/409)', async () => {
    const started = await post(`/containers/${containerId}/start`);
    assert.equal(started.status, 204, await started.text());
    assert.equal((await docker.getContainer(containerId).inspect()).State.Running, true);
    await until(async () => (await server()).status === 'running', 10_000);
    assert.equal((await server()).desiredState, 'running');
    const ops = (await stack.panel.api(stack.owner, 'GET', `/api/servers/${serverId}/operations`)).body as {
      kind: string;
    }[];
    assert.ok(
      ops.some((o) => o.kind === 'start'),
      `the start is the server's operation: ${JSON.stringify(ops)}`,
    );

    // by name too (the Engine resolves names and id prefixes)
    const name = (await docker.getContainer(containerId).inspect()).Name.replace(/^\//, '');
    const again = await post(`/containers/${name}/start`);
    assert.equal(again.status, 304, 'already running: nothing to do');

    // kill (a stop would wait out `sleep`'s grace time)
    const killed = await post(`/containers/${containerId.slice(0, 12)}/kill`);
    assert.equal(killed.status, 204, await killed.text());
    await until(async () => (await server()).status === 'offline', 15_000);
    assert.equal((await server()).desiredState, 'offline');
    assert.equal((await docker.getContainer(containerId).inspect()).State.Running, false);
    const killedAgain = await post(`/containers/${containerId}/kill`);
    assert.equal(killedAgain.status, 409, await killedAgain.text());
    const stoppedAgain = await post(`/containers/${containerId}/stop`);
    assert.equal(stoppedAgain.status, 304);
  });

  it('remove and update of a managed container are refused with DOCKER_MANAGED_CONTAINER', async () => {
    const memory = (await docker.getContainer(containerId).inspect()).HostConfig.Memory;
    const removed = await fetch(`${base}/containers/${containerId}?force=1`, {
      method: 'DELETE',
      headers: stack.owner.headers,
    });
    assert.equal(removed.status, 409);
    assert.equal(((await removed.json()) as { code: string }).code, 'DOCKER_MANAGED_CONTAINER');
    const updated = await post(`/containers/${containerId}/update`, { Memory: 64 * 1024 * 1024 });
    assert.equal(updated.status, 409);
    assert.equal(((await updated.json()) as { code: string }).code, 'DOCKER_MANAGED_CONTAINER');
    // still there, untouched
    assert.equal((await docker.getContainer(containerId).inspect()).HostConfig.Memory, memory);
  });

  it('containers that are not a server are the Engine’s as before', async () => {
    const c = await docker.createContainer({
      Image: IMAGE,
      Cmd: ['sleep', '300'],
      Labels: { [LABEL]: label },
    });
    const started = await post(`/containers/${c.id}/start`);
    assert.equal(started.status, 204);
    assert.equal((await c.inspect()).State.Running, true);
    const removed = await fetch(`${base}/containers/${c.id}?force=1`, {
      method: 'DELETE',
      headers: stack.owner.headers,
    });
    assert.equal(removed.status, 204);
    // a missing container is the Engine's 404, as before
    const missing = await post(`/containers/no-such-${process.pid}/start`);
    assert.equal(missing.status, 404);
  });
});
