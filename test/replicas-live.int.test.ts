/**
 * Live state shared across Panel replicas (issue 15 item 1): real PostgreSQL, a private
 * nats-server, Panel replicas as child processes and a real Agent (real Docker, busybox) linked
 * to replica A. A server prints a counter line every 50 ms.
 *
 * - Console history: replica B is started after lines were printed (it heard none of them); a
 *   browser opening the console on B gets the history A has, and B's history followed by the
 *   lines B sends after it is the counter without a gap, a repeat or a swap.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadAgentConfig, type RunningAgent, startAgent } from '@cap/agent';
import { pino } from 'pino';
import WebSocket from 'ws';
import { freePort, type Json, scratchDatabase, until } from '../packages/panel/test/helpers.ts';
import { IMAGE, removeNodeContainers } from './harness.ts';
import {
  call,
  login,
  NATS,
  type Replica,
  replicaEnv,
  type Session,
  startBroker,
  startReplica,
  stopChild,
} from './replicas-harness.ts';

/** A browser socket on one replica that keeps every frame. */
async function browser(r: Replica, session: Session): Promise<{ ws: WebSocket; frames: Json[] }> {
  const ws = new WebSocket(`${r.url.replace(/^http/, 'ws')}/ws/client`, {
    headers: { cookie: session.cookie },
  });
  const frames: Json[] = [];
  ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, frames };
}

/** The counter values in console lines `n=<k>`, in the order given. */
function counters(lines: string[]): number[] {
  return lines.flatMap((l) => {
    const m = /^n=(\d+)$/.exec(l.trim());
    return m ? [Number(m[1])] : [];
  });
}

describe('live state across Panel replicas (console history, socket counts)', {
  skip: !existsSync(NATS) && !process.env['CAP_REQUIRE_REAL'] ? 'nats-server not installed' : false,
}, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cap-live-'));
  let db: Awaited<ReturnType<typeof scratchDatabase>>;
  let broker: ChildProcess | undefined;
  const replicas: Replica[] = [];
  let env: Record<string, string>;
  let a: Replica;
  let agent: RunningAgent | undefined;
  let nodeId = '';
  let serverId = '';
  let session: Session;
  const api = (r: Replica, method: string, p: string, body?: unknown) => call(session, r, method, p, body);

  before(async () => {
    db = await scratchDatabase('postgres', 'cap_live');
    const nats = await startBroker();
    broker = nats.proc;
    const aPort = await freePort();
    env = replicaEnv({
      dbEnv: db.env,
      dataDir: path.join(dir, 'panel'),
      // the Agent links to A (what the Panel tells it to use, too)
      publicUrl: `http://127.0.0.1:${aPort}`,
      natsUrl: nats.url,
      prefix: `caplive${process.pid}`,
    });
    a = await startReplica(dir, 'a', env, aPort);
    replicas.push(a);
    session = await login(a.url);
  });

  after(async () => {
    await agent?.stop().catch(() => undefined);
    if (nodeId) await removeNodeContainers(nodeId);
    for (const r of replicas) await stopChild(r.proc);
    await stopChild(broker);
    await db?.drop();
    if (process.env['KEEP_REPLICA_LOGS']) console.log(`# logs in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  });

  it('a replica started after the lines were printed gives a browser the same history, then the next lines, none lost or twice', async () => {
    const node = await api(a, 'POST', '/api/nodes', { name: 'live-node' });
    assert.equal(node.status, 201, JSON.stringify(node.body));
    nodeId = node.body.node.id;
    agent = await startAgent(
      loadAgentConfig({
        PANEL_URL: a.url,
        NODE_ID: nodeId,
        AGENT_SECRET: node.body.agentSecret,
        AGENT_DATA_DIR: path.join(dir, 'agent'),
        AGENT_HTTP_PORT: '0',
        AGENT_HTTP_HOST: '127.0.0.1',
        AGENT_FIREWALL: 'false',
        AGENT_STATS_INTERVAL_MS: '500',
        LOG_LEVEL: 'silent',
      }),
      { logger: pino({ level: 'silent' }) },
    );
    await until(() => a.links(nodeId) > 0 && agent?.panelConnected === true, 30_000);
    const created = await api(a, 'POST', '/api/servers?wait=true', {
      name: 'live counter',
      nodeId,
      image: IMAGE,
      startup: 'echo ready; i=0; while true; do i=$((i+1)); echo "n=$i"; sleep 0.05; done',
      limits: { memory: '64m', cpu: '0.5' },
      done: 'ready',
      stop: '^C',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    serverId = created.body.id;
    const onA = await browser(a, session);
    try {
      onA.ws.send(JSON.stringify({ type: 'subscribe', serverId }));
      await until(() => onA.frames.some((m) => m.type === 'subscribed'), 10_000);
      const power = await api(a, 'POST', `/api/servers/${serverId}/power`, { action: 'start' });
      assert.equal(power.status, 202, JSON.stringify(power.body));
      const seenOnA = () =>
        counters(onA.frames.filter((m) => m.type === 'console').flatMap((m) => m.lines as string[]));
      await until(() => seenOnA().length >= 20, 30_000);

      // B starts now: every line so far was printed before it could hear it
      const printedBefore = Math.max(...seenOnA());
      const b = await startReplica(dir, 'b', env);
      replicas.push(b);
      assert.equal(b.links(nodeId), 0, 'B holds no link');
      await until(async () => (await api(b, 'GET', `/api/nodes/${nodeId}`)).body.online === true, 10_000);

      const onB = await browser(b, session);
      try {
        const asked = Date.now();
        onB.ws.send(JSON.stringify({ type: 'subscribe', serverId }));
        await until(() => onB.frames.some((m) => m.type === 'subscribed'), 10_000);
        console.log(`# history on B (started later, cold): subscribed after ${Date.now() - asked} ms`);
        const subscribed = onB.frames.find((m) => m.type === 'subscribed') as Json;
        const history = counters(subscribed.history as string[]);
        assert.ok(
          history.includes(printedBefore),
          `B's history has n=${printedBefore}, printed before B started: ${history.join(',')}`,
        );
        // then 40 more lines reach B's socket
        const after = () =>
          counters(
            onB.frames
              .slice(onB.frames.indexOf(subscribed) + 1)
              .filter((m) => m.type === 'console')
              .flatMap((m) => m.lines as string[]),
          );
        await until(() => after().length >= 40, 30_000);
        const all = [...history, ...after()];
        const gaps = all.flatMap((n, i) => (i > 0 && n !== (all[i - 1] as number) + 1 ? [i] : []));
        assert.deepEqual(gaps, [], `B's history then its lines, contiguous: ${all.join(',')}`);
        assert.equal(
          onB.frames.filter((m) => m.type === 'console_dropped').length,
          0,
          'nothing reported dropped',
        );

        // A's own history, asked now, is a window of the same counter (B had A's ring)
        const again = await browser(a, session);
        try {
          again.ws.send(JSON.stringify({ type: 'subscribe', serverId }));
          await until(() => again.frames.some((m) => m.type === 'subscribed'), 10_000);
          const aHistory = counters(
            (again.frames.find((m) => m.type === 'subscribed') as Json).history as string[],
          );
          assert.ok(
            all.includes(aHistory[0] as number),
            `A's ring starts within what B gave: A ${aHistory[0]}, B ${all[0]}..${all.at(-1)}`,
          );
        } finally {
          again.ws.close();
        }
      } finally {
        onB.ws.close();
      }
    } finally {
      onA.ws.close();
    }
  });
});
