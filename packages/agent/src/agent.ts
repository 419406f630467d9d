/** Wires config, Docker, servers, the Panel link and the HTTP API into one running Agent. */
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { event, PROTOCOL_VERSION, type ResponseMessage } from '@cap/protocol';
import pino, { type Logger } from 'pino';
import type { AgentConfig } from './config/config.ts';
import { DockerEnvironment } from './environment/docker/docker.ts';
import { DockerServerEnvironment } from './environment/docker/environment.ts';
import type { Environment } from './environment/environment.ts';
import { guardHostPorts, localPanelPort, type PortGuard } from './environment/firewall.ts';
import { removeStaleCompressTemps } from './filesystem/archives.ts';
import { buildHealthOnly, type MetricsEndpoint } from './http/health.ts';
import { AgentMetrics } from './metrics.ts';
import { PanelLink } from './panel-link/link.ts';
import { relayEvents } from './panel-link/relay.ts';
import { ServerManager } from './server/manager.ts';
import type { SftpServer } from './sftp/server.ts';
import { systemLoad } from './system/system-info.ts';
import { AGENT_VERSION } from './version.ts';
import { VolumeArchiver } from './volumes/volumes.ts';

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
  /** the start's sweep of compress temporaries a killed Agent left (paths removed) */
  readonly staleTempsSwept: Promise<string[]>;
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

export async function startAgent(
  config: AgentConfig,
  opts: {
    logger?: Logger;
    /** for tests: the servers' environment, given the Docker one (to wrap it) */
    environment?: (docker: Environment) => Environment;
  } = {},
): Promise<RunningAgent> {
  const logger = (opts.logger ?? createLogger(config)).child({ nodeId: config.nodeId });
  await mkdir(path.resolve(config.dataDir), { recursive: true, mode: 0o700 });
  const docker = new DockerEnvironment(config.dockerHost);
  const dockerEnv = new DockerServerEnvironment(docker, config);
  const env = opts.environment ? opts.environment(dockerEnv) : dockerEnv;
  let link: PanelLink | null = null;
  const metrics = new AgentMetrics();
  const manager = new ServerManager({ env, config, logger });
  const volumeTmp = path.join(path.resolve(config.dataDir), 'volume-restores');
  // a restore cut by a stop leaves its spooled upload: gone at the next start
  await rm(volumeTmp, { recursive: true, force: true });
  manager.volumes = new VolumeArchiver({
    docker: docker.docker,
    tmpDir: volumeTmp,
    owner: config.nodeId,
    forceHelper: config.volumeAccess === 'helper',
    helperImage: config.volumeHelperImage,
  });
  // helpers an earlier run of this Agent left (it stopped mid-operation)
  void manager.volumes.helper.sweep();
  // the link sends what the servers publish (it queues events until it connects)
  relayEvents(manager.events, (name, data) => {
    metrics.event(name, data);
    link?.send(event(name, data, link.agentId ?? undefined));
  });
  await manager.init();
  // a compress cut by the Agent's end left its temporary file: ours only (the exact name, inside a
  // server's folder, older than this process), in the background (a big tree takes a while)
  const staleTempsSwept = removeStaleCompressTemps(manager.serversDir, performance.timeOrigin).then(
    (removed) => {
      if (removed.length > 0) logger.info({ removed: removed.length }, 'stale compress temporaries removed');
      return removed;
    },
    (e: unknown) => {
      logger.warn({ err: (e as Error).message }, 'stale compress temporaries not swept');
      return [];
    },
  );
  // every answer, over the link or the HTTP API, is counted (Docker errors)
  const handle = async (raw: unknown): Promise<ResponseMessage> => {
    const res = await manager.handleRaw(raw);
    metrics.response(raw, res);
    return res;
  };

  let httpPort = config.httpPort;
  link = new PanelLink(config, logger, {
    onCommand: handle,
    hello: () => ({
      protocolVersion: PROTOCOL_VERSION,
      agentVersion: AGENT_VERSION,
      servers: manager.summary(),
      operations: manager.operations(),
    }),
    pong: async () => {
      const engine = await docker.reachable();
      return {
        agentStatus: engine.reachable ? 'healthy' : 'degraded',
        activeServers: manager.activeCount(),
        systemLoad: await systemLoad(path.resolve(config.dataDir)),
        docker: {
          reachable: engine.reachable,
          version: engine.version?.slice(0, 64) ?? null,
          errors: metrics.dockerErrorsTotal(),
        },
      };
    },
    onReady: () => manager.players.resendAll(),
    registration: async () => ({
      port: httpPort,
      dockerVersion: await docker.version().catch(() => 'unknown'),
    }),
  });

  const theLinkForDial = link;
  manager.setPanelDialer(
    (method, p, body) => theLinkForDial.dial(method, p, body),
    (p, protocol) => theLinkForDial.dialUpgrade(p, protocol),
  );
  // after the link exists (it queues events until it connects), before anything else can act
  manager.reportInterrupted();
  // (it waits for the Panel's fence list, up to AGENT_FENCE_WAIT: a failed-over server stays down)
  void manager.resumeAfterDowntime();

  const dockerReachable = () => docker.reachable();
  const panelConnected = () => link?.connected ?? false;
  const metricsEndpoint: MetricsEndpoint = {
    token: config.metricsToken,
    render: () =>
      metrics.render({
        servers: () => manager.summary(),
        linkUp: panelConnected,
        linkConnections: () => link?.connections ?? 0,
        linkEndsEvicted: () => link?.endsEvicted ?? 0,
      }),
  };
  // Without AGENT_API_KEY only /health can answer: node:http serves it and Fastify is never
  // loaded (a good part of an idle Agent's memory)
  const app = config.apiKey
    ? await (await import('./http/http.ts')).buildAgentHttp({
        logger,
        corsOrigins: config.corsOrigins,
        // the API key only: the Panel's token is for the link, and must not open the HTTP API too
        acceptedKeys: () => [config.apiKey],
        rate: config.httpRate,
        handle,
        docker: dockerReachable,
        panelConnected,
        backupFile: (serverId, backupId) => manager.backups.file(serverId, backupId),
        metrics: metricsEndpoint,
        transfers: {
          take: (ticket) => manager.transfers.take(ticket),
          download: (t) => manager.openTransferDownload(t),
          upload: (t, body) => manager.receiveTransferUpload(t, body),
        },
      })
    : buildHealthOnly({
        corsOrigins: config.corsOrigins,
        rate: config.httpRate,
        docker: dockerReachable,
        panelConnected,
        metrics: metricsEndpoint,
      });
  httpPort = await app.listen(config.httpPort, config.httpHost);
  // SFTP: a port in use is logged, not fatal (the rest of the Agent works without it)
  let sftp: SftpServer | null = null;
  if (config.sftpPort > 0) {
    const theLink = link;
    // loaded only when it runs (ssh2 is a good part of an idle Agent's memory)
    const { SftpServer: Sftp } = await import('./sftp/server.ts');
    const server = new Sftp({
      dataDir: config.dataDir,
      panelUrl: config.panelUrl,
      panelCertSha256: config.panelCertSha256,
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
    staleTempsSwept,
    handleCommand: handle,
    async stop() {
      if (stopped) return;
      stopped = true;
      await sftp?.stop();
      await theLink.stop();
      await manager.shutdown();
      await app.close();
      clearTimeout(guardTimer);
      metrics.stop();
      // the rules this Agent inserted go with it (a restart puts them back)
      if (guard) await guard.release(guard.ports);
      logger.info('agent stopped; game servers left running');
    },
  };
}
