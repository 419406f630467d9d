/** Wires config, Docker, servers, the Panel link and the HTTP API into one running Agent. */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { type EventData, type EventName, event, PROTOCOL_VERSION, type ResponseMessage } from '@cap/protocol';
import pino, { type Logger } from 'pino';
import type { AgentConfig } from './config/config.ts';
import { DockerEnvironment } from './environment/docker/docker.ts';
import { guardHostPorts, localPanelPort, type PortGuard } from './environment/firewall.ts';
import { buildHttp } from './http/http.ts';
import { ConsoleCoalescer } from './panel-link/coalesce.ts';
import { PanelLink } from './panel-link/link.ts';
import { ServerManager } from './server/manager.ts';
import { SftpServer } from './sftp/server.ts';
import { systemLoad } from './system/system-info.ts';
import { AGENT_VERSION } from './version.ts';

export interface RunningAgent {
  httpPort: number;
  /** the SFTP server's port (0: none) */
  sftpPort: number;
  /** closes the Panel link and the HTTP server; game servers keep running */
  stop(): Promise<void>;
  /** the command handler both transports use (benchmarks and tests call it directly) */
  handleCommand(raw: unknown): Promise<ResponseMessage>;
  /** whether the Panel link is up */
  readonly panelConnected: boolean;
  /** for tests: drop the Panel link as a network failure would */
  dropPanelConnection(): void;
}

/** JSON logs; pretty only on a terminal (and only when pino-pretty is installed). */
export function createLogger(config: AgentConfig, tty = process.stdout.isTTY === true): Logger {
  let pretty = false;
  try {
    pretty = tty && Boolean(import.meta.resolve('pino-pretty'));
  } catch {
    pretty = false;
  }
  return pino({
    level: config.logLevel,
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true } } } : {}),
    name: 'agent',
    redact: {
      paths: ['token', 'refreshToken', 'agentSecret', 'authorization', '*.token', '*.authorization'],
      remove: true,
    },
  });
}

export async function startAgent(config: AgentConfig, opts: { logger?: Logger } = {}): Promise<RunningAgent> {
  const logger = (opts.logger ?? createLogger(config)).child({ nodeId: config.nodeId });
  await mkdir(path.resolve(config.dataDir), { recursive: true, mode: 0o700 });
  const docker = new DockerEnvironment(config.dockerHost);
  let link: PanelLink | null = null;
  // console lines of a tick go up as one message (see ConsoleCoalescer)
  const { emit } = new ConsoleCoalescer(<E extends EventName>(name: E, data: EventData<E>) => {
    link?.send(event(name, data, link.agentId ?? undefined));
  });
  const manager = new ServerManager({ docker, config, logger, emit });
  await manager.init();

  let httpPort = config.httpPort;
  link = new PanelLink(config, logger, {
    onCommand: (raw) => manager.handleRaw(raw),
    hello: () => ({
      protocolVersion: PROTOCOL_VERSION,
      agentVersion: AGENT_VERSION,
      servers: manager.summary(),
      operations: manager.operations(),
    }),
    pong: async () => ({
      agentStatus: (await docker.reachable()).reachable ? 'healthy' : 'degraded',
      activeServers: manager.activeCount(),
      systemLoad: await systemLoad(path.resolve(config.dataDir)),
    }),
    registration: async () => ({
      port: httpPort,
      dockerVersion: await docker.version().catch(() => 'unknown'),
    }),
  });

  // after the link exists (it queues events until it connects), before anything else can act
  manager.reportInterrupted();
  manager.resumeAfterDowntime();

  const app = await buildHttp({
    logger,
    corsOrigins: config.corsOrigins,
    // the API key only: the Panel's token is for the link, and must not open the HTTP API too
    acceptedKeys: () => [config.apiKey],
    rate: config.httpRate,
    handle: (raw) => manager.handleRaw(raw),
    docker: () => docker.reachable(),
    panelConnected: () => link?.connected ?? false,
  });
  await app.listen({ port: config.httpPort, host: config.httpHost });
  // SFTP: a port in use is logged, not fatal (the rest of the Agent works without it)
  let sftp: SftpServer | null = null;
  if (config.sftpPort > 0) {
    const theLink = link;
    const server = new SftpServer({
      dataDir: config.dataDir,
      panelUrl: config.panelUrl,
      host: config.sftpHost,
      port: config.sftpPort,
      authPerMinute: config.sftpAuthRate,
      containerUid: config.containerUid,
      containerGid: config.containerGid,
      log: logger.child({ component: 'sftp' }),
      credentials: () =>
        theLink.token && theLink.agentId ? { token: theLink.token, agentId: theLink.agentId } : null,
      server: (id) => manager.servers.get(id),
    });
    try {
      await server.start();
      sftp = server;
      manager.sftpRevoke = (userId, serverId) => server.revoke(userId, serverId);
    } catch (e) {
      logger.error({ err: (e as Error).message, port: config.sftpPort }, 'sftp server not started');
    }
  }
  const addr = app.server.address();
  httpPort = typeof addr === 'object' && addr ? addr.port : config.httpPort;
  // game containers kept from this Agent's port and a Panel on this host (before the link, so
  // no server is started through it before the rules are in); retried while Docker is away
  let guard: PortGuard | null = null;
  let guardTimer: NodeJS.Timeout | undefined;
  const guardPorts = async (): Promise<void> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      const net = await Promise.race([
        docker.serversNetwork(config.dockerNetwork),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('docker did not answer within 10 s')), 10_000);
        }),
      ]).finally(() => clearTimeout(timer));
      if (net.icc)
        logger.warn(
          { network: net.name },
          'servers network lets containers reach each other (made elsewhere)',
        );
      if (!config.firewall || !net.subnet) return;
      const panelPort = await localPanelPort(config.panelUrl);
      const ports = [httpPort, ...(panelPort ? [panelPort] : []), ...(sftp ? [sftp.port] : [])];
      guard = await guardHostPorts(net.subnet, ports, logger);
    } catch (e) {
      logger.warn({ err: e }, 'servers network not ready; trying again in 30 s');
      guardTimer = setTimeout(() => void guardPorts(), 30_000);
      guardTimer.unref();
    }
  };
  await guardPorts();
  // the link connects in the background: startAgent never waits for the Panel
  link.start();
  logger.info({ httpPort, servers: manager.servers.size }, 'agent started');

  let stopped = false;
  const theLink = link;
  return {
    httpPort,
    sftpPort: sftp?.port ?? 0,
    get panelConnected() {
      return theLink.connected;
    },
    dropPanelConnection: () => theLink.dropConnection(),
    handleCommand: (raw) => manager.handleRaw(raw),
    async stop() {
      if (stopped) return;
      stopped = true;
      await sftp?.stop();
      await theLink.stop();
      await manager.shutdown();
      await app.close();
      clearTimeout(guardTimer);
      // the rules this Agent inserted go with it (a restart puts them back)
      if (guard) await guard.release(guard.ports);
      logger.info('agent stopped; game servers left running');
    },
  };
}
