/**
 * Automatic placement (issue 16 item 1) must never put a server where it does not fit, where its
 * image is not, on an offline node or outside the asked tags/location: a create without nodeId
 * goes to the eligible node with the most headroom and says why; none eligible is 409
 * INSUFFICIENT_RESOURCES with every candidate's reason, and nothing is stored.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Command } from '@cap/protocol';
import type { FakeAgent } from '../fake-agent.ts';
import { fakeAgentNode, type Json, type Session, startTestPanel, type TestPanel } from '../helpers.ts';

const GiB = 1024 ** 3;

/** system_info of a node with that much memory and those images (undefined: not reported). */
function systemInfo(memoryGiB: number, images?: string[]) {
  return (_: Command) => ({
    hostname: 'fake',
    os: { id: 'debian', name: 'Debian', version: '12', prettyName: 'Debian 12' },
    kernel: '6.1',
    arch: 'x64',
    dockerVersion: '20.10.24',
    cpus: 4,
    memory: { total: memoryGiB * GiB, free: memoryGiB * GiB },
    disk: { path: '/', total: 100 * GiB, free: 100 * GiB },
    agentVersion: 'fake',
    protocolVersion: 1,
    ...(images ? { images } : {}),
  });
}

describe('automatic placement', () => {
  let panel: TestPanel;
  let owner: Session;
  const agents: FakeAgent[] = [];
  let small: { id: string; agent: FakeAgent };
  let big: { id: string; agent: FakeAgent };

  const node = async (name: string, memoryGiB: number, images?: string[]) => {
    const n = await fakeAgentNode(
      panel,
      owner,
      { handlers: { system_info: systemInfo(memoryGiB, images) } },
      name,
    );
    agents.push(n.agent);
    return n;
  };
  const create = (name: string, extra: Json = {}) =>
    panel.api(owner, 'POST', '/api/servers?wait=true', {
      name,
      image: 'ctrl-alt-play/busybox',
      limits: { memory: '2g' },
      ...extra,
    });

  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
    small = await node('small', 4, ['ctrl-alt-play/busybox:latest']);
    big = await node('big', 16, ['ctrl-alt-play/busybox:latest', 'other:1']);
  });
  after(async () => {
    for (const a of agents) await a.close();
    await panel.stop();
  });

  test('without nodeId the server goes to the node with the most headroom, and the answer says why', async () => {
    const r = await create('auto-1');
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.nodeId, big.id);
    assert.equal(r.body.placement.nodeId, big.id);
    assert.match(r.body.placement.reason, /most headroom: 88% \(next: small 50%\)/);
    const byName = Object.fromEntries(r.body.placement.candidates.map((c: Json) => [c.name, c]));
    assert.deepEqual([byName.big.eligible, byName.small.eligible], [true, true]);
    assert.ok(big.agent.servers.has(r.body.id) && !small.agent.servers.has(r.body.id));
    // 202 too
    const a = await panel.api(owner, 'POST', '/api/servers', {
      name: 'auto-2',
      image: 'other:1',
      limits: { memory: '1g' },
    });
    assert.equal(a.status, 202, JSON.stringify(a.body));
    assert.equal(a.body.placement.nodeId, big.id);
  });

  test("a node without the server's image is left out (as its Agent lists them)", async () => {
    const r = await create('other-image', { image: 'other:1', limits: { memory: '1g' } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.nodeId, big.id);
    const smallC = r.body.placement.candidates.find((c: Json) => c.name === 'small');
    assert.deepEqual([smallC.eligible, smallC.reason], [false, 'does not have the image other:1']);
  });

  test('tags and location narrow it', async () => {
    assert.equal(
      (await panel.api(owner, 'PATCH', `/api/nodes/${small.id}`, { tags: ['EU', 'ssd'], location: 'Paris' }))
        .status,
      200,
    );
    const r = await create('tagged', { placement: { tags: ['eu'] }, limits: { memory: '1g' } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.nodeId, small.id);
    assert.match(r.body.placement.reason, /the only node that can take it/);
    const bigC = r.body.placement.candidates.find((c: Json) => c.name === 'big');
    assert.deepEqual([bigC.eligible, bigC.reason], [false, 'not tagged eu']);
    const l = await create('located', { placement: { location: 'paris' }, limits: { memory: '1g' } });
    assert.equal(l.body.nodeId, small.id);
    const nowhere = await create('nowhere', { placement: { location: 'Tokyo' } });
    assert.equal(nowhere.status, 409);
  });

  test('none fits: 409 INSUFFICIENT_RESOURCES with every candidate, nothing stored; an offline node is never chosen', async () => {
    const count = async () => ((await panel.api(owner, 'GET', '/api/servers')).body as Json[]).length;
    const before = await count();
    const r = await create('huge', { limits: { memory: '64g' } });
    assert.equal(r.status, 409, JSON.stringify(r.body));
    assert.equal(r.body.code, 'INSUFFICIENT_RESOURCES');
    const reasons = Object.fromEntries(r.body.details.candidates.map((c: Json) => [c.name, c.reason]));
    assert.match(reasons.big, /^does not fit: memory: needs 65536 MiB/);
    assert.match(reasons.small, /^does not fit: memory/);
    assert.equal(await count(), before);
    // the big node goes offline: the next one lands on small although big had more room
    await big.agent.close();
    await new Promise((res) => setTimeout(res, 100));
    const o = await create('after-offline', { limits: { memory: '512m' } });
    assert.equal(o.status, 201, JSON.stringify(o.body));
    assert.equal(o.body.nodeId, small.id);
    assert.equal(o.body.placement.candidates.find((c: Json) => c.name === 'big').reason, 'offline');
    // allocationId belongs to a node
    const bad = await create('alloc', { allocationId: 'a_x' });
    assert.deepEqual([bad.status, bad.body.code], [400, 'VALIDATION_FAILED']);
  });
});
