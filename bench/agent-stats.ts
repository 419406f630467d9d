/**
 * Agent CPU spent on container stats for 1/10/50 running containers: the Agent's method (cgroup
 * files + /proc/<pid>/net/dev, one read per container per tick) vs one Docker stats stream per
 * container (what a naive agent does). Both at one sample per container per second, for the
 * same window; CPU measured with process.cpuUsage(). Prints the ratio.
 *   node bench/agent-stats.ts [windowSeconds] [counts…]
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { CgroupStats, cpuPercent } from '@cap/agent/environment/cgroup-stats.ts';
import { fromRawStats, type RawStats } from '@cap/agent/environment/docker/docker.ts';
import Docker from 'dockerode';

const WINDOW_S = Number(process.argv[2] ?? 10);
const COUNTS = process.argv.slice(3).map(Number).filter(Boolean);
const counts = COUNTS.length > 0 ? COUNTS : [1, 10, 50];
const IMAGE = 'ctrl-alt-play/busybox:latest';
const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const label = `bench-stats-${randomBytes(3).toString('hex')}`;

const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;

/** dockerd does the work behind every stats stream, so its CPU is part of the bill. */
function dockerdPid(): number | null {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'dockerd') return Number(d);
    } catch {
      // raced with an exiting process
    }
  }
  return null;
}
const DOCKERD = dockerdPid();
const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
function dockerdCpuMs(): number {
  if (!DOCKERD) return 0;
  const f = readFileSync(`/proc/${DOCKERD}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_MS;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function ensureContainers(n: number, have: { id: string; pid: number }[]): Promise<void> {
  while (have.length < n) {
    const batch = Math.min(10, n - have.length);
    const made = await Promise.all(
      Array.from({ length: batch }, async () => {
        const c = await docker.createContainer({
          Image: IMAGE,
          Cmd: ['/bin/sh', '-c', 'while true; do sleep 0.5; done'],
          Labels: { 'ctrl-alt-play.bench': label },
          HostConfig: { Memory: 32 * 1024 * 1024 },
        });
        await c.start();
        const i = await c.inspect();
        return { id: i.Id, pid: i.State.Pid };
      }),
    );
    have.push(...made);
  }
}

interface Result {
  cpu: number;
  dockerd: number;
  samples: number;
}

async function agentMethod(containers: { id: string; pid: number }[]): Promise<Result> {
  const readers = await Promise.all(containers.map((c) => CgroupStats.open(c.pid, c.id)));
  if (readers.some((r) => r === null)) throw new Error('cgroup files not readable here');
  const prev = new Map<number, { ns: number; at: bigint }>();
  let samples = 0;
  const start = process.cpuUsage();
  const d0 = dockerdCpuMs();
  const end = Date.now() + WINDOW_S * 1000;
  while (Date.now() < end) {
    const tick = Date.now();
    await Promise.all(
      readers.map(async (r, i) => {
        const s = r!.sample();
        if (!s) return;
        const at = process.hrtime.bigint();
        const p = prev.get(i);
        if (p) cpuPercent(p.ns, s.cpuNs, Number(at - p.at));
        prev.set(i, { ns: s.cpuNs, at });
        samples++;
      }),
    );
    await sleep(Math.max(0, 1000 - (Date.now() - tick)));
  }
  for (const r of readers) r?.close();
  return { cpu: cpuMs(process.cpuUsage(start)), dockerd: dockerdCpuMs() - d0, samples };
}

async function streamMethod(containers: { id: string; pid: number }[]): Promise<Result> {
  let samples = 0;
  const streams: NodeJS.ReadableStream[] = [];
  const start = process.cpuUsage();
  const d0 = dockerdCpuMs();
  await Promise.all(
    containers.map(async (c) => {
      const s = (await docker.getContainer(c.id).stats({ stream: true })) as unknown as NodeJS.ReadableStream;
      streams.push(s);
      let buf = '';
      s.on('data', (chunk: Buffer) => {
        buf += chunk.toString();
        let nl = buf.indexOf('\n');
        while (nl >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.trim()) {
            fromRawStats(JSON.parse(line) as RawStats);
            samples++;
          }
          nl = buf.indexOf('\n');
        }
      });
    }),
  );
  await sleep(WINDOW_S * 1000);
  const cpu = cpuMs(process.cpuUsage(start));
  const dockerd = dockerdCpuMs() - d0;
  for (const s of streams) (s as unknown as { destroy(): void }).destroy();
  return { cpu, dockerd, samples };
}

const containers: { id: string; pid: number }[] = [];
try {
  console.log(`stats collection CPU of this process over ${WINDOW_S} s, 1 sample/container/s`);
  console.log(
    `CPU ms in this process (+ in dockerd${DOCKERD ? '' : ': not found'}); ratio = streams / agent method`,
  );
  console.log(
    'containers | agent method: proc  +dockerd  samples | docker streams: proc  +dockerd  samples | ratio proc  ratio total',
  );
  for (const n of counts) {
    await ensureContainers(n, containers);
    const set = containers.slice(0, n);
    await sleep(500);
    const a = await agentMethod(set);
    const s = await streamMethod(set);
    const c = (x: number, w: number) => x.toFixed(0).padStart(w);
    console.log(
      `${String(n).padStart(10)} | ${c(a.cpu, 18)} ${c(a.dockerd, 9)} ${c(a.samples, 8)} | ${c(s.cpu, 20)} ${c(s.dockerd, 9)} ${c(s.samples, 8)} | ${(s.cpu / Math.max(a.cpu, 0.001)).toFixed(1).padStart(9)}× ${((s.cpu + s.dockerd) / Math.max(a.cpu + a.dockerd, 0.001)).toFixed(1).padStart(10)}×`,
    );
  }
} finally {
  const list = await docker.listContainers({
    all: true,
    filters: { label: [`ctrl-alt-play.bench=${label}`] },
  });
  await Promise.all(list.map((c) => docker.getContainer(c.Id).remove({ force: true })));
}
