/** Table types for Kysely. JSON columns are text; times are ISO strings; metric times are epoch ms. */
import type { Generated } from 'kysely';

export interface UsersTable {
  id: string;
  email: string;
  /** unique, [a-z0-9_.-]: the SFTP login is `<username>.<server id>` */
  username: string;
  password_hash: string;
  role: string;
  created_at: string;
  updated_at: string;
  /** sealed (AES-256-GCM, DATA_DIR/keys/totp.key) base32 TOTP secret; null = no 2FA */
  totp_secret?: string | null;
  /** sealed secret shown at enrolment, not confirmed yet */
  totp_pending_secret?: string | null;
  totp_enabled_at?: string | null;
  /** the last accepted TOTP time step: that step and earlier ones are refused */
  totp_last_step?: number | null;
}
export interface RecoveryCodesTable {
  id: string;
  user_id: string;
  /** HMAC-SHA256 of the normalised code */
  code_hash: string;
  created_at: string;
  used_at: string | null;
}
export interface LoginTicketsTable {
  /** SHA-256 of the ticket */
  id: string;
  user_id: string;
  created_at: string;
  expires_at: string;
  attempts: number;
}
export interface SessionsTable {
  /** SHA-256 of the cookie token */
  id: string;
  user_id: string;
  csrf_token: string;
  created_at: string;
  expires_at: string;
  last_seen_at?: string | null;
  ip?: string | null;
  user_agent?: string | null;
}
export interface ApiKeysTable {
  id: string;
  user_id: string;
  name: string;
  key_hash: string;
  created_at: string;
  last_used_at: string | null;
  /** after this instant the key is refused (AUTH_FAILED); null = never */
  expires_at: string | null;
  /** 'full' or 'read' (GET and subscribe only) */
  scope?: string;
  /** JSON array of server ids the key is limited to; null = no limit */
  server_ids?: string | null;
}
export interface NodesTable {
  id: string;
  name: string;
  secret_hash: string;
  hostname: string | null;
  capabilities: string | null;
  system_info: string | null;
  load: string | null;
  protocol_version: number | null;
  last_heartbeat_at: string | null;
  created_at: string;
  /** the generation of Agent JWTs this node accepts (bumped by each registration) */
  token_version: number;
  /** JSON { memory?, cpu?, disk? } for servers created without them; null = the Panel's defaults */
  default_limits: string | null;
  /** where players reach the node's servers (a hostname or IP); null = not set */
  public_address: string | null;
  /** JSON { at, code, protocolVersion, message }: why its Agent was last refused; null = not */
  agent_refusal: string | null;
  /** the browser-reachable base URL of the node's Agent HTTP API (direct transfers); null = relay only */
  transfer_url: string | null;
  /** (issue 16; optional: rows written before 024_node_capacity have none) capacity overrides: bytes (memory, disk), cores (cpu); null = the Agent's system_info */
  capacity_memory?: number | string | null;
  capacity_disk?: number | string | null;
  capacity_cpu?: number | null;
  /** over-allocation in percent (0 = none; -1 = the resource is not checked) */
  overallocate_memory?: number;
  overallocate_disk?: number;
  overallocate_cpu?: number;
  /** JSON array of tags (automatic placement narrows by them); null = none */
  tags?: string | null;
  /** where the node is (automatic placement narrows by it); null = not set */
  location?: string | null;
}
export interface AgentRefreshTokensTable {
  /** SHA-256 of the token */
  id: string;
  node_id: string;
  created_at: string;
  expires_at: string;
  used_at: string | null;
}
export interface ServersTable {
  id: string;
  name: string;
  node_id: string;
  image: string;
  startup: string;
  environment: string;
  ports: string;
  limits: string;
  done: string | null;
  stop: string | null;
  status: string;
  desired_state: string;
  last_update: string | null;
  created_at: string;
  updated_at: string;
  /** null for a raw-image server */
  template_id: string | null;
  /** the primary allocation (SERVER_PORT), when the server has one */
  allocation_id: string | null;
  /** seconds between the stop and the kill; null = the Agent's default */
  stop_timeout: number | null;
  /** the user who owns the server (all permissions on it); null once that user is deleted */
  owner_id?: string | null;
  /** most backups the server may hold (locked ones count); null: no limit */
  backup_limit?: number | null;
  /** failover (028_failover): 1 = restored on another node when its node is offline too long */
  failover_enabled?: number;
  /** seconds offline before a failover (30–86400) */
  failover_after_seconds?: number;
}
/** A node whose copy of a server must never run again (migration 028_failover). */
export interface ServerFencesTable {
  server_id: string;
  fenced_node_id: string;
  fenced_at: string;
  reason: string;
}
/** One failover of a server (028_failover): pending → restoring → started | failed. */
export interface ServerFailoversTable {
  id: string;
  server_id: string;
  from_node_id: string;
  to_node_id: string | null;
  allocation_id: string | null;
  backup_id: string | null;
  state: string;
  step: string | null;
  error_code: string | null;
  reason: string | null;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}
export interface ServerSubusersTable {
  server_id: string;
  user_id: string;
  /** JSON array of permission names */
  permissions: string;
  created_at: string;
  updated_at: string;
}
export interface TemplatesTable {
  id: string;
  uuid: string | null;
  name: string;
  author: string;
  description: string;
  source_format: string;
  /** 1 when it came from templates/builtin */
  builtin: number;
  /** the normalised Template as JSON */
  template: string;
  created_at: string;
  updated_at: string;
}
export interface AllocationsTable {
  id: string;
  node_id: string;
  ip: string;
  port: number;
  server_id: string | null;
  pooled: number;
  created_at: string;
}
export interface MetricBucketsTable {
  server_id: string;
  /** bucket start, epoch ms */
  t: number;
  samples: number;
  cpu: number;
  memory_bytes: number;
  rx_bytes: number;
  tx_bytes: number;
  disk_bytes: number;
}
export interface PlayerSessionsTable {
  id: string;
  server_id: string;
  name: string;
  /** epoch ms */
  joined_at: number;
  /** epoch ms; null while the player is online */
  left_at: number | null;
}
export interface PlayerBucketsTable {
  server_id: string;
  /** minute start, epoch ms */
  t: number;
  samples: number;
  /** average online over the minute's samples */
  online: number;
  peak: number;
  capacity: number;
}
export interface SettingsTable {
  key: string;
  value: string;
}

/** A server's move to another node (modules/transfers). */
export interface TransfersTable {
  id: string;
  server_id: string;
  operation_id: string;
  source_node_id: string;
  target_node_id: string;
  source_allocation_id: string | null;
  target_allocation_id: string | null;
  /** running | completed | failed */
  state: string;
  /** the step reached (the failed one, for a failure) */
  step: string;
  error_code: string | null;
  error_message: string | null;
  /** 1: a failed transfer's copy on the target is still to be deleted (its Agent was offline) */
  cleanup_pending: number;
  /** (029) how the archive went: direct (source Agent → target Agent) | relay (through the Panel); null until streamed */
  path?: string | null;
  /** (029) 1: the server ran on the source when the transfer began */
  was_running?: number;
  /** (029) the transfer's archive (a backup id on the source, then on the target) */
  archive_id?: string | null;
  /** (029) 1: a transfer cut by a Panel restart: the source is to be started again once its Agent is back */
  restart_pending?: number;
  /** (031) the replica running it (null: one Panel process) */
  owner_replica?: string | null;
  created_by: string | null;
  created_at: string;
  finished_at: string | null;
}

export interface OperationsTable {
  id: string;
  /** start | stop | restart | kill | reinstall | update */
  kind: string;
  server_id: string;
  node_id: string;
  actor_user_id: string | null;
  /** requested → accepted → the Agent's stages → completed | failed */
  stage: string;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
  /** 1 / 0; NULL while open */
  success: number | null;
  error_code: string | null;
  error_message: string | null;
}

/** The Panel's record of a backup (migration 014_backups); the archive is where `storage` says. */
export interface BackupsTable {
  id: string;
  server_id: string;
  node_id: string;
  name: string | null;
  format: string;
  state: string;
  size: number | string | null;
  sha256: string | null;
  bytes: number | string | null;
  entries: number | string | null;
  locked: number;
  storage: string;
  created_by: string | null;
  operation_id: string | null;
  created_at: string;
  completed_at: string | null;
  error_code: string | null;
  error_message: string | null;
}

export interface ActivityTable {
  id: string;
  at: string;
  action: string;
  actor_user_id: string | null;
  actor_email: string | null;
  ip: string | null;
  server_id: string | null;
  result: string;
  details: string | null;
}

export interface DockerPoliciesTable {
  node_id: string;
  /** JSON array of absolute host paths bind mounts may come from */
  bind_allow: string;
  updated_at: string;
}
export interface StacksTable {
  id: string;
  node_id: string;
  /** the Compose project name */
  name: string;
  compose: string;
  /** deploying | running | stopped | failed */
  status: string;
  last_error: string | null;
  created_by: string | null;
  updated_by: string | null;
  created_at: string;
  updated_at: string;
}
export interface DockerNodeAccessTable {
  node_id: string;
  user_id: string;
  /** JSON array: 'docker.read', 'docker.write' */
  permissions: string;
}

/** Registry credentials (migration 019_registries); the password sealed, never answered. */
export interface RegistriesTable {
  id: string;
  name: string;
  /** normalised registry host (`ghcr.io`, `127.0.0.1:5000`, `docker.io`) */
  host: string;
  username: string;
  password_sealed: string | null;
  created_at: string;
  updated_at: string;
}

/** A shared attempt counter (030_rate_limits). */
export interface RateLimitsTable {
  key: string;
  /** ms since the epoch (PostgreSQL bigint: read back as a string) */
  window_start: number | string;
  n: number;
}

/** A Panel replica's heartbeat (031_replicas). */
export interface PanelReplicasTable {
  id: string;
  /** ms since the epoch, the database's clock (PostgreSQL bigint: read back as a string) */
  heartbeat_at: number | string;
  /** (033) the `application_name` of its PostgreSQL sessions (ended by the survivors once it is dead) */
  pg_app: string | null;
}

/** Open sockets per key and replica (031_replicas). */
export interface LiveCountsTable {
  replica_id: string;
  key: string;
  n: number;
}

/** The console's high-water mark per server (032_console_marks). */
export interface ConsoleMarksTable {
  server_id: string;
  epoch: string;
  /** PostgreSQL bigint: read back as a string */
  seq: number | string;
  /** (034) the highest seq of `epoch` whose publish completed (0: none known); ≤ seq */
  shown: Generated<number | string>;
}

export interface Database {
  console_marks: ConsoleMarksTable;
  panel_replicas: PanelReplicasTable;
  live_counts: LiveCountsTable;
  rate_limits: RateLimitsTable;
  registries: RegistriesTable;
  docker_policies: DockerPoliciesTable;
  docker_node_access: DockerNodeAccessTable;
  stacks: StacksTable;
  users: UsersTable;
  sessions: SessionsTable;
  api_keys: ApiKeysTable;
  nodes: NodesTable;
  agent_refresh_tokens: AgentRefreshTokensTable;
  servers: ServersTable;
  templates: TemplatesTable;
  allocations: AllocationsTable;
  metric_buckets: MetricBucketsTable;
  player_sessions: PlayerSessionsTable;
  player_buckets: PlayerBucketsTable;
  settings: SettingsTable;
  recovery_codes: RecoveryCodesTable;
  login_tickets: LoginTicketsTable;
  operations: OperationsTable;
  transfers: TransfersTable;
  activity: ActivityTable;
  server_subusers: ServerSubusersTable;
  user_ssh_keys: UserSshKeysTable;
  backups: BackupsTable;
  schedules: SchedulesTable;
  schedule_runs: ScheduleRunsTable;
  webhooks: WebhooksTable;
  webhook_deliveries: WebhookDeliveriesTable;
  server_fences: ServerFencesTable;
  server_failovers: ServerFailoversTable;
  server_image_state: ServerImageStateTable;
}

/** A server's image check and last image update (migration 025_image_updates). */
export interface ServerImageStateTable {
  server_id: string;
  image: string;
  image_id: string | null;
  local_digest: string | null;
  remote_digest: string | null;
  checked_at: string | null;
  error: string | null;
  last_update: string | null;
}

export interface UserSshKeysTable {
  id: string;
  user_id: string;
  name: string;
  fingerprint: string;
  public_key: string;
  created_at: string;
}

/** A server's schedule (migration 022_schedules); `tasks` is JSON ScheduleTask[]. */
export interface SchedulesTable {
  id: string;
  server_id: string;
  name: string;
  cron: string | null;
  interval_seconds: number | null;
  timezone: string;
  only_when_online: number;
  enabled: number;
  tasks: string;
  next_run_at: string | null;
  created_by: string | null;
  created_at: string;
  updated_at: string;
}

/** One run of a schedule, claimed before it starts (unique per schedule and slot). */
export interface ScheduleRunsTable {
  id: string;
  schedule_id: string;
  server_id: string;
  slot: string;
  trigger: string;
  state: string;
  due_at: string | null;
  tasks: string;
  results: string;
  next_task: number;
  next_at: string | null;
  message: string | null;
  actor_user_id: string | null;
  started_at: string;
  finished_at: string | null;
}

/** A webhook (migration 023_webhooks): url and secret sealed; server_id null = Panel-wide. */
export interface WebhooksTable {
  id: string;
  server_id: string | null;
  name: string;
  kind: string;
  url: string;
  url_display: string;
  secret: string | null;
  events: string;
  enabled: number;
  created_by: string | null;
  created_at: string;
  updated_at: string;
}

/** One event to deliver to one webhook, with its attempts. */
export interface WebhookDeliveriesTable {
  id: string;
  webhook_id: string;
  event: string;
  payload: string;
  state: string;
  attempts: number;
  next_attempt_at: string | null;
  last_status: number | null;
  last_error: string | null;
  log: string;
  created_at: string;
  delivered_at: string | null;
}

export type { Generated };
