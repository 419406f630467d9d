/**
 * Container resource usage read straight from cgroup files and /proc: a few small reads per
 * container per tick, instead of one Engine stats stream per container (see bench/agent-stats.ts).
 * Handles cgroup v1 (cpuacct + memory) and v2 (unified).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import path from 'node:path';

export interface CgroupSample {
  cpuNs: number;
  memoryUsed: number;
  memoryLimit: number;
  rx: number;
  tx: number;
}

interface Paths {
  v2: boolean;
  cpu: string; // v1: cpuacct dir; v2: unified dir
  memory: string;
}

const ROOT = '/sys/fs/cgroup';
const UNLIMITED = 2 ** 60;

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

async function firstExisting(candidates: string[], file: string): Promise<string | null> {
  for (const c of candidates) if (await exists(path.join(c, file))) return c;
  return null;
}

/** Finds the container's cgroup directories from /proc/<pid>/cgroup, then the usual layouts. */
export async function resolveCgroup(pid: number, containerId: string): Promise<Paths | null> {
  const v1cpu: string[] = [];
  const v1mem: string[] = [];
  const v2: string[] = [];
  try {
    const text = await readFile(`/proc/${pid}/cgroup`, 'utf8');
    for (const line of text.split('\n')) {
      const [, controllers, p] = /^\d+:([^:]*):(.*)$/.exec(line) ?? [];
      if (controllers === undefined || p === undefined) continue;
      const ctl = controllers.split(',');
      if (ctl.includes('cpuacct'))
        v1cpu.push(path.join(ROOT, 'cpuacct', p), path.join(ROOT, 'cpu,cpuacct', p));
      if (ctl.includes('memory')) v1mem.push(path.join(ROOT, 'memory', p));
      if (controllers === '') v2.push(path.join(ROOT, p));
    }
  } catch {
    // process gone or /proc not ours: fall through to the conventional paths
  }
  v1cpu.push(
    path.join(ROOT, 'cpuacct/docker', containerId),
    path.join(ROOT, 'cpu,cpuacct/docker', containerId),
  );
  v1mem.push(path.join(ROOT, 'memory/docker', containerId));
  v2.push(
    path.join(ROOT, 'system.slice', `docker-${containerId}.scope`),
    path.join(ROOT, 'docker', containerId),
  );
  const cpu = await firstExisting(v1cpu, 'cpuacct.usage');
  const mem = await firstExisting(v1mem, 'memory.usage_in_bytes');
  if (cpu && mem) return { v2: false, cpu, memory: mem };
  const uni = await firstExisting(v2, 'cpu.stat');
  if (uni) return { v2: true, cpu: uni, memory: uni };
  return null;
}

function statValue(text: string, key: string): number {
  const at = text.startsWith(`${key} `) ? 0 : text.indexOf(`\n${key} `);
  if (at < 0) return 0;
  const from = at === 0 ? key.length + 1 : at + key.length + 2;
  const end = text.indexOf('\n', from);
  return Number(text.slice(from, end < 0 ? undefined : end)) || 0;
}

/** Bytes received/sent on every interface but loopback, from /proc/<pid>/net/dev text. */
export function parseNetDev(text: string): { rx: number; tx: number } {
  let rx = 0;
  let tx = 0;
  for (const line of text.split('\n').slice(2)) {
    const [iface, rest] = line.split(':');
    if (!iface || rest === undefined || iface.trim() === 'lo') continue;
    const f = rest.trim().split(/\s+/);
    rx += Number(f[0] ?? 0);
    tx += Number(f[8] ?? 0);
  }
  return { rx, tx };
}

/**
 * Keeps the container's stat files open and re-reads them with pread at offset 0: one syscall per
 * file per sample, no open/close, no thread-pool round trip (these are tiny in-kernel files).
 */
export class CgroupStats {
  readonly #v2: boolean;
  readonly #fds: { cpu: number; usage: number; limit: number; stat: number; net: number };
  readonly #buf = Buffer.allocUnsafe(32 * 1024);
  #closed = false;

  private constructor(paths: Paths, pid: number) {
    this.#v2 = paths.v2;
    const open = (p: string) => openSync(p, 'r');
    const fds: number[] = [];
    try {
      const o = (p: string) => {
        const fd = open(p);
        fds.push(fd);
        return fd;
      };
      this.#fds = paths.v2
        ? {
            cpu: o(path.join(paths.cpu, 'cpu.stat')),
            usage: o(path.join(paths.memory, 'memory.current')),
            limit: o(path.join(paths.memory, 'memory.max')),
            stat: o(path.join(paths.memory, 'memory.stat')),
            net: o(`/proc/${pid}/net/dev`),
          }
        : {
            cpu: o(path.join(paths.cpu, 'cpuacct.usage')),
            usage: o(path.join(paths.memory, 'memory.usage_in_bytes')),
            limit: o(path.join(paths.memory, 'memory.limit_in_bytes')),
            stat: o(path.join(paths.memory, 'memory.stat')),
            net: o(`/proc/${pid}/net/dev`),
          };
    } catch (e) {
      for (const fd of fds) closeSync(fd);
      throw e;
    }
  }

  static async open(pid: number, containerId: string): Promise<CgroupStats | null> {
    const p = await resolveCgroup(pid, containerId);
    if (!p) return null;
    try {
      return new CgroupStats(p, pid);
    } catch {
      return null;
    }
  }

  #read(fd: number): string {
    const n = readSync(fd, this.#buf, 0, this.#buf.length, 0);
    return this.#buf.toString('latin1', 0, n);
  }

  /** One sample; null once the container (and its cgroup) is gone. */
  sample(): CgroupSample | null {
    if (this.#closed) return null;
    try {
      const f = this.#fds;
      let cpuNs: number;
      let used: number;
      let limit: number;
      if (this.#v2) {
        cpuNs = statValue(this.#read(f.cpu), 'usage_usec') * 1000;
        used = Number(this.#read(f.usage).trim()) - statValue(this.#read(f.stat), 'inactive_file');
        const max = this.#read(f.limit).trim();
        limit = max === 'max' ? UNLIMITED : Number(max);
      } else {
        cpuNs = Number(this.#read(f.cpu).trim());
        // as `docker stats` does: usage minus inactive page cache
        used = Number(this.#read(f.usage).trim()) - statValue(this.#read(f.stat), 'total_inactive_file');
        limit = Number(this.#read(f.limit).trim());
      }
      const net = parseNetDev(this.#read(f.net));
      return {
        cpuNs,
        memoryUsed: Math.max(0, used),
        memoryLimit: limit >= UNLIMITED || limit <= 0 ? totalmem() : Math.min(limit, totalmem()),
        ...net,
      };
    } catch {
      return null;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const fd of Object.values(this.#fds)) {
      try {
        closeSync(fd);
      } catch {
        // already gone
      }
    }
  }
}

/** CPU percent (100 = one full core) between two samples taken `wallNs` apart. */
export function cpuPercent(prevNs: number, nowNs: number, wallNs: number): number {
  if (wallNs <= 0 || nowNs < prevNs) return 0;
  const pct = ((nowNs - prevNs) / wallNs) * 100;
  return Math.min(pct, cpus().length * 100);
}
