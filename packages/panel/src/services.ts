/** Composition: every repo and service of one Panel, wired once (no module-level singletons). */
import type { Logger } from 'pino';
import { type EventBus, InProcessBus } from './bus/index.ts';
import type { PanelConfig } from './config/index.ts';
import type { Db } from './db/index.ts';
import { SettingsRepo } from './db/settings-repo.ts';
import type { RouteRecord } from './http/auth.ts';
import { type LeaderLock, LocalPeriodic, type Periodic } from './lib/periodic.ts';
import type { ReplicaRegistry } from './lib/replicas.ts';
import { AccessRepo } from './modules/access/repo.ts';
import { AccessService } from './modules/access/service.ts';
import { SubusersService } from './modules/access/subusers.ts';
import { ActivityRepo } from './modules/activity/repo.ts';
import { ActivityService } from './modules/activity/service.ts';
import { RefreshTokensRepo } from './modules/agents/repo.ts';
import { AgentsService } from './modules/agents/service.ts';
import { AllocationsRepo } from './modules/allocations/repo.ts';
import { AllocationsService } from './modules/allocations/service.ts';
import { ApiKeysRepo } from './modules/api-keys/repo.ts';
import { ApiKeysService } from './modules/api-keys/service.ts';
import { DbWindowLimiter } from './modules/auth/db-limiter.ts';
import { SessionsRepo } from './modules/auth/repo.ts';
import { AuthService } from './modules/auth/service.ts';
import { TwoFactorService } from './modules/auth/two-factor.ts';
import { S3Store } from './modules/backups/s3-store.ts';
import { BackupsService } from './modules/backups/service.ts';
import { DashboardService } from './modules/dashboard/service.ts';
import { DockerAccessStore, DockerPolicyStore } from './modules/docker/policy-store.ts';
import { DockerTunnels } from './modules/docker/tunnels.ts';
import { FailoverService } from './modules/failover/service.ts';
import { TransferRelay } from './modules/files/relay.ts';
import { TransferLinks } from './modules/files/transfer-links.ts';
import { ImageUpdatesService } from './modules/image-updates/service.ts';
import { MetricsRepo } from './modules/metrics/repo.ts';
import { MetricsService } from './modules/metrics/service.ts';
import { NodesRepo } from './modules/nodes/repo.ts';
import { NodesService } from './modules/nodes/service.ts';
import { OperationsRepo } from './modules/operations/repo.ts';
import { OperationsService } from './modules/operations/service.ts';
import { PlayersRepo } from './modules/players/repo.ts';
import { PlayersService } from './modules/players/service.ts';
import { PanelMetrics } from './modules/prometheus/metrics.ts';
import { RegistriesService, registryAuthHeader } from './modules/registries/service.ts';
import { SchedulesRepo } from './modules/schedules/repo.ts';
import { panelTaskRunner } from './modules/schedules/runner.ts';
import { SchedulesService } from './modules/schedules/service.ts';
import { ServersRepo } from './modules/servers/repo.ts';
import { ServersService } from './modules/servers/service.ts';
import { SftpService } from './modules/sftp/service.ts';
import { SshKeysService } from './modules/sftp/ssh-keys.ts';
import { TemplatesRepo } from './modules/templates/repo.ts';
import { TemplatesService } from './modules/templates/service.ts';
import { ServerPlacement } from './modules/transfers/placement.ts';
import { TransfersService } from './modules/transfers/service.ts';
import { UsersRepo } from './modules/users/repo.ts';
import { UsersService } from './modules/users/service.ts';
import { WebhooksRepo } from './modules/webhooks/repo.ts';
import { WebhooksService } from './modules/webhooks/service.ts';
import { type AgentGateway, InProcessAgentGateway } from './relay/agent-gateway.ts';
import { AgentHub } from './relay/agent-hub.ts';
import { ClientSockets } from './relay/client-sockets.ts';
import { ConsoleMarks } from './relay/console-marks.ts';
import { attachLiveRelay } from './relay/live-relay.ts';
import { LiveState } from './relay/live-state.ts';
import type { LiveStore } from './relay/live-store.ts';
import { type LiveSync, LocalLiveSync } from './relay/live-sync.ts';
import { LocalSecretsSync, type SecretsSync } from './relay/secrets-sync.ts';
import { LocalSocketLimits, PgSocketLimits, type SocketLimits } from './relay/socket-limits.ts';

export interface PanelServices {
  config: PanelConfig;
  db: Db;
  log: Logger;
  auth: AuthService;
  twoFactor: TwoFactorService;
  users: UsersService;
  /** per-server access: requireAccess, the one check of every server route and socket message */
  access: AccessService;
  subusers: SubusersService;
  /** SFTP logins asked by Agents, and closing them when access goes */
  sftp: SftpService;
  sshKeys: SshKeysService;
  apiKeys: ApiKeysService;
  nodes: NodesService;
  agents: AgentsService;
  servers: ServersService;
  templates: TemplatesService;
  allocations: AllocationsService;
  /** backups: the Panel's records, kept in sync with the Agents' (modules/backups) */
  backups: BackupsService;
  /** relayed transfers (file bodies, backup downloads): which node each ticket belongs to */
  transferRelay: TransferRelay;
  /** server transfers between nodes (modules/transfers) */
  transfers: TransfersService;
  /** tunnels to the nodes' Docker Engines (modules/docker: the Engine API relay) */
  dockerTunnels: DockerTunnels;
  /** per-node Docker policy settings (the bind allow-list) */
  dockerPolicy: DockerPolicyStore;
  /** users' node-level docker.read / docker.write */
  dockerAccess: DockerAccessStore;
  /** registry credentials (sealed), injected as X-Registry-Auth into relayed pulls and pushes */
  registries: RegistriesService;
  /** a ticket's URLs: direct to the Agent (node transferUrl, connected) or relayed; files and backups */
  transferLinks: TransferLinks;
  metrics: MetricsService;
  /** players: who is online, join/leave sessions, the per-minute count history (modules/players) */
  players: PlayersService;
  /** the Prometheus registry behind GET /metrics */
  prometheus: PanelMetrics;
  dashboard: DashboardService;
  /** per-server schedules and their runs (modules/schedules); ticks through `periodic` */
  schedules: SchedulesService;
  /** the one seam for periodic work that must run once across replicas (a leader lock wraps it) */
  periodic: Periodic;
  /** Panel-wide and per-server webhooks: bus events → persisted, retried deliveries */
  webhooks: WebhooksService;
  /** failover of opted-in servers off nodes offline too long, and the fences of their old copies */
  failover: FailoverService;
  /** image digest checks and image updates with rollback (modules/image-updates) */
  imageUpdates: ImageUpdatesService;
  /** what is known live (status, stats, console and install rings, watchers): an interface */
  live: LiveStore;
  /** open-socket limits per user and per server (replicas: counted in PostgreSQL) */
  socketLimits: SocketLimits;
  /** the replica registry (several replicas on PostgreSQL): its id, whether it is fenced */
  replicas?: ReplicaRegistry;
  /** makes the live state of a server complete before a browser's `subscribed` (replicas: nats-live.ts) */
  liveSync: LiveSync;
  /** the domain event bus: what happens is published once; relay, metrics and activity subscribe */
  bus: EventBus;
  activity: ActivityService;
  /** open /ws/client sockets by user, closed when their authority changes */
  clientSockets: ClientSockets;
  /** "send this command to node N, wherever its socket is": what services depend on */
  gateway: AgentGateway;
  /** the Agent sockets this process holds (the gateway's in-process side; counters for tests) */
  hub: AgentHub;
  /** the object store for backups when PANEL_BACKUP_STORAGE=s3 */
  s3: S3Store | undefined;
  /** where browsers and Agents reach the Panel (PANEL_URL, or the listening address for PORT=0) */
  publicUrl(): string;
  setPublicUrl(url: string): void;
  /** every /api and /ws route with its auth rule (filled as routes register) */
  routes: RouteRecord[];
}

/** Several Panel replicas (issue 15): what replaces the in-process parts. */
export interface Replication {
  /** the gateway across replicas (NatsAgentGateway), over this process's hub */
  gateway(hub: () => AgentHub): AgentGateway;
  /** who runs the periodic work once across replicas (a PostgreSQL advisory lock) */
  lock?: LeaderLock;
  /** login and 2FA attempts counted in the shared database (PostgreSQL) */
  sharedLimits?: boolean;
  /** the replicas alive, in the shared PostgreSQL (socket counts, owners of running transfers) */
  replicas?: ReplicaRegistry;
  /** what a replica started later asks the holder of a server's Agent for (NatsLiveSync) */
  liveSync?(deps: LiveSyncDeps): LiveSync;
  /** an update's hidden values held on every replica before the Agent gets it (NatsSecretsSync) */
  secretsSync?(live: LiveStore): SecretsSync;
}

export interface LiveSyncDeps {
  live: LiveStore;
  hub: () => AgentHub;
  gateway: AgentGateway;
  /** the server belongs to the node (as the Agent projection knows it) */
  owns(nodeId: string, serverId: string): boolean;
}

export function createServices(
  config: PanelConfig,
  db: Db,
  log: Logger,
  /** a bus made beforehand (the NATS one, which connects first); default: in this process */
  givenBus?: EventBus,
  replication?: Replication,
): PanelServices {
  const settings = new SettingsRepo(db);
  const usersRepo = new UsersRepo(db);
  const users = new UsersService(usersRepo);
  const keysRepo = new ApiKeysRepo(db);
  const accessRepo = new AccessRepo(db);
  const access = new AccessService(accessRepo);
  const subusers = new SubusersService({ repo: accessRepo, users: usersRepo, access });
  const clientSockets = new ClientSockets();
  // a subuser removed (or left with fewer permissions) stops hearing the server at once
  access.onChange((userId, serverId) => clientSockets.accessChanged(userId, serverId));
  const sshKeys = new SshKeysService(db);
  // the gateway is made below; SFTP reads it lazily
  let theGateway: AgentGateway | undefined;
  const sftp = new SftpService({
    db,
    users: usersRepo,
    keys: sshKeys,
    access,
    gateway: () => {
      if (!theGateway) throw new Error('gateway not ready');
      return theGateway;
    },
    log: log.child({ component: 'sftp' }),
    loginRatePerMin: config.loginRatePerMin,
    // across replicas the SFTP login attempts count in the shared database, as the Panel's do
    ...(replication?.sharedLimits
      ? { limiter: (limit: number, windowMs: number) => new DbWindowLimiter(db, limit, windowMs, 'sftp') }
      : {}),
  });
  // and its SFTP sessions on that server close at once
  access.onChange((userId, serverId) => void sftp.revoke(userId, serverId));
  const twoFactor = new TwoFactorService(db, config.dataDir);
  const registries = new RegistriesService(db, config.dataDir);
  const nodesRepo = new NodesRepo(db);
  const live: LiveStore = new LiveState();
  const bus = givenBus ?? new InProcessBus(log.child({ component: 'bus' }));
  const metrics = new MetricsService(new MetricsRepo(db), {
    onError: (err, rows) =>
      log.error(
        { err: (err as Error)?.message ?? String(err), rows },
        'metrics flush failed; later ones go on',
      ),
  });
  const activity = new ActivityService({
    repo: new ActivityRepo(db),
    users: usersRepo,
    retentionDays: config.activityRetentionDays,
  });
  activity.attach(bus);
  // isOnline reads the hub, made below
  const prometheus = new PanelMetrics({
    db,
    isOnline: (nodeId) => hub?.isOnline(nodeId) ?? false,
    nodes: () => nodes.list(),
  });
  prometheus.attach(bus);
  bus.subscribe('server.stats', (e) => metrics.record(e.serverId, e.stats));
  bus.subscribe('server.deleted', (e) => metrics.forget(e.serverId));
  const players = new PlayersService(new PlayersRepo(db), {
    onError: (err, what) =>
      log.error(
        { err: (err as Error)?.message ?? String(err), what },
        'players write failed; later ones go on',
      ),
  });
  // a report on a server known not to run (the Agent's "nobody online" after a stop) ends it
  bus.subscribe('server.players', (e) => {
    const status = live.status(e.serverId);
    if (status !== undefined && status !== 'running') players.end(e.serverId);
    else players.update(e.serverId, e);
  });
  // a server that is not running has nobody on it
  bus.subscribe('server.status', (e) => {
    if (e.status !== 'running') players.end(e.serverId);
  });
  bus.subscribe('server.deleted', (e) => players.end(e.serverId, Date.now(), true));
  // the live relay: the live store's state and the frames browsers get
  attachLiveRelay(bus, live);
  // The hub and the services refer to each other; the services read it lazily.
  let hub: AgentHub | undefined;
  const getHub = (): AgentHub => {
    if (!hub) throw new Error('agent hub not ready');
    return hub;
  };
  const gateway: AgentGateway = replication?.gateway(getHub) ?? new InProcessAgentGateway(getHub);
  theGateway = gateway;
  let publicUrl = config.publicUrl;
  const getPublicUrl = () => publicUrl;
  const nodes = new NodesService(nodesRepo, () => gateway, getPublicUrl, config.defaultLimits);
  const templates = new TemplatesService(new TemplatesRepo(db), log);
  const allocations = new AllocationsService(new AllocationsRepo(db), nodesRepo);
  // work that must run once across replicas: on the leader only (one process: always)
  const periodic = new LocalPeriodic({
    ...(replication?.lock ? { lock: replication.lock } : {}),
    onError: (name, err) =>
      log.error({ task: name, err: (err as Error)?.message ?? String(err) }, 'periodic work failed'),
  });
  const operations = new OperationsService({
    repo: new OperationsRepo(db),
    gateway,
    bus,
    log,
    periodic,
  });
  const transferRelay = new TransferRelay();
  const agents = new AgentsService({
    nodes: nodesRepo,
    tokens: new RefreshTokensRepo(db),
    settings,
    publicUrl: getPublicUrl,
    dataDir: config.dataDir,
    log,
  });
  const transferLinks = new TransferLinks({
    relay: transferRelay,
    // only where the node's Agent said browsers can be served (else a direct request gets 401)
    transferUrlOf: (nodeId) => nodes.directTransferUrlOf(nodeId),
    isOnline: (nodeId) => gateway.isOnline(nodeId),
  });
  const s3 = config.s3 ? new S3Store(config.s3) : undefined;
  const backups = new BackupsService({
    db,
    gateway,
    operations,
    templates,
    links: transferLinks,
    relay: transferRelay,
    log,
    s3,
    s3Downloads: config.s3?.downloads ?? 'presign',
    upload: config.s3?.upload,
  });
  const servers = new ServersService({
    repo: new ServersRepo(db),
    nodes: nodesRepo,
    templates,
    allocations,
    gateway,
    live,
    bus,
    log,
    updateTimeoutMs: config.updateTimeoutMs,
    beforeDelete: (serverId) => backups.forgetServer(serverId),
    defaultLimits: config.defaultLimits,
    operations,
    registryAuth: (image) => registries.authForImage(image),
    failoverMinSeconds: config.failoverMinSeconds,
    consoleMarks: new ConsoleMarks(db, log.child({ component: 'console-marks' })),
    secretsSync: replication?.secretsSync?.(live) ?? new LocalSecretsSync(live),
  });
  // one move mechanism (create on the target, stream, switch, undo) for transfers and failover
  const placement = new ServerPlacement({
    db,
    gateway,
    servers,
    nodes: nodesRepo,
    relay: transferRelay,
    log: log.child({ component: 'placement' }),
  });
  const transfers = new TransfersService({
    db,
    servers,
    nodes: nodesRepo,
    allocations,
    operations,
    gateway,
    placement,
    bus,
    log,
    periodic,
    ...(replication?.replicas ? { replicas: replication.replicas } : {}),
  });
  const imageUpdates = new ImageUpdatesService({
    db,
    gateway,
    operations,
    bus,
    log: log.child({ component: 'image-updates' }),
    periodic,
    settings,
    nodeOf: (serverId) => servers.nodeIdOf(serverId),
    // a private image's stored credentials, for the check and the pull (never kept by the Agent)
    registryAuthOf: async (serverId) => {
      const auth = await registries.authForImage((await servers.row(serverId)).image);
      return auth ? registryAuthHeader(auth) : undefined;
    },
  });
  const schedules = new SchedulesService({
    repo: new SchedulesRepo(db),
    runner: panelTaskRunner({ servers, backups, operations, imageUpdates }),
    bus,
    log: log.child({ component: 'schedules' }),
    periodic,
  });
  const webhooks = new WebhooksService({
    repo: new WebhooksRepo(db),
    live,
    bus,
    log: log.child({ component: 'webhooks' }),
    periodic,
    dataDir: config.dataDir,
    allowPrivate: config.outboundAllowPrivate,
    retryBaseMs: config.webhookRetryBaseMs,
  });
  const failover = new FailoverService({
    db,
    gateway,
    servers,
    operations,
    placement,
    relay: transferRelay,
    s3,
    bus,
    log: log.child({ component: 'failover' }),
    periodic,
    tickMs: config.failoverTickMs,
  });
  const hubLog = log.child({ component: 'agent-hub' });
  const fetchSystemInfo = (nodeId: string) => {
    gateway
      .request(nodeId, 'system_info', {})
      .then((info) => nodes.storeSystemInfo(nodeId, info))
      .catch((err: Error) => hubLog.warn({ nodeId, err: err.message }, 'system_info failed'));
  };
  hub = new AgentHub({
    log: hubLog,
    pingMs: config.agentPingMs,
    commandTimeoutMs: config.commandTimeoutMs,
    linesPerSecond: config.agentLinesPerSecond,
    events: {
      onConnect(nodeId) {
        // across replicas: this one serves the node's requests now (and older links elsewhere close)
        gateway.linked?.(nodeId);
        // its fence list before anything else: a server failed over elsewhere never starts here
        failover
          .nodeConnected(nodeId)
          .catch((err: Error) => hubLog.warn({ nodeId, err: err.message }, 'fence list on connect failed'));
        bus.publish({ kind: 'node.online', nodeId });
        fetchSystemInfo(nodeId);
        // backups reconciled with the Agent's records; moves to S3 left over (a restart, an outage) resume
        backups
          .nodeConnected(nodeId)
          .catch((err: Error) =>
            hubLog.warn({ nodeId, err: err.message }, 'backup reconcile on connect failed'),
          );
      },
      consoleAcks: (nodeId) => servers.consoleAcks(nodeId),
      operationAcks: (nodeId) => servers.operationAcks(nodeId),
      onDisconnect(nodeId) {
        gateway.unlinked?.(nodeId);
        bus.publish({ kind: 'node.offline', nodeId });
      },
      // a newer link of the node on another replica: it is not offline
      onMoved(nodeId) {
        gateway.unlinked?.(nodeId, true);
      },
      onEvent(nodeId, msg) {
        prometheus.agentEvent(msg);
        // agent_hello proves the Agent listens; ask again in case the first request raced its setup.
        if (msg.event === 'agent_hello') fetchSystemInfo(nodeId);
        servers
          .handleEvent(nodeId, msg)
          .catch((err: Error) =>
            hubLog.error({ nodeId, event: msg.event, err: err.message }, 'event handling failed'),
          );
      },
      onPong(nodeId, msg) {
        nodes
          .heartbeat(nodeId, msg.data.systemLoad)
          .catch((err: Error) => hubLog.warn({ nodeId, err: err.message }, 'heartbeat store failed'));
      },
    },
  });
  return {
    config,
    db,
    log,
    auth: new AuthService({
      users: usersRepo,
      usersService: users,
      sessions: new SessionsRepo(db),
      keys: keysRepo,
      settings,
      twoFactor,
      sessionTtlMs: config.sessionTtlMs,
      loginRatePerMin: config.loginRatePerMin,
      ...(replication?.sharedLimits
        ? { limiter: (limit: number, windowMs: number) => new DbWindowLimiter(db, limit, windowMs, 'login') }
        : {}),
    }),
    twoFactor,
    users,
    access,
    subusers,
    sftp,
    sshKeys,
    apiKeys: new ApiKeysService(keysRepo),
    nodes,
    agents,
    dockerPolicy: new DockerPolicyStore(db),
    dockerAccess: new DockerAccessStore(db),
    registries,
    dockerTunnels: new DockerTunnels({
      gateway,
      verifyAgent: async (token, agentId) => {
        const sub = await agents.verify(token);
        return sub === agentId && (await nodes.exists(sub)) ? sub : null;
      },
    }),
    servers,
    templates,
    allocations,
    backups,
    transferRelay,
    transfers,
    transferLinks,
    metrics,
    players,
    prometheus,
    dashboard: new DashboardService(nodes, servers, live),
    ...(replication?.replicas ? { replicas: replication.replicas } : {}),
    socketLimits: replication?.replicas
      ? new PgSocketLimits({
          db,
          replicas: replication.replicas,
          log: log.child({ component: 'socket-limits' }),
        })
      : new LocalSocketLimits(),
    liveSync:
      replication?.liveSync?.({
        live,
        hub: getHub,
        gateway,
        owns: (nodeId, serverId) => servers.owns(nodeId, serverId),
      }) ?? new LocalLiveSync(),
    schedules,
    periodic,
    webhooks,
    failover,
    imageUpdates,
    live,
    bus,
    activity,
    clientSockets,
    gateway,
    hub,
    s3,
    publicUrl: getPublicUrl,
    setPublicUrl(url) {
      publicUrl = url;
    },
    routes: [],
  };
}
