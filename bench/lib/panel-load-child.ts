/**
 * The child side of bench/lib/panel-load.ts, by CAP_BENCH_ROLE:
 * - `panel`: a Panel (`startPanel` with this process's env); says `{ ready: url }`, stops on `{ cmd: 'stop' }`;
 * - `agents`: N simulated Agents registered through the real endpoint, each with a socket that
 *   answers the Panel's pings and commands; on `load`, every Agent once a second (staggered over
 *   the second) sends one resource_update and one console line per server (`t=<ms epoch>` at the
 *   end, for the subscribers' latency).
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { okResponse, PROTOCOL_VERSION, parseAgentInbound } from '@cap/protocol';
import WebSocket from 'ws';
import type { LoadResult, Scenario } from './panel-load.ts';
import { pct, pool } from './panel-load.ts';
import type { SeededNode } from './seed.ts';

interface SimAgent {
  id: string;
  ws: WebSocket;
  servers: string[];
  /** the replica it registered with (and is linked to) */
  via: string;
  /** its console numbering (LinkSeq), as a real Agent's panel-link/relay.ts: this process's run */
  epoch: string;
  /** serverId → the number of its last console line sent */
  seqs: Map<string, number>;
  /**
   * the numbered console messages not acked yet (as the Agent's link keeps them until a ping's
   * `consoleAcks` covers them: panel-link/link.ts); serverId → seqs in order
   */
  unacked: Map<string, number[]>;
}

/** what the Panel's pings acked (consoleAcks), over the whole run */
const ackStats = { pings: 0, acks: 0, linesAcked: 0 };

/** A ping's consoleAcks: the numbered lines the Panel stored as published are forgotten (link.ts #acked). */
function acked(a: SimAgent, acks: readonly { serverId: string; epoch: string; seq: number }[]): void {
  for (const ack of acks) {
    ackStats.acks += 1;
    const kept = a.unacked.get(ack.serverId);
    if (!kept || ack.epoch !== a.epoch) continue;
    let n = 0;
    while (n < kept.length && (kept[n] as number) <= ack.seq) n++;
    ackStats.linesAcked += n;
    kept.splice(0, n);
  }
}

/**
 * The steady traffic's fast path (`load` with `fast`): a tick's frames built straight into one
 * buffer and written to the Agent's TCP socket in one write, as ws would frame them (FIN + text,
 * client-masked, with a fixed non-zero mask key so the Panel unmasks as it does for a real Agent;
 * ws skips the unmask for an all-zero key). The JSON text is the old path's JSON.stringify of the
 * same objects, with only the changing fields (timestamp, cpu, counters, seq, t=) put in; the first
 * tick of every Agent decodes its frames again and compares them with JSON.stringify (a mismatch
 * throws: the Panel must see what a real Agent sends).
 */
const MASK = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);

/** a client frame's header length for a payload of n bytes (FIN+opcode, length, mask key) */
const headerLength = (n: number) => (n < 126 ? 6 : n < 65536 ? 8 : 14);

/** one masked text frame of `text` (ASCII only) at `off` in `buf`; returns the end */
function writeFrame(buf: Buffer, off: number, text: string): number {
  const n = text.length;
  buf[off] = 0x81; // FIN, text
  let p = off + 2;
  if (n < 126) buf[off + 1] = 0x80 | n;
  else if (n < 65536) {
    buf[off + 1] = 0x80 | 126;
    buf.writeUInt16BE(n, p);
    p += 2;
  } else {
    buf[off + 1] = 0x80 | 127;
    buf.writeUInt32BE(0, p);
    buf.writeUInt32BE(n, p + 4);
    p += 8;
  }
  buf[p] = MASK[0] as number;
  buf[p + 1] = MASK[1] as number;
  buf[p + 2] = MASK[2] as number;
  buf[p + 3] = MASK[3] as number;
  p += 4;
  buf.write(text, p, n, 'latin1');
  for (let i = 0; i < n; i++) buf[p + i] = (buf[p + i] as number) ^ (MASK[i & 3] as number);
  return p + n;
}

/** the frames of `buf` decoded again (the self-check): their texts */
function readFrames(buf: Buffer): string[] {
  const out: string[] = [];
  let off = 0;
  while (off < buf.length) {
    if (buf[off] !== 0x81 || ((buf[off + 1] as number) & 0x80) === 0)
      throw new Error('fast frame: bad header');
    let n = (buf[off + 1] as number) & 0x7f;
    let p = off + 2;
    if (n === 126) {
      n = buf.readUInt16BE(p);
      p += 2;
    } else if (n === 127) {
      n = buf.readUInt32BE(p + 4);
      p += 8;
    }
    const key = buf.subarray(p, p + 4);
    p += 4;
    const payload = Buffer.from(buf.subarray(p, p + n));
    for (let i = 0; i < n; i++) payload[i] = (payload[i] as number) ^ (key[i & 3] as number);
    out.push(payload.toString('utf8'));
    off = p + n;
  }
  return out;
}

/** the steady messages' JSON, as JSON.stringify writes them (key order of the old path's objects) */
function resourceUpdateText(q: string, ts: string, cpu: number, net: number): string {
  return `{"type":"event","timestamp":"${ts}","event":"resource_update","data":{"serverId":${q},"cpu":${cpu},"memory":{"used":"100m","percentage":10,"usedBytes":104857600,"limitBytes":1073741824},"network":{"rx":${net},"tx":${net}},"disk":{"used":"1g","percentage":1,"usedBytes":1073741824,"limitBytes":0},"uptime":10}}`;
}

function serverLogText(q: string, ts: string, message: string, seq: string): string {
  return `{"type":"event","timestamp":"${ts}","event":"server_log","data":{"serverId":${q},"message":"${message}"${seq}}}`;
}

/** printable ASCII, nothing JSON escapes: the templated strings go in as they are */
const PLAIN = /^[\x20-\x21\x23-\x5b\x5d-\x7e]*$/;

const agents: SimAgent[] = [];

async function post(url: string, body: unknown, headers: Record<string, string>) {
  const r = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body) });
  const j = (await r.json()) as Record<string, unknown>;
  if (r.status >= 300) throw new Error(`${url}: ${r.status} ${JSON.stringify(j)}`);
  return j;
}

/** Register node `name` with its secret through `via`, open its socket, answer what the Panel asks. */
async function link(name: string, secret: string, via: string, servers: number): Promise<SimAgent> {
  const reg = (await post(
    `${via}/api/agents/register`,
    {
      name,
      hostname: '127.0.0.1',
      port: 0,
      capabilities: {
        maxMemory: '8g',
        maxCpuCores: 4,
        dockerVersion: 'bench',
        supportedArchitectures: ['amd64'],
      },
      protocolVersion: PROTOCOL_VERSION,
    },
    { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
  )) as { agent: { id: string; token: string; websocketUrl: string } };
  const ws = new WebSocket(reg.agent.websocketUrl, {
    headers: {
      authorization: `Bearer ${reg.agent.token}`,
      'x-agent-id': reg.agent.id,
      'x-protocol-version': String(PROTOCOL_VERSION),
    },
    perMessageDeflate: false,
  });
  const a: SimAgent = {
    id: '',
    ws,
    servers: [],
    via,
    epoch: randomUUID(),
    seqs: new Map(),
    unacked: new Map(),
  };
  ws.on('message', (d) => {
    const p = parseAgentInbound(d as Buffer);
    if (!p.ok) return;
    if (p.message.type === 'ping') {
      ackStats.pings += 1;
      if (p.message.consoleAcks) acked(a, p.message.consoleAcks);
      ws.send(
        JSON.stringify({
          id: p.message.id,
          type: 'pong',
          timestamp: new Date().toISOString(),
          data: {
            agentStatus: 'healthy',
            activeServers: servers,
            systemLoad: { cpu: 1, memory: 1, disk: 1 },
          },
        }),
      );
    } else if (p.message.action === 'system_info') {
      ws.send(
        JSON.stringify({
          ...okResponse(p.message.id, {
            hostname: name,
            os: { id: 'debian', name: 'Debian', version: '12', prettyName: 'Debian 12' },
            kernel: 'bench',
            arch: 'x64',
            dockerVersion: 'bench',
            cpus: 4,
            memory: { total: 1024 ** 4, free: 1024 ** 4 },
            disk: { path: '/', total: 1, free: 1 },
            agentVersion: 'bench',
            protocolVersion: PROTOCOL_VERSION,
          }),
        }),
      );
    } else if (p.message.action === 'backup_list') {
      // what a real Agent holds for a server without backups (the Panel reconciles on each link)
      ws.send(JSON.stringify(okResponse(p.message.id, { backups: [], total: 0, offset: 0, limit: 100 })));
    } else {
      ws.send(JSON.stringify(okResponse(p.message.id, {})));
    }
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  a.id = reg.agent.id;
  return a;
}

/** REST setup: nodes, registrations and servers through the real endpoints. */
async function setupRest(o: {
  url: string;
  urls?: string[];
  cookie: string;
  csrfToken: string;
  sc: Scenario;
}) {
  const { url, sc } = o;
  const h = { cookie: o.cookie, 'x-csrf-token': o.csrfToken, 'content-type': 'application/json' };
  await pool(
    Array.from({ length: sc.agents }, (_, i) => i),
    32,
    async (i) => {
      const node = (await post(`${url}/api/nodes`, { name: `bench-${i}` }, h)) as {
        node: { id: string };
        agentSecret: string;
      };
      const via = o.urls?.length ? (o.urls[i % o.urls.length] as string) : url;
      agents[i] = await link(`bench-${i}`, node.agentSecret, via, sc.servers);
    },
  );
  // M servers per agent, created through the REST endpoint (and the agent round-trip) on the
  // replica the agent is linked to
  const jobs = agents.flatMap((a) => Array.from({ length: sc.servers }, (_, j) => ({ a, j })));
  await pool(jobs, 64, async ({ a, j }) => {
    // 202 { operationId, server } (201 { ...server } with ?wait=true)
    const s = (await post(`${a.via}/api/servers`, { name: `s${j}`, nodeId: a.id, image: 'bench' }, h)) as {
      id?: string;
      server?: { id: string };
    };
    const id = s.server?.id ?? s.id;
    if (!id) throw new Error(`create server: no id in ${JSON.stringify(s)}`);
    a.servers.push(id);
  });
  return agents.flatMap((a) => a.servers);
}

/** Seeded nodes: register and link each (through urls[i % n]); their servers are already stored. */
async function connectSeeded(o: { urls: string[]; nodes: SeededNode[]; servers: number }) {
  await pool(o.nodes, 32, async (n, i) => {
    const a = await link(n.name, n.agentSecret, o.urls[i % o.urls.length] as string, o.servers);
    a.servers = n.servers;
    agents[i] = a;
  });
  return agents.flatMap((a) => a.servers);
}

/** Every server reported running, as an Agent does after a start (its stats and console come from running games). */
async function markRunning(): Promise<{ sent: number }> {
  let sent = 0;
  for (const a of agents) {
    for (const serverId of a.servers) {
      a.ws.send(
        JSON.stringify({
          type: 'event',
          timestamp: new Date().toISOString(),
          event: 'server_status_changed',
          data: { serverId, previousStatus: 'offline', currentStatus: 'running' },
        }),
      );
      sent += 1;
    }
    // a few agents at a time: the Panel writes each status
    if (sent % 400 === 0) await new Promise((r) => setTimeout(r, 20));
  }
  return { sent };
}

/** Every agent, once a second (staggered over the second), one resource_update + one log line per server. */
async function load(seconds: number, numbered: boolean, fast: boolean): Promise<LoadResult> {
  // the generator's own event loop: how late it ran anything (its sends included), not only its ticks
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const cpu0 = process.cpuUsage();
  const timers: NodeJS.Timeout[] = [];
  let sent = 0;
  // how late each tick fires against its 1 Hz schedule: when the generator itself is saturated
  const lags: number[] = [];
  const due = new Map<SimAgent, number>();
  const checked = new Set<SimAgent>();
  const tick = (a: SimAgent) => {
    const now = performance.now();
    const d = due.get(a) ?? now;
    lags.push(now - d);
    due.set(a, d + 1000);
    const ts = new Date().toISOString();
    const texts: string[] = [];
    const objects: unknown[] = [];
    const check = fast && !checked.has(a);
    for (const serverId of a.servers) {
      const cpu = Math.random() * 100;
      const net = sent;
      // numbered as a real Agent numbers them (panel-link/relay.ts), unless --unnumbered: the
      // Panel then stores each server's console mark before it publishes (console-marks.ts)
      let seq: { seq: number; epoch: string } | undefined;
      if (numbered) {
        const n = (a.seqs.get(serverId) ?? 0) + 1;
        a.seqs.set(serverId, n);
        seq = { seq: n, epoch: a.epoch };
        const kept = a.unacked.get(serverId);
        if (kept) kept.push(n);
        else a.unacked.set(serverId, [n]);
      }
      const message = `[bench] tick t=${Date.now()}`;
      if (!fast || check) {
        objects.push(
          {
            type: 'event',
            timestamp: ts,
            event: 'resource_update',
            data: {
              serverId,
              cpu,
              memory: { used: '100m', percentage: 10, usedBytes: 100 * 1024 * 1024, limitBytes: 1024 ** 3 },
              network: { rx: net, tx: net },
              disk: { used: '1g', percentage: 1, usedBytes: 1024 ** 3, limitBytes: 0 },
              uptime: 10,
            },
          },
          { type: 'event', timestamp: ts, event: 'server_log', data: { serverId, message, ...seq } },
        );
      }
      if (fast) {
        const q = `"${serverId}"`;
        texts.push(
          resourceUpdateText(q, ts, cpu, net),
          serverLogText(q, ts, message, seq ? `,"seq":${seq.seq},"epoch":"${seq.epoch}"` : ''),
        );
      }
      sent += 2;
    }
    if (!fast) {
      for (const o of objects) a.ws.send(JSON.stringify(o));
      return;
    }
    // the tick's frames in one buffer, one write to the socket (the kernel sends them together)
    let size = 0;
    for (const t of texts) size += headerLength(t.length) + t.length;
    const buf = Buffer.allocUnsafe(size);
    let off = 0;
    for (const t of texts) off = writeFrame(buf, off, t);
    if (check) {
      checked.add(a);
      for (const id of [...a.servers, a.epoch])
        if (!PLAIN.test(id)) throw new Error(`fast path: ${id} is not plain ASCII`);
      const back = readFrames(buf);
      const want = objects.map((o) => JSON.stringify(o));
      if (back.length !== want.length || back.some((t, i) => t !== want[i]))
        throw new Error(`fast path: frames differ from JSON.stringify: ${back[0]} vs ${want[0]}`);
    }
    if (a.ws.readyState !== WebSocket.OPEN) return;
    (a.ws as unknown as { _socket: Socket })._socket.write(buf);
  };
  const start = performance.now();
  agents.forEach((a, i) => {
    due.set(a, start + (i * 1000) / agents.length);
    timers.push(
      setTimeout(
        () => {
          tick(a);
          timers.push(setInterval(() => tick(a), 1000));
        },
        (i * 1000) / agents.length,
      ),
    );
  });
  await new Promise((r) => setTimeout(r, seconds * 1000));
  for (const t of timers) clearInterval(t);
  loop.disable();
  const cpu = process.cpuUsage(cpu0);
  const wall = performance.now() - start;
  lags.sort((x, y) => x - y);
  let unacked = 0;
  for (const a of agents) for (const k of a.unacked.values()) unacked += k.length;
  return {
    sent,
    lagP50: Math.round(pct(lags, 50)),
    lagP99: Math.round(pct(lags, 99)),
    lagMax: Math.round(lags.at(-1) ?? Number.NaN),
    cpuPercent: +(((cpu.user + cpu.system) / 1000 / wall) * 100).toFixed(1),
    fast,
    loopDelayP99Ms: +(loop.percentile(99) / 1e6).toFixed(1),
    numbered,
    ...ackStats,
    linesUnacked: unacked,
  };
}

if (process.env['CAP_BENCH_ROLE'] === 'agents') {
  // biome-ignore lint/suspicious/noExplicitAny: IPC messages of the parent in panel-load.ts
  process.on('message', async (msg: any) => {
    try {
      if (msg.cmd === 'setup') process.send?.({ all: await setupRest(msg) });
      else if (msg.cmd === 'connect') process.send?.({ all: await connectSeeded(msg) });
      else if (msg.cmd === 'running') process.send?.(await markRunning());
      else if (msg.cmd === 'load')
        process.send?.(await load(msg.seconds, msg.numbered !== false, msg.fast !== false));
    } catch (e) {
      process.send?.({ error: (e as Error).message });
    }
  });
} else if (process.env['CAP_BENCH_ROLE'] === 'panel') {
  // CAP_BENCH_SQL_TIMES=1: time spent per SQL text on SQLite in the measured window, printed at the stop
  const sqlTimes = new Map<string, { n: number; ms: number }>();
  if (process.env['CAP_BENCH_SQL_TIMES'] === '1') {
    const { DatabaseSync } = await import('node:sqlite');
    const prepare = DatabaseSync.prototype.prepare;
    DatabaseSync.prototype.prepare = function (this: InstanceType<typeof DatabaseSync>, sql: string) {
      const t0 = performance.now();
      const stmt = prepare.call(this, sql);
      const rec = sqlTimes.get(sql) ?? { n: 0, ms: 0 };
      sqlTimes.set(sql, rec);
      rec.ms += performance.now() - t0;
      for (const m of ['run', 'all', 'iterate'] as const) {
        const f = stmt[m].bind(stmt) as (...a: unknown[]) => unknown;
        (stmt as unknown as Record<string, unknown>)[m] = (...a: unknown[]) => {
          const t1 = performance.now();
          try {
            return f(...a);
          } finally {
            rec.n += 1;
            rec.ms += performance.now() - t1;
          }
        };
      }
      return stmt;
    } as typeof prepare;
  }
  const { loadPanelConfig, startPanel } = await import('@cap/panel');
  const panel = await startPanel(loadPanelConfig(process.env));
  process.send?.({ ready: panel.url });
  let delay: ReturnType<typeof monitorEventLoopDelay> | undefined;
  let elu0 = performance.eventLoopUtilization();
  // where a console line's time goes in this Panel (the line's `t=` against this clock): to the
  // projection (the Agent link's message handled: the generator's send, the kernel, and this
  // loop's queue before it read the socket) and to the bus (published: the projection, its
  // per-node order and the console mark's write). The rest, to the subscriber, is the relay's
  // batching, the socket write and the measuring process.
  const stages = { received: [] as number[], published: [] as number[], bySecond: [] as number[][] };
  let stagesFrom = 0;
  let staging = false;
  const tOf = (line: string) => Number(line.slice(line.lastIndexOf('=') + 1));
  const svc = panel.app.panel;
  const handle = svc.servers.handleEvent.bind(svc.servers);
  svc.servers.handleEvent = (nodeId, msg) => {
    if (staging && msg.event === 'server_log') {
      const t = tOf((msg.data as { message: string }).message);
      if (t) stages.received.push(Date.now() - t);
    }
    return handle(nodeId, msg);
  };
  svc.bus.subscribe('server.console', (e) => {
    if (!staging) return;
    const now = Date.now();
    for (const line of e.lines) {
      const t = tOf(line);
      if (!t) continue;
      stages.published.push(now - t);
      const sec = Math.floor((now - stagesFrom) / 1000);
      const bucket = stages.bySecond[sec] ?? [];
      stages.bySecond[sec] = bucket;
      bucket.push(now - t);
    }
  });
  const p = (xs: number[], q: number) => {
    xs.sort((a, b) => a - b);
    return pct(xs, q);
  };
  // CAP_BENCH_PROF_DIR: a CPU profile of the measured window only (not the setup's)
  const profDir = process.env['CAP_BENCH_PROF_DIR'];
  const { Session } = await import('node:inspector/promises');
  const profiler = profDir ? new Session() : undefined;
  if (profiler) {
    profiler.connect();
    await profiler.post('Profiler.enable');
  }
  process.on('message', async (m: { cmd: string }) => {
    // the measured window: how long this Panel's event loop was late, and how busy it was
    if (m.cmd === 'loop-start') {
      await profiler?.post('Profiler.start');
      sqlTimes.clear(); // from here on: the measured window only
      delay = monitorEventLoopDelay({ resolution: 10 });
      delay.enable();
      elu0 = performance.eventLoopUtilization();
      stages.received = [];
      stages.published = [];
      stages.bySecond = [];
      stagesFrom = Date.now();
      staging = true;
    } else if (m.cmd === 'loop-stop' && delay) {
      delay.disable();
      staging = false;
      if (profiler && profDir) {
        const { profile } = await profiler.post('Profiler.stop');
        writeFileSync(`${profDir}/window-${process.pid}.cpuprofile`, JSON.stringify(profile));
      }
      process.send?.({
        loopDelayP50Ms: +(delay.percentile(50) / 1e6).toFixed(1),
        loopDelayP99Ms: +(delay.percentile(99) / 1e6).toFixed(1),
        loopDelayMaxMs: +(delay.max / 1e6).toFixed(1),
        loopUtilisation: +performance.eventLoopUtilization(elu0).utilization.toFixed(2),
        lineToProjectionP50Ms: p(stages.received, 50),
        lineToProjectionP99Ms: p(stages.received, 99),
        lineToBusP50Ms: p(stages.published, 50),
        lineToBusP99Ms: p(stages.published, 99),
        linesPublished: stages.published.length,
        // a transient (the first second's mark reads) or all along
        lineToBusP99BySecond: Array.from(stages.bySecond, (xs) => (xs ? p(xs, 99) : null)),
      });
    }
    if (m.cmd === 'stop') {
      for (const [sql, r] of [...sqlTimes].sort((a, b) => b[1].ms - a[1].ms).slice(0, 15))
        process.stderr.write(
          `[sql] ${r.ms.toFixed(0).padStart(7)} ms ${String(r.n).padStart(7)}× ${sql.slice(0, 160)}\n`,
        );
      panel.stop().then(() => process.exit(0));
    }
  });
}
