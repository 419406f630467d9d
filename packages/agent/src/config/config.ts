/**
 * The Agent's configuration: read from the environment here and nowhere else, validated once,
 * frozen, passed in. A bad config fails listing every bad key.
 */
import { isIPv4 } from 'node:net';
import path from 'node:path';
import { CodedError, LINK_MAX_MESSAGE_BYTES } from '@cap/protocol';
import { z } from 'zod';

const int = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const panelUrl = z
  .string()
  .trim()
  .refine((s) => {
    try {
      return ['ws:', 'wss:', 'http:', 'https:'].includes(new URL(s).protocol);
    } catch {
      return false;
    }
  }, 'must be a ws://, wss://, http:// or https:// URL');

/** The origin a browser has on the Panel's pages (ws(s):// is the same host as http(s)://). */
function browserOriginOf(panelUrl: string): string {
  const u = new URL(panelUrl);
  if (u.protocol === 'ws:') u.protocol = 'http:';
  if (u.protocol === 'wss:') u.protocol = 'https:';
  return u.origin;
}

const AgentEnv = z.object({
  PANEL_URL: panelUrl,
  NODE_ID: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'must be 1–128 of [A-Za-z0-9_.-]'),
  AGENT_SECRET: z.string().min(8, 'must be at least 8 characters').max(512),
  AGENT_DATA_DIR: z.string().min(1).default('./data/agent'),
  /** where backups are kept on the node; default `<AGENT_DATA_DIR>/backups` (outside every server root) */
  AGENT_BACKUP_DIR: z.string().min(1).optional(),
  DOCKER_HOST: z
    .string()
    .regex(
      /^(unix|tcp|http|https|npipe):\/\/.+|^\//,
      'must be unix:///path, tcp://host:port or a socket path',
    )
    .optional(),
  AGENT_HTTP_PORT: int(0, 65535).default(8081),
  /** loopback unless an operator opens it on purpose (game containers reach the host's other addresses) */
  AGENT_HTTP_HOST: z.string().min(1).default('127.0.0.1'),
  AGENT_HTTP_RATE: int(1, 100_000).default(20),
  AGENT_API_KEY: z.string().min(16, 'must be at least 16 characters').optional(),
  /** origins allowed to use /transfers/* from a browser (comma-separated, or `*`); unset: PANEL_URL's origin */
  AGENT_CORS_ORIGINS: z.string().optional(),
  AGENT_CRASH_TIMEOUT: int(0, 86400).default(60),
  /** game containers are named `<prefix><server>` (two Agents sharing one Docker Engine need different ones) */
  AGENT_CONTAINER_PREFIX: z
    .string()
    .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,31}$/, 'a Docker container name prefix')
    .default('cap-'),
  /** seconds the start of servers stopped during the Agent's downtime waits for the Panel's fence list */
  AGENT_FENCE_WAIT: int(0, 3600).default(30),
  AGENT_LOG_THROTTLE_LINES: int(1, 1_000_000).default(2000),
  AGENT_LOG_THROTTLE_INTERVAL_MS: int(10, 60_000).default(100),
  AGENT_STATS_INTERVAL_MS: int(50, 600_000).default(2000),
  AGENT_HEARTBEAT_INTERVAL_MS: int(50, 600_000).default(30_000),
  AGENT_CONTAINER_UID: int(0, 2 ** 31 - 1).default(1000),
  AGENT_CONTAINER_GID: int(0, 2 ** 31 - 1).default(1000),
  AGENT_DISK_CHECK_INTERVAL_MS: int(100, 3_600_000).default(30_000),
  AGENT_COMMAND_RATE: int(1, 100_000).default(100),
  AGENT_LINK_MAX_MESSAGE_BYTES: int(16 * 1024, 8 * 1024 * 1024).default(LINK_MAX_MESSAGE_BYTES),
  AGENT_NAME: z.string().min(1).max(191).optional(),
  AGENT_BIND_IP: z.union([z.ipv4(), z.ipv6()]).default('0.0.0.0'),
  AGENT_TZ: z.string().min(1).max(64).default('UTC'),
  AGENT_DOCKER_NETWORK: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'must be a Docker network name')
    .default('ctrl-alt-play'),
  AGENT_FIREWALL: z.enum(['true', 'false']).default('true'),
  /** the SFTP server's port (Wings' 2022); 0 = no SFTP server */
  AGENT_SFTP_PORT: int(0, 65535).default(2022),
  AGENT_SFTP_HOST: z.string().min(1).default('0.0.0.0'),
  /** SFTP login attempts a minute one client address may make */
  AGENT_SFTP_AUTH_RATE: int(1, 100_000).default(20),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** a Bearer token for GET /metrics (the API key works too) */
  AGENT_METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').max(512).optional(),
  /** plain ws:// or http:// to a Panel that is not on loopback is refused unless this is 1 */
  AGENT_ALLOW_INSECURE: z.enum(['1', '0', 'true', 'false']).default('0'),
  /** 0: the Panel's Docker Engine API relay (docker_tunnel) is refused on this node */
  AGENT_DOCKER_API: z.enum(['1', '0', 'true', 'false']).default('1'),
  /** auto: a volume's Mountpoint when this Agent sees it, else a helper container; helper: always the helper */
  AGENT_VOLUME_ACCESS: z.enum(['auto', 'helper']).default('auto'),
  /** the helper container's image (default: the Agent's own image in a container, else ctrl-alt-play/busybox) */
  AGENT_VOLUME_HELPER_IMAGE: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$/, 'must be a Docker image reference')
    .optional(),
  /** the Panel's certificate SHA-256 fingerprint: only that certificate is accepted */
  AGENT_PANEL_CERT_SHA256: z
    .string()
    .trim()
    .regex(
      /^([0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2}$/,
      'must be a SHA-256 fingerprint (64 hex digits, colons optional)',
    )
    .optional(),
});

/** Whether a URL's host is this machine's loopback (localhost, 127.0.0.0/8, ::1). */
export function isLoopbackUrl(url: string): boolean {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host === '::1') return true;
  return isIPv4(host) && host.startsWith('127.');
}

export const isPlainUrl = (url: string): boolean => /^(ws|http):$/.test(new URL(url).protocol);

/** `AB:CD:…`, the form node:tls gives a certificate's fingerprint256 in. */
export function normalizeFingerprint(fp: string): string {
  const hex = fp.replaceAll(':', '').toUpperCase();
  return hex.replace(/(..)(?!$)/g, '$1:');
}

export interface AgentConfig {
  readonly panelUrl: string;
  readonly nodeId: string;
  readonly agentSecret: string;
  readonly dataDir: string;
  /** backups on this node (never inside a server's directory) */
  readonly backupDir: string;
  readonly dockerHost: string | undefined;
  readonly httpPort: number;
  readonly httpHost: string;
  readonly apiKey: string | undefined;
  /** HTTP requests a second one client address may make (twice that as a burst); more → 429 */
  readonly httpRate: number;
  readonly corsOrigins: readonly string[];
  readonly crashTimeoutMs: number;
  /** AGENT_CONTAINER_PREFIX: game containers are `<prefix><server>`, installers `<prefix>install-<server>` */
  readonly containerPrefix: string;
  /** AGENT_FENCE_WAIT: how long the starts after the Agent's downtime wait for the Panel's fence list */
  readonly fenceWaitMs: number;
  readonly logThrottleLines: number;
  readonly logThrottleIntervalMs: number;
  readonly statsIntervalMs: number;
  readonly heartbeatIntervalMs: number;
  /** uid/gid game containers run as and their files belong to (Wings' user.uid/gid) */
  readonly containerUid: number;
  readonly containerGid: number;
  /** how often a running server's disk usage is walked (the over-limit check) */
  readonly diskCheckIntervalMs: number;
  /** commands a second one Panel connection may send (twice that as a burst); more are refused */
  readonly commandRate: number;
  /** the largest message sent on the Panel link; a larger answer becomes MESSAGE_TOO_LARGE */
  readonly linkMaxMessageBytes: number;
  readonly name: string | undefined;
  readonly bindIp: string;
  readonly timezone: string;
  /** the bridge the game servers are on (inter-container traffic off; created when missing) */
  readonly dockerNetwork: string;
  /** iptables rules keeping game containers from the Agent's and a local Panel's ports */
  readonly firewall: boolean;
  /** SFTP (issue 10 item 3): port (0 = off), address, login attempts a minute per client address */
  readonly sftpPort: number;
  readonly sftpHost: string;
  readonly sftpAuthRate: number;
  readonly logLevel: string;
  /** AGENT_METRICS_TOKEN: Bearer token for GET /metrics */
  readonly metricsToken: string | undefined;
  /** AGENT_ALLOW_INSECURE=1: plain ws:// or http:// to a Panel off loopback is allowed */
  readonly allowInsecure: boolean;
  /** AGENT_DOCKER_API (default on): the Panel may relay Docker Engine API requests to this node */
  readonly dockerApi: boolean;
  /** AGENT_PANEL_CERT_SHA256 as `AB:CD:…`: the only Panel certificate accepted */
  readonly panelCertSha256: string | undefined;
  /** AGENT_VOLUME_ACCESS: `helper` treats every volume's Mountpoint as out of reach */
  readonly volumeAccess: 'auto' | 'helper';
  /** AGENT_VOLUME_HELPER_IMAGE (unset: the Agent's own image, else ctrl-alt-play/busybox) */
  readonly volumeHelperImage: string | undefined;
}

/** Validates the environment; throws CodedError('CONFIG_INVALID') naming every bad key. */
export function loadAgentConfig(env: Record<string, string | undefined>): AgentConfig {
  // empty strings count as unset, as shells and compose files produce them
  const clean: Record<string, string> = {};
  for (const key of Object.keys(AgentEnv.shape)) {
    const v = env[key];
    if (v !== undefined && v !== '') clean[key] = v;
  }
  const r = AgentEnv.safeParse(clean);
  if (!r.success) {
    const byKey = new Map<string, string>();
    for (const i of r.error.issues) {
      const key = String(i.path[0] ?? '(root)');
      if (!byKey.has(key)) byKey.set(key, i.code === 'invalid_type' ? 'is required' : i.message);
    }
    const keys = [...byKey.keys()];
    throw new CodedError(
      'CONFIG_INVALID',
      `invalid agent configuration: ${[...byKey].map(([k, m]) => `${k} ${m}`).join('; ')}`,
      { details: { keys }, location: keys.join(',') },
    );
  }
  const e = r.data;
  const allowInsecure = e.AGENT_ALLOW_INSECURE === '1' || e.AGENT_ALLOW_INSECURE === 'true';
  if (isPlainUrl(e.PANEL_URL) && e.AGENT_PANEL_CERT_SHA256) {
    throw new CodedError(
      'CONFIG_INVALID',
      'invalid agent configuration: AGENT_PANEL_CERT_SHA256 needs a wss:// or https:// PANEL_URL',
      { details: { keys: ['AGENT_PANEL_CERT_SHA256', 'PANEL_URL'] }, location: 'AGENT_PANEL_CERT_SHA256' },
    );
  }
  if (isPlainUrl(e.PANEL_URL) && !isLoopbackUrl(e.PANEL_URL) && !allowInsecure) {
    throw new CodedError(
      'CONFIG_INVALID',
      `invalid agent configuration: PANEL_URL ${new URL(e.PANEL_URL).protocol}// to ${new URL(e.PANEL_URL).host} is not encrypted ` +
        '(the Agent secret and every command would cross the network in clear): use wss:// or https://, ' +
        'or set AGENT_ALLOW_INSECURE=1 on a network you trust',
      { details: { keys: ['PANEL_URL'] }, location: 'PANEL_URL' },
    );
  }
  return Object.freeze({
    panelUrl: e.PANEL_URL.replace(/\/+$/, ''),
    nodeId: e.NODE_ID,
    agentSecret: e.AGENT_SECRET,
    dataDir: e.AGENT_DATA_DIR,
    backupDir: e.AGENT_BACKUP_DIR ?? path.join(e.AGENT_DATA_DIR, 'backups'),
    dockerHost: e.DOCKER_HOST,
    dockerApi: e.AGENT_DOCKER_API === '1' || e.AGENT_DOCKER_API === 'true',
    httpPort: e.AGENT_HTTP_PORT,
    httpHost: e.AGENT_HTTP_HOST,
    apiKey: e.AGENT_API_KEY,
    httpRate: e.AGENT_HTTP_RATE,
    corsOrigins: Object.freeze(
      e.AGENT_CORS_ORIGINS === undefined
        ? [browserOriginOf(e.PANEL_URL)]
        : e.AGENT_CORS_ORIGINS.split(',')
            .map((s) => s.trim())
            .filter(Boolean),
    ),
    crashTimeoutMs: e.AGENT_CRASH_TIMEOUT * 1000,
    fenceWaitMs: e.AGENT_FENCE_WAIT * 1000,
    containerPrefix: e.AGENT_CONTAINER_PREFIX,
    logThrottleLines: e.AGENT_LOG_THROTTLE_LINES,
    logThrottleIntervalMs: e.AGENT_LOG_THROTTLE_INTERVAL_MS,
    statsIntervalMs: e.AGENT_STATS_INTERVAL_MS,
    heartbeatIntervalMs: e.AGENT_HEARTBEAT_INTERVAL_MS,
    containerUid: e.AGENT_CONTAINER_UID,
    containerGid: e.AGENT_CONTAINER_GID,
    diskCheckIntervalMs: e.AGENT_DISK_CHECK_INTERVAL_MS,
    commandRate: e.AGENT_COMMAND_RATE,
    linkMaxMessageBytes: e.AGENT_LINK_MAX_MESSAGE_BYTES,
    name: e.AGENT_NAME,
    bindIp: e.AGENT_BIND_IP,
    timezone: e.AGENT_TZ,
    dockerNetwork: e.AGENT_DOCKER_NETWORK,
    firewall: e.AGENT_FIREWALL === 'true',
    sftpPort: e.AGENT_SFTP_PORT,
    sftpHost: e.AGENT_SFTP_HOST,
    sftpAuthRate: e.AGENT_SFTP_AUTH_RATE,
    logLevel: e.LOG_LEVEL,
    metricsToken: e.AGENT_METRICS_TOKEN,
    allowInsecure,
    panelCertSha256: e.AGENT_PANEL_CERT_SHA256 ? normalizeFingerprint(e.AGENT_PANEL_CERT_SHA256) : undefined,
    volumeAccess: e.AGENT_VOLUME_ACCESS,
    volumeHelperImage: e.AGENT_VOLUME_HELPER_IMAGE,
  });
}
