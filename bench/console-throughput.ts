/**
 * Console throughput and command echo, container → Agent → Panel → /ws/client, next to the raw
 * Docker attach stream of the same container. A real Panel and a real Agent run in child
 * processes; this process is the subscriber (and the raw attach reader), so the figures are what
 * a browser would see.
 *
 * 1. flood: the container prints n:1 … n:N as fast as it can (busybox seq | sed). Printed side by
 *    side: lines/s on the raw attach stream, lines/s received by the subscriber, lines reported
 *    dropped (console_dropped, the Agent's throttle of 2,000 lines / 100 ms first), and lines lost
 *    unreported (N − received − reported; must be 0) from the sequence numbers.
 * 2. echo: a command sent over /ws/client until its echo comes back as a console line, vs a line
 *    written on the raw attach stream until its echo comes back on it (p50/p99).
 *
 *   node bench/console-throughput.ts [--lines 1000000] [--echoes 200]
 *
 * Measured on the 2-core development VM (1,000,000 lines, 300 echoes), before → after issue 8
 * item 12: subscriber 987 → 20,253 lines/s (raw attach ~100,000), lost unreported 847,532 → 0,
 * echo p50 25.7 → 3.6 ms, p99 34.2 → 9.6 ms (raw attach p99 4–8 ms).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import Docker from 'dockerode';
import WebSocket from 'ws';

const ROLE = process.env.CAP_BENCH_ROLE;
const IMAGE = 'ctrl-alt-play/busybox:latest';
const STARTUP =
  'echo ready; while read c n; do case "$c" in ' +
  'flood) seq 1 "$n" | sed "s/^/n:/"; sleep 1; echo "flood-done $n";; ' +
  '*) echo "got:$c";; esac; done';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const a = srv.address();
  await new Promise<void>((r) => srv.close(() => r()));
  if (!a || typeof a === 'string') throw new Error('no port');
  return a.port;
}

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
const procCpuSeconds = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(f[11]) + Number(f[12])) / 100;
};

function waitMessage(child: ChildProcess): Promise<unknown> {
  return new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (c) => reject(new Error(`child exited ${c}`)));
  });
}

/** Splits a byte stream into lines (TTY output: \r\n). */
function lineReader(onLine: (line: string) => void): (chunk: Buffer | string) => void {
  let partial = '';
  return (chunk) => {
    const parts = (partial + chunk.toString()).split('\n');
    partial = parts.pop() ?? '';
    for (const p of parts) onLine(p.endsWith('\r') ? p.slice(0, -1) : p);
  };
}

async function main(): Promise<void> {
  const N = arg('lines', 1_000_000);
  const ECHOES = arg('echoes', 200);
  const docker = new Docker({ socketPath: '/var/run/docker.sock' });
  const panelDir = mkdtempSync(join(tmpdir(), 'cap-bench-console-panel-'));
  const agentDir = mkdtempSync(join(tmpdir(), 'cap-bench-console-agent-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const self = new URL(import.meta.url).pathname;
  const children: ChildProcess[] = [];
  let serverId: string | undefined;
  try {
    const panel = fork(self, [], {
      env: {
        ...process.env,
        CAP_BENCH_ROLE: 'panel',
        DATA_DIR: panelDir,
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
    children.push(panel);
    await waitMessage(panel);

    const login = await fetch(`${url}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'bench@example.test', password: 'bench-password' }),
    });
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const { csrfToken } = (await login.json()) as { csrfToken: string };
    const api = async (method: string, path: string, body?: unknown) => {
      const r = await fetch(`${url}${path}`, {
        method,
        headers: { cookie, 'x-csrf-token': csrfToken, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await r.text();
      return { status: r.status, body: text ? JSON.parse(text) : null };
    };
    const node = await api('POST', '/api/nodes', { name: 'bench-console' });
    const nodeId = node.body.node.id as string;
    const agent = fork(self, [], {
      env: {
        ...process.env,
        CAP_BENCH_ROLE: 'agent',
        PANEL_URL: url,
        NODE_ID: nodeId,
        AGENT_SECRET: node.body.agentSecret,
        AGENT_DATA_DIR: agentDir,
        AGENT_HTTP_PORT: '0',
        AGENT_HTTP_HOST: '127.0.0.1',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.push(agent);
    await waitMessage(agent);
    for (let i = 0; !(await api('GET', `/api/nodes/${nodeId}`)).body?.online; i++) {
      if (i > 200) throw new Error('the node never came online');
      await new Promise((r) => setTimeout(r, 100));
    }
    const created = await api('POST', '/api/servers', {
      name: 'console bench',
      nodeId,
      image: IMAGE,
      startup: STARTUP,
      done: 'ready',
      stop: '^C',
      stopTimeout: 2,
    });
    // a create is an operation (202): the server exists once it has ended
    if (created.status !== 202) throw new Error(`create: ${JSON.stringify(created.body)}`);
    const sid = created.body.server.id as string;
    serverId = sid;
    for (let i = 0; ; i++) {
      const op = (await api('GET', `/api/operations/${created.body.operationId as string}`)).body;
      if (op?.finishedAt) {
        if (!op.success) throw new Error(`create: ${JSON.stringify(op)}`);
        break;
      }
      if (i > 1200) throw new Error('the create never ended');
      await new Promise((r) => setTimeout(r, 100));
    }

    // the subscriber
    const ws = new WebSocket(`${url.replace('http', 'ws')}/ws/client`, {
      headers: { cookie },
      perMessageDeflate: false,
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const sub = { numbered: 0, first: 0, last: 0, dropped: 0, dupes: 0, seen: new Uint8Array(N + 1) };
    const droppedBy = new Map<string, { reports: number; lines: number }>();
    const lineWaiters = new Map<string, () => void>();
    let onStatus: ((s: string) => void) | undefined;
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString()) as {
        type: string;
        lines?: string[];
        count?: number;
        status?: string;
        reason?: string;
      };
      if (m.type === 'console' && m.lines) {
        const now = performance.now();
        for (const l of m.lines) {
          if (l.startsWith('n:')) {
            const k = Number(l.slice(2));
            if (k >= 1 && k <= N) {
              if (sub.seen[k]) sub.dupes++;
              sub.seen[k] = 1;
            }
            sub.numbered++;
            if (!sub.first) sub.first = now;
            sub.last = now;
          } else lineWaiters.get(l)?.();
        }
      } else if (m.type === 'console_dropped') {
        sub.dropped += m.count ?? 0;
        const r = droppedBy.get(m.reason ?? '') ?? { reports: 0, lines: 0 };
        r.reports++;
        r.lines += m.count ?? 0;
        droppedBy.set(m.reason ?? '', r);
      } else if (m.type === 'status' && m.status) onStatus?.(m.status);
    });
    const line = (text: string, timeoutMs = 10_000) =>
      new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no line ${text}`)), timeoutMs);
        lineWaiters.set(text, () => {
          clearTimeout(t);
          lineWaiters.delete(text);
          resolve();
        });
      });
    ws.send(JSON.stringify({ type: 'subscribe', serverId: sid }));
    const running = new Promise<void>((r) => {
      onStatus = (s) => s === 'running' && r();
    });
    await new Promise((r) => setTimeout(r, 200));
    await api('POST', `/api/servers/${sid}/power`, { action: 'start' });
    await running;
    // the done line may come a moment before the Agent holds stdin: probe until an echo returns
    for (let i = 0; ; i++) {
      const got = line(`got:probe${i}`, 1000);
      ws.send(JSON.stringify({ type: 'send_command', serverId: sid, command: `probe${i}` }));
      if (await got.then(() => true).catch(() => false)) break;
      if (i > 20) throw new Error('commands never echo');
    }

    // raw attach on the same container
    const [info] = await docker.listContainers({ filters: { label: [`ctrl-alt-play.server=${sid}`] } });
    if (!info) throw new Error('no container');
    const raw = (await docker.getContainer(info.Id).attach({
      stream: true,
      stdin: true,
      stdout: true,
      stderr: true,
      hijack: true,
    })) as Duplex;
    const rawStat = { numbered: 0, first: 0, last: 0 };
    const rawWaiters = new Map<string, () => void>();
    raw.on(
      'data',
      lineReader((l) => {
        if (l.startsWith('n:')) {
          const now = performance.now();
          rawStat.numbered++;
          if (!rawStat.first) rawStat.first = now;
          rawStat.last = now;
        } else rawWaiters.get(l)?.();
      }),
    );
    const rawLine = (text: string) =>
      new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no raw line ${text}`)), 10_000);
        rawWaiters.set(text, () => {
          clearTimeout(t);
          rawWaiters.delete(text);
          resolve();
        });
      });

    // 1. flood
    const panelPid = panel.pid ?? 0;
    const agentPid = agent.pid ?? 0;
    const cpu0 = { panel: procCpuSeconds(panelPid), agent: procCpuSeconds(agentPid) };
    const t0 = performance.now();
    const done = line(`flood-done ${N}`, 120_000);
    ws.send(JSON.stringify({ type: 'send_command', serverId: sid, command: `flood ${N}` }));
    await done;
    await new Promise((r) => setTimeout(r, 500)); // the last drop report trails by a window
    const wall = (performance.now() - t0) / 1000;
    const cpu = {
      panel: ((procCpuSeconds(panelPid) - cpu0.panel) / wall) * 100,
      agent: ((procCpuSeconds(agentPid) - cpu0.agent) / wall) * 100,
    };
    let received = 0;
    for (let k = 1; k <= N; k++) received += sub.seen[k] ?? 0;
    const rate = (n: number, a: number, b: number) => (b > a ? Math.round(n / ((b - a) / 1000)) : n);

    // 2. echo
    const viaPanel: number[] = [];
    const viaRaw: number[] = [];
    for (let i = 0; i < ECHOES; i++) {
      // /ws/client allows 10 messages / 200 ms per socket: pace the samples under it
      await new Promise((r) => setTimeout(r, 25));
      let t = performance.now();
      const got = line(`got:e${i}`);
      ws.send(JSON.stringify({ type: 'send_command', serverId: sid, command: `e${i}` }));
      await got;
      viaPanel.push(performance.now() - t);
      t = performance.now();
      const back = rawLine(`got:r${i}`);
      raw.write(`r${i}\n`);
      await back;
      viaRaw.push(performance.now() - t);
    }
    viaPanel.sort((a, b) => a - b);
    viaRaw.sort((a, b) => a - b);
    raw.destroy();
    ws.close();

    const f = (x: number) => x.toFixed(1);
    const rows: [string, string, string][] = [
      ['', 'raw docker attach', 'Panel /ws/client subscriber'],
      [
        'flood lines/s',
        String(rate(rawStat.numbered, rawStat.first, rawStat.last)),
        String(rate(sub.numbered, sub.first, sub.last)),
      ],
      ['numbered lines', `${rawStat.numbered} of ${N}`, `${received} received`],
      ['reported dropped', '-', String(sub.dropped)],
      ...[...droppedBy].map(([reason, r]): [string, string, string] => [
        `  ${reason}`,
        '-',
        `${r.lines} in ${r.reports} reports`,
      ]),
      ['lost unreported', '-', String(N - received - sub.dropped)],
      ['duplicates', '-', String(sub.dupes)],
      ['echo p50 ms', f(pct(viaRaw, 50)), f(pct(viaPanel, 50))],
      ['echo p99 ms', f(pct(viaRaw, 99)), f(pct(viaPanel, 99))],
      ['echo max ms', f(viaRaw.at(-1) ?? Number.NaN), f(viaPanel.at(-1) ?? Number.NaN)],
    ];
    console.log(`console throughput: ${N} numbered lines, ${ECHOES} echoes`);
    for (const [a, b, c] of rows) console.log(`${a.padEnd(18)} ${b.padStart(18)} ${c.padStart(28)}`);
    console.log(
      `CPU during the flood: Panel ${f(cpu.panel)} %, Agent ${f(cpu.agent)} % (of one core); ` +
        "the Agent's throttle admits 2,000 lines / 100 ms per server (20,000 lines/s)",
    );
  } finally {
    // the Agent first (it leaves game servers running), then the container: no crash to restart
    for (const c of children.reverse()) {
      c.kill('SIGTERM');
      await new Promise((r) => {
        if (c.exitCode !== null) r(undefined);
        else c.once('exit', r);
      });
    }
    if (serverId) {
      const list = await docker.listContainers({
        all: true,
        filters: { label: [`ctrl-alt-play.server=${serverId}`] },
      });
      for (const c of list) await docker.getContainer(c.Id).remove({ force: true });
    }
    rmSync(panelDir, { recursive: true, force: true });
    rmSync(agentDir, { recursive: true, force: true });
  }
}

if (ROLE === 'panel') {
  const { loadPanelConfig, startPanel } = await import('@cap/panel');
  const panel = await startPanel(loadPanelConfig(process.env));
  process.send?.('ready');
  process.once('SIGTERM', () => void panel.stop().then(() => process.exit(0)));
} else if (ROLE === 'agent') {
  const { loadAgentConfig, startAgent } = await import('@cap/agent');
  const agent = await startAgent(loadAgentConfig(process.env));
  process.send?.('ready');
  process.once('SIGTERM', () => void agent.stop().then(() => process.exit(0)));
} else {
  await main();
}
