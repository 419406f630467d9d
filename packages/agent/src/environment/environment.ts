/**
 * What a game server needs from the runtime its process lives in, as Wings' `environment`
 * package: make (and remake) its instance, start it, signal and kill it, attach to its console,
 * wait for its exit, read its state and its resource use, remove it, and run its installer.
 * Server code (packages/agent/src/server/) depends on this interface only; the Docker Engine
 * implementation is in ./docker/environment.ts, a fake for unit tests in ./fake.ts.
 */
import type { Duplex, Readable } from 'node:stream';
import type { EggConfig, RegistryAuthConfig, Signal } from '@cap/protocol';

/** One instance (container) as the runtime sees it. */
export interface InstanceState {
  id: string;
  running: boolean;
  /** the process id on the host (0 when not running) */
  pid: number;
  /** ISO time of its last start */
  startedAt: string;
  exitCode: number;
  oomKilled: boolean;
}

/** An instance of this node found at boot. */
export interface NodeInstance {
  id: string;
  serverId: string;
  running: boolean;
  /** the new instance of an update that did not finish (the old one is still there) */
  staged: boolean;
}

/** One resource reading: CPU time so far, memory, network totals. */
export interface UsageSample {
  cpuNs: number;
  memoryUsed: number;
  memoryLimit: number;
  rx: number;
  tx: number;
}

/** A running instance's resource readings (opened once per run, closed when it ends). */
export interface UsageReader {
  /** null when no reading could be taken this time */
  sample(): Promise<UsageSample | null>;
  close(): void;
}

/** A host port an egg publishes. */
export interface PortBinding {
  hostIp: string;
  hostPort: number;
  proto: 'tcp' | 'udp';
}

/** The image side of an image update (issue 13 item 3); the Docker Engine has it. */
export interface ImageOps {
  containerImage(containerId: string): Promise<{ imageId: string; digests: string[] } | null>;
  imageInfo(ref: string): Promise<{ id: string; digests: string[] } | null>;
  remoteDigest(ref: string, registryAuth?: string): Promise<string>;
  pullWithProgress(
    ref: string,
    onEvent: (e: { id?: string; status?: string; current?: number; total?: number }) => void,
    registryAuth?: string,
  ): Promise<void>;
  tagImage(image: string, repo: string, tag: string): Promise<void>;
}

/** A part of an instance's log (see Environment.consoleLog). */
export interface ConsoleLog {
  /** ns since the epoch (the Engine's clock) and the text with its line end */
  entries: { ns: bigint; text: string }[];
  /** entries past the byte cap, not kept */
  over: number;
}

export interface Environment {
  /** image digests, pulls with progress and tags (absent: image updates are refused) */
  readonly images?: ImageOps;
  /** the runtime's version (throws when it is unreachable) */
  version(): Promise<string>;
  /** the image references (repo:tag) present here, for system_info; absent: not reported */
  imageTags?(): Promise<string[]>;
  /** this node's server instances (staged ones of an unfinished update included) */
  listServers(): Promise<NodeInstance[]>;
  /** this node's installer instances (an install that ran on while the Agent was down) */
  listInstallers(): Promise<NodeInstance[]>;

  /**
   * Fetches `image` with these registry credentials when it is not here (a private image of a
   * new server); the credentials are used for this pull only. Absent: pulls use none.
   */
  pullImage?(image: string, auth: RegistryAuthConfig): Promise<void>;

  /**
   * A new instance for the server (its image fetched when missing). `staged`: the next instance of
   * an update, made beside the current one and put in its place by `promote`.
   */
  create(serverId: string, egg: EggConfig, dir: string, opts?: { staged?: boolean }): Promise<string>;
  /** The staged instance `id` becomes the server's (the old one must be removed first). */
  promote(serverId: string, id: string): Promise<void>;
  /** The server's staged instance, if one is left over. */
  removeStaged(serverId: string): Promise<void>;
  /** The server's instance by its name (made by this Agent before), or null. */
  find(serverId: string): Promise<InstanceState | null>;

  /** State of an instance; null when it does not exist. */
  inspect(id: string): Promise<InstanceState | null>;
  start(id: string): Promise<void>;
  /** Sends a signal to the instance's process (SIGKILL kills it). A stopped instance is no error. */
  signal(id: string, signal: Signal | 'SIGKILL'): Promise<void>;
  /** Resolves with the exit code once the instance stops; rejects when the watch is lost or aborted. */
  wait(id: string, abort?: AbortSignal): Promise<number>;
  /** The console: stdout (with stderr) to read, stdin to write. */
  attach(id: string): Promise<Duplex>;
  /**
   * What the instance printed from `sinceMs` (ms since the epoch) until now, from the log the
   * Engine keeps (Docker's json-file/local drivers), each entry with its timestamp; at most
   * `CONSOLE_LOG_MAX_BYTES` kept, the entries past it only counted (`over`). Absent, or null:
   * no such log.
   */
  consoleLog?(id: string, sinceMs: number): Promise<ConsoleLog | null>;
  /** Removes the instance (killing it); one that is gone is no error. */
  remove(id: string): Promise<void>;
  /** Removes the server's instance: `id` when known, else the one by the server's name. */
  removeServer(serverId: string, id: string | null): Promise<void>;
  /** Resource readings of a running instance. */
  usage(instance: { id: string; pid: number }): Promise<UsageReader>;

  /**
   * The installer instance (the egg's install image, its script from `scriptDir`, the server's
   * files mounted), created, not started. A leftover of an earlier install is removed first.
   */
  createInstaller(serverId: string, egg: EggConfig, dir: string, scriptDir: string): Promise<string>;
  /** The installer's output from its start (`tail: 0`: only what comes from now on). */
  logs(id: string, opts?: { tail?: number }): Promise<Readable>;

  /** The host address the instances reach the host on (config files' `{{config.docker.interface}}`). */
  hostGateway(): Promise<string | undefined>;
  /** The first port `next` publishes that `current` does not and that is taken on the host, or null. */
  takenPort(next: EggConfig, current?: EggConfig): Promise<PortBinding | null>;
}
