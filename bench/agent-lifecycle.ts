/**
 * create+start of a server through the Agent (its command handler: validation, definition on disk,
 * image inspect, container create, console attach, start, inspect) vs the raw Docker Engine API
 * (create+start of an equivalent container). N=10 each; prints mean/p50/p95 and the ratio.
 *   node bench/agent-lifecycle.ts [N]
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadAgentConfig, startAgent } from '@cap/agent';
import { command } from '@cap/protocol';
import Docker from 'dockerode';
import pino from 'pino';

const N = Number(process.argv[2] ?? 10);
const IMAGE = 'ctrl-alt-play/busybox:latest';
const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const nodeId = `bench-${randomBytes(3).toString('hex')}`;
const dataDir = await mkdtemp(path.join(tmpdir(), 'cap-bench-life-'));

function stats(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
  return { mean: s.reduce((a, b) => a + b, 0) / s.length, p50: q(0.5), p95: q(0.95) };
}
const fmt = (x: { mean: number; p50: number; p95: number }) =>
  `mean ${x.mean.toFixed(1)} ms  p50 ${x.p50.toFixed(1)} ms  p95 ${x.p95.toFixed(1)} ms`;

const config = loadAgentConfig({
  PANEL_URL: 'http://127.0.0.1:9', // no Panel: the bench drives the command handler directly
  NODE_ID: nodeId,
  AGENT_SECRET: 'bench-secret-bench',
  AGENT_DATA_DIR: dataDir,
  AGENT_HTTP_PORT: '0',
  AGENT_HTTP_HOST: '127.0.0.1',
  LOG_LEVEL: 'silent',
});
const agent = await startAgent(config, { logger: pino({ level: 'silent' }) });

async function viaAgent(i: number): Promise<number> {
  const serverId = `${nodeId}-a${i}`;
  const t0 = performance.now();
  const c = await agent.handleCommand(
    command('create_server', {
      serverId,
      eggConfig: {
        name: 'bench',
        image: IMAGE,
        startup: 'sleep 100000',
        ports: {},
        environment: {},
        limits: { memory: '64m' },
      },
    }),
  );
  if (!c.success) throw new Error(JSON.stringify(c.error));
  const s = await agent.handleCommand(command('start_server', {}, { serverId }));
  if (!s.success) throw new Error(JSON.stringify(s.error));
  return performance.now() - t0;
}

async function raw(i: number): Promise<number> {
  const dir = path.join(dataDir, 'raw', String(i));
  await mkdir(dir, { recursive: true });
  const t0 = performance.now();
  const c = await docker.createContainer({
    name: `cap-${nodeId}-r${i}`,
    Image: IMAGE,
    Tty: true,
    OpenStdin: true,
    Cmd: ['/bin/sh', '-c', 'sleep 100000'],
    WorkingDir: '/home/container',
    Labels: { 'ctrl-alt-play.node': nodeId },
    HostConfig: { Binds: [`${dir}:/home/container`], Memory: 64 * 1024 * 1024, PidsLimit: 512 },
  });
  await c.start();
  return performance.now() - t0;
}

try {
  await viaAgent(-1); // warm-up (image inspect cache, first container)
  await raw(-1);
  const a: number[] = [];
  const r: number[] = [];
  for (let i = 0; i < N; i++) {
    a.push(await viaAgent(i));
    r.push(await raw(i));
  }
  const sa = stats(a);
  const sr = stats(r);
  console.log(`create+start, N=${N} each (interleaved)`);
  console.log(`  via Agent     ${fmt(sa)}`);
  console.log(`  raw Docker    ${fmt(sr)}`);
  console.log(
    `  ratio Agent/raw (mean) ${(sa.mean / sr.mean).toFixed(2)}×  (p50) ${(sa.p50 / sr.p50).toFixed(2)}×`,
  );
} finally {
  await agent.stop();
  const list = await docker.listContainers({
    all: true,
    filters: { label: [`ctrl-alt-play.node=${nodeId}`] },
  });
  await Promise.all(list.map((c) => docker.getContainer(c.Id).remove({ force: true })));
  await rm(dataDir, { recursive: true, force: true });
}
