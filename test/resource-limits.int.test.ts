/**
 * Default resource limits (issue 8 item 20), through the real Panel, a real Agent and the real
 * Docker Engine: a server created without limits gets its node's defaults (or the Panel's), not
 * an unlimited container; an explicit 0 still means unlimited, but only when asked for.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import type { Session, TestPanel } from '../packages/panel/test/helpers.ts';
import { type Stack, startStack } from './harness.ts';

const IMAGE = 'ctrl-alt-play/busybox:latest';
const MiB = 1024 * 1024;
const docker = new Docker({ socketPath: '/var/run/docker.sock' });

describe('servers get default limits from their node', () => {
  let stack: Stack | undefined;
  let panel: TestPanel;
  let owner: Session;
  let nodeId: string;
  const made: string[] = [];

  async function hostConfig(serverId: string) {
    const [c] = await docker.listContainers({
      all: true,
      filters: { label: [`ctrl-alt-play.server=${serverId}`] },
    });
    assert.ok(c, 'a container');
    return (await docker.getContainer(c.Id).inspect()).HostConfig;
  }
  async function create(body: Record<string, unknown>) {
    const r = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: `limits-${made.length}`,
      nodeId,
      image: IMAGE,
      startup: 'echo ready; sleep 3600',
      ...body,
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    made.push(r.body.id);
    return r.body;
  }

  before(async () => {
    stack = await startStack('limits');
    ({ panel, owner, nodeId } = stack);
  });

  after(async () => {
    await stack?.stop();
  });

  it('a node shows the Panel-wide defaults until it has its own', async () => {
    const node = (await panel.api(owner, 'GET', `/api/nodes/${nodeId}`)).body;
    assert.equal(node.defaultLimits, null);
    assert.deepEqual(node.effectiveDefaultLimits, { memory: '1024m', cpu: 1 });
  });

  it('a server created with no limits gets the Panel default, not an unlimited container', async () => {
    const s = await create({});
    assert.deepEqual(s.limits, { memory: '1024m', cpu: 1 });
    const hc = await hostConfig(s.id);
    assert.equal(hc.Memory, 1024 * MiB);
    assert.equal(hc.NanoCpus, 1e9);
  });

  it("the node's own defaults apply to what a create leaves out; an explicit 0 stays unlimited", async () => {
    const spectator = await panel.userWithRole('spectator');
    const denied = await panel.api(spectator, 'PATCH', `/api/nodes/${nodeId}`, {
      defaultLimits: { memory: 0 },
    });
    assert.equal(denied.status, 403);
    for (const bad of [{ memory: 'lots' }, { cpu: -1 }, { memory: Number.NaN }, { cpu: '1e400' }]) {
      const r = await panel.api(owner, 'PATCH', `/api/nodes/${nodeId}`, { defaultLimits: bad });
      assert.equal(r.status, 400, JSON.stringify(bad));
      assert.equal(r.body.code, 'VALIDATION_FAILED');
    }
    const set = await panel.api(owner, 'PATCH', `/api/nodes/${nodeId}`, {
      defaultLimits: { memory: '256m', cpu: 0.5 },
    });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    assert.deepEqual(set.body.defaultLimits, { memory: '256m', cpu: 0.5 });
    assert.deepEqual(set.body.effectiveDefaultLimits, { memory: '256m', cpu: 0.5 });

    const partial = await create({ limits: { memory: '128m' } });
    assert.deepEqual(partial.limits, { memory: '128m', cpu: 0.5 });
    let hc = await hostConfig(partial.id);
    assert.equal(hc.Memory, 128 * MiB);
    assert.equal(hc.NanoCpus, 5e8);

    const unlimited = await create({ limits: { memory: 0, cpu: 0 } });
    assert.deepEqual(unlimited.limits, { memory: 0, cpu: 0 });
    hc = await hostConfig(unlimited.id);
    assert.equal(hc.Memory, 0);
    assert.ok(!hc.NanoCpus, `NanoCpus ${hc.NanoCpus}`);

    // back to the Panel's defaults
    const reset = await panel.api(owner, 'PATCH', `/api/nodes/${nodeId}`, { defaultLimits: null });
    assert.equal(reset.status, 200);
    assert.deepEqual(reset.body.effectiveDefaultLimits, { memory: '1024m', cpu: 1 });
  });
});
