/**
 * PATCH /api/servers/:id changes only what it names (issue 8 item 2), through the real Panel, a
 * real Agent and the real Docker Engine: a rename keeps startup, limits, environment and ports and
 * does not even recreate the container; a startup change keeps the rest.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { freePort, type Json, type Session, type TestPanel, until } from '../packages/panel/test/helpers.ts';
import { type Stack, startStack } from './harness.ts';

const IMAGE = 'ctrl-alt-play/busybox:latest';
const docker = new Docker({ socketPath: '/var/run/docker.sock' });

describe('PATCH /api/servers/:id with a real Agent and Docker', () => {
  let stack: Stack | undefined;
  let panel: TestPanel;
  let owner: Session;
  let nodeId: string;
  let serverId: string | undefined;
  let hostPort: number;
  const containers = async () =>
    docker.listContainers({ all: true, filters: { label: [`ctrl-alt-play.server=${serverId}`] } });

  before(async () => {
    stack = await startStack('patch');
    ({ panel, owner, nodeId } = stack);
    const node = { id: nodeId };
    hostPort = await freePort();
    const created = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'patch-me',
      nodeId: node.id,
      image: IMAGE,
      startup: 'echo "hello $GREETING"; echo ready; while read l; do echo "got:$l"; done',
      environment: { GREETING: 'kept' },
      ports: { '7777/tcp': hostPort },
      limits: { memory: '64m', cpu: '0.5' },
      done: 'ready',
      stop: '^C',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    serverId = created.body.id as string;
    assert.equal(
      (await panel.api(owner, 'POST', `/api/servers/${serverId}/power`, { action: 'start' })).status,
      202,
    );
    await until(
      async () => (await panel.api(owner, 'GET', `/api/servers/${serverId}`)).body.status === 'running',
      20_000,
    );
  });

  after(async () => {
    await stack?.stop();
  });

  it('a rename keeps startup, limits, environment, ports and the very container', async () => {
    const before = await panel.api(owner, 'GET', `/api/servers/${serverId}`);
    const [c0] = await containers();
    assert.ok(c0);
    const r = await panel.api(owner, 'PATCH', `/api/servers/${serverId}`, { name: 'renamed' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const s = r.body as Json;
    assert.equal(s.name, 'renamed');
    for (const k of ['startup', 'environment', 'ports', 'limits', 'done', 'stop', 'image']) {
      assert.deepEqual(
        s[k],
        before.body[k],
        `${k}: ${JSON.stringify(s[k])} vs ${JSON.stringify(before.body[k])}`,
      );
    }
    assert.equal(s.startup.includes('hello $GREETING'), true);
    const now = await containers();
    assert.equal(now.length, 1);
    assert.equal(now[0]?.Id, c0.Id, 'not recreated');
    assert.equal(now[0]?.State, 'running', `container ${now[0]?.Status}`);
    assert.equal((await panel.api(owner, 'GET', `/api/servers/${serverId}`)).body.status, 'running');
  });

  it('a startup change recreates the container with the same environment, limits and ports', async () => {
    const [c0] = await containers();
    const startup = 'echo "again $GREETING"; echo ready; while read l; do echo "got:$l"; done';
    const r = await panel.api(owner, 'PATCH', `/api/servers/${serverId}?wait=true`, { startup });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.startup, startup);
    assert.deepEqual(r.body.environment, { GREETING: 'kept' });
    assert.deepEqual(r.body.limits, { memory: '64m', cpu: '0.5' });
    assert.deepEqual(r.body.ports, { '7777/tcp': hostPort });
    assert.equal(r.body.name, 'renamed');
    const [c1] = await containers();
    assert.ok(c1);
    assert.notEqual(c1.Id, c0?.Id);
    const inspect = await docker.getContainer(c1.Id).inspect();
    assert.ok(inspect.Config.Env.includes('GREETING=kept'), inspect.Config.Env.join(' '));
    assert.equal(inspect.HostConfig.Memory, 64 * 1024 * 1024);
    assert.equal(inspect.HostConfig.PortBindings?.['7777/tcp']?.[0]?.HostPort, String(hostPort));
  });
});
