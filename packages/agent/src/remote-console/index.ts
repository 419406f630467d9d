/**
 * The remote console of one server, from its eggConfig's `remoteConsole` (absent: stdin): which
 * transport, where it listens (the published host port of the container port its variable names,
 * dialled on loopback when published on every address), and the password from the environment.
 */
import type { EggConfig, RemoteConsoleTransport } from '@cap/protocol';
import type { Logger } from 'pino';
import { type BackoffOptions, ManagedRemoteConsole, StdinConsole } from './managed.ts';
import type { Dialer, Target } from './session.ts';
import { dialers } from './transports.ts';

export { ManagedRemoteConsole, StdinConsole } from './managed.ts';
export type { RemoteConsole, RemoteConsoleReply, RemoteConsoleState } from './types.ts';

/** The transport's wire protocol (Quake 3 rcon is UDP; the others TCP). */
export function transportProtocol(t: RemoteConsoleTransport): 'tcp' | 'udp' {
  return t === 'quake3-rcon' ? 'udp' : 'tcp';
}

function own(env: Readonly<Record<string, string>>, key: string): string | undefined {
  return Object.hasOwn(env, key) ? env[key] : undefined;
}

/** Where the transport of `egg` is reached from the Agent, and its password; or why not. */
export function resolveTarget(egg: EggConfig): Target | string {
  const spec = egg.remoteConsole;
  if (!spec || spec.transport === 'stdin') return 'stdin';
  const env = egg.environment ?? {};
  const password = spec.passwordVariable === undefined ? '' : (own(env, spec.passwordVariable) ?? '');
  if (spec.passwordVariable !== undefined && password === '')
    return `its password (${spec.passwordVariable}) is empty, so the game keeps it off`;
  const portVariable = spec.portVariable ?? 'SERVER_PORT';
  const raw = spec.port !== undefined ? String(spec.port) : (own(env, portVariable) ?? '');
  const port = /^\d{1,5}$/.test(raw.trim()) ? Number(raw.trim()) : Number.NaN;
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    return `its port (${spec.port !== undefined ? 'port' : portVariable}) is not a port number`;
  const proto = transportProtocol(spec.transport);
  const ports = egg.ports ?? {};
  for (const key of [`${port}/${proto}`, String(port)]) {
    if (!Object.hasOwn(ports, key)) continue;
    const binding = ports[key]!;
    const hostPort = typeof binding === 'number' ? binding : binding.hostPort;
    const hostIp = (typeof binding === 'number' ? undefined : binding.hostIp) ?? egg.bindIp ?? '0.0.0.0';
    const host = hostIp === '0.0.0.0' ? '127.0.0.1' : hostIp === '::' ? '::1' : hostIp;
    return { host, port: hostPort, password };
  }
  return `its port ${port}/${proto} is not published (give it an allocation)`;
}

export type ServerConsole = ManagedRemoteConsole | StdinConsole;

/** The console of a server running `egg`: stdin, or the managed remote console of its transport. */
export function createRemoteConsole(opts: {
  serverId: string;
  egg: () => EggConfig;
  writeStdin: (command: string) => void;
  log: Logger;
  backoff?: BackoffOptions;
  dialer?: (t: RemoteConsoleTransport) => Dialer | undefined;
}): ServerConsole {
  const transport = opts.egg().remoteConsole?.transport ?? 'stdin';
  if (transport === 'stdin') return new StdinConsole(opts.serverId, opts.writeStdin, opts.log);
  const dial = (opts.dialer ?? ((t) => dialers.get(t)))(transport);
  return new ManagedRemoteConsole({
    serverId: opts.serverId,
    transport,
    log: opts.log,
    ...(opts.backoff ? { backoff: opts.backoff } : {}),
    dial:
      dial ??
      (() => {
        throw new Error(`this Agent has no ${transport} transport`);
      }),
    target: async () => resolveTarget(opts.egg()),
  });
}
