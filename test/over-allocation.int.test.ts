/**
 * Over-allocation (issue 16 item 1) through the real Panel, a real Agent and the real Docker
 * Engine: the node's capacity is what its Agent reports about this machine; past it (here an
 * admin's 512 MiB override) a create is 409 INSUFFICIENT_RESOURCES and no container is made, and
 * a resize past it leaves the container's limits as they were.
 */
import assert from 'node:assert/strict';
import os from 'node:os';
import { after, before, describe, it } from 'node:test';
import { type Session, type TestPanel, until } from '../packages/panel/test/helpers.ts';
import { docker, IMAGE, type Stack, startStack } from './harness.ts';

const MiB = 1024 * 1024;

describe('a node refuses servers past its capacity', () => {
  let stack: Stack | undefined;
  let panel: TestPanel;
  let owner: Session;
  let nodeId: string;

  const containers = () =>
    docker.listContainers({ all: true, filters: { label: [`ctrl-alt-play.node=${nodeId}`] } });
  const create = (name: string, memory: string) =>
    panel.api(owner, 'POST', '/api/servers?wait=true', {
      name,
      nodeId,
      image: IMAGE,
      startup: 'echo ready; sleep 3600',
      limits: { memory, cpu: 0.5 },
    });

  before(async () => {
    stack = await startStack('overalloc');
    ({ panel, owner, nodeId } = stack);
  });
  after(async () => {
    await stack?.stop();
  });

  it("the node's capacity is this machine's, as its Agent reports it", async () => {
    // system_info is asked for when the Agent connects: its answer lands a moment later
    let node: { systemInfo: unknown; capacity: Record<string, { total: number; source: string }> } = {
      systemInfo: null,
      capacity: {},
    };
    await until(async () => {
      node = (await panel.api(owner, 'GET', `/api/nodes/${nodeId}`)).body;
      return node.systemInfo !== null;
    });
    assert.equal(node.capacity.memory?.total, os.totalmem());
    assert.equal(node.capacity.memory?.source, 'agent');
    assert.equal(node.capacity.cpu?.total, os.cpus().length);
    assert.ok((node.capacity.disk?.total ?? 0) > 0);
  });

  it('past an override of 512 MiB: 409 INSUFFICIENT_RESOURCES, no container; a resize past it changes nothing', async () => {
    const set = await panel.api(owner, 'PATCH', `/api/nodes/${nodeId}`, { capacity: { memory: '512m' } });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    const before = (await containers()).length;
    const big = await create('too-big', '1g');
    assert.equal(big.status, 409, JSON.stringify(big.body));
    assert.equal(big.body.code, 'INSUFFICIENT_RESOURCES');
    assert.deepEqual(big.body.details, { memory: { needed: 1024 * MiB, free: 512 * MiB } });
    assert.equal((await containers()).length, before, 'no container made');

    const ok = await create('fits', '256m');
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    const [c] = await docker.listContainers({
      all: true,
      filters: { label: [`ctrl-alt-play.server=${ok.body.id}`] },
    });
    assert.ok(c);
    assert.equal((await docker.getContainer(c.Id).inspect()).HostConfig.Memory, 256 * MiB);

    const grow = await panel.api(owner, 'PATCH', `/api/servers/${ok.body.id}?wait=true`, {
      limits: { memory: '600m', cpu: 0.5 },
    });
    assert.equal(grow.status, 409, JSON.stringify(grow.body));
    assert.deepEqual(grow.body.details, { memory: { needed: 600 * MiB, free: 512 * MiB } });
    const [same] = await docker.listContainers({
      all: true,
      filters: { label: [`ctrl-alt-play.server=${ok.body.id}`] },
    });
    assert.equal(same?.Id, c.Id, 'the container was not recreated');
    assert.equal((await docker.getContainer(c.Id).inspect()).HostConfig.Memory, 256 * MiB);
    const stored = (await panel.api(owner, 'GET', `/api/servers/${ok.body.id}`)).body;
    assert.equal(stored.limits.memory, '256m');
  });
});
