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
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadAgentConfig, type RunningAgent, startAgent } from '@cap/agent';
import { pino } from 'pino';
import WebSocket from 'ws';
import { freePort, type Json, scratchDatabase, until } from '../packages/panel/test/helpers.ts';
import { docker, IMAGE, removeNodeContainers } from './harness.ts';
import {
  call,
  login,
  NATS,
  NGINX,
  type Replica,
  replicaEnv,
  type Session,
  startBroker,
  startReplica,
  stopChild,
} from './replicas-harness.ts';

describe('two Panel replicas behind nginx, on PostgreSQL and NATS', {
  skip:
    !(existsSync(NATS) && existsSync(NGINX)) && !process.env['CAP_REQUIRE_REAL']
      ? 'nats-server or nginx not installed'
      : false,
}, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cap-replicas-'));
  let db: Awaited<ReturnType<typeof scratchDatabase>>;
  let broker: ChildProcess | undefined;
  let nginx: ChildProcess | undefined;
  let proxyUrl = '';
  const replicas: Replica[] = [];
  let agent: RunningAgent | undefined;
  let nodeId = '';
  let serverId = '';
  let holder: Replica;
  let other: Replica;

  let session: Session;
  const api = (r: Replica, method: string, p: string, body?: unknown) => call(session, r, method, p, body);
  const startReplicaHere = (name: string, env: Record<string, string>) => startReplica(dir, name, env);

  before(async () => {
    assert.ok(existsSync(NGINX), `${NGINX} is missing: apt-get install nginx-light`);
    db = await scratchDatabase('postgres', 'cap_replicas');
    const nats = await startBroker();
    broker = nats.proc;
    const proxyPort = await freePort();
    proxyUrl = `http://127.0.0.1:${proxyPort}`;
    const env = replicaEnv({
      dbEnv: db.env,
      dataDir: path.join(dir, 'panel'),
      publicUrl: proxyUrl,
      natsUrl: nats.url,
      prefix: `caprep${process.pid}`,
    });
    // the first one migrates the database and makes the owner; the second finds both
    replicas.push(await startReplicaHere('a', env));
    replicas.push(await startReplicaHere('b', env));

    for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(path.join(dir, d));
    writeFileSync(
      path.join(dir, 'nginx.conf'),
      [
        'daemon off;',
        'worker_processes 1;',
        `pid ${dir}/nginx.pid;`,
        `error_log ${dir}/error.log warn;`,
        'events { worker_connections 256; }',
        'http {',
        `  access_log ${dir}/access.log;`,
        ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((d) => `  ${d}_temp_path ${dir}/${d};`),
        '  map $http_upgrade $connection_upgrade { default upgrade; "" close; }',
        '  upstream panels {',
        ...replicas.map((r) => `    server 127.0.0.1:${r.port} max_fails=1 fail_timeout=5s;`),
        '  }',
        '  server {',
        `    listen 127.0.0.1:${proxyPort};`,
        '    location / {',
        '      proxy_pass http://panels;',
        '      proxy_http_version 1.1;',
        '      proxy_set_header Upgrade $http_upgrade;',
        '      proxy_set_header Connection $connection_upgrade;',
        '      proxy_set_header Host $host;',
        '      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
        '      proxy_connect_timeout 1s;',
        '      proxy_next_upstream error timeout;',
        '      proxy_read_timeout 3600s;',
        '    }',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
    execFileSync(NGINX, ['-t', '-q', '-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'pipe' });
    nginx = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'ignore' });
    await until(async () => {
      try {
        return (await fetch(`${proxyUrl}/api/health`)).ok;
      } catch {
        return false;
      }
    }, 10_000);

    session = await login(proxyUrl);
  });

  after(async () => {
    await agent?.stop().catch(() => undefined);
    if (nodeId) await removeNodeContainers(nodeId);
    for (const r of replicas) await stopChild(r.proc);
    await stopChild(nginx, 'SIGQUIT');
    await stopChild(broker);
    await db?.drop();
    if (process.env['KEEP_REPLICA_LOGS']) console.log(`# logs in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  });

  it('a real Agent links through nginx to one replica; the other sees it online', async () => {
    const node = await api(replicas[0] as Replica, 'POST', '/api/nodes', { name: 'behind-two' });
    assert.equal(node.status, 201, JSON.stringify(node.body));
    nodeId = node.body.node.id;
    agent = await startAgent(
      loadAgentConfig({
        PANEL_URL: proxyUrl,
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

    const ws = new WebSocket(`${other.url.replace(/^http/, 'ws')}/ws/client`, {
      headers: { cookie: session.cookie },
    });
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
