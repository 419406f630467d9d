/**
 * A server's resources: CPU/memory/network readings of the current run (the environment's usage
 * reader), the disk usage of its folder, the disk limit watched and enforced while it runs, and
 * the status answer (`get_status`).
 */
import { statfs } from 'node:fs/promises';
import { bytesToSize, CodedError, type ResourceSnapshot, type StatusData, sizeToBytes } from '@cap/protocol';
import { cpuPercent } from '../environment/cgroup-stats.ts';
import type { UsageReader } from '../environment/environment.ts';
import { DiskLedger } from '../filesystem/disk-ledger.ts';
import { diskUsage } from '../filesystem/filesystem.ts';
import type { Run, Server } from './server.ts';

/** Wings: a server over its disk limit is stopped, and killed if still up after this long. */
const DISK_STOP_TIMEOUT_S = 60;
/** While a server with a disk limit runs, its filesystem is probed (one statfs) this often. */
const DISK_PROBE_MS = 250;
/** From this share of the limit on, the tree is walked at every probe (cost allowing). */
const DISK_NEAR_SHARE = 0.8;
/** Over the limit by this factor while the stop runs (a game ignoring it): killed at once. */
const DISK_HARD_FACTOR = 1.1;
/** A walk may take at most this share of the time between walks (big worlds walk slowly). */
const DISK_WALK_COST_FACTOR = 4;

export class ServerResources {
  readonly #server: Server;
  #usage: UsageReader | null = null;
  #prevCpu: { ns: number; at: bigint } | null = null;
  #disk = { bytes: 0, at: 0 };
  #diskWalk: Promise<void> | null = null;
  #diskEnforcing = false;
  #diskKilling = false;
  /** the disk watch of the current run (see #watchDisk) */
  #diskWatch: NodeJS.Timeout | null = null;
  latest: ResourceSnapshot | null = null;
  /** the disk limit shared by the writers that stream (SFTP handles, uploads): disk-ledger.ts */
  readonly diskLedger: DiskLedger;

  constructor(server: Server) {
    this.#server = server;
    this.diskLedger = new DiskLedger(
      () => this.#diskLimit,
      () => diskUsage(server.dir),
    );
  }

  get #diskLimit(): number {
    const { disk } = this.#server.egg.limits;
    return disk ? sizeToBytes(disk) : 0;
  }

  /** A run began: fresh readings, and the disk watched while it lasts. */
  beginRun(run: Run): void {
    this.#usage?.close();
    this.#usage = null;
    this.#prevCpu = null;
    this.#watchDisk(run);
  }

  /** The run ended (or the Agent let go of it). */
  endRun(): void {
    this.#stopDiskWatch();
    this.#usage?.close();
    this.#usage = null;
  }

  /** Before a start: refused when the folder is already over its limit. */
  async assertUnderLimit(): Promise<void> {
    const limit = this.#diskLimit;
    if (limit > 0 && (await this.diskUsed(true)) > limit) {
      throw new CodedError('INSUFFICIENT_RESOURCES', 'disk usage is over the server limit');
    }
  }

  /**
   * Wings: over the disk limit while running → a console line, stop, kill after 60 s. Ours also
   * kills at once when the usage goes on past DISK_HARD_FACTOR × the limit while the stop runs.
   */
  #enforceDisk(bytes: number, limit: number): void {
    const server = this.#server;
    const log = server.log;
    if (limit <= 0 || bytes <= limit || !server.run) return;
    if (this.#diskEnforcing) {
      if (bytes <= limit * DISK_HARD_FACTOR || this.#diskKilling) return;
      this.#diskKilling = true;
      log.warn({ action: 'disk_limit', bytes, limit }, 'still writing past the disk limit, killing');
      server.console.daemon(
        'server is still writing past the assigned disk space limit, killing process now',
      );
      server
        .kill()
        .catch((e) => log.error({ err: e, action: 'disk_limit' }, 'kill failed'))
        .finally(() => {
          this.#diskKilling = false;
        });
      return;
    }
    if (server.status !== 'running' && server.status !== 'starting') return;
    this.#diskEnforcing = true;
    log.warn({ action: 'disk_limit', bytes, limit }, 'over the disk limit, stopping');
    server.console.daemon('server is exceeding the assigned disk space limit, stopping process now');
    // under the per-server try-lock, as a user's stop would be (a kill pre-empts it)
    const stop = () => server.stop({ timeout: DISK_STOP_TIMEOUT_S });
    const stopping = server.deps.ownAction
      ? server.deps.ownAction(
          'stop over the disk limit',
          'stop_server',
          () => server.running && (server.status === 'running' || server.status === 'starting'),
          stop,
        )
      : stop();
    stopping
      .catch((e) => log.error({ err: e, action: 'disk_limit' }, 'stop failed'))
      .finally(() => {
        this.#diskEnforcing = false;
      });
  }

  /**
   * The disk limit, watched while the server runs. A walk of the tree costs a stat per file, so
   * it is not done every probe: a cheap statfs of the filesystem every DISK_PROBE_MS tells when
   * something was written, and the tree is walked then (and every probe while the last walk
   * grew or is near the limit), never more often than DISK_WALK_COST_FACTOR × the last walk's
   * time, and at least every diskCheckIntervalMs. What this cannot stop is in the README.
   */
  #watchDisk(run: Run): void {
    this.#stopDiskWatch();
    const limit = this.#diskLimit;
    if (limit <= 0) return;
    const server = this.#server;
    let busy = false;
    let fsUsedAtWalk = -1;
    let walkMs = 0;
    let grew = false;
    const tick = async () => {
      if (busy || server.run !== run) return;
      busy = true;
      try {
        const st = await statfs(server.dir).catch(() => null);
        const fsUsed = st ? (st.blocks - st.bfree) * st.bsize : -1;
        if (fsUsedAtWalk < 0) fsUsedAtWalk = fsUsed; // the baseline: what the last walk saw
        const sinceWalk = Date.now() - this.#disk.at;
        const written =
          fsUsed >= 0 && fsUsedAtWalk >= 0 && fsUsed - fsUsedAtWalk >= Math.max(256 * 1024, limit / 100);
        const hot = grew || written || this.#disk.bytes >= limit * DISK_NEAR_SHARE;
        const due =
          sinceWalk >= server.deps.config.diskCheckIntervalMs ||
          (hot && sinceWalk >= Math.max(DISK_PROBE_MS, DISK_WALK_COST_FACTOR * walkMs));
        if (!due) return;
        const before = this.#disk.bytes;
        const started = Date.now();
        const bytes = await this.diskUsed(true);
        walkMs = Date.now() - started;
        fsUsedAtWalk = fsUsed;
        grew = bytes > before;
        if (server.run === run) this.#enforceDisk(bytes, limit);
      } catch (e) {
        server.log.debug({ err: e, action: 'disk_limit' }, 'disk check failed');
      } finally {
        busy = false;
      }
    };
    this.#diskWatch = setInterval(() => void tick(), DISK_PROBE_MS);
    this.#diskWatch.unref();
  }

  #stopDiskWatch(): void {
    if (this.#diskWatch) clearInterval(this.#diskWatch);
    this.#diskWatch = null;
  }

  /**
   * Bytes under the server directory. The walk can be slow on big worlds, so stats ticks get the
   * cached figure and refresh it in the background; the pre-start check waits for a fresh one.
   */
  async diskUsed(fresh = false): Promise<number> {
    const refresh = () => {
      this.#diskWalk ??= diskUsage(this.#server.dir)
        .then((bytes) => {
          this.#disk = { bytes, at: Date.now() };
        })
        .finally(() => {
          this.#diskWalk = null;
        });
      return this.#diskWalk;
    };
    if (fresh || this.#disk.at === 0) await refresh();
    else if (Date.now() - this.#disk.at > this.#server.deps.config.diskCheckIntervalMs) void refresh();
    return this.#disk.bytes;
  }

  /**
   * A file-API write of `bytes` into this server's folder (replacing a file of `replacing` bytes)
   * is refused with INSUFFICIENT_RESOURCES when it would take the folder past its disk limit.
   */
  /** Bytes the server's folder may still grow by (Infinity without a disk limit). */
  async diskRoom(): Promise<number> {
    const limit = this.#diskLimit;
    if (limit <= 0) return Number.POSITIVE_INFINITY;
    return Math.max(0, limit - (await this.diskUsed(true)));
  }

  async assertDiskRoom(bytes: number, replacing = 0): Promise<void> {
    const limit = this.#diskLimit;
    if (limit <= 0) return;
    // what uploads and SFTP writes in flight have taken but not yet written counts as used
    const used = (await this.diskUsed(true)) + this.diskLedger.outstanding();
    if (used - replacing + bytes > limit)
      throw new CodedError(
        'INSUFFICIENT_RESOURCES',
        `the write would take the server past its disk limit (${used} of ${limit} bytes used)`,
      );
  }

  /** One resource sample of the current run (null when it is not running). */
  async sample(): Promise<ResourceSnapshot | null> {
    const server = this.#server;
    const run = server.run;
    if (!run) return null;
    if (!this.#usage) {
      const opened = await server.deps.env.usage({ id: run.containerId, pid: run.pid });
      if (server.run !== run) {
        opened.close();
        return null;
      }
      this.#usage = opened;
    }
    const at = process.hrtime.bigint();
    const s = await this.#usage.sample();
    if (server.run !== run) return null;
    if (!s) return this.latest;
    const prev = this.#prevCpu;
    this.#prevCpu = { ns: s.cpuNs, at };
    const cpu = prev ? cpuPercent(prev.ns, s.cpuNs, Number(at - prev.at)) : 0;
    const diskBytes = await this.diskUsed();
    const diskLimit = this.#diskLimit;
    this.#enforceDisk(diskBytes, diskLimit);
    const round = (n: number) => Math.round(n * 100) / 100;
    const used = s.memoryUsed;
    const limit = s.memoryLimit;
    this.latest = {
      serverId: server.id,
      cpu: round(cpu),
      memory: {
        used: bytesToSize(used),
        percentage: limit > 0 ? round((used / limit) * 100) : 0,
        usedBytes: used,
        limitBytes: limit,
      },
      network: { rx: s.rx, tx: s.tx },
      disk: {
        used: bytesToSize(diskBytes),
        percentage: diskLimit > 0 ? round((diskBytes / diskLimit) * 100) : 0,
        usedBytes: diskBytes,
        limitBytes: diskLimit,
      },
      uptime: Math.max(0, Math.round((Date.now() - run.startedAt) / 1000)),
    };
    return this.latest;
  }

  async statusData(): Promise<StatusData> {
    const server = this.#server;
    const r = server.run ? ((await this.sample()) ?? this.latest) : null;
    const limit = r?.memory.limitBytes ?? 0;
    const used = r?.memory.usedBytes ?? 0;
    return {
      serverId: server.id,
      status: server.status,
      containerId: server.containerId,
      uptime: r?.uptime ?? 0,
      resources: {
        cpu: r?.cpu ?? 0,
        memory: {
          used: bytesToSize(used),
          available: bytesToSize(Math.max(0, limit - used)),
          usedBytes: used,
          limitBytes: limit,
        },
        network: { tx: r?.network.tx ?? 0, rx: r?.network.rx ?? 0 },
      },
    };
  }
}
