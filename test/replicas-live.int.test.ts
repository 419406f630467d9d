/**
 * Live state shared across Panel replicas (issue 15 item 1): real PostgreSQL, a private
 * nats-server, Panel replicas as child processes and a real Agent (real Docker, busybox) linked
 * to replica A. A server prints a counter line every 50 ms.
 *
 * - Console history: replica B is started after lines were printed (it heard none of them); a
 *   browser opening the console on B gets the history A has, and B's history followed by the
 *   lines B sends after it is the counter without a gap, a repeat or a swap.
 * - Socket counts: a user's sockets (PANEL_CLIENT_SOCKETS_PER_USER) and a server's subscriptions
 *   (CLIENT_MAX_SOCKETS_PER_SERVER) count over both replicas; after `kill -9` of B the sockets it
 *   held stop counting (time printed) and A takes new ones up to the limit, not past it.
 * - Running transfers: a replica that starts fails only the transfers of replicas gone, not those
 *   of A (alive); after `kill -9` of A a survivor fails A's transfer once.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunningAgent } from '@cap/agent';
import { CLIENT_MAX_SOCKETS_PER_SERVER } from '@cap/protocol';
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
  startReplicaAgent,
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

/** Opens a socket and pings: 'ok' when the pong comes, 'refused' when the Panel closes it (1008). */
async function probe(r: Replica, session: Session, keep: WebSocket[]): Promise<'ok' | 'refused'> {
  const ws = new WebSocket(`${r.url.replace(/^http/, 'ws')}/ws/client`, {
    headers: { cookie: session.cookie },
  });
  return new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.once('open', () => ws.send(JSON.stringify({ type: 'ping' })));
    ws.on('message', (d) => {
      if (JSON.parse(d.toString()).type === 'pong') {
        keep.push(ws);
        resolve('ok');
      }
    });
    ws.once('close', (code) => (code === 1008 ? resolve('refused') : reject(new Error(`closed ${code}`))));
  });
}

/** Subscribes an open socket to the server: 'ok' or the error code. */
async function subscribeOn(ws: WebSocket, serverId: string): Promise<string> {
  return new Promise((resolve) => {
    const on = (d: WebSocket.RawData) => {
      const m = JSON.parse(d.toString());
      if (m.serverId !== serverId) return;
      if (m.type === 'subscribed' || m.type === 'error') {
        ws.off('message', on);
        resolve(m.type === 'subscribed' ? 'ok' : m.code);
      }
    };
    ws.on('message', on);
    ws.send(JSON.stringify({ type: 'subscribe', serverId }));
  });
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
  let b: Replica;
  const PER_USER = 40;
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
    env['PANEL_CLIENT_SOCKETS_PER_USER'] = String(PER_USER);
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
    agent = await startReplicaAgent({
      panelUrl: a.url,
      nodeId,
      agentSecret: node.body.agentSecret,
      dataDir: path.join(dir, 'agent'),
    });
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
      b = await startReplica(dir, 'b', env);
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

  it('socket counts are shared: a user and a server get their limit over both replicas; kill -9 of B frees its share', async () => {
    const open: WebSocket[] = [];
    // the first test's sockets were closed: their counts are gone from the shared table
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: db.env['DATABASE_URL'] });
    await client.connect();
    await until(
      async () =>
        Number((await client.query('SELECT coalesce(sum(n), 0) AS n FROM live_counts')).rows[0]?.n) === 0,
      10_000,
    ).finally(() => client.end());
    try {
      // the server's subscriptions: 20 through A and 10 through B fill it; the next is refused on either
      for (let i = 0; i < 20; i++) {
        assert.equal(await probe(a, session, open), 'ok');
        assert.equal(await subscribeOn(open.at(-1) as WebSocket, serverId), 'ok');
      }
      for (let i = 0; i < CLIENT_MAX_SOCKETS_PER_SERVER - 20; i++) {
        assert.equal(await probe(b, session, open), 'ok');
        assert.equal(await subscribeOn(open.at(-1) as WebSocket, serverId), 'ok');
      }
      assert.equal(await probe(a, session, open), 'ok');
      assert.equal(await subscribeOn(open.at(-1) as WebSocket, serverId), 'RATE_LIMITED');
      assert.equal(await probe(b, session, open), 'ok');
      assert.equal(await subscribeOn(open.at(-1) as WebSocket, serverId), 'RATE_LIMITED');
      // the user's sockets: 32 open; 8 more on B fill the 40, the next is refused on both
      while (open.length < PER_USER) assert.equal(await probe(b, session, open), 'ok');
      assert.equal(await probe(a, session, open), 'refused');
      assert.equal(await probe(b, session, open), 'refused');
      const onB = open.filter((ws) => ws.url.includes(`:${b.port}/`)).length;
      console.log(`# ${PER_USER - onB} sockets open on A, ${onB} on B`);

      const killedAt = Date.now();
      b.proc.kill('SIGKILL');
      const extra: WebSocket[] = [];
      while ((await probe(a, session, extra)) !== 'ok') await new Promise((r) => setTimeout(r, 100));
      const freed = Date.now() - killedAt;
      console.log(
        `# B killed -9: a new socket on A after ${freed} ms (TTL 3000 ms, heartbeat 500 ms; load ${(await import('node:os')).loadavg()[0]?.toFixed(2)})`,
      );
      // B's subscriptions stopped counting too: A takes them, up to the limit again
      let taken = 0;
      for (const ws of extra) if ((await subscribeOn(ws, serverId)) === 'ok') taken++;
      assert.equal(taken, 1);
      // and A's own share still counts: it fills to the user's limit, not past it
      while (extra.length < onB) assert.equal(await probe(a, session, extra), 'ok');
      assert.equal(await probe(a, session, extra), 'refused');
      open.push(...extra);
    } finally {
      for (const ws of open) ws.close();
    }
  });

  it('a starting replica fails only transfers of replicas gone; kill -9 of their owner has a survivor fail them once', async () => {
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: db.env['DATABASE_URL'] });
    await client.connect();
    try {
      const owner = await client.query<{ id: string }>('SELECT id FROM panel_replicas WHERE id LIKE $1', [
        `${a.proc.pid}-%`,
      ]);
      const aId = owner.rows[0]?.id;
      assert.ok(aId, 'A has its heartbeat row');
      const target = await api(a, 'POST', '/api/nodes', { name: 'live-target' });
      assert.equal(target.status, 201);
      const now = new Date().toISOString();
      const running = async (id: string, ownerReplica: string) => {
        await client.query(
          `INSERT INTO operations (id, kind, server_id, node_id, stage, created_at, updated_at)
           VALUES ($1, 'transfer', $2, $3, 'archiving', $4, $4)`,
          [`op-${id}`, serverId, nodeId, now],
        );
        await client.query(
          `INSERT INTO transfers (id, server_id, operation_id, source_node_id, target_node_id, state, step,
             cleanup_pending, created_at, owner_replica)
           VALUES ($1, $2, $3, $4, $5, 'running', 'archiving', 0, $6, $7)`,
          [id, serverId, `op-${id}`, nodeId, target.body.node.id, now, ownerReplica],
        );
      };
      const state = async (id: string) =>
        (await client.query<{ state: string }>('SELECT state FROM transfers WHERE id = $1', [id])).rows[0]
          ?.state;
      await running('live-t-a', aId);
      await running('live-t-gone', 'live-replica-gone');
      // C starts (its init runs before it answers health): the dead owner's transfer fails, A's stays
      const c = await startReplica(dir, 'c', env);
      replicas.push(c);
      assert.equal(await state('live-t-gone'), 'failed');
      assert.equal(await state('live-t-a'), 'running', "A is alive: C leaves A's transfer");
      // a few of C's leader rounds later (it may lead now that B is gone), still running
      await new Promise((r) => setTimeout(r, 4000));
      assert.equal(await state('live-t-a'), 'running');

      const killedAt = Date.now();
      a.proc.kill('SIGKILL');
      await until(async () => (await state('live-t-a')) === 'failed', 60_000);
      console.log(
        `# A killed -9: its running transfer failed by a survivor after ${Date.now() - killedAt} ms`,
      );
      // its operation ends right after the row
      const opRow = () =>
        client.query<{ success: number; error_message: string; finished_at: string | null }>(
          'SELECT success, error_message, finished_at FROM operations WHERE id = $1',
          ['op-live-t-a'],
        );
      await until(async () => (await opRow()).rows[0]?.finished_at != null, 10_000);
      const op = await opRow();
      assert.equal(Number(op.rows[0]?.success), 0);
      assert.match(op.rows[0]?.error_message ?? '', /archiving: the Panel restarted/);
      // failed once: one survivor logged it (the log line follows the operation's end)
      const { readFileSync } = await import('node:fs');
      const logged = () =>
        replicas
          .filter((r) => r !== a)
          .flatMap((r) => readFileSync(r.logFile, 'utf8').split('\n'))
          .filter((l) => l.includes('transfer cut by a Panel restart') && l.includes(aId)).length;
      await until(() => logged() > 0, 10_000);
      assert.equal(logged(), 1);
    } finally {
      await client.end();
    }
  });
});
