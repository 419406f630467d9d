/**
 * Panel fan-out bench: N simulated Agents × M servers each send a 1 Hz `resource_update` and a
 * console line per server over real WebSockets (registered through the real endpoint), while K
 * `/ws/client` subscribers watch servers. The Panel runs in a child process; we report its CPU
 * and RSS, and the event latency (timestamp in the log line → receipt at a subscriber).
 *
 *   node bench/panel-fanout.ts                       # 100×10 and 1000×20, 20 s each
 *   node bench/panel-fanout.ts --scenario 100x10 --seconds 10 --subscribers 50
 */
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { okResponse, PROTOCOL_VERSION, parseAgentInbound } from '@cap/protocol';
import WebSocket from 'ws';

const CHILD = process.env.CAP_BENCH_CHILD === '1';

interface Scenario {
  agents: number;
  servers: number;
  subscribers: number;
  perSubscriber: number;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const a = srv.address();
  await new Promise<void>((r) => srv.close(() => r()));
  if (!a || typeof a === 'string') throw new Error('no port');
  return a.port;
}

async function pool<T>(items: T[], concurrency: number, fn: (t: T, i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i] as T, i);
      }
    }),
  );
}

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const clockTicks = 100;

/** CPU seconds of a process from /proc (utime + stime). */
function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}
function procRss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

async function runScenario(sc: Scenario, seconds: number) {
  const label = `${sc.agents}×${sc.servers}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'cap-bench-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = fork(new URL(import.meta.url).pathname, [], {
    env: {
      ...process.env,
      CAP_BENCH_CHILD: '1',
      DATA_DIR: dataDir,
      PORT: String(port),
      HOST: '127.0.0.1',
      PANEL_URL: url,
      ADMIN_EMAIL: 'bench@example.test',
      ADMIN_PASSWORD: 'bench-password',
      LOG_LEVEL: 'warn',
      PANEL_LOGIN_RATE_PER_MIN: '1000',
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pid = child.pid ?? 0;
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (c) => reject(new Error(`panel exited ${c}`)));
  });

  const sockets: WebSocket[] = [];
  let generator: ReturnType<typeof fork> | undefined;
  try {
    // log in once; API-key free path: the session cookie + CSRF header
    const login = await fetch(`${url}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'bench@example.test', password: 'bench-password' }),
    });
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const { csrfToken } = (await login.json()) as { csrfToken: string };

    // N simulated agents × M servers live in their own process, so the load they generate
    // does not delay the subscribers' receipt timestamps.
    const setupStart = performance.now();
    const gen = fork(new URL(import.meta.url).pathname, [], {
      env: { ...process.env, CAP_BENCH_ROLE: 'agents' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    generator = gen;
    const ask = <T>(msg: unknown): Promise<T> =>
      new Promise((resolve, reject) => {
        gen.once('message', (m) => resolve(m as T));
        gen.once('exit', (c) => reject(new Error(`generator exited ${c}`)));
        gen.send(msg as never);
      });
    const { all } = await ask<{ all: string[] }>({ cmd: 'setup', url, cookie, csrfToken, sc });
    const setupMs = performance.now() - setupStart;

    // K subscribers, each watching perSubscriber servers (≤ 30 sockets per server holds)
    const latencies: number[] = [];
    let received = 0;
    let measuring = false;
    await pool(
      Array.from({ length: sc.subscribers }, (_, i) => i),
      16,
      async (k) => {
        const ws = new WebSocket(`${url.replace('http', 'ws')}/ws/client`, {
          headers: { cookie },
          perMessageDeflate: false,
        });
        await new Promise<void>((resolve, reject) => {
          ws.once('open', () => resolve());
          ws.once('error', reject);
        });
        let subscribed = 0;
        ws.on('message', (d) => {
          const m = JSON.parse(d.toString()) as { type: string; lines?: string[] };
          if (m.type === 'subscribed') subscribed += 1;
          if (m.type !== 'console' || !m.lines || !measuring) return;
          const now = Date.now();
          for (const line of m.lines) {
            const t = Number(line.slice(line.lastIndexOf('=') + 1));
            if (t) {
              latencies.push(now - t);
              received += 1;
            }
          }
        });
        for (let j = 0; j < sc.perSubscriber; j++) {
          const serverId = all[(k * sc.perSubscriber + j) % all.length];
          ws.send(JSON.stringify({ type: 'subscribe', serverId }));
          if (j % 5 === 4) await new Promise((r) => setTimeout(r, 220)); // stay under the message rate limit
        }
        for (let i = 0; i < 100 && subscribed < sc.perSubscriber; i++)
          await new Promise((r) => setTimeout(r, 20));
        sockets.push(ws);
      },
    );

    const cpu0 = procCpuSeconds(pid);
    const t0 = performance.now();
    measuring = true;
    let rssMax = 0;
    const rssTimer = setInterval(() => {
      rssMax = Math.max(rssMax, procRss(pid));
    }, 500);
    const { sent, lagP50, lagP99 } = await ask<{ sent: number; lagP50: number; lagP99: number }>({
      cmd: 'load',
      seconds,
    });
    clearInterval(rssTimer);
    const wall = (performance.now() - t0) / 1000;
    const cpu = procCpuSeconds(pid) - cpu0;
    await new Promise((r) => setTimeout(r, 300)); // let in-flight lines land
    measuring = false;
    rssMax = Math.max(rssMax, procRss(pid));
    latencies.sort((a, b) => a - b);
    const expected = sc.subscribers * sc.perSubscriber * seconds;
    return {
      scenario: label,
      servers: all.length,
      subscribers: sc.subscribers,
      watchedPerSubscriber: sc.perSubscriber,
      setupSeconds: +(setupMs / 1000).toFixed(1),
      agentMessagesPerSecond: Math.round(sent / wall),
      agentMessagesPerSecondTarget: all.length * 2,
      generatorTickLagP50Ms: lagP50,
      generatorTickLagP99Ms: lagP99,
      panelCpuPercent: +((cpu / wall) * 100).toFixed(1),
      panelRssMiB: Math.round(rssMax / 1024 / 1024),
      consoleLinesReceived: received,
      consoleLinesExpectedApprox: expected,
      latencyP50Ms: pct(latencies, 50),
      latencyP99Ms: pct(latencies, 99),
      latencyMaxMs: latencies[latencies.length - 1] ?? NaN,
    };
  } finally {
    for (const ws of sockets) ws.terminate();
    generator?.kill('SIGKILL');
    child.send({ cmd: 'stop' });
    await new Promise<void>((r) => {
      const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', () => {
        clearTimeout(kill);
        r();
      });
    });
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The generator process: N agents registered through the real endpoint, M servers each, then load. */
function generatorRole(): void {
  process.on(
    'message',
    async (msg: {
      cmd: string;
      url: string;
      /** register agent i through urls[i % n] (several replicas; default: url) */
      urls?: string[];
      cookie: string;
      csrfToken: string;
      sc: Scenario;
      seconds: number;
    }) => {
      if (msg.cmd === 'setup') {
        const { url, cookie, csrfToken, sc } = msg;
        state.sc = sc;
        const h = { cookie, 'x-csrf-token': csrfToken, 'content-type': 'application/json' };
        const post = async (path: string, body: unknown, headers: Record<string, string> = h) => {
          const r = await fetch(path.startsWith('http') ? path : `${url}${path}`, {
            method: 'POST',
            headers,
            body: JSON.stringify(body),
          });
          const j = (await r.json()) as Record<string, unknown>;
          if (r.status >= 300) throw new Error(`${path}: ${r.status} ${JSON.stringify(j)}`);
          return j;
        };
        const sockets: WebSocket[] = [];
        // N agents: node + registration + socket that answers commands
        // via: the replica the agent registered with (and is linked to), '' for url
        const agents: { id: string; ws: WebSocket; servers: string[]; via: string }[] = [];
        await pool(
          Array.from({ length: sc.agents }, (_, i) => i),
          32,
          async (i) => {
            const node = (await post('/api/nodes', { name: `bench-${i}` })) as {
              node: { id: string };
              agentSecret: string;
            };
            const via = msg.urls?.length ? msg.urls[i % msg.urls.length] : url;
            const reg = (await post(
              `${via === url ? '' : via}/api/agents/register`,
              {
                name: `bench-${i}`,
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
              { authorization: `Bearer ${node.agentSecret}`, 'content-type': 'application/json' },
            )) as { agent: { id: string; token: string; websocketUrl: string } };
            const ws = new WebSocket(reg.agent.websocketUrl, {
              headers: {
                authorization: `Bearer ${reg.agent.token}`,
                'x-agent-id': reg.agent.id,
                'x-protocol-version': String(PROTOCOL_VERSION),
              },
              perMessageDeflate: false,
            });
            ws.on('message', (d) => {
              const p = parseAgentInbound(d as Buffer);
              if (!p.ok) return;
              if (p.message.type === 'ping') {
                ws.send(
                  JSON.stringify({
                    id: p.message.id,
                    type: 'pong',
                    timestamp: new Date().toISOString(),
                    data: {
                      agentStatus: 'healthy',
                      activeServers: sc.servers,
                      systemLoad: { cpu: 1, memory: 1, disk: 1 },
                    },
                  }),
                );
              } else if (p.message.action === 'system_info') {
                ws.send(
                  JSON.stringify({
                    ...okResponse(p.message.id, {
                      hostname: `bench-${i}`,
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
              } else {
                ws.send(JSON.stringify(okResponse(p.message.id, {})));
              }
            });
            await new Promise<void>((resolve, reject) => {
              ws.once('open', () => resolve());
              ws.once('error', reject);
            });
            sockets.push(ws);
            agents[i] = { id: reg.agent.id, ws, servers: [], via: via === url ? '' : (via ?? '') };
          },
        );
        // M servers per agent, created through the real REST endpoint (and the agent round-trip),
        // on the replica the agent is linked to (a replica reaches only its own agents today)
        const jobs = agents.flatMap((a) => Array.from({ length: sc.servers }, (_, j) => ({ a, j })));
        await pool(jobs, 64, async ({ a, j }) => {
          // 202 { operationId, server } (201 { ...server } with ?wait=true)
          const s = (await post(`${a.via}/api/servers`, { name: `s${j}`, nodeId: a.id, image: 'bench' })) as {
            id?: string;
            server?: { id: string };
          };
          const id = s.server?.id ?? s.id;
          if (!id) throw new Error(`create server: no id in ${JSON.stringify(s)}`);
          a.servers.push(id);
        });

        state.agents = agents;
        process.send?.({ all: agents.flatMap((a) => a.servers) });
      } else if (msg.cmd === 'load') {
        process.send?.(await load(msg.seconds));
      }
    },
  );
}

const state: { sc?: Scenario; agents: { id: string; ws: WebSocket; servers: string[] }[] } = { agents: [] };

/** Every agent, once a second (staggered over the second), one resource_update + one log line per server. */
async function load(seconds: number): Promise<{ sent: number; lagP50: number; lagP99: number }> {
  const agents = state.agents;
  const timers: NodeJS.Timeout[] = [];
  let sent = 0;
  // How late each tick fires against its 1 Hz schedule: when the generator itself is saturated.
  const lags: number[] = [];
  const due = new Map<(typeof agents)[number], number>();
  const tick = (a: (typeof agents)[number]) => {
    const now = performance.now();
    const d = due.get(a) ?? now;
    lags.push(now - d);
    due.set(a, d + 1000);
    const ts = new Date().toISOString();
    for (const serverId of a.servers) {
      a.ws.send(
        JSON.stringify({
          type: 'event',
          timestamp: ts,
          event: 'resource_update',
          data: {
            serverId,
            cpu: Math.random() * 100,
            memory: { used: '100m', percentage: 10, usedBytes: 100 * 1024 * 1024, limitBytes: 1024 ** 3 },
            network: { rx: sent, tx: sent },
            disk: { used: '1g', percentage: 1, usedBytes: 1024 ** 3, limitBytes: 0 },
            uptime: 10,
          },
        }),
      );
      a.ws.send(
        JSON.stringify({
          type: 'event',
          timestamp: ts,
          event: 'server_log',
          data: { serverId, message: `[bench] tick t=${Date.now()}` },
        }),
      );
      sent += 2;
    }
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
  lags.sort((x, y) => x - y);
  return { sent, lagP50: Math.round(pct(lags, 50)), lagP99: Math.round(pct(lags, 99)) };
}

async function main() {
  const seconds = Number(arg('seconds') ?? 20);
  const only = arg('scenario');
  const subs = arg('subscribers');
  const scenarios: Scenario[] = [
    { agents: 100, servers: 10, subscribers: Number(subs ?? 50), perSubscriber: 10 },
    { agents: 1000, servers: 20, subscribers: Number(subs ?? 200), perSubscriber: 10 },
  ].filter((s) => !only || only === `${s.agents}x${s.servers}`);
  for (const sc of scenarios) {
    const r = await runScenario(sc, seconds);
    process.stdout.write(`${JSON.stringify(r)}\n`);
  }
}

// At the end: the functions and constants above must be initialised first.
if (process.env.CAP_BENCH_ROLE === 'agents') {
  generatorRole();
} else if (CHILD) {
  const { loadPanelConfig, startPanel } = await import('@cap/panel');
  const panel = await startPanel(loadPanelConfig(process.env));
  process.send?.({ ready: panel.url });
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd === 'stats') {
      process.send?.({ cpu: process.cpuUsage(), rss: process.memoryUsage().rss, at: performance.now() });
    } else if (m.cmd === 'stop') {
      panel.stop().then(() => process.exit(0));
    }
  });
} else {
  await main();
}
