/**
 * Operation latency (issue 9 item 1): start and stop of one server through the Panel's REST API
 * with a real Agent and Docker, command → acknowledged (the 202) and command → completed (the
 * `operation` message on /ws/client), next to the raw Docker Engine calls (dockerode start/stop
 * of an equivalent container). N rounds each (default 10); prints a small table (ms).
 *   node bench/operation-latency.ts [N]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadAgentConfig, startAgent } from '@cap/agent';
import Docker from 'dockerode';
import pino from 'pino';
import { startTestPanel } from '../packages/panel/test/helpers.ts';

const N = Number(process.argv[2] ?? 10);
const IMAGE = 'ctrl-alt-play/busybox:latest';
// exits promptly on SIGTERM, so a stop measures the machinery, not a stop timeout
const STARTUP = 'trap "exit 0" TERM; echo up; while true; do sleep 0.1; done';
const docker = new Docker({ socketPath: '/var/run/docker.sock' });

function stats(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
  return { mean: s.reduce((a, b) => a + b, 0) / s.length, p50: q(0.5), p95: q(0.95) };
}

const panel = await startTestPanel({ PANEL_AGENT_PING_MS: '1000' });
const owner = await panel.login();
const node = await panel.createNode(owner, 'bench-ops');
const agentDir = await mkdtemp(path.join(tmpdir(), 'cap-bench-ops-'));
const agent = await startAgent(
  loadAgentConfig({
    PANEL_URL: panel.url,
    NODE_ID: node.id,
    AGENT_SECRET: node.agentSecret,
    AGENT_DATA_DIR: agentDir,
    AGENT_HTTP_PORT: '0',
    AGENT_HTTP_HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
  }),
  { logger: pino({ level: 'silent' }) },
);
const raw = await docker.createContainer({
  Image: IMAGE,
  Cmd: ['/bin/sh', '-c', STARTUP],
  Labels: { 'ctrl-alt-play.bench': 'operation-latency' },
  HostConfig: { Memory: 64 * 1024 * 1024 },
});
let serverId: string | undefined;
try {
  for (let i = 0; i < 100 && !(await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body?.online; i++)
    await new Promise((r) => setTimeout(r, 100));
  const created = await panel.api(owner, 'POST', '/api/servers', {
    name: 'bench ops',
    nodeId: node.id,
    image: IMAGE,
    startup: STARTUP,
    limits: { memory: '64m' },
    stopTimeout: 10,
  });
  if (created.status !== 201) throw new Error(JSON.stringify(created.body));
  const id = created.body.id as string;
  serverId = id;
  const ws = await panel.clientSocket(owner);
  ws.send({ type: 'subscribe', serverId: id });
  await ws.next((m) => m.type === 'subscribed');

  const panelTimes = {
    start: { ack: [] as number[], done: [] as number[] },
    stop: { ack: [] as number[], done: [] as number[] },
  };
  const rawTimes = { start: [] as number[], stop: [] as number[] };
  const viaPanel = async (action: 'start' | 'stop') => {
    const t0 = performance.now();
    const r = await panel.api(owner, 'POST', `/api/servers/${id}/power`, { action });
    const ack = performance.now() - t0;
    if (r.status !== 202) throw new Error(JSON.stringify(r.body));
    const end = await ws.next(
      (m) => m.type === 'operation' && m.operationId === r.body.operationId && m.success !== undefined,
      30_000,
    );
    if (!end.success) throw new Error(`${action}: ${end.errorCode} ${end.message}`);
    panelTimes[action].ack.push(ack);
    panelTimes[action].done.push(performance.now() - t0);
  };
  const viaDocker = async (action: 'start' | 'stop') => {
    const t0 = performance.now();
    if (action === 'start') await raw.start();
    else await raw.stop({ t: 10 });
    rawTimes[action].push(performance.now() - t0);
  };
  // one warm-up round each (image cache, first attach)
  await viaPanel('start');
  await viaPanel('stop');
  await viaDocker('start');
  await viaDocker('stop');
  for (const t of [
    panelTimes.start.ack,
    panelTimes.start.done,
    panelTimes.stop.ack,
    panelTimes.stop.done,
    rawTimes.start,
    rawTimes.stop,
  ])
    t.length = 0;
  for (let i = 0; i < N; i++) {
    await viaPanel('start');
    await viaPanel('stop');
    await viaDocker('start');
    await viaDocker('stop');
  }
  ws.close();

  const row = (name: string, ms: number[]) => {
    const s = stats(ms);
    return `${name.padEnd(36)} ${s.mean.toFixed(1).padStart(8)} ${s.p50.toFixed(1).padStart(8)} ${s.p95.toFixed(1).padStart(8)}`;
  };
  console.log(`operation latency, N=${N} (ms)`);
  console.log(`${''.padEnd(36)} ${'mean'.padStart(8)} ${'p50'.padStart(8)} ${'p95'.padStart(8)}`);
  console.log(row('start: Panel REST → acknowledged', panelTimes.start.ack));
  console.log(row('start: Panel REST → completed', panelTimes.start.done));
  console.log(row('start: raw Docker (dockerode)', rawTimes.start));
  console.log(row('stop:  Panel REST → acknowledged', panelTimes.stop.ack));
  console.log(row('stop:  Panel REST → completed', panelTimes.stop.done));
  console.log(row('stop:  raw Docker (dockerode)', rawTimes.stop));
} finally {
  await raw.remove({ force: true }).catch(() => undefined);
  if (serverId) {
    const list = await docker.listContainers({
      all: true,
      filters: { label: [`ctrl-alt-play.server=${serverId}`] },
    });
    for (const c of list)
      await docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined);
  }
  await agent.stop();
  await panel.stop();
  await rm(agentDir, { recursive: true, force: true });
}
