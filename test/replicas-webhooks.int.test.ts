/**
 * Webhooks across Panel replicas: real PostgreSQL, a private nats-server, replicas A and B as
 * child processes, a real Agent (real Docker, busybox) linked to B, and a loopback HTTP receiver
 * (PANEL_OUTBOUND_ALLOW_PRIVATE=1 on both, so the webhook SSRF guard lets loopback through here
 * only). A server's events arise on B (its Agent's replica), which turns them into deliveries;
 * every change to a hook is made through A. B must follow each change within a second:
 *
 * - a hook created through A gets B's `server.stats` events (the Agent sends them every 250 ms);
 * - its event filter changed through A to `server.console`: B stops sending stats, sends console;
 * - disabled through A: nothing more; enabled again: console again; deleted: nothing more.
 *
 * "Nothing more" is read on the receiver: no delivery of that hook and kind arrives after the
 * change plus one second (deliveries leave B as the event happens, a loopback POST takes ms).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunningAgent } from '@cap/agent';
import { freePort, scratchDatabase, until } from '../packages/panel/test/helpers.ts';
import { type Receiver, startReceiver } from '../packages/panel/test/webhook-receiver.ts';
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
  startReplicaAgent,
  stopChild,
} from './replicas-harness.ts';

/** how long B may take to follow a change made through A */
const FOLLOW_MS = 1000;
/** how long the test watches for deliveries that must not come */
const WATCH_MS = 2500;

describe('webhooks across Panel replicas: changes through A, deliveries from B', {
  skip: !existsSync(NATS) && !process.env['CAP_REQUIRE_REAL'] ? 'nats-server not installed' : false,
}, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cap-hooks-'));
  let db: Awaited<ReturnType<typeof scratchDatabase>>;
  let broker: ChildProcess | undefined;
  const replicas: Replica[] = [];
  let a: Replica;
  let b: Replica;
  let rx: Receiver;
  let agent: RunningAgent | undefined;
  let nodeId = '';
  let serverId = '';
  let session: Session;
  /** when each request reached the receiver (ms), by index in rx.got */
  const arrived: number[] = [];

  before(async () => {
    rx = await startReceiver();
    db = await scratchDatabase('postgres', 'cap_hooks');
    const nats = await startBroker();
    broker = nats.proc;
    const bPort = await freePort();
    const env = {
      ...replicaEnv({
        dbEnv: db.env,
        dataDir: path.join(dir, 'panel'),
        // the Agent links to B
        publicUrl: `http://127.0.0.1:${bPort}`,
        natsUrl: nats.url,
        prefix: `caphooks${process.pid}`,
      }),
      PANEL_OUTBOUND_ALLOW_PRIVATE: '1',
    };
    a = await startReplica(dir, 'a', env);
    replicas.push(a);
    b = await startReplica(dir, 'b', env, bPort);
    replicas.push(b);
    session = await login(a.url);
  });

  after(async () => {
    await agent?.stop().catch(() => undefined);
    if (nodeId) await removeNodeContainers(nodeId);
    for (const r of replicas) await stopChild(r.proc);
    await stopChild(broker);
    await db?.drop();
    await rx?.close();
    if (process.env['KEEP_REPLICA_LOGS']) console.log(`# logs in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  });

  const api = (r: Replica, method: string, p: string, body?: unknown) => call(session, r, method, p, body);
  /** stamps every request the receiver got so far with the time it is first seen */
  const stamp = () => {
    while (arrived.length < rx.got.length) arrived.push(Date.now());
  };
  /** the deliveries of `hookId` of `event` that arrived after `since` */
  const got = (hookId: string, event: string, since: number) => {
    stamp();
    return rx.got.filter(
      (g, i) => g.json?.webhookId === hookId && g.json?.event === event && (arrived[i] as number) > since,
    );
  };
  const watch = async (ms: number) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      stamp();
      await new Promise((r) => setTimeout(r, 5));
    }
  };

  it('a running server on an Agent linked to B', { timeout: 120_000 }, async () => {
    const node = await api(a, 'POST', '/api/nodes', { name: 'hooks-node' });
    assert.equal(node.status, 201, JSON.stringify(node.body));
    nodeId = node.body.node.id;
    agent = await startReplicaAgent({
      panelUrl: b.url,
      nodeId,
      agentSecret: node.body.agentSecret,
      dataDir: path.join(dir, 'agent'),
      statsIntervalMs: 250,
    });
    await until(() => b.links(nodeId) > 0 && agent?.panelConnected === true, 30_000);
    // A learns of B's link from B's claim on the bus: what a user of A sees before creating
    await until(async () => (await api(a, 'GET', `/api/nodes/${nodeId}`)).body.online === true, 10_000);
    assert.equal(a.links(nodeId), 0, 'A holds no link');
    const created = await api(a, 'POST', '/api/servers?wait=true', {
      name: 'hooked',
      nodeId,
      image: IMAGE,
      startup: 'echo ready; i=0; while true; do i=$((i+1)); echo "n=$i"; sleep 0.2; done',
      limits: { memory: '64m', cpu: '0.5' },
      done: 'ready',
      stop: '^C',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    serverId = created.body.id;
    const power = await api(a, 'POST', `/api/servers/${serverId}/power`, { action: 'start' });
    assert.equal(power.status, 202, JSON.stringify(power.body));
    await until(
      async () => (await api(a, 'GET', `/api/servers/${serverId}`)).body.status === 'running',
      30_000,
    );
  });

  it('created, edited, disabled, enabled and deleted through A: B follows each within a second', {
    timeout: 120_000,
  }, async () => {
    assert.ok(serverId, 'the server of the first step');
    const made = Date.now();
    const hook = await api(a, 'POST', `/api/servers/${serverId}/webhooks`, {
      name: 'across',
      kind: 'json',
      url: `${rx.url}/hook`,
      events: ['server.stats'],
    });
    assert.equal(hook.status, 201, JSON.stringify(hook.body));
    const id = hook.body.id as string;
    await until(() => got(id, 'server.stats', made).length > 0, 10_000).catch(() => undefined);
    assert.ok(
      got(id, 'server.stats', made).length > 0,
      'B delivers the server.stats of a hook made through A',
    );
    // the Agent sends stats every 250 ms: the first one after B knew the hook
    console.log(`# created through A → first delivery from B after ${Date.now() - made} ms`);

    // the filter: stats → console
    const edited = Date.now();
    const patched = await api(a, 'PATCH', `/api/servers/${serverId}/webhooks/${id}`, {
      events: ['server.console'],
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    await watch(FOLLOW_MS + WATCH_MS);
    assert.deepEqual(
      got(id, 'server.stats', edited + FOLLOW_MS).map((g) => g.json.event),
      [],
      'no server.stats from B a second after the filter dropped it',
    );
    assert.ok(got(id, 'server.console', edited).length > 0, 'B delivers server.console once asked for');

    // disabled
    const disabled = Date.now();
    assert.equal(
      (await api(a, 'PATCH', `/api/servers/${serverId}/webhooks/${id}`, { enabled: false })).status,
      200,
    );
    await watch(FOLLOW_MS + WATCH_MS);
    assert.equal(
      got(id, 'server.console', disabled + FOLLOW_MS).length,
      0,
      'nothing a second after disabling',
    );

    // enabled again (what "nothing" above means: B would send if it knew)
    const enabled = Date.now();
    assert.equal(
      (await api(a, 'PATCH', `/api/servers/${serverId}/webhooks/${id}`, { enabled: true })).status,
      200,
    );
    await until(() => got(id, 'server.console', enabled).length > 0, 10_000).catch(() => undefined);
    assert.ok(got(id, 'server.console', enabled).length > 0, 'B delivers again once enabled through A');
    console.log(`# enabled through A → first delivery from B after ${Date.now() - enabled} ms`);

    // deleted
    const deleted = Date.now();
    assert.equal((await api(a, 'DELETE', `/api/servers/${serverId}/webhooks/${id}`)).status, 204);
    await watch(FOLLOW_MS + WATCH_MS);
    assert.equal(got(id, 'server.console', deleted + FOLLOW_MS).length, 0, 'nothing a second after deleting');
  });
});
