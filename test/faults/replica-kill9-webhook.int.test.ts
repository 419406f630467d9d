/**
 * Fault: the replica an Agent is linked to is frozen 1.5 s (SIGSTOP: the Agent's lines of that
 * time wait unread in its socket) and killed with SIGKILL; a load balancer of the test's own
 * (a TCP forwarder) sends the Agent's reconnect to the other replica (two replicas, a private
 * PostgreSQL and NATS). A JSON webhook on `server.console` (an `origin` effect: the replica that
 * publishes a line makes its delivery) must get every line once: the Agent sends again what the
 * dead replica had not acked, and the survivor skips what the dead one had published by the
 * stored console marks (ConsoleMarks); lines the dead one had stored its intent for but perhaps
 * not published come again flagged `resent` (at least once), and the receiver drops a repeat by
 * its number (serverId, epoch, seq), as the route's description tells receivers to. Deliveries
 * are counted by their id (a delivery the dead replica had leased is retried by the survivor
 * after the lease, with the same id).
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { freePort, until } from '../../packages/panel/test/helpers.ts';
import {
  agentEnv,
  Client,
  figures,
  type Proc,
  panelEnv,
  privateNats,
  privatePostgres,
  removeNodeContainers,
  sleep,
  spawnAgent,
  spawnPanel,
  tcpProxy,
  tempDir,
  timeUntil,
} from './lib.ts';

/** a slow "game": one numbered line every 300 ms (the webhook's cap is 20 events a second) */
const SLOW_TICKS =
  'echo ready; (i=0; while true; do i=$((i+1)); echo tick:$i; sleep 0.3; done) & while read c; do echo "got:$c"; done';

describe('fault: a replica kill -9 under a console webhook (two replicas, PostgreSQL, NATS)', () => {
  let pgc: Awaited<ReturnType<typeof privatePostgres>> | undefined;
  let nats: Awaited<ReturnType<typeof privateNats>> | undefined;
  let lb: Awaited<ReturnType<typeof tcpProxy>> | undefined;
  let hook: Server | undefined;
  let db: pg.Client | undefined;
  const replicas: { proc: Proc; url: string; port: number; dir: ReturnType<typeof tempDir> }[] = [];
  let agent: Proc | undefined;
  const agentDir = tempDir('capf-wh-agent-');
  let nodeId = '';
  /** per tick number: the distinct delivery ids that carried it */
  const ticks = new Map<number, Set<string>>();
  const deliveries = new Set<string>();
  let posts = 0;
  let dropped = 0;
  /** numbered lines delivered (`epoch:n`), and flagged re-sends of one of them dropped */
  const numbers = new Set<string>();
  let resentRepeats = 0;

  before(async () => {
    pgc = await privatePostgres('capf-wh');
    nats = await privateNats();
    hook = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        posts++;
        const body = JSON.parse(Buffer.concat(chunks).toString()) as {
          id: string;
          event: string;
          data: { lines?: string[]; count?: number; epoch?: string; seq?: number; resent?: number };
        };
        if (!deliveries.has(body.id)) {
          deliveries.add(body.id);
          if (body.event === 'server.console_dropped') dropped += body.data.count ?? 0;
          const { epoch, seq, resent = 0 } = body.data;
          const lines = body.data.lines ?? [];
          for (const [i, l] of lines.entries()) {
            if (typeof epoch === 'string' && typeof seq === 'number') {
              const key = `${epoch}:${seq - lines.length + 1 + i}`;
              if (i < resent && numbers.has(key)) {
                resentRepeats++;
                continue;
              }
              numbers.add(key);
            }
            const m = /^tick:(\d+)$/.exec(l);
            if (!m) continue;
            const n = Number(m[1]);
            const seen = ticks.get(n) ?? new Set<string>();
            seen.add(body.id);
            ticks.set(n, seen);
          }
        }
        res.writeHead(204).end();
      });
    });
    const hookPort = await freePort();
    await new Promise<void>((r) => hook?.listen(hookPort, '127.0.0.1', r));
    for (let i = 0; i < 2; i++)
      replicas.push({ port: await freePort(), dir: tempDir(`capf-wh-${i}-`) } as never);
    lb = await tcpProxy((replicas[0] as { port: number }).port);
    db = new pg.Client({ connectionString: pgc.url });
    await db.connect();
    (globalThis as { __hookPort?: number }).__hookPort = hookPort;
  });
  after(async () => {
    await agent?.stop().catch(() => undefined);
    await removeNodeContainers(
      new (await import('dockerode')).default({ socketPath: '/var/run/docker.sock' }),
      nodeId,
    );
    for (const r of replicas) await r.proc?.stop().catch(() => undefined);
    await lb?.close();
    hook?.close();
    await db?.end().catch(() => undefined);
    await nats?.stop();
    await pgc?.close();
    for (const r of replicas) r.dir.rm();
    agentDir.rm();
  });

  it('every console line reaches the webhook once across the kill', async () => {
    const p = pgc as NonNullable<typeof pgc>;
    const n = nats as NonNullable<typeof nats>;
    const proxy = lb as NonNullable<typeof lb>;
    const hookPort = (globalThis as { __hookPort?: number }).__hookPort as number;
    const lbUrl = `http://127.0.0.1:${proxy.port}`;
    const shared = {
      DATABASE_URL: p.url,
      PANEL_NATS_URL: n.url,
      PANEL_URL: lbUrl,
      PANEL_OUTBOUND_ALLOW_PRIVATE: '1',
      PANEL_REPLICA_HEARTBEAT_MS: '500',
    };
    const [a, b] = replicas as [(typeof replicas)[0], (typeof replicas)[0]];
    a.proc = await spawnPanel(panelEnv(a.dir.dir, a.port, shared));
    a.url = `http://127.0.0.1:${a.port}`;
    const client = new Client(a.url);
    await client.login();
    const node = await client.node('capf-wh-node');
    nodeId = node.id;
    agent = spawnAgent(agentEnv(lbUrl, node, agentDir.dir, { AGENT_CONTAINER_PREFIX: 'capf-wh-' }));
    await until(() => client.online(node.id), 60_000);
    const serverId = await client.tickServer(node.id, 'wh-1', { startup: SLOW_TICKS });
    const created = await client.api('POST', `/api/servers/${serverId}/webhooks`, {
      name: 'console',
      kind: 'json',
      url: `http://127.0.0.1:${hookPort}/hook`,
      events: ['server.console', 'server.console_dropped'],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    // the second replica after the webhook exists (a replica loads the hooks at its start)
    // the same DATA_DIR: the replicas share its keys (a webhook's sealed URL is opened by any)
    b.proc = await spawnPanel(panelEnv(a.dir.dir, b.port, shared));
    b.url = `http://127.0.0.1:${b.port}`;
    await until(() => ticks.size >= 10, 30_000);

    // frozen, then killed; the balancer sends what comes next to the survivor
    a.proc.child.kill('SIGSTOP');
    await sleep(1500);
    proxy.retarget(b.port);
    await a.proc.kill9();
    const killedAt = Date.now();
    const survivor = new Client(b.url);
    await survivor.login();
    await until(() => survivor.online(node.id), 60_000);
    const reconnectMs = Date.now() - killedAt;
    const before = Math.max(...ticks.keys());
    await until(() => Math.max(...ticks.keys()) >= before + 15, 30_000).catch(async (e) => {
      const q = db as pg.Client;
      const states = await q.query('SELECT state, count(*)::int AS n FROM webhook_deliveries GROUP BY state');
      const marks = await q.query('SELECT * FROM console_marks');
      throw new Error(
        `${(e as Error).message}: ticks up to ${Math.max(...ticks.keys())} (was ${before}); deliveries ${JSON.stringify(states.rows)}; marks ${JSON.stringify(marks.rows)}\nsurvivor:\n${b.proc.out.slice(-3000)}\nagent:\n${agent?.out.slice(-3000)}`,
      );
    });
    // the deliveries the dead replica made and had not sent go after their lease (60 s)
    const settleMs = await timeUntil(async () => {
      const r = await (db as pg.Client).query(
        "SELECT count(*)::int AS n FROM webhook_deliveries WHERE state = 'pending'",
      );
      return r.rows[0].n === 0;
    }, 120_000);
    await agent.stop();
    await sleep(1000);
    const nums = [...ticks.keys()];
    const first = Math.min(...nums);
    const last = Math.max(...nums);
    const printed = last - first + 1;
    let twice = 0;
    for (const ids of ticks.values()) if (ids.size > 1) twice += ids.size - 1;
    const delivered = ticks.size;
    const marks = await (db as pg.Client).query(
      'SELECT epoch, seq, shown FROM console_marks WHERE server_id = $1',
      [serverId],
    );
    figures('replica-kill9-webhook', {
      reconnect_ms: reconnectMs,
      settle_ms: settleMs,
      webhook_posts: posts,
      webhook_deliveries: deliveries.size,
      lines_printed: printed,
      lines_delivered: delivered,
      lines_dropped_reported: dropped,
      lines_unaccounted: printed - delivered - dropped,
      lines_twice: twice,
      lines_resent_repeats_dropped: resentRepeats,
      console_mark_seq: marks.rows[0]?.seq ?? '-',
      console_mark_shown: marks.rows[0]?.shown ?? '-',
    });
    assert.equal(twice, 0, 'no console line reached the webhook twice');
    assert.equal(printed - delivered - dropped, 0, `${printed} printed = ${delivered} + ${dropped} dropped`);
  });
});
