/** Migrations as code, the same for SQLite and PostgreSQL (portable types only). */
import { type Kysely, type Migration, type MigrationProvider, sql } from 'kysely';

// Kysely migrations must accept any database shape: the schema is what they build.
type AnyDb = Kysely<unknown>;

const m001: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('users')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('email', 'text', (c) => c.notNull().unique())
      .addColumn('password_hash', 'text', (c) => c.notNull())
      .addColumn('role', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('sessions')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('csrf_token', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('sessions_user').on('sessions').column('user_id').execute();
    await db.schema
      .createTable('api_keys')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('key_hash', 'text', (c) => c.notNull().unique())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('last_used_at', 'text')
      .execute();
    await db.schema
      .createTable('nodes')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .addColumn('secret_hash', 'text', (c) => c.notNull().unique())
      .addColumn('hostname', 'text')
      .addColumn('capabilities', 'text')
      .addColumn('system_info', 'text')
      .addColumn('load', 'text')
      .addColumn('protocol_version', 'integer')
      .addColumn('last_heartbeat_at', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('agent_refresh_tokens')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('node_id', 'text', (c) => c.notNull().references('nodes.id').onDelete('cascade'))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .addColumn('used_at', 'text')
      .execute();
    await db.schema.createIndex('refresh_node').on('agent_refresh_tokens').column('node_id').execute();
    await db.schema
      .createTable('servers')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('node_id', 'text', (c) => c.notNull().references('nodes.id').onDelete('restrict'))
      .addColumn('image', 'text', (c) => c.notNull())
      .addColumn('startup', 'text', (c) => c.notNull())
      .addColumn('environment', 'text', (c) => c.notNull())
      .addColumn('ports', 'text', (c) => c.notNull())
      .addColumn('limits', 'text', (c) => c.notNull())
      .addColumn('done', 'text')
      .addColumn('stop', 'text')
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('desired_state', 'text', (c) => c.notNull())
      .addColumn('last_update', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('servers_node').on('servers').column('node_id').execute();
    await db.schema
      .createTable('metric_buckets')
      .addColumn('server_id', 'text', (c) => c.notNull().references('servers.id').onDelete('cascade'))
      .addColumn('t', 'double precision', (c) => c.notNull())
      .addColumn('samples', 'integer', (c) => c.notNull())
      .addColumn('cpu', 'double precision', (c) => c.notNull())
      .addColumn('memory_bytes', 'double precision', (c) => c.notNull())
      .addColumn('rx_bytes', 'double precision', (c) => c.notNull())
      .addColumn('tx_bytes', 'double precision', (c) => c.notNull())
      .addColumn('disk_bytes', 'double precision', (c) => c.notNull())
      .addPrimaryKeyConstraint('metric_buckets_pk', ['server_id', 't'])
      .execute();
    await db.schema.createIndex('metric_buckets_t').on('metric_buckets').column('t').execute();
    await db.schema
      .createTable('settings')
      .addColumn('key', 'text', (c) => c.primaryKey())
      .addColumn('value', 'text', (c) => c.notNull())
      .execute();
  },
};

/** Templates (eggs), per-node port allocations, and servers made from templates. */
const m002: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('templates')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('uuid', 'text')
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('author', 'text', (c) => c.notNull())
      .addColumn('description', 'text', (c) => c.notNull())
      .addColumn('source_format', 'text', (c) => c.notNull())
      .addColumn('builtin', 'integer', (c) => c.notNull())
      .addColumn('template', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    // NULLs are distinct in both engines: eggs without a uuid never collide.
    await db.schema.createIndex('templates_uuid').on('templates').column('uuid').unique().execute();
    await db.schema
      .createTable('allocations')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('node_id', 'text', (c) => c.notNull().references('nodes.id').onDelete('cascade'))
      .addColumn('ip', 'text', (c) => c.notNull())
      .addColumn('port', 'integer', (c) => c.notNull())
      .addColumn('server_id', 'text', (c) => c.references('servers.id').onDelete('set null'))
      // 0 = made for a raw `ports` binding and removed with its server; 1 = in the admin's pool
      .addColumn('pooled', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    // Two parallel claims of the same ip:port cannot both insert.
    await db.schema
      .createIndex('allocations_node_ip_port')
      .on('allocations')
      .columns(['node_id', 'ip', 'port'])
      .unique()
      .execute();
    await db.schema.createIndex('allocations_server').on('allocations').column('server_id').execute();
    await db.schema
      .alterTable('servers')
      .addColumn('template_id', 'text', (c) => c.references('templates.id').onDelete('restrict'))
      .execute();
    await db.schema.alterTable('servers').addColumn('allocation_id', 'text').execute();
    await db.schema.alterTable('servers').addColumn('stop_timeout', 'integer').execute();
  },
};

/** Per-node Agent token generation: a re-registration revokes every JWT issued before it. */
const m003: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .alterTable('nodes')
      .addColumn('token_version', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
  },
};

/** API keys may expire (NULL: never). */
const m004: Migration = {
  async up(db: AnyDb) {
    await db.schema.alterTable('api_keys').addColumn('expires_at', 'text').execute();
  },
};

/** Per-node default limits for servers created without them (NULL: the Panel's defaults). */
const m005: Migration = {
  async up(db: AnyDb) {
    await db.schema.alterTable('nodes').addColumn('default_limits', 'text').execute();
  },
};

/**
 * Accounts: TOTP 2FA (secret encrypted, the last accepted time step per user), one-time recovery
 * codes (keyed hashes), the short-lived ticket between the password and the code, where a session
 * came from and when it was last seen, and API-key scopes.
 */
const m006: Migration = {
  async up(db: AnyDb) {
    // AES-256-GCM sealed with DATA_DIR/keys/totp.key; never returned after enrolment
    await db.schema.alterTable('users').addColumn('totp_secret', 'text').execute();
    // a secret shown at enrolment, waiting for its first code
    await db.schema.alterTable('users').addColumn('totp_pending_secret', 'text').execute();
    await db.schema.alterTable('users').addColumn('totp_enabled_at', 'text').execute();
    // RFC 6238 §5.2: a time step accepted once is refused afterwards (steps are ~5.9e7: integer)
    await db.schema.alterTable('users').addColumn('totp_last_step', 'integer').execute();
    await db.schema
      .createTable('recovery_codes')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('code_hash', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('used_at', 'text')
      .execute();
    await db.schema
      .createIndex('recovery_codes_user_hash')
      .on('recovery_codes')
      .columns(['user_id', 'code_hash'])
      .unique()
      .execute();
    await db.schema
      .createTable('login_tickets')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.alterTable('sessions').addColumn('last_seen_at', 'text').execute();
    await db.schema.alterTable('sessions').addColumn('ip', 'text').execute();
    await db.schema.alterTable('sessions').addColumn('user_agent', 'text').execute();
    // 'full' | 'read'; server_ids: JSON array, NULL = every server the user may see
    await db.schema
      .alterTable('api_keys')
      .addColumn('scope', 'text', (c) => c.notNull().defaultTo('full'))
      .execute();
    await db.schema.alterTable('api_keys').addColumn('server_ids', 'text').execute();
  },
};

/**
 * Operations (issue 9 item 1): one row per power action, reinstall or config update sent to an
 * Agent, from the request to its end as the Agent reports it. Named 010 so migrations other
 * work adds meanwhile (006–009) sort before it; it depends on none of them.
 */
const m010: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('operations')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('server_id', 'text', (c) => c.notNull())
      .addColumn('node_id', 'text', (c) => c.notNull())
      .addColumn('actor_user_id', 'text')
      .addColumn('stage', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addColumn('finished_at', 'text')
      /** 1 = success, 0 = failed, NULL while open */
      .addColumn('success', 'integer')
      .addColumn('error_code', 'text')
      .addColumn('error_message', 'text')
      .execute();
    await db.schema
      .createIndex('operations_server')
      .on('operations')
      .columns(['server_id', 'created_at'])
      .execute();
    await db.schema
      .createIndex('operations_open')
      .on('operations')
      .columns(['node_id', 'finished_at'])
      .execute();
  },
};

/**
 * The activity log (issue 9 item 5): who did what, from where, on which server, with what result.
 * Never bodies, passwords or tokens: only the action's name, the actor, the address and the result.
 */
const m011: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('activity')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('at', 'text', (c) => c.notNull())
      .addColumn('action', 'text', (c) => c.notNull())
      .addColumn('actor_user_id', 'text')
      /** the actor's email then, or for a login the email that was tried */
      .addColumn('actor_email', 'text')
      .addColumn('ip', 'text')
      .addColumn('server_id', 'text')
      /** 'ok' or an error code */
      .addColumn('result', 'text', (c) => c.notNull())
      /** small JSON of non-secret facts (an operation's id and kind) */
      .addColumn('details', 'text')
      .execute();
    await db.schema.createIndex('activity_at').on('activity').columns(['at', 'id']).execute();
    await db.schema.createIndex('activity_server').on('activity').columns(['server_id', 'at']).execute();
  },
};

/**
 * Per-server access (issue 9 item 3): every server has an owner (any user; existing servers get
 * the first Panel owner, as no creator was recorded), and subusers hold permissions on one server.
 */
const m012: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .alterTable('servers')
      .addColumn('owner_id', 'text', (c) => c.references('users.id').onDelete('set null'))
      .execute();
    await sql`UPDATE servers SET owner_id = (SELECT id FROM users WHERE role = 'owner' ORDER BY created_at, id LIMIT 1)`.execute(
      db,
    );
    await db.schema
      .createTable('server_subusers')
      .addColumn('server_id', 'text', (c) => c.notNull().references('servers.id').onDelete('cascade'))
      .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
      /** JSON array of permission names (modules/access/permissions.ts) */
      .addColumn('permissions', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('server_subusers_pk', ['server_id', 'user_id'])
      .execute();
    await db.schema.createIndex('server_subusers_user').on('server_subusers').column('user_id').execute();
    await db.schema.createIndex('servers_owner').on('servers').column('owner_id').execute();
  },
};

/**
 * SFTP (issue 10 item 3): every user gets a unique `username` (the SFTP login is
 * `<username>.<server id>`), derived for existing users from their email's local part (lowercased,
 * other characters as `_`, a number added on a clash); and SSH public keys per user.
 */
const m013: Migration = {
  async up(db: AnyDb) {
    await db.schema.alterTable('users').addColumn('username', 'text').execute();
    const rows = await sql<{
      id: string;
      email: string;
    }>`SELECT id, email FROM users ORDER BY created_at, id`.execute(db);
    const taken = new Set<string>();
    for (const r of rows.rows) {
      const base = usernameFromEmail(r.email);
      let name = base;
      for (let i = 2; taken.has(name); i++) name = `${base.slice(0, 28)}${i}`;
      taken.add(name);
      await sql`UPDATE users SET username = ${name} WHERE id = ${r.id}`.execute(db);
    }
    await db.schema.createIndex('users_username').on('users').column('username').unique().execute();
    await db.schema
      .createTable('user_ssh_keys')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('name', 'text', (c) => c.notNull())
      /** SHA256:<base64> of the key blob, as `ssh-keygen -lf` shows it */
      .addColumn('fingerprint', 'text', (c) => c.notNull())
      /** the key in OpenSSH one-line form (algorithm and base64 blob, no comment) */
      .addColumn('public_key', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('user_ssh_keys_fp')
      .on('user_ssh_keys')
      .columns(['user_id', 'fingerprint'])
      .unique()
      .execute();
  },
};

/**
 * Backups (issue 10 item 4): the Panel's record of each backup, kept in sync with the Agent's
 * (the operation's end and list calls reconcile it); `storage` says where the archive lives
 * ('node' today). A server's backup limit (null: no limit), as Pterodactyl's feature_limits.backups.
 */
const m014: Migration = {
  async up(db: AnyDb) {
    await db.schema.alterTable('servers').addColumn('backup_limit', 'integer').execute();
    await db.schema
      .createTable('backups')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('server_id', 'text', (c) => c.notNull().references('servers.id').onDelete('cascade'))
      .addColumn('node_id', 'text', (c) => c.notNull())
      .addColumn('name', 'text')
      .addColumn('format', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('size', 'bigint')
      .addColumn('sha256', 'text')
      .addColumn('bytes', 'bigint')
      .addColumn('entries', 'bigint')
      .addColumn('locked', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('storage', 'text', (c) => c.notNull().defaultTo('node'))
      .addColumn('created_by', 'text', (c) => c.references('users.id').onDelete('set null'))
      .addColumn('operation_id', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('completed_at', 'text')
      .addColumn('error_code', 'text')
      .addColumn('error_message', 'text')
      .execute();
    await db.schema
      .createIndex('backups_server')
      .on('backups')
      .columns(['server_id', 'created_at'])
      .execute();
  },
};

/**
 * Where players reach a node's servers (issue 14 item 6): a hostname or IP the Panel shows with
 * each server's port instead of the 0.0.0.0 it binds; null until an admin (or `up`) sets it.
 */
const m015: Migration = {
  async up(db: AnyDb) {
    await db.schema.alterTable('nodes').addColumn('public_address', 'text').execute();
  },
};

/**
 * Why the node's Agent was last refused (issue 14 item 7: an Agent speaking another protocol
 * version), JSON { at, code, protocolVersion, message }; cleared when an Agent connects.
 */
const m016: Migration = {
  async up(db: AnyDb) {
    await db.schema.alterTable('nodes').addColumn('agent_refusal', 'text').execute();
  },
};

/**
 * A node's `transfer_url` (issue 10 item 2): the browser-reachable base URL of its Agent's HTTP
 * API; transfer links point there when it is set and the Agent is connected (null: relay only).
 */
const m017: Migration = {
  async up(db: AnyDb) {
    await db.schema.alterTable('nodes').addColumn('transfer_url', 'text').execute();
  },
};

/**
 * Docker through the Panel (issue 11): per node, the host paths bind mounts may come from (the
 * policy's allow-list, a JSON array of absolute paths), and users' node-level Docker permissions
 * (`docker.read`, `docker.write`; admins and owners hold both without a row).
 */
const m018: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('docker_policies')
      .addColumn('node_id', 'text', (c) => c.primaryKey().references('nodes.id').onDelete('cascade'))
      .addColumn('bind_allow', 'text', (c) => c.notNull().defaultTo('[]'))
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('docker_node_access')
      .addColumn('node_id', 'text', (c) => c.notNull().references('nodes.id').onDelete('cascade'))
      .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('permissions', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('docker_node_access_pk', ['node_id', 'user_id'])
      .execute();
  },
};

/**
 * Registries (issue 11 item 3): Panel-level credentials per registry host, the password sealed
 * with DATA_DIR/keys/registries.key (AES-256-GCM, lib/crypto seal); the host is unique.
 */
const m019: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('registries')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('host', 'text', (c) => c.notNull().unique())
      .addColumn('username', 'text', (c) => c.notNull())
      .addColumn('password_sealed', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
  },
};

/**
 * Players (issue 12 item 2): join/leave sessions by name, and a per-minute count history
 * (average online, peak, capacity), kept 7 days as metric_buckets are.
 */
const m020: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('player_sessions')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('server_id', 'text', (c) => c.notNull().references('servers.id').onDelete('cascade'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('joined_at', 'double precision', (c) => c.notNull())
      .addColumn('left_at', 'double precision')
      .execute();
    await db.schema
      .createIndex('player_sessions_server')
      .on('player_sessions')
      .columns(['server_id', 'joined_at'])
      .execute();
    await db.schema
      .createTable('player_buckets')
      .addColumn('server_id', 'text', (c) => c.notNull().references('servers.id').onDelete('cascade'))
      .addColumn('t', 'double precision', (c) => c.notNull())
      .addColumn('samples', 'integer', (c) => c.notNull())
      .addColumn('online', 'double precision', (c) => c.notNull())
      .addColumn('peak', 'integer', (c) => c.notNull())
      .addColumn('capacity', 'integer', (c) => c.notNull())
      .addPrimaryKeyConstraint('player_buckets_pk', ['server_id', 't'])
      .execute();
    await db.schema.createIndex('player_buckets_t').on('player_buckets').column('t').execute();
  },
};

/**
 * Schedules (issue 13 item 1): per server, a cron expression (with an IANA time zone) or an
 * interval, and its tasks (JSON, in order). `next_run_at` is the next slot; a run claims its slot
 * with a row in `schedule_runs` (unique per schedule and slot) before any task starts, and stores
 * each task's progress there, so a restarted Panel resumes or closes it instead of running it twice.
 */
const m022: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('schedules')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('server_id', 'text', (c) => c.notNull().references('servers.id').onDelete('cascade'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('cron', 'text')
      .addColumn('interval_seconds', 'integer')
      .addColumn('timezone', 'text', (c) => c.notNull())
      .addColumn('only_when_online', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
      /** JSON: ScheduleTask[] */
      .addColumn('tasks', 'text', (c) => c.notNull())
      .addColumn('next_run_at', 'text')
      .addColumn('created_by', 'text', (c) => c.references('users.id').onDelete('set null'))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('schedules_server').on('schedules').column('server_id').execute();
    await db.schema
      .createIndex('schedules_due')
      .on('schedules')
      .columns(['enabled', 'next_run_at'])
      .execute();
    await db.schema
      .createTable('schedule_runs')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('schedule_id', 'text', (c) => c.notNull().references('schedules.id').onDelete('cascade'))
      .addColumn('server_id', 'text', (c) => c.notNull())
      /** the slot claimed: the due time (ISO) of a scheduled run, `manual:<runId>` for run now */
      .addColumn('slot', 'text', (c) => c.notNull())
      .addColumn('trigger', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('due_at', 'text')
      /** JSON: the tasks as they were when the run was claimed */
      .addColumn('tasks', 'text', (c) => c.notNull())
      /** JSON: one entry per task { result, message, operationId, startedAt, finishedAt } */
      .addColumn('results', 'text', (c) => c.notNull())
      .addColumn('next_task', 'integer', (c) => c.notNull().defaultTo(0))
      /** when the next task is due (its offset after the previous one ended) */
      .addColumn('next_at', 'text')
      .addColumn('message', 'text')
      .addColumn('actor_user_id', 'text')
      .addColumn('started_at', 'text', (c) => c.notNull())
      .addColumn('finished_at', 'text')
      .execute();
    await db.schema
      .createIndex('schedule_runs_slot')
      .on('schedule_runs')
      .columns(['schedule_id', 'slot'])
      .unique()
      .execute();
    await db.schema.createIndex('schedule_runs_state').on('schedule_runs').column('state').execute();
  },
};

/**
 * Webhooks (issue 13 item 2): Panel-wide (server_id null) or per server; the URL (and a JSON
 * hook's signing secret) sealed with DATA_DIR/keys/webhooks.key; each event becomes a delivery
 * row, sent and retried with backoff from the table (so retries outlive a restart).
 */
const m023: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('webhooks')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('server_id', 'text', (c) => c.references('servers.id').onDelete('cascade'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      /** sealed (AES-256-GCM) */
      .addColumn('url', 'text', (c) => c.notNull())
      /** what may be shown: scheme, host and a masked path */
      .addColumn('url_display', 'text', (c) => c.notNull())
      /** sealed; null for Discord hooks */
      .addColumn('secret', 'text')
      /** JSON: the event kinds it gets */
      .addColumn('events', 'text', (c) => c.notNull())
      .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('created_by', 'text', (c) => c.references('users.id').onDelete('set null'))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('webhooks_server').on('webhooks').column('server_id').execute();
    await db.schema
      .createTable('webhook_deliveries')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('webhook_id', 'text', (c) => c.notNull().references('webhooks.id').onDelete('cascade'))
      .addColumn('event', 'text', (c) => c.notNull())
      /** Discord: the body as sent; JSON: the event (the envelope is made per attempt) */
      .addColumn('payload', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('next_attempt_at', 'text')
      .addColumn('last_status', 'integer')
      .addColumn('last_error', 'text')
      /** JSON: [{ at, status, error }] per attempt */
      .addColumn('log', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('delivered_at', 'text')
      .execute();
    await db.schema
      .createIndex('webhook_deliveries_due')
      .on('webhook_deliveries')
      .columns(['state', 'next_attempt_at'])
      .execute();
    await db.schema
      .createIndex('webhook_deliveries_hook')
      .on('webhook_deliveries')
      .columns(['webhook_id', 'created_at'])
      .execute();
  },
};

/**
 * Node capacity and placement (issue 16 items 1 and 4): capacity overrides (bytes for memory and
 * disk, cores for CPU; null = what the Agent's system_info reports), over-allocation percentages
 * as Pterodactyl's (0 = none, -1 = that resource is not checked; CPU: -1 by default), and tags (JSON array) and a
 * location that narrow automatic placement.
 */
const m024: Migration = {
  async up(db: AnyDb) {
    for (const col of ['capacity_memory', 'capacity_disk'])
      await db.schema.alterTable('nodes').addColumn(col, 'bigint').execute();
    await db.schema.alterTable('nodes').addColumn('capacity_cpu', 'double precision').execute();
    // CPU is not checked unless an admin asks (-1): Pterodactyl has no node CPU limit, and game
    // servers commonly share cores
    for (const [col, dflt] of [
      ['overallocate_memory', 0],
      ['overallocate_disk', 0],
      ['overallocate_cpu', -1],
    ] as const)
      await db.schema
        .alterTable('nodes')
        .addColumn(col, 'integer', (c) => c.notNull().defaultTo(dflt))
        .execute();
    await db.schema.alterTable('nodes').addColumn('tags', 'text').execute();
    await db.schema.alterTable('nodes').addColumn('location', 'text').execute();
  },
};

/**
 * Failover (issue 16 item 3): per server an opt-in and how long its node must be offline first;
 * `server_fences`: the nodes whose copy of a server must never run again (told on connect);
 * `server_failovers`: each failover's persisted state machine (pending → restoring → started |
 * failed with a reason), resumed after a Panel restart.
 */
const m028: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .alterTable('servers')
      .addColumn('failover_enabled', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema
      .alterTable('servers')
      .addColumn('failover_after_seconds', 'integer', (c) => c.notNull().defaultTo(300))
      .execute();
    await db.schema
      .createTable('server_fences')
      .addColumn('server_id', 'text', (c) => c.notNull().references('servers.id').onDelete('cascade'))
      .addColumn('fenced_node_id', 'text', (c) => c.notNull())
      .addColumn('fenced_at', 'text', (c) => c.notNull())
      .addColumn('reason', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('server_fences_pk', ['server_id', 'fenced_node_id'])
      .execute();
    await db.schema.createIndex('server_fences_node').on('server_fences').column('fenced_node_id').execute();
    await db.schema
      .createTable('server_failovers')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('server_id', 'text', (c) => c.notNull().references('servers.id').onDelete('cascade'))
      .addColumn('from_node_id', 'text', (c) => c.notNull())
      .addColumn('to_node_id', 'text')
      .addColumn('allocation_id', 'text')
      .addColumn('backup_id', 'text')
      .addColumn('state', 'text', (c) => c.notNull())
      /** the last step done: placed, created, restored, started (resumed from there) */
      .addColumn('step', 'text')
      .addColumn('error_code', 'text')
      .addColumn('reason', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addColumn('finished_at', 'text')
      .execute();
    await db.schema
      .createIndex('server_failovers_server')
      .on('server_failovers')
      .columns(['server_id', 'created_at'])
      .execute();
  },
};

/** Image updates (issue 13 item 3): per server, the last digest check and the last update's outcome. */
const m025: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('server_image_state')
      .addColumn('server_id', 'text', (c) => c.primaryKey().references('servers.id').onDelete('cascade'))
      .addColumn('image', 'text', (c) => c.notNull())
      .addColumn('image_id', 'text')
      /** the digest of the container's image (of its RepoDigests, the one of the same repository) */
      .addColumn('local_digest', 'text')
      /** the registry's current digest for the same reference */
      .addColumn('remote_digest', 'text')
      .addColumn('checked_at', 'text')
      /** why the last check could not ask the registry (null: it could) */
      .addColumn('error', 'text')
      /** JSON: the last update's { operationId, outcome, reason, at } */
      .addColumn('last_update', 'text')
      .execute();
  },
};

/** Compose stacks per node (issue 11): the file as deployed, who made and changed it, its state. */
const m026: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('stacks')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('node_id', 'text', (c) => c.notNull().references('nodes.id').onDelete('cascade'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('compose', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('last_error', 'text')
      .addColumn('created_by', 'text')
      .addColumn('updated_by', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('stacks_node_name', ['node_id', 'name'])
      .execute();
  },
};

/**
 * Server transfers between nodes (issue 16 item 2): one row per transfer, its step and outcome
 * (the operation of kind `transfer` carries the progress; this keeps where from and where to).
 */
const m027: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('transfers')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('server_id', 'text', (c) => c.notNull())
      .addColumn('operation_id', 'text', (c) => c.notNull())
      .addColumn('source_node_id', 'text', (c) => c.notNull())
      .addColumn('target_node_id', 'text', (c) => c.notNull())
      .addColumn('source_allocation_id', 'text')
      .addColumn('target_allocation_id', 'text')
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('step', 'text', (c) => c.notNull())
      .addColumn('error_code', 'text')
      .addColumn('error_message', 'text')
      /** 1: a failed transfer's copy on the target is still to be deleted (its Agent was offline) */
      .addColumn('cleanup_pending', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('created_by', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('finished_at', 'text')
      .execute();
    await db.schema.createIndex('transfers_server').on('transfers').column('server_id').execute();
  },
};

/**
 * 029: a transfer's streaming path (direct Agent to Agent, or relayed by the Panel), whether the
 * source ran before it (a Panel restart that cuts it starts the source again) and its archive on
 * the source (removed when a cut transfer is cleaned up).
 */
const m029: Migration = {
  async up(db: AnyDb) {
    await db.schema.alterTable('transfers').addColumn('path', 'text').execute();
    await db.schema
      .alterTable('transfers')
      .addColumn('was_running', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.alterTable('transfers').addColumn('archive_id', 'text').execute();
    await db.schema
      .alterTable('transfers')
      .addColumn('restart_pending', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
  },
};

/** A username from an email: its local part, lowercased, [a-z0-9_.-] kept, others `_`, 1–32 chars. */
export function usernameFromEmail(email: string): string {
  const local = (email.split('@')[0] ?? '').toLowerCase();
  const clean = local
    .replace(/[^a-z0-9_.-]/g, '_')
    .replace(/^[._-]+/, '')
    .slice(0, 32);
  return clean === '' ? 'user' : clean;
}

/** Login and 2FA attempt counters shared by Panel replicas (issue 15 item 1). */
const m030: Migration = {
  async up(db: AnyDb) {
    await db.schema
      .createTable('rate_limits')
      /** sha256 of the counter's key (an address, an email: never stored as such) */
      .addColumn('key', 'text', (c) => c.primaryKey())
      /** the window's start, ms since the epoch */
      .addColumn('window_start', 'bigint', (c) => c.notNull())
      .addColumn('n', 'integer', (c) => c.notNull())
      .execute();
  },
  async down(db: AnyDb) {
    await db.schema.dropTable('rate_limits').execute();
  },
};

const m031: Migration = {
  async up(db: AnyDb) {
    // Panel replicas alive (issue 15): each refreshes its row; one not refreshed within the TTL is
    // taken for dead (its socket counts stop counting, its running transfers are failed)
    await db.schema
      .createTable('panel_replicas')
      .addColumn('id', 'text', (c) => c.primaryKey())
      /** ms since the epoch, the database's clock */
      .addColumn('heartbeat_at', 'bigint', (c) => c.notNull())
      .execute();
    // open sockets per key (`user:<id>`, `server:<id>`) and replica
    await db.schema
      .createTable('live_counts')
      .addColumn('replica_id', 'text', (c) => c.notNull())
      .addColumn('key', 'text', (c) => c.notNull())
      .addColumn('n', 'integer', (c) => c.notNull())
      .addPrimaryKeyConstraint('live_counts_pk', ['replica_id', 'key'])
      .execute();
    await db.schema.createIndex('live_counts_key').on('live_counts').column('key').execute();
    // the replica running a transfer (null: one Panel process, or before 031)
    await db.schema.alterTable('transfers').addColumn('owner_replica', 'text').execute();
  },
  async down(db: AnyDb) {
    await db.schema.alterTable('transfers').dropColumn('owner_replica').execute();
    await db.schema.dropTable('live_counts').execute();
    await db.schema.dropTable('panel_replicas').execute();
  },
};

const m032: Migration = {
  async up(db: AnyDb) {
    // the console's high-water mark per server (issue 15): the last line (LinkSeq: the Agent's
    // epoch and the line's seq) a replica published, written before it publishes, so a line the
    // Agent sends again after a lost link (to this or any replica) is never published twice
    await db.schema
      .createTable('console_marks')
      .addColumn('server_id', 'text', (c) => c.primaryKey().references('servers.id').onDelete('cascade'))
      .addColumn('epoch', 'text', (c) => c.notNull())
      .addColumn('seq', 'bigint', (c) => c.notNull())
      .execute();
  },
  async down(db: AnyDb) {
    await db.schema.dropTable('console_marks').execute();
  },
};

const m033: Migration = {
  async up(db: AnyDb) {
    // the `application_name` every PostgreSQL session of a replica carries (issue 15, fencing): a
    // replica cut off from the database keeps its sessions (and their advisory and row locks) on
    // the server until TCP keepalive notices; the survivors end them by this tag once it is past
    // the TTL, so they can lead within seconds
    await db.schema.alterTable('panel_replicas').addColumn('pg_app', 'text').execute();
  },
  async down(db: AnyDb) {
    await db.schema.alterTable('panel_replicas').dropColumn('pg_app').execute();
  },
};

const m034: Migration = {
  async up(db: AnyDb) {
    // the second console mark (issue 15): `shown`, the highest seq (same epoch) whose publish
    // completed, next to `seq` (written before publishing). A line the Agent sends again with
    // shown < its seq <= seq was perhaps published by a process that died: published again,
    // flagged `resent`, never skipped (a mark stored before a publish that never happened lost it)
    await db.schema
      .alterTable('console_marks')
      .addColumn('shown', 'bigint', (c) => c.notNull().defaultTo(0))
      .execute();
  },
  async down(db: AnyDb) {
    await db.schema.alterTable('console_marks').dropColumn('shown').execute();
  },
};

export const migrations: Record<string, Migration> = {
  '001_initial': m001,
  '002_templates': m002,
  '003_agent_token_version': m003,
  '004_api_key_expiry': m004,
  '005_node_default_limits': m005,
  '006_accounts': m006,
  '010_operations': m010,
  '011_activity': m011,
  '012_server_access': m012,
  '013_sftp': m013,
  '014_backups': m014,
  '015_node_public_address': m015,
  '016_node_agent_refusal': m016,
  '017_node_transfer_url': m017,
  '018_docker_policy': m018,
  '019_registries': m019,
  '020_players': m020,
  '022_schedules': m022,
  '023_webhooks': m023,
  '024_node_capacity': m024,
  '025_image_updates': m025,
  '026_stacks': m026,
  '027_transfers': m027,
  '028_failover': m028,
  '029_transfer_path': m029,
  '030_rate_limits': m030,
  '031_replicas': m031,
  '032_console_marks': m032,
  '033_replica_sessions': m033,
  '034_console_shown': m034,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};
