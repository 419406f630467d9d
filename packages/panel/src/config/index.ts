/** Panel configuration: read from the environment here only, validated once, frozen. */
import { resolve } from 'node:path';
import { CodedError, type Limits } from '@cap/protocol';
import { z } from 'zod';

const Port = z.coerce.number().int().min(0).max(65535);
const PositiveMs = z.coerce
  .number()
  .int()
  .min(10)
  .max(24 * 3600 * 1000);

const SizeText = z.string().regex(/^\s*\d+(\.\d+)?\s*([kmgt]i?b?|b)?\s*$/i, 'a size like "1024m" or "10g"');

const EnvSchema = z.object({
  PORT: Port.default(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  DATA_DIR: z.string().min(1).default('./data'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'a postgres:// URL')
    .optional(),
  /** the URL browsers and Agents reach the Panel at; default http://localhost:PORT */
  PANEL_URL: z.url().optional(),
  ADMIN_EMAIL: z.email().optional(),
  ADMIN_PASSWORD: z.string().min(8).max(256).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  PANEL_AGENT_PING_MS: PositiveMs.default(30_000),
  PANEL_COMMAND_TIMEOUT_MS: PositiveMs.default(30_000),
  PANEL_UPDATE_TIMEOUT_MS: PositiveMs.default(180_000),
  /** console lines per second one Agent may send in all (a safety net far above the Agent's
   * own 2,000 lines / 100 ms per server); the excess is dropped and reported to subscribers */
  PANEL_AGENT_LINES_PER_SECOND: z.coerce.number().int().min(100).max(100_000_000).default(200_000),
  PANEL_LOGIN_RATE_PER_MIN: z.coerce.number().int().min(1).max(10_000).default(5),
  /** activity log entries older than this are pruned (hourly) */
  PANEL_ACTIVITY_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(90),
  PANEL_WEB_DIST: z.string().optional(),
  /** a Bearer token for GET /metrics (besides an admin API key); at least 16 characters */
  PANEL_METRICS_TOKEN: z.string().min(16).max(512).optional(),
  /** NATS broker(s) for the event bus across replicas: nats://host:port[,nats://…] (issue 15) */
  PANEL_NATS_URL: z
    .string()
    .max(2048)
    .regex(/^nats:\/\/[^\s,]+(,nats:\/\/[^\s,]+)*$/, 'nats://host:port, comma-separated')
    .optional(),
  PANEL_NATS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/)
    .default('cap'),
  /** with NATS: how often a replica lists the Agents linked to it (one missing 3 lists is gone) */
  PANEL_REPLICA_HEARTBEAT_MS: z.coerce.number().int().min(100).max(60_000).default(1000),
  /** HTTPS: a PEM certificate (chain) file and its private key file; both or neither */
  PANEL_TLS_CERT: z.string().min(1).optional(),
  PANEL_TLS_KEY: z.string().min(1).optional(),
  /** the built-in templates imported at start (default the repository's templates/builtin) */
  PANEL_BUILTIN_TEMPLATES_DIR: z.string().min(1).optional(),
  /**
   * Behind a reverse proxy: which hops' X-Forwarded-For to believe (Fastify's trustProxy):
   * `true` (any), or the proxies' addresses/CIDRs ("127.0.0.1,10.0.0.0/8"). Unset: the header is
   * ignored, so a client cannot pick its own address (login rate limit).
   */
  PANEL_TRUST_PROXY: z
    .string()
    .regex(/^(true|false|[0-9a-fA-F.:/]+(,\s*[0-9a-fA-F.:/]+)*)$/, 'true, or addresses/CIDRs')
    .optional(),
  /** how often an open /ws/client socket's session or key is checked again (expiry, revocation
   * by another process); logout, deletion, password and role changes close sockets at once */
  PANEL_CLIENT_REAUTH_MS: PositiveMs.default(30_000),
  /** live sockets one user may hold open on /ws/client (connection flooding) */
  PANEL_CLIENT_SOCKETS_PER_USER: z.coerce.number().int().min(1).max(100_000).default(256),
  /** limits a server gets when its create leaves them out and its node has none of its own */
  PANEL_DEFAULT_MEMORY: SizeText.default('1024m'),
  PANEL_DEFAULT_CPU: z.coerce.number().min(0).max(4096).default(1),
  /** unset: no default disk quota */
  PANEL_DEFAULT_DISK: SizeText.optional(),
  /** admins and owners must turn on TOTP 2FA before anything else */
  PANEL_REQUIRE_2FA_FOR_ADMINS: z.enum(['true', 'false', '1', '0']).default('false'),
  PANEL_SESSION_TTL_HOURS: z.coerce
    .number()
    .int()
    .min(1)
    .max(24 * 365)
    .default(24 * 7),
  /** webhooks may target loopback/private/link-local addresses (tests, a LAN-only Panel) */
  PANEL_WEBHOOK_ALLOW_PRIVATE: z.enum(['true', 'false', '1', '0']).default('false'),
  /** the first retry of a failed webhook delivery waits this long; each next one twice as long */
  PANEL_WEBHOOK_RETRY_BASE_MS: z.coerce.number().int().min(10).max(3_600_000).default(5000),
  /** how often the failover watch looks at offline nodes (ms) */
  PANEL_FAILOVER_TICK_MS: z.coerce.number().int().min(50).max(600_000).default(5000),
  /** the least failover.afterSeconds a server may be given */
  PANEL_FAILOVER_MIN_SECONDS: z.coerce.number().int().min(1).max(86_400).default(30),
  /** where completed backups are kept: on the node that made them, or offloaded to S3 */
  PANEL_BACKUP_STORAGE: z.enum(['node', 's3']).default('node'),
  /** an S3-compatible endpoint (MinIO, R2, …); unset: AWS for PANEL_S3_REGION */
  PANEL_S3_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  PANEL_S3_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'an S3 bucket name')
    .optional(),
  PANEL_S3_REGION: z
    .string()
    .regex(/^[a-z0-9-]{1,32}$/, 'a region like us-east-1')
    .default('us-east-1'),
  PANEL_S3_ACCESS_KEY_ID: z.string().min(1).max(256).optional(),
  PANEL_S3_SECRET_ACCESS_KEY: z.string().min(1).max(512).optional(),
  /** path-style URLs (`endpoint/bucket/key`), as most S3-compatible servers want */
  PANEL_S3_FORCE_PATH_STYLE: z.enum(['true', 'false', '1', '0']).default('false'),
  /** a multipart upload's part size (S3: at least 5 MiB; 10,000 parts of 8 MiB hold 78 GiB, over the
   * 64 GiB a transfer may move); memory per upload ≈ part × (queue + 1) */
  PANEL_S3_PART_SIZE_MB: z.coerce.number().int().min(5).max(512).default(8),
  /** parts in flight per upload */
  PANEL_S3_QUEUE_SIZE: z.coerce.number().int().min(1).max(16).default(2),
  /** keys start with this (e.g. `ctrl-alt-play/`) */
  PANEL_S3_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9!_.*'()/-]{0,256}$/, "letters, digits and !_.*'()/-")
    .default(''),
  /** backup downloads: a presigned GET to the endpoint (browsers reach it), or relayed by the Panel */
  PANEL_S3_DOWNLOADS: z.enum(['presign', 'relay']).default('presign'),
  /** the Modrinth API the mod manager's catalog uses */
  PANEL_MODRINTH_URL: z.url().default('https://api.modrinth.com'),
  /** let the Panel fetch user-given URLs on loopback/private addresses (catalog downloads…); off by default (SSRF) */
  PANEL_OUTBOUND_ALLOW_PRIVATE: z.enum(['true', 'false', '1', '0']).default('false'),
  /** the largest mod file the catalog installer downloads */
  PANEL_MOD_MAX_MB: z.coerce.number().int().min(1).max(4096).default(256),
  /** a finished backup's move to the bucket: attempts before it is left on its node as failed */
  PANEL_S3_UPLOAD_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(5),
  /** the wait before the first retry (doubled after each, at most 10 min) */
  PANEL_S3_UPLOAD_RETRY_MS: z.coerce.number().int().min(10).max(600_000).default(5000),
});

/** PANEL_S3_*: what the Panel needs to reach the bucket (the secret never leaves the Panel). */
export interface S3Settings {
  readonly endpoint: string | undefined;
  readonly bucket: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly forcePathStyle: boolean;
  readonly partSizeBytes: number;
  readonly queueSize: number;
  readonly prefix: string;
  readonly downloads: 'presign' | 'relay';
  /** moves of finished backups to the bucket: bounded attempts, the wait doubling from retryMs */
  readonly upload: { readonly attempts: number; readonly retryMs: number };
}

export interface PanelConfig {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly databaseUrl: string | undefined;
  readonly publicUrl: string;
  /** PANEL_URL was given (otherwise publicUrl is derived from the port) */
  readonly publicUrlSet: boolean;
  readonly adminEmail: string | undefined;
  readonly adminPassword: string | undefined;
  readonly logLevel: string;
  readonly agentPingMs: number;
  readonly commandTimeoutMs: number;
  readonly updateTimeoutMs: number;
  readonly agentLinesPerSecond: number;
  readonly modrinthUrl: string;
  /** PANEL_OUTBOUND_ALLOW_PRIVATE (older name for webhooks: PANEL_WEBHOOK_ALLOW_PRIVATE): user-given URLs (webhooks, update_url, mod catalogs) may lead to loopback/private addresses */
  readonly outboundAllowPrivate: boolean;
  readonly modMaxBytes: number;
  readonly loginRatePerMin: number;
  readonly activityRetentionDays: number;
  /** PANEL_WEBHOOK_RETRY_BASE_MS: the first retry's wait (doubling, capped at 10 min) */
  readonly webhookRetryBaseMs: number;
  /** PANEL_FAILOVER_TICK_MS / PANEL_FAILOVER_MIN_SECONDS (modules/failover) */
  readonly failoverTickMs: number;
  readonly failoverMinSeconds: number;
  readonly webDist: string;
  /** PANEL_TLS_CERT/PANEL_TLS_KEY: the Panel serves HTTPS (and WSS) with them */
  readonly tls: Readonly<{ certFile: string; keyFile: string }> | undefined;
  readonly builtinTemplatesDir: string;
  /** PANEL_NATS_URL: the event bus goes through this NATS broker (unset: in this process only) */
  readonly natsUrl: string | undefined;
  /** PANEL_NATS_PREFIX: subject prefix on the broker (several Panels can share one) */
  readonly natsPrefix: string;
  /** PANEL_REPLICA_HEARTBEAT_MS: a replica's presence list of its Agents, this often */
  readonly replicaHeartbeatMs: number;
  /** PANEL_METRICS_TOKEN: Bearer token for GET /metrics */
  readonly metricsToken: string | undefined;
  readonly sessionTtlMs: number;
  readonly trustProxy: boolean | string;
  readonly clientSocketsPerUser: number;
  /** PANEL_REQUIRE_2FA_FOR_ADMINS: an admin/owner without 2FA may only enrol (403 TWO_FACTOR_REQUIRED) */
  readonly requireTwoFactorForAdmins: boolean;
  /** the Panel-wide default limits (memory, cpu, disk?) for servers created without them */
  readonly defaultLimits: Readonly<Pick<Limits, 'memory' | 'cpu' | 'disk'>>;
  readonly clientReauthMs: number;
  /** PANEL_BACKUP_STORAGE: completed backups stay on their node, or go to `s3` */
  readonly backupStorage: 'node' | 's3';
  /** PANEL_S3_*: set when backupStorage is `s3` (JSON/logs show the secret as `[redacted]`) */
  readonly s3: S3Settings | undefined;
}

function trustProxyOf(v: string | undefined): boolean | string {
  if (v === undefined || v === 'false') return false;
  return v === 'true' ? true : v.replace(/\s+/g, '');
}

/** Validate the environment; throws CONFIG_INVALID naming every bad key. */
export function loadPanelConfig(env: Record<string, string | undefined>): PanelConfig {
  const clean: Record<string, string> = {};
  for (const key of Object.keys(EnvSchema.shape)) {
    const v = env[key];
    if (v !== undefined && v !== '') clean[key] = v;
  }
  const parsed = EnvSchema.safeParse(clean);
  if (!parsed.success) {
    const bad = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new CodedError('CONFIG_INVALID', `invalid Panel configuration: ${bad.join('; ')}`, {
      details: parsed.error.issues.map((i) => i.path.join('.')),
    });
  }
  const e = parsed.data;
  if ((e.ADMIN_EMAIL === undefined) !== (e.ADMIN_PASSWORD === undefined)) {
    throw new CodedError('CONFIG_INVALID', 'ADMIN_EMAIL and ADMIN_PASSWORD go together', {
      details: ['ADMIN_EMAIL', 'ADMIN_PASSWORD'],
    });
  }
  if ((e.PANEL_TLS_CERT === undefined) !== (e.PANEL_TLS_KEY === undefined)) {
    throw new CodedError('CONFIG_INVALID', 'PANEL_TLS_CERT and PANEL_TLS_KEY go together', {
      details: ['PANEL_TLS_CERT', 'PANEL_TLS_KEY'],
    });
  }
  const tls =
    e.PANEL_TLS_CERT && e.PANEL_TLS_KEY
      ? Object.freeze({ certFile: resolve(e.PANEL_TLS_CERT), keyFile: resolve(e.PANEL_TLS_KEY) })
      : undefined;
  const s3 = e.PANEL_BACKUP_STORAGE === 's3' ? s3SettingsOf(e) : undefined;
  const publicUrl = (e.PANEL_URL ?? `${tls ? 'https' : 'http'}://localhost:${e.PORT}`).replace(/\/+$/, '');
  return Object.freeze({
    port: e.PORT,
    host: e.HOST,
    dataDir: resolve(e.DATA_DIR),
    databaseUrl: e.DATABASE_URL,
    publicUrl,
    publicUrlSet: e.PANEL_URL !== undefined,
    adminEmail: e.ADMIN_EMAIL?.toLowerCase(),
    adminPassword: e.ADMIN_PASSWORD,
    logLevel: e.LOG_LEVEL,
    agentPingMs: e.PANEL_AGENT_PING_MS,
    commandTimeoutMs: e.PANEL_COMMAND_TIMEOUT_MS,
    updateTimeoutMs: e.PANEL_UPDATE_TIMEOUT_MS,
    agentLinesPerSecond: e.PANEL_AGENT_LINES_PER_SECOND,
    modrinthUrl: e.PANEL_MODRINTH_URL,
    // PANEL_WEBHOOK_ALLOW_PRIVATE is the older name of the same setting (one rule for every outbound URL)
    outboundAllowPrivate: truthy(e.PANEL_OUTBOUND_ALLOW_PRIVATE) || truthy(e.PANEL_WEBHOOK_ALLOW_PRIVATE),
    modMaxBytes: e.PANEL_MOD_MAX_MB * 1024 * 1024,
    loginRatePerMin: e.PANEL_LOGIN_RATE_PER_MIN,
    activityRetentionDays: e.PANEL_ACTIVITY_RETENTION_DAYS,
    webhookRetryBaseMs: e.PANEL_WEBHOOK_RETRY_BASE_MS,
    failoverTickMs: e.PANEL_FAILOVER_TICK_MS,
    failoverMinSeconds: e.PANEL_FAILOVER_MIN_SECONDS,
    tls,
    metricsToken: e.PANEL_METRICS_TOKEN,
    natsUrl: e.PANEL_NATS_URL,
    natsPrefix: e.PANEL_NATS_PREFIX,
    replicaHeartbeatMs: e.PANEL_REPLICA_HEARTBEAT_MS,
    webDist: resolve(e.PANEL_WEB_DIST ?? new URL('../../../web/dist', import.meta.url).pathname),
    builtinTemplatesDir: resolve(
      e.PANEL_BUILTIN_TEMPLATES_DIR ?? new URL('../../../../templates/builtin', import.meta.url).pathname,
    ),
    sessionTtlMs: e.PANEL_SESSION_TTL_HOURS * 3600 * 1000,
    trustProxy: trustProxyOf(e.PANEL_TRUST_PROXY),
    clientSocketsPerUser: e.PANEL_CLIENT_SOCKETS_PER_USER,
    requireTwoFactorForAdmins:
      e.PANEL_REQUIRE_2FA_FOR_ADMINS === 'true' || e.PANEL_REQUIRE_2FA_FOR_ADMINS === '1',
    defaultLimits: Object.freeze({
      memory: e.PANEL_DEFAULT_MEMORY,
      cpu: e.PANEL_DEFAULT_CPU,
      ...(e.PANEL_DEFAULT_DISK === undefined ? {} : { disk: e.PANEL_DEFAULT_DISK }),
    }),
    clientReauthMs: e.PANEL_CLIENT_REAUTH_MS,
    backupStorage: e.PANEL_BACKUP_STORAGE,
    s3,
  });
}

const truthy = (v: string) => v === 'true' || v === '1';

function s3SettingsOf(e: z.infer<typeof EnvSchema>): S3Settings {
  const missing = (
    ['PANEL_S3_BUCKET', 'PANEL_S3_ACCESS_KEY_ID', 'PANEL_S3_SECRET_ACCESS_KEY'] as const
  ).filter((k) => e[k] === undefined);
  if (missing.length > 0)
    throw new CodedError('CONFIG_INVALID', `PANEL_BACKUP_STORAGE=s3 needs ${missing.join(', ')}`, {
      details: missing,
    });
  const secret = e.PANEL_S3_SECRET_ACCESS_KEY as string;
  const settings: S3Settings = {
    endpoint: e.PANEL_S3_ENDPOINT?.replace(/\/+$/, ''),
    bucket: e.PANEL_S3_BUCKET as string,
    region: e.PANEL_S3_REGION,
    accessKeyId: e.PANEL_S3_ACCESS_KEY_ID as string,
    secretAccessKey: secret,
    forcePathStyle: truthy(e.PANEL_S3_FORCE_PATH_STYLE),
    partSizeBytes: e.PANEL_S3_PART_SIZE_MB * 1024 * 1024,
    queueSize: e.PANEL_S3_QUEUE_SIZE,
    prefix: e.PANEL_S3_PREFIX,
    downloads: e.PANEL_S3_DOWNLOADS,
    upload: { attempts: e.PANEL_S3_UPLOAD_ATTEMPTS, retryMs: e.PANEL_S3_UPLOAD_RETRY_MS },
  };
  // a logged config (pino serialises with JSON) never shows the secret
  Object.defineProperty(settings, 'toJSON', {
    enumerable: false,
    value: () => ({ ...settings, secretAccessKey: '[redacted]' }),
  });
  return Object.freeze(settings);
}
