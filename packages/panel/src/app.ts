/** The Panel as a Fastify app: `build()` wires everything without listening; `startPanel()` listens. */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLIENT_MAX_FRAME_BYTES, CodedError } from '@cap/protocol';
import cookie from '@fastify/cookie';
import fastifyStatic from '@fastify/static';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance } from 'fastify';
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
} from 'fastify-type-provider-zod';
import { type Logger, pino } from 'pino';
import type { PanelConfig } from './config/index.ts';
import { type Db, openDatabase } from './db/index.ts';
import { installAuth } from './http/auth.ts';
import { ErrorResponse, errorBody, installErrorHandler } from './http/errors.ts';
import { PgLeaderLock } from './lib/periodic.ts';
import { ensurePrivateDir } from './lib/private-files.ts';
import { LEADER_SESSION_SUFFIX, ReplicaRegistry } from './lib/replicas.ts';
import { accessRoutes } from './modules/access/routes.ts';
import { installActivityHooks } from './modules/activity/http.ts';
import { activityRoutes } from './modules/activity/routes.ts';
import { agentsRoutes } from './modules/agents/routes.ts';
import { allocationsRoutes } from './modules/allocations/routes.ts';
import { apiKeysRoutes } from './modules/api-keys/routes.ts';
import { DbWindowLimiter } from './modules/auth/db-limiter.ts';
import { authRoutes, PANEL_VERSION } from './modules/auth/routes.ts';
import { backupsRoutes } from './modules/backups/routes.ts';
import { dashboardRoutes } from './modules/dashboard/routes.ts';
import { dockerRoutes } from './modules/docker/routes.ts';
import { failoverRoutes } from './modules/failover/routes.ts';
import { filesRoutes } from './modules/files/routes.ts';
import { imageUpdatesRoutes } from './modules/image-updates/routes.ts';
import { modsRoutes } from './modules/mods/routes.ts';
import { nodesRoutes } from './modules/nodes/routes.ts';
import { playersRoutes } from './modules/players/routes.ts';
import { BUCKET_MS as PLAYERS_BUCKET } from './modules/players/service.ts';
import { prometheusRoutes } from './modules/prometheus/routes.ts';
import { registriesRoutes } from './modules/registries/routes.ts';
import { schedulesRoutes } from './modules/schedules/routes.ts';
import { serversRoutes } from './modules/servers/routes.ts';
import { sftpRoutes } from './modules/sftp/routes.ts';
import { stacksRoutes } from './modules/stacks/routes.ts';
import { templatesRoutes } from './modules/templates/routes.ts';
import { transfersRoutes } from './modules/transfers/routes.ts';
import { usersRoutes } from './modules/users/routes.ts';
import { webhooksRoutes } from './modules/webhooks/routes.ts';
import { agentSocketRoutes } from './relay/agent-socket.ts';
import { clientRelayRoutes } from './relay/client-relay.ts';
import { frameLimitedWebSocketClass } from './relay/frame-limit.ts';
import type { NatsAgentGateway } from './relay/nats-agent-gateway.ts';
import type { NatsLiveSync } from './relay/nats-live.ts';
import type { NatsSecretsSync } from './relay/secrets-sync.ts';
import { createServices, type PanelServices, type Replication } from './services.ts';

declare module 'fastify' {
  interface FastifyInstance {
    panel: PanelServices;
    /** the one-time setup link when no user exists yet (printed on the console) */
    setupUrl: string | undefined;
  }
}

export interface BuildOptions {
  logger?: Logger;
  /** use this database instead of opening one from the config (tests); it is not closed by the app */
  db?: Db;
}

const METRICS_FLUSH_MS = 10_000;
const PRUNE_MS = 3600_000;
const PLAYERS_BUCKET_MS = PLAYERS_BUCKET;

/** JSON logs; pretty on a terminal (when pino-pretty is installed, as in a clone). */
export function defaultLogger(level: string, tty = process.stdout.isTTY === true): Logger {
  let pretty = false;
  try {
    pretty = tty && Boolean(import.meta.resolve('pino-pretty'));
  } catch {
    pretty = false;
  }
  return pino({
    level,
    base: undefined,
    redact: ['req.headers.authorization', 'req.headers.cookie'],
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true } } } : {}),
  });
}

/** The certificate and key files, read once at start; unreadable ones are CONFIG_INVALID. */
function readTls(tls: NonNullable<PanelConfig['tls']>): { cert: Buffer; key: Buffer } {
  const read = (file: string, key: string) => {
    try {
      return readFileSync(file);
    } catch (e) {
      throw new CodedError('CONFIG_INVALID', `${key} ${file}: ${(e as Error).message}`, { details: [key] });
    }
  };
  return { cert: read(tls.certFile, 'PANEL_TLS_CERT'), key: read(tls.keyFile, 'PANEL_TLS_KEY') };
}

export async function build(config: PanelConfig, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const log = opts.logger ?? defaultLogger(config.logLevel);
  // DATA_DIR is private (0700) with PostgreSQL too: the key files live there
  ensurePrivateDir(config.dataDir);
  // several replicas share events and Agent links through NATS (issue 15); one process keeps
  // them in memory
  const replicaId = `${process.pid}-${randomUUID().slice(0, 8)}`;
  // every PostgreSQL session of this process carries it: once this replica is taken for dead,
  // the survivors end its sessions (and their locks) by it (lib/replicas.ts)
  const pgApp = `cap-${replicaId}`;
  const db = opts.db ?? (await openDatabase(config, { applicationName: pgApp }));
  const natsBus = config.natsUrl
    ? await (await import('./bus/nats-bus.ts')).NatsBus.connect(
        config.natsUrl,
        log.child({ component: 'bus' }),
        { prefix: config.natsPrefix, name: `ctrl-alt-play-panel-${replicaId}` },
      )
    : undefined;
  let natsGateway: NatsAgentGateway | undefined;
  let natsLive: NatsLiveSync | undefined;
  let natsSecrets: NatsSecretsSync | undefined;
  let replicas: ReplicaRegistry | undefined;
  let stopHealth: (() => void) | undefined;
  let leaderLock: PgLeaderLock | undefined;
  let replication: Replication | undefined;
  if (natsBus) {
    const { NatsAgentGateway } = await import('./relay/nats-agent-gateway.ts');
    const { NatsLiveSync } = await import('./relay/nats-live.ts');
    const { NatsSecretsSync } = await import('./relay/secrets-sync.ts');
    const gwLog = log.child({ component: 'gateway' });
    // the leader of the periodic work: an advisory lock on the shared PostgreSQL (SQLite cannot
    // be shared, so one process there stays the sole leader)
    const databaseUrl = config.databaseUrl;
    if (databaseUrl) {
      // which replicas are alive: socket counts and running transfers of a dead one stop counting
      const hb = config.replicaHeartbeatMs;
      replicas = new ReplicaRegistry({
        db,
        id: replicaId,
        heartbeatMs: hb,
        ttlMs: Math.max(3000, 5 * hb),
        log: log.child({ component: 'replicas' }),
        // a database of the caller's (tests) does not carry the tag
        ...(opts.db ? {} : { pgApp }),
        // its database beats' health told the others every beat, and theirs heard (the bus's
        // `others`: never our own): the database down for everyone fences no replica
        say: (word) => natsBus.publish({ kind: 'replica.health', ...word }),
      });
      const reg = replicas;
      stopHealth = natsBus.subscribe('replica.health', (e) => void reg.heard(e), 'others');
      await replicas.start();
      const { default: pg } = await import('pg');
      const lockLog = log.child({ component: 'leader' });
      leaderLock = new PgLeaderLock({
        open: () =>
          new pg.Client({
            connectionString: databaseUrl,
            query_timeout: 5000,
            // a connect into a partition would wait for TCP to give up (minutes), and the lock's
            // rounds queue behind it: a replica back from a fence would not lead until then
            connectionTimeoutMillis: 5000,
            keepAlive: true,
            application_name: `${pgApp}${LEADER_SESSION_SUFFIX}`,
          }),
        namespace: config.natsPrefix,
        onChange: (job, leader) =>
          lockLog.info({ job, leader, replicaId }, leader ? 'leading' : 'no longer leading'),
      });
    }
    replication = {
      gateway: (hub) => {
        natsGateway = new NatsAgentGateway({
          nc: natsBus.connection,
          replicaId,
          prefix: config.natsPrefix,
          hub,
          log: gwLog,
          commandTimeoutMs: config.commandTimeoutMs,
          heartbeatMs: config.replicaHeartbeatMs,
        });
        return natsGateway;
      },
      liveSync: ({ live, hub, gateway, owns }) => {
        natsLive = new NatsLiveSync({
          nc: natsBus.connection,
          prefix: config.natsPrefix,
          live,
          holds: (nodeId) => hub().isOnline(nodeId),
          online: (nodeId) => gateway.isOnline(nodeId),
          serves: (nodeId, serverId) => hub().isOnline(nodeId) && owns(nodeId, serverId),
          beforeAnswer: () => natsBus.ship(),
          log: log.child({ component: 'live-sync' }),
        });
        return natsLive;
      },
      // an update's hidden values, held on every replica alive before the Agent gets it
      secretsSync: (live) => {
        natsSecrets = new NatsSecretsSync({
          nc: natsBus.connection,
          prefix: config.natsPrefix,
          live,
          peers: () => replicas?.peers ?? 0,
          log: log.child({ component: 'secrets-sync' }),
        });
        return natsSecrets;
      },
      ...(leaderLock ? { lock: leaderLock, sharedLimits: true } : {}),
      ...(replicas ? { replicas } : {}),
    };
  }
  const s = createServices(config, db, log, natsBus, replication);
  natsGateway?.start();
  natsLive?.start();
  natsSecrets?.start();
  await s.agents.init();
  await s.templates.ensureBuiltins(config.builtinTemplatesDir);
  await s.templates.addBuiltinPlayers(config.builtinTemplatesDir);
  await s.players.init();
  await s.servers.init();
  await s.transfers.init();
  s.schedules.init();
  s.imageUpdates.init();
  await s.webhooks.init();
  s.failover.start();
  const { setupToken } = await s.auth.bootstrap({
    ...(config.adminEmail ? { email: config.adminEmail } : {}),
    ...(config.adminPassword ? { password: config.adminPassword } : {}),
  });

  // pino's Logger and Fastify's base logger type differ only in generics.
  const app = Fastify({
    ...(config.tls ? { https: readTls(config.tls) } : {}),
    loggerInstance: log,
    genReqId: () => randomUUID(),
    bodyLimit: 1024 * 1024,
    forceCloseConnections: true,
    trustProxy: config.trustProxy,
  }) as unknown as FastifyInstance;
  app.decorate('panel', s);
  app.decorate('setupUrl', setupToken ? `${config.publicUrl}/setup?token=${setupToken}` : undefined);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installErrorHandler(app);
  // No MIME sniffing (JSON carrying game output stays data), no framing (clickjacking), and the
  // one-time setup link's token never leaks through a Referer header.
  app.addHook('onSend', async (_req, reply) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('x-frame-options', 'DENY');
    reply.header('referrer-policy', 'no-referrer');
  });
  await app.register(cookie);
  // Before the auth hook: its onRequest hook marks upgrade requests, so a refused upgrade's
  // socket is destroyed after the 401 instead of lingering.
  // Frames are limited by the socket itself (refused from the header, never buffered): the
  // browsers' 32 KiB by default; /ws/agents raises its own (see frame-limit.ts).
  await app.register(websocket, {
    options: { maxPayload: CLIENT_MAX_FRAME_BYTES, WebSocket: frameLimitedWebSocketClass },
  });
  // Fenced (lib/replicas.ts: this replica's beats failed for its TTL less one beat): it leads no
  // job, holds no Agent link and no browser socket (they reconnect through the load balancer to a
  // replica that reaches the database), and refuses new ones and API requests with 503
  // REPLICA_FENCED (what it would do could not be recorded); /readyz says so to the balancer.
  app.addHook('onRequest', async (req, reply) => {
    if (!replicas?.fenced) return;
    const path = req.url.split('?')[0] ?? '';
    if (path === '/api/health' || !(path.startsWith('/ws/') || path.startsWith('/api/'))) return;
    // the client's next request opens a new connection: through the balancer, to another replica
    reply.header('connection', 'close');
    throw new CodedError('REPLICA_FENCED', 'this Panel replica lost its database; retry through another one');
  });
  replicas?.onFence({
    fenced: () => {
      leaderLock?.fence(true);
      // its transfers stop where they are: the leader fails and undoes them once this replica is
      // past the TTL (modules/transfers: not undone twice, never switched after that)
      s.transfers.fence();
      for (const c of app.websocketServer.clients) {
        c.close(1012, 'REPLICA_FENCED');
        // a peer that does not answer the close handshake is cut
        setTimeout(() => c.terminate(), 2000).unref();
      }
      // kept-alive HTTP connections too: their next request goes through the balancer again
      app.server.closeIdleConnections?.();
    },
    unfenced: () => leaderLock?.fence(false),
  });
  // A close handshake can wait 30 s on a silent peer; shutting down should not.
  app.addHook('preClose', async () => {
    // first: a failover cut by the closing links stays as persisted (the next Panel resumes it)
    void s.failover.close();
    // a transfer cut by the closing links stays `running` (the next Panel fails and cleans it)
    s.transfers.close();
    s.hub.close();
    s.servers.close();
    s.schedules.close();
    s.imageUpdates.close();
    s.webhooks.close();
    await new Promise((r) => setTimeout(r, 50));
    for (const c of app.websocketServer.clients) c.terminate();
  });
  // before the auth hook: refused requests (401, 403, CSRF) are logged as well
  installActivityHooks(app, s.bus);
  s.prometheus.instrument(app);
  installAuth(app, s.auth, s.routes, {
    requireTwoFactorForAdmins: config.requireTwoFactorForAdmins,
    access: s.access,
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Ctrl-Alt-Play Panel API',
        version: PANEL_VERSION,
        description:
          'Every error is `{ code, message, requestId }` with `code` from the `Error` schema. Session cookie `cap_session` + `X-CSRF-Token` on state-changing requests, or `Authorization: Bearer cap_…` API keys.',
      },
      components: {
        securitySchemes: {
          session: { type: 'apiKey', in: 'cookie', name: 'cap_session' },
          apiKey: { type: 'http', scheme: 'bearer' },
        },
      },
      security: [{ session: [] }, { apiKey: [] }],
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(swaggerUi, { routePrefix: '/api/docs' });

  // Every documented route answers errors in the one shape; say so in the document.
  app.addHook('onRoute', (r) => {
    if (!r.url?.startsWith('/api/') || !r.schema || r.schema.hide) return;
    r.schema.response = {
      ...(r.schema.response as object | undefined),
      '4XX': ErrorResponse,
      '5XX': ErrorResponse,
    };
  });

  app.get('/api/openapi.json', { config: { auth: 'public' }, schema: { hide: true } }, async () =>
    app.swagger(),
  );
  for (const routes of [
    authRoutes,
    usersRoutes,
    apiKeysRoutes,
    nodesRoutes,
    agentsRoutes,
    allocationsRoutes,
    templatesRoutes,
    serversRoutes,
    transfersRoutes,
    playersRoutes,
    accessRoutes,
    filesRoutes,
    backupsRoutes,
    schedulesRoutes,
    webhooksRoutes,
    modsRoutes,
    sftpRoutes,
    dashboardRoutes,
    activityRoutes,
    agentSocketRoutes,
    clientRelayRoutes,
    prometheusRoutes,
    dockerRoutes,
    registriesRoutes,
    failoverRoutes,
    stacksRoutes,
    imageUpdatesRoutes,
  ]) {
    await routes(app, s);
  }

  const index = join(config.webDist, 'index.html');
  const hasWeb = existsSync(index);
  if (hasWeb) {
    await app.register(fastifyStatic, { root: config.webDist, wildcard: false, index: ['index.html'] });
  }
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0] ?? '';
    if (hasWeb && req.method === 'GET' && !path.startsWith('/api') && !path.startsWith('/ws')) {
      return reply.type('text/html').sendFile('index.html');
    }
    return reply.status(404).send(errorBody('NOT_FOUND', `no route ${req.method} ${path}`, String(req.id)));
  });

  // what this replica itself recorded (metric samples, player counts): written by each replica
  const timers = [
    setInterval(() => {
      s.metrics.flush().catch((err: Error) => log.warn({ err: err.message }, 'metrics flush failed'));
    }, METRICS_FLUSH_MS),
    // each tracked server's player count, once a minute (the Agents send only changes)
    setInterval(() => void s.players.tick(), PLAYERS_BUCKET_MS),
  ];
  for (const t of timers) t.unref();
  // the prunes touch shared rows: once across replicas (the leader's)
  const stopPrune = s.periodic.every('prune', PRUNE_MS, async () => {
    s.metrics.prune().catch((err: Error) => log.warn({ err: err.message }, 'metrics prune failed'));
    s.auth.pruneSessions().catch((err: Error) => log.warn({ err: err.message }, 'session prune failed'));
    s.activity.prune().catch((err: Error) => log.warn({ err: err.message }, 'activity prune failed'));
    void s.players.prune();
    DbWindowLimiter.prune(db).catch((err: Error) =>
      log.warn({ err: err.message }, 'rate-limit prune failed'),
    );
  });
  app.addHook('onClose', async () => {
    for (const t of timers) clearInterval(t);
    stopPrune();
    s.hub.close();
    s.servers.close();
    s.backups.close();
    s.live.close();
    s.s3?.close();
    await s.metrics.flush(true).catch(() => undefined);
    await s.players.flush(true);
    await s.activity.settled();
    natsGateway?.close();
    natsLive?.close();
    natsSecrets?.close();
    await leaderLock?.close();
    stopHealth?.();
    await replicas?.close().catch(() => undefined);
    await natsBus?.close();
    if (!opts.db) await db.destroy();
  });

  if (app.setupUrl) {
    log.warn({ setupUrl: app.setupUrl }, 'no users yet: open the one-time setup link to create the owner');
  }
  return app;
}

export interface RunningPanel {
  app: FastifyInstance;
  url: string;
  stop(): Promise<void>;
}

export async function startPanel(config: PanelConfig, opts: BuildOptions = {}): Promise<RunningPanel> {
  const app = await build(config, opts);
  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (e) {
    await app.close();
    throw new CodedError(
      'CONFIG_INVALID',
      `cannot listen on ${config.host}:${config.port}: ${(e as Error).message}`,
    );
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.port;
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const url = `${config.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  // PORT=0: the real port is known only now; Agents must be told that one, not :0
  if (!config.publicUrlSet && config.port === 0) app.panel.setPublicUrl(url);
  return { app, url, stop: () => app.close() };
}
