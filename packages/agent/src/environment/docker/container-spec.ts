/** The container a server runs in, built like Wings builds it (container.go). Pure: no I/O. */
import { type EggConfig, sizeToBytes } from '@cap/protocol';
import type Docker from 'dockerode';
import { envList, serverEnvironment, startupForShell } from '../../server/startup.ts';

/** Wings' dropped capabilities (ANCHORS-GAME-PANELS §2.5). */
export const CAP_DROP = [
  'setpcap',
  'mknod',
  'audit_write',
  'net_raw',
  'dac_override',
  'fowner',
  'fsetid',
  'net_bind_service',
  'sys_chroot',
  'setfcap',
];
export const DEFAULT_PIDS_LIMIT = 512;
export const LABEL_SERVER = 'ctrl-alt-play.server';
export const LABEL_NODE = 'ctrl-alt-play.node';
export const LABEL_MANAGED = 'ctrl-alt-play.managed';
/** on installer containers only (never with LABEL_MANAGED, so they are not taken for servers) */
export const LABEL_INSTALL = 'ctrl-alt-play.install';
/** Wings' installer limits (installer_limits: 1024 MB, 100 % of one CPU) */
export const INSTALL_MEMORY = 1024 * 1024 ** 2;
export const INSTALL_NANO_CPUS = 1e9;

export function containerName(serverId: string, prefix = 'cap-'): string {
  return `${prefix}${serverId}`;
}

export interface SpecInput {
  serverId: string;
  /** the container name's prefix (AGENT_CONTAINER_PREFIX; default `cap-`) */
  containerPrefix?: string;
  nodeId: string;
  egg: EggConfig;
  /** absolute host path of the server's files */
  serverDir: string;
  /** the image's own entrypoint, if any */
  imageEntrypoint: readonly string[] | null;
  bindIp: string;
  timezone: string;
  /** `uid:gid` the game runs as (Wings' configured user); absent = the image's USER */
  user?: string;
  /** the Docker network the container is on (the Agent's own bridge); absent = Docker's default */
  network?: string;
}

export interface HostBinding {
  /** "25565/tcp" */
  containerPort: string;
  hostIp: string;
  hostPort: number;
  proto: 'tcp' | 'udp';
}

/** The host ports an egg publishes (no protocol = tcp and udp, as Wings publishes allocations). */
export function hostBindings(egg: EggConfig, bindIp: string): HostBinding[] {
  const out: HostBinding[] = [];
  for (const [key, binding] of Object.entries(egg.ports)) {
    const [port, proto] = key.split('/') as [string, string | undefined];
    const hostPort = typeof binding === 'number' ? binding : binding.hostPort;
    const hostIp = (typeof binding === 'object' ? binding.hostIp : undefined) ?? egg.bindIp ?? bindIp;
    for (const p of proto ? [proto] : ['tcp', 'udp']) {
      out.push({ containerPort: `${port}/${p}`, hostIp, hostPort, proto: p as 'tcp' | 'udp' });
    }
  }
  return out;
}

export function containerSpec(input: SpecInput): Docker.ContainerCreateOptions {
  const { egg } = input;
  const env = serverEnvironment(egg, { bindIp: input.bindIp, timezone: input.timezone });
  const exposed: Record<string, object> = {};
  const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const b of hostBindings(egg, input.bindIp)) {
    exposed[b.containerPort] = {};
    bindings[b.containerPort] = [{ HostIp: b.hostIp, HostPort: String(b.hostPort) }];
  }
  const memory = egg.limits.memory ? sizeToBytes(egg.limits.memory) : 0;
  const swap = egg.limits.swap;
  // Docker's MemorySwap is memory+swap; -1 = unlimited; equal to memory = no swap
  const memorySwap = memory === 0 ? undefined : swap === -1 ? -1 : memory + (swap ? sizeToBytes(swap) : 0);
  const cpu = egg.limits.cpu === undefined ? 0 : Number(egg.limits.cpu);
  // With no entrypoint of its own the image cannot expand STARTUP, so sh does it, from the
  // environment, after parsing the line (values are never parsed as shell code).
  const cmd =
    input.imageEntrypoint && input.imageEntrypoint.length > 0
      ? undefined
      : ['/bin/sh', '-c', startupForShell(egg.startup || (env.STARTUP ?? ''))];
  return {
    name: containerName(input.serverId, input.containerPrefix),
    Image: egg.image,
    Tty: true,
    OpenStdin: true,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    StdinOnce: false,
    WorkingDir: '/home/container',
    ...(input.user ? { User: input.user } : {}),
    Env: envList(env),
    ...(cmd ? { Cmd: cmd } : {}),
    ExposedPorts: exposed,
    Labels: {
      [LABEL_SERVER]: input.serverId,
      [LABEL_NODE]: input.nodeId,
      [LABEL_MANAGED]: 'true',
    },
    HostConfig: {
      ...(input.network ? { NetworkMode: input.network } : {}),
      Binds: [`${input.serverDir}:/home/container`],
      PortBindings: bindings,
      ...(memory > 0 ? { Memory: memory, MemorySwap: memorySwap } : {}),
      ...(cpu > 0 ? { NanoCpus: Math.round(cpu * 1e9) } : {}),
      PidsLimit: egg.limits.pids ?? DEFAULT_PIDS_LIMIT,
      SecurityOpt: ['no-new-privileges'],
      CapDrop: CAP_DROP,
      Tmpfs: { '/tmp': 'rw,exec,nosuid,size=100m' },
      LogConfig: { Type: 'local', Config: { 'max-size': '5m', 'max-file': '1', compress: 'false' } },
      RestartPolicy: { Name: 'no' },
      Init: false,
    },
  };
}

export function installerName(serverId: string): string {
  return `cap-install-${serverId}`;
}

export interface InstallerInput {
  serverId: string;
  nodeId: string;
  egg: EggConfig;
  serverDir: string;
  /** host directory holding install.sh, mounted read-only at /mnt/install */
  scriptDir: string;
  bindIp: string;
  timezone: string;
  network?: string;
}

/**
 * The throw-away installer (Wings' installer container): the egg's install image runs
 * `<entrypoint> /mnt/install/install.sh` as root with the server's files at /mnt/server and
 * nothing else of the host. Hardened like the game's container, except that it keeps
 * DAC_OVERRIDE/FOWNER: a reinstall must rewrite files the game (uid 1000) owns.
 */
export function installerSpec(input: InstallerInput): Docker.ContainerCreateOptions {
  const install = input.egg.install;
  if (!install) throw new Error('installerSpec without egg.install');
  const env = serverEnvironment(input.egg, { bindIp: input.bindIp, timezone: input.timezone });
  const memory = input.egg.limits.memory ? sizeToBytes(input.egg.limits.memory) : 0;
  const limit = Math.max(memory, INSTALL_MEMORY);
  return {
    name: installerName(input.serverId),
    Image: install.container,
    Cmd: [install.entrypoint, '/mnt/install/install.sh'],
    Tty: false,
    OpenStdin: false,
    AttachStdin: false,
    AttachStdout: true,
    AttachStderr: true,
    WorkingDir: '/mnt/server',
    User: '0:0',
    Env: envList(env),
    Labels: { [LABEL_INSTALL]: input.serverId, [LABEL_NODE]: input.nodeId },
    HostConfig: {
      ...(input.network ? { NetworkMode: input.network } : {}),
      Binds: [`${input.serverDir}:/mnt/server`, `${input.scriptDir}:/mnt/install:ro`],
      Memory: limit,
      MemorySwap: limit,
      NanoCpus: INSTALL_NANO_CPUS,
      PidsLimit: input.egg.limits.pids ?? DEFAULT_PIDS_LIMIT,
      SecurityOpt: ['no-new-privileges'],
      CapDrop: CAP_DROP.filter((c) => c !== 'dac_override' && c !== 'fowner'),
      Tmpfs: { '/tmp': 'rw,exec,nosuid,size=100m' },
      LogConfig: { Type: 'local', Config: { 'max-size': '5m', 'max-file': '1', compress: 'false' } },
      RestartPolicy: { Name: 'no' },
    },
  };
}
