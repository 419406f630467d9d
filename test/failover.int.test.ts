/**
 * Failover with fencing (issue 16 item 3) end to end: one Panel, two real Agents (nodes A and B,
 * own data directories, one Docker Engine) and the local S3 stand-in (s3rver).
 *
 * What is modelled: a network partition. Agent A is stopped (as a killed Agent or a cut link
 * would leave it) while its game container keeps running: the Panel sees node A offline, fails
 * the server over to node B from its S3 backup, and fences A. When Agent A comes back, the
 * Panel's fence list (sent first on connect) makes it stop and remove the old container and
 * move its files aside. During the partition itself the old copy still runs (nothing can reach
 * it: fencing takes effect when its Agent is reachable again); once A is back there is never
 * more than one running copy, checked on Docker directly.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { until } from '../packages/panel/test/helpers.ts';
import { startTestS3, type TestS3 } from '../packages/panel/test/s3.ts';
import { docker, IMAGE, type NodeAgent, type Stack, startSecondAgent, startStack } from './harness.ts';

describe('Panel + two Agents + S3: failover with fencing', () => {
  let s3: TestS3;
  let stack: Stack | undefined;
  let a: NodeAgent;
  let b: NodeAgent;
  const WORLD = `the world ${Date.now()}\n`.repeat(1000);

  before(async () => {
    s3 = await startTestS3();
    stack = await startStack('failover', {
      panelEnv: s3.env({
        PANEL_S3_PART_SIZE_MB: '5',
        PANEL_FAILOVER_TICK_MS: '250',
        PANEL_FAILOVER_MIN_SECONDS: '1',
      }),
    });
    // one Docker Engine for both: their containers need names of their own (cap-a-<server>, cap-b-<server>)
    a = await startSecondAgent(stack, { name: 'fo-a', agentEnv: { AGENT_CONTAINER_PREFIX: 'cap-a-' } });
    b = await startSecondAgent(stack, { name: 'fo-b', agentEnv: { AGENT_CONTAINER_PREFIX: 'cap-b-' } });
  });
  after(async () => {
    await stack?.stop();
    await s3?.stop();
  });

  const running = async (serverId: string) =>
    (
      await docker.listContainers({ all: true, filters: { label: [`ctrl-alt-play.server=${serverId}`] } })
    ).filter((c) => c.State === 'running');

  it('runs on node B from its S3 backup after node A is away; A, back, stops its copy and keeps its files aside', async () => {
    const { panel, owner } = stack!;
    // the server takes a pool allocation: only B has a pool (the stack's own node cannot take it)
    const pool = await panel.api(owner, 'POST', `/api/nodes/${b.nodeId}/allocations`, {
      ip: '0.0.0.0',
      ports: ['28765'],
    });
    assert.equal(pool.status, 201, JSON.stringify(pool.body));
    const created = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'failover',
      nodeId: a.nodeId,
      image: IMAGE,
      startup: 'sleep 3600',
      port: 28764,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    await writeFile(path.join(a.agentDir, 'servers', id, 'world.dat'), WORLD);
    const started = await panel.api(owner, 'POST', `/api/servers/${id}/power?wait=true`, { action: 'start' });
    assert.ok(started.status < 300, JSON.stringify(started.body));
    const backup = await panel.api(owner, 'POST', `/api/servers/${id}/backups?wait=true`, {
      name: 'nightly',
    });
    assert.ok(backup.status < 300, JSON.stringify(backup.body));
    assert.equal(backup.body.storage, 's3');
    const patched = await panel.api(owner, 'PATCH', `/api/servers/${id}`, {
      failover: { enabled: true, afterSeconds: 2 },
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));

    // the partition: Agent A gone, its container left running
    await until(
      async () => (await panel.api(owner, 'GET', `/api/servers/${id}`)).body.status === 'running',
      30_000,
    );
    assert.equal((await running(id)).length, 1, 'not running on A before the partition');
    await a.stopAgent();
    assert.equal((await a.containers(id)).filter((c) => c.State === 'running').length, 1);
    await until(async () => {
      const r = await panel.api(owner, 'GET', `/api/servers/${id}/failovers`);
      return ['started', 'failed'].includes(r.body.failovers?.[0]?.state);
    }, 120_000);
    const fo = await panel.api(owner, 'GET', `/api/servers/${id}/failovers`);
    assert.equal(fo.body.failovers[0].state, 'started', JSON.stringify(fo.body));
    const server = await panel.api(owner, 'GET', `/api/servers/${id}`);
    assert.equal(server.body.nodeId, b.nodeId);
    assert.equal(server.body.allocation.port, 28765);
    await until(async () => (await b.containers(id)).some((c) => c.State === 'running'), 30_000);
    // byte for byte what the backup holds
    assert.equal(await readFile(path.join(b.agentDir, 'servers', id, 'world.dat'), 'utf8'), WORLD);

    // A comes back: its copy is stopped and removed, its files moved aside (never deleted)
    await a.restart();
    await until(async () => (await a.containers(id)).length === 0, 30_000);
    // the Agent removes the container first, then moves the files aside
    const fencedCopy = async () =>
      (await readdir(path.join(a.agentDir, 'fenced')).catch(() => [] as string[])).find(
        (n) => n.startsWith(`${id}-`) && !n.endsWith('.json'),
      );
    await until(async () => (await fencedCopy()) !== undefined, 30_000).catch(() => undefined);
    const aside = await fencedCopy();
    assert.ok(aside, 'the old copy was not moved aside');
    assert.equal(await readFile(path.join(a.agentDir, 'fenced', aside, 'world.dat'), 'utf8'), WORLD);
    // one running copy, on B (Docker asked directly), and it stays that way
    await new Promise((r) => setTimeout(r, 1500));
    const live = await running(id);
    assert.equal(live.length, 1);
    assert.equal(live[0]?.Labels['ctrl-alt-play.node'], b.nodeId);
    // A refuses to run it
    const refused = await a.agent!.handleCommand({
      id: 'm-1',
      type: 'command',
      action: 'start_server',
      serverId: id,
      payload: {},
      timestamp: new Date().toISOString(),
    });
    assert.equal(refused.error?.code, 'SERVER_FENCED');
    // every step in the activity log
    await panel.app.panel.activity.settled();
    const log = await panel.api(owner, 'GET', `/api/servers/${id}/activity?action=server.failover`);
    const steps = (log.body.entries as { action: string }[]).map((e) => e.action);
    for (const step of ['pending', 'restoring', 'started', 'fenced'])
      assert.ok(steps.includes(`server.failover.${step}`), `${step} not in ${steps.join(', ')}`);
  });
});
