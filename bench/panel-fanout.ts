/**
 * Panel fan-out bench: N simulated Agents × M servers each send a 1 Hz `resource_update` and a
 * console line per server over real WebSockets (registered through the real endpoint), while K
 * `/ws/client` subscribers watch servers. The Panel runs in a child process; we report its CPU
 * and RSS, and the event latency (timestamp in the log line → receipt at a subscriber). The
 * Panel child and the Agent generator are bench/lib/panel-load.ts (shared with panel-scale.ts).
 *
 *   node bench/panel-fanout.ts                       # 100×10 and 1000×20, 20 s each
 *   node bench/panel-fanout.ts --scenario 100x10 --seconds 10 --subscribers 50
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { freePort } from '../packages/panel/test/helpers.ts';
import {
  arg,
  type Generator,
  login,
  pct,
  pool,
  procCpuSeconds,
  procRssMiB,
  type Scenario,
  startGenerator,
  startPanelChild,
} from './lib/panel-load.ts';

async function runScenario(sc: Scenario, seconds: number) {
  const label = `${sc.agents}×${sc.servers}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'cap-bench-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const panel = await startPanelChild({
    DATA_DIR: dataDir,
    PORT: String(port),
    HOST: '127.0.0.1',
    PANEL_URL: url,
  });
  const pid = panel.pid;
  const sockets: WebSocket[] = [];
  let generator: Generator | undefined;
  try {
    const { cookie, csrfToken } = await login(url);
    // N simulated agents × M servers live in their own process, so the load they generate
    // does not delay the subscribers' receipt timestamps.
    const setupStart = performance.now();
    generator = startGenerator();
    const all = await generator.setupRest({ url, cookie, csrfToken, sc });
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
      rssMax = Math.max(rssMax, procRssMiB(pid));
    }, 500);
    const { sent, lagP50, lagP99 } = await generator.load(seconds);
    clearInterval(rssTimer);
    const wall = (performance.now() - t0) / 1000;
    const cpu = procCpuSeconds(pid) - cpu0;
    await new Promise((r) => setTimeout(r, 300)); // let in-flight lines land
    measuring = false;
    rssMax = Math.max(rssMax, procRssMiB(pid));
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
      panelRssMiB: Math.round(rssMax),
      consoleLinesReceived: received,
      consoleLinesExpectedApprox: expected,
      latencyP50Ms: pct(latencies, 50),
      latencyP99Ms: pct(latencies, 99),
      latencyMaxMs: latencies[latencies.length - 1] ?? Number.NaN,
    };
  } finally {
    for (const ws of sockets) ws.terminate();
    generator?.kill();
    await panel.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

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
