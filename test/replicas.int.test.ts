/**
 * Two Panel replicas behind nginx (issue 15 item 2): real PostgreSQL, a private nats-server on a
 * free port, two Panel processes (`ctrl-alt-play panel`, child processes, so `kill -9` is real)
 * and Debian's nginx with both as one upstream (WebSocket upgrade). A real Agent (real Docker,
 * the busybox image) links through nginx to one of them, the "holder"; everything a user does
 * goes through the *other* replica's API and /ws/client: create, power, console commands reach
 * the Agent, the browser socket gets the status and console events in order. Then the holder is
 * killed with SIGKILL right after a restart was accepted: the Agent is back on the other replica
 * (time printed), the restart ends once (its operation and the Docker Engine's start events
 * agree), and the status is right.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunningAgent } from '@cap/agent';
import WebSocket from 'ws';
import { ADMIN_EMAIL, ADMIN_PASSWORD, type Json, until } from '../packages/panel/test/helpers.ts';
import { docker, IMAGE, removeNodeContainers } from './harness.ts';
import { startReplicaAgent } from './replicas-harness.ts';
import {
  type StackReplica as Replica,
  type ReplicaStack,
  stackSkip,
  startReplicaStack,
} from './replicas-stack.ts';

describe('two Panel replicas behind nginx, on PostgreSQL and NATS', { skip: stackSkip() }, () => {
  let stack: ReplicaStack;
  let proxyUrl = '';
  let dir = '';
  let replicas: Replica[] = [];
  let agent: RunningAgent | undefined;
  let nodeId = '';
  let serverId = '';
  let holder: Replica;
  let other: Replica;
  let cookie = '';
  let csrf = '';

  const api = async (r: Replica, method: string, p: string, body?: unknown) => {
    const res = await fetch(`${r.url}${p}`, {
      method,
      headers: {
        cookie,
        'x-csrf-token': csrf,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : null) as Json };
  };

  before(async () => {
    stack = await startReplicaStack({ replicas: 2, nginx: true });
    proxyUrl = stack.urls['proxy'] as string;
    dir = stack.dir;
    replicas = stack.replicas;
    const login = await fetch(`${proxyUrl}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }),
    });
    assert.equal(login.status, 200);
    cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    csrf = ((await login.json()) as { csrfToken: string }).csrfToken;
  });

  after(async () => {
    await agent?.stop().catch(() => undefined);
    if (nodeId) await removeNodeContainers(nodeId);
    await stack?.stop();
  });

  it('a real Agent links through nginx to one replica; the other sees it online', async () => {
    const node = await api(replicas[0] as Replica, 'POST', '/api/nodes', { name: 'behind-two' });
    assert.equal(node.status, 201, JSON.stringify(node.body));
    nodeId = node.body.node.id;
    agent = await startReplicaAgent({
      panelUrl: proxyUrl,
      nodeId,
      agentSecret: node.body.agentSecret,
      dataDir: path.join(dir, 'agent'),
    });
    await until(() => replicas.some((r) => r.links(nodeId) > 0) && agent?.panelConnected === true, 30_000);
    const h = replicas.find((r) => r.links(nodeId) > 0);
    assert.ok(h);
    holder = h;
    other = replicas.find((r) => r !== holder) as Replica;
    console.log(`# the Agent linked to replica ${holder.name}; the user works through replica ${other.name}`);
    for (const r of replicas) {
      await until(async () => (await api(r, 'GET', `/api/nodes/${nodeId}`)).body.online === true, 10_000);
    }
    assert.equal(other.links(nodeId), 0, 'the other replica holds no link');
  });

  it('through the other replica: create, start, console in and out, status events in order', async () => {
    const created = await api(other, 'POST', '/api/servers?wait=true', {
      name: 'replicated busybox',
      nodeId,
      image: IMAGE,
      startup: 'echo "hello {{GREETING}}"; echo ready; while read l; do echo "got:$l"; done',
      environment: { GREETING: 'replicas' },
      limits: { memory: '64m', cpu: '0.5' },
      done: 'ready',
      stop: '^C',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    serverId = created.body.id;

    const ws = new WebSocket(`${other.url.replace(/^http/, 'ws')}/ws/client`, { headers: { cookie } });
    const frames: Json[] = [];
    ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    try {
      ws.send(JSON.stringify({ type: 'subscribe', serverId }));
      await until(() => frames.some((m) => m.type === 'subscribed' && m.serverId === serverId), 10_000);
      const power = await api(other, 'POST', `/api/servers/${serverId}/power`, { action: 'start' });
      assert.equal(power.status, 202, JSON.stringify(power.body));
      const has = (p: (m: Json) => boolean) => frames.some(p);
      const line = (t: string) => (m: Json) =>
        m.type === 'console' && m.lines.some((l: string) => l.includes(t));
      await until(() => has((m) => m.type === 'status' && m.status === 'running'), 30_000);
      await until(() => has(line('hello replicas')), 10_000);
      // in order, as the Agent sent them: starting before running
      const statuses = frames.filter((m) => m.type === 'status').map((m) => m.status);
      assert.ok(statuses.indexOf('starting') < statuses.indexOf('running'), statuses.join(','));
      // a console command from the other replica's socket and REST both reach the game
      ws.send(JSON.stringify({ type: 'send_command', serverId, command: 'via-socket' }));
      await until(() => has(line('got:via-socket')), 10_000);
      const cmd = await api(other, 'POST', `/api/servers/${serverId}/command`, { command: 'via-rest' });
      assert.equal(cmd.status, 202, JSON.stringify(cmd.body));
      await until(() => has(line('got:via-rest')), 10_000);
      const consoleLines = frames.filter((m) => m.type === 'console').flatMap((m) => m.lines as string[]);
      const order = ['hello replicas', 'ready', 'got:via-socket', 'got:via-rest'].map((t) =>
        consoleLines.findIndex((l) => l.includes(t)),
      );
      assert.deepEqual(
        [...order].sort((x, y) => x - y),
        order,
        `console in order: ${consoleLines.join(' | ')}`,
      );
      assert.equal((await api(other, 'GET', `/api/servers/${serverId}`)).body.status, 'running');
    } finally {
      ws.close();
    }
  });

  it('kill -9 of the holder right after a restart was accepted: the Agent is back on the other, the restart ends once', async () => {
    // a link that held 10 s starts the Agent's backoff over (as in production after a quiet while)
    await new Promise((r) => setTimeout(r, 10_500));
    const [container] = await docker.listContainers({
      filters: { label: [`ctrl-alt-play.server=${serverId}`] },
    });
    assert.ok(container, 'the server container runs');
    const since = Math.floor(Date.now() / 1000);
    const linksBefore = other.links(nodeId);
    const restart = await api(other, 'POST', `/api/servers/${serverId}/power`, { action: 'restart' });
    assert.equal(restart.status, 202, JSON.stringify(restart.body));
    const opId = restart.body.operationId as string;
    const killedAt = Date.now();
    holder.proc.kill('SIGKILL');
    await until(() => other.links(nodeId) > linksBefore, 30_000);
    const back = Date.now() - killedAt;
    await until(() => agent?.panelConnected === true, 10_000);
    console.log(`# holder killed -9: the Agent linked to replica ${other.name} after ${back} ms`);
    assert.ok(back <= 5000, `the Agent is back within 5 s (${back} ms)`);

    // the restart's end reaches the shared row once (the Agent resends it after its hello)
    await until(async () => {
      const ops = (await api(other, 'GET', `/api/servers/${serverId}/operations`)).body as Json[];
      return ops.some((o) => o.id === opId && o.finishedAt !== null);
    }, 60_000);
    const ops = (await api(other, 'GET', `/api/servers/${serverId}/operations`)).body as Json[];
    const op = ops.find((o) => o.id === opId);
    assert.equal(op?.success, true, JSON.stringify(op));
    assert.equal(ops.filter((o) => o.kind === 'restart').length, 1, 'one restart operation');
    await until(
      async () => (await api(other, 'GET', `/api/servers/${serverId}`)).body.status === 'running',
      30_000,
    );
    // the Engine started the container once since the restart (not twice, not never)
    const events = await new Promise<Json[]>((resolve, reject) => {
      docker.getEvents(
        {
          since,
          until: Math.floor(Date.now() / 1000) + 1,
          filters: { type: ['container'], event: ['start'], label: [`ctrl-alt-play.server=${serverId}`] },
        },
        (err, stream) => {
          if (err || !stream) return reject(err);
          let text = '';
          stream.on('data', (d: Buffer) => (text += d.toString()));
          stream.on('end', () =>
            resolve(
              text
                .split('\n')
                .filter(Boolean)
                .map((l) => JSON.parse(l)),
            ),
          );
          stream.on('error', reject);
        },
      );
    });
    assert.equal(
      events.length,
      1,
      `one start since the restart: ${JSON.stringify(events.map((e) => e.Action))}`,
    );
    const info = await docker.getContainer(events[0]?.id ?? events[0]?.Actor?.ID).inspect();
    assert.equal(info.State.Running, true);
    // the node is online on the survivor, and a command still reaches the game
    assert.equal((await api(other, 'GET', `/api/nodes/${nodeId}`)).body.online, true);
    const cmd = await api(other, 'POST', `/api/servers/${serverId}/command`, { command: 'after-kill' });
    assert.equal(cmd.status, 202, JSON.stringify(cmd.body));
  });
});
