/** What this machine is: OS release, kernel, Docker, CPUs, memory, disk. */
import { readFile, statfs } from 'node:fs/promises';
import os from 'node:os';
import { PROTOCOL_VERSION, type SystemInfo } from '@cap/protocol';
import { AGENT_VERSION } from '../version.ts';

export async function osRelease(): Promise<SystemInfo['os']> {
  const text = await readFile('/etc/os-release', 'utf8').catch(() => '');
  const kv: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m?.[1] && m[2] !== undefined) kv[m[1]] = m[2].replace(/^"(.*)"$/, '$1');
  }
  return {
    id: kv.ID ?? os.platform(),
    name: kv.NAME ?? os.type(),
    version: kv.VERSION_ID ?? os.release(),
    prettyName: kv.PRETTY_NAME ?? `${os.type()} ${os.release()}`,
  };
}

export async function diskOf(dir: string): Promise<{ total: number; free: number }> {
  try {
    const s = await statfs(dir);
    return { total: s.blocks * s.bsize, free: s.bavail * s.bsize };
  } catch {
    return { total: 0, free: 0 };
  }
}

export async function systemInfo(dataDir: string, dockerVersion: string): Promise<SystemInfo> {
  const disk = await diskOf(dataDir);
  return {
    hostname: os.hostname(),
    os: await osRelease(),
    kernel: os.release(),
    arch: os.arch(),
    dockerVersion,
    cpus: os.cpus().length,
    memory: { total: os.totalmem(), free: os.freemem() },
    disk: { path: dataDir, ...disk },
    agentVersion: AGENT_VERSION,
    protocolVersion: PROTOCOL_VERSION,
  };
}

/** Load figures for the heartbeat, in percent. */
export async function systemLoad(dataDir: string): Promise<{ cpu: number; memory: number; disk: number }> {
  const disk = await diskOf(dataDir);
  const pct = (n: number) => Math.round(n * 1000) / 10;
  return {
    cpu: pct(Math.min(1, (os.loadavg()[0] ?? 0) / os.cpus().length)),
    memory: pct(1 - os.freemem() / os.totalmem()),
    disk: disk.total > 0 ? pct(1 - disk.free / disk.total) : 0,
  };
}

export function dockerArch(): string {
  const a = os.arch();
  return a === 'x64' ? 'amd64' : a === 'arm' ? 'arm/v7' : a;
}
