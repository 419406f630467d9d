/**
 * Automatic placement (issue 16 item 1) with the real Panel, two real Agents and the real Docker
 * Engine, as the issue asks to show it: a create that names no node goes to the node with the
 * most headroom (here B: both Agents report this machine, and an admin's capacity overrides make
 * A the smaller), the answer says where and why, and the server runs there: its container
 * carries B's node label and its folder is in B's data directory, none in A's. A server that fits
 * nowhere is 409 INSUFFICIENT_RESOURCES with every candidate's reason, and nothing is made.
 * The fake-Agent suite (packages/panel/test/security/placement.test.ts) covers images, tags,
 * location and offline nodes.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Json, until } from '../packages/panel/test/helpers.ts';
import { docker, IMAGE, type NodeAgent, type Stack, startSecondAgent, startStack } from './harness.ts';

describe('Panel + two Agents: a server placed automatically on the node with headroom', () => {
  let stack: Stack;
  let b: NodeAgent;
  const api = (method: string, url: string, body?: unknown) =>
    stack.panel.api(stack.owner, method, url, body);
  const create = (name: string, memory: string) =>
    api('POST', '/api/servers?wait=true', {
      name,
      image: IMAGE,
      startup: 'echo ready; sleep 3600',
      limits: { memory, cpu: 0.5 },
    });
  const labelled = (label: string) => docker.listContainers({ all: true, filters: { label: [label] } });

  before(async () => {
    stack = await startStack('placement');
    b = await startSecondAgent(stack, { name: 'placement-b' });
    for (const [nodeId, memory] of [
      [stack.nodeId, '1g'],
      [b.nodeId, '2g'],
    ] as const) {
      const r = await api('PATCH', `/api/nodes/${nodeId}`, { capacity: { memory } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
  });
  after(async () => {
    await stack?.stop();
  });

  it('no nodeId: placed on B (most headroom), says why, runs there; too big for both: 409 with every reason, nothing made', {
    timeout: 120_000,
  }, async () => {
    const r = await create('placed', '512m');
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.nodeId, b.nodeId);
    assert.equal(r.body.placement.nodeId, b.nodeId);
    assert.match(r.body.placement.reason, /^the most headroom: 75% \(next: placement-node 50%\)$/);
    const byNode = Object.fromEntries(r.body.placement.candidates.map((c: Json) => [c.nodeId, c]));
    assert.equal(byNode[stack.nodeId].eligible, true);
    assert.equal(byNode[b.nodeId].eligible, true);
    const id = r.body.id as string;

    const start = await api('POST', `/api/servers/${id}/power`, { action: 'start' });
    assert.equal(start.status, 202, JSON.stringify(start.body));
    await until(async () => (await api('GET', `/api/servers/${id}`)).body.status === 'running', 30_000);
    const [c] = await labelled(`ctrl-alt-play.server=${id}`);
    assert.ok(c, 'a container for the server');
    assert.equal(c.Labels['ctrl-alt-play.node'], b.nodeId);
    assert.equal(c.State, 'running');
    assert.ok(existsSync(path.join(b.agentDir, 'servers', id)), "the folder is in B's data directory");
    assert.ok(!existsSync(path.join(stack.agentDir, 'servers', id)), "and not in A's");

    const before = (await labelled('ctrl-alt-play.server')).length;
    const huge = await create('huge', '3g');
    assert.equal(huge.status, 409, JSON.stringify(huge.body));
    assert.equal(huge.body.code, 'INSUFFICIENT_RESOURCES');
    const reasons = Object.fromEntries(huge.body.details.candidates.map((c: Json) => [c.nodeId, c.reason]));
    assert.match(reasons[stack.nodeId], /^does not fit: memory: needs 3072 MiB/);
    assert.match(reasons[b.nodeId], /^does not fit: memory: needs 3072 MiB/);
    assert.equal((await labelled('ctrl-alt-play.server')).length, before, 'no container made');
    const names = ((await api('GET', '/api/servers')).body as Json[]).map((s) => s.name);
    assert.ok(!names.includes('huge'), 'nothing stored');
  });
});
