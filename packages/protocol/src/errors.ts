import { z } from 'zod';

/**
 * Every error code that crosses a wire (Agent↔Panel protocol, Panel REST, /ws/client).
 * The first nine are seed 003's table, as written there; the rest are ours.
 */
export const ErrorCode = z.enum([
  // seed 003
  'AGENT_OFFLINE',
  'SERVER_NOT_FOUND',
  'CONTAINER_NOT_FOUND',
  'INSUFFICIENT_RESOURCES',
  'PERMISSION_DENIED',
  'DOCKER_ERROR',
  'CONFIG_INVALID',
  'PORT_CONFLICT',
  'AUTH_FAILED',
  // protocol
  'INVALID_MESSAGE',
  'UNKNOWN_ACTION',
  'PROTOCOL_INCOMPATIBLE',
  'SERVER_EXISTS',
  'SERVER_BUSY',
  'INVALID_STATE',
  'NOT_RUNNING',
  'PATH_OUTSIDE_ROOT',
  'FILE_NOT_FOUND',
  'FILE_TOO_LARGE',
  /** a message (or request body) over the size its receiver or sender allows */
  'MESSAGE_TOO_LARGE',
  'TIMEOUT',
  'INTERNAL_ERROR',
  // panel REST / client socket
  'VALIDATION_FAILED',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'NOT_FOUND',
  'CONFLICT',
  'RATE_LIMITED',
  'CSRF_FAILED',
  'SETUP_REQUIRED',
  'TEMPLATE_INVALID',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'TWO_FACTOR_REQUIRED',
  /** an operation ended because a kill pre-empted it (the kill is its own operation) */
  'OPERATION_SUPERSEDED',
  /** the Agent restarted while the operation ran: what it did before is unknown */
  'AGENT_RESTARTED',
  /** the Agent no longer knows the operation (it was neither running nor reported finished) */
  'OPERATION_LOST',
  /** the Panel's TLS certificate is not the one the Agent pins (AGENT_PANEL_CERT_SHA256) */
  'TLS_PIN_MISMATCH',
  /** an archive that is corrupt, truncated or not of the format named */
  'ARCHIVE_INVALID',
  /** an archive entry that would land (or link) outside the root: `..`, absolute, through a link */
  'ARCHIVE_UNSAFE',
  /** an archive past the caps on unpacked bytes or entries (a decompression bomb) */
  'ARCHIVE_TOO_LARGE',
  /** no backup with that id for that server */
  'BACKUP_NOT_FOUND',
  /** the server holds as many backups as its backup limit allows (locked ones count) */
  'BACKUP_LIMIT_REACHED',
  /** a write's expected mtime/sha256 no longer matches: the file changed meanwhile */
  'FILE_CHANGED',
  /** the path matches the template's file_denylist */
  'FILE_DENIED',
  /** the target of a create, copy or move exists already */
  'FILE_EXISTS',
  /** a file name that is empty, `.`/`..`, holds a NUL or `/`, or is over 255 bytes */
  'NAME_INVALID',
  /** the object store (S3) refused the Panel's credentials (PANEL_S3_ACCESS_KEY_ID / _SECRET_ACCESS_KEY) */
  'STORAGE_AUTH_FAILED',
  /** the object store (S3) is unreachable or failed (no such bucket, a 5xx, a cut connection) */
  'STORAGE_ERROR',
  /** no schedule with that id on that server */
  'SCHEDULE_NOT_FOUND',
  /** no webhook with that id (in that scope: the Panel's, or that server's) */
  'WEBHOOK_NOT_FOUND',
  /** a webhook URL that is not http(s), carries credentials, or resolves to a loopback/private/link-local address */
  'WEBHOOK_TARGET_REFUSED',
  /** the game's remote console refused the password its template variable holds */
  'REMOTE_CONSOLE_AUTH_FAILED',
  /** the game's remote console is not reachable (not up yet, off, or not answering) */
  'REMOTE_CONSOLE_UNAVAILABLE',
  /** a URL the Panel was asked to fetch leads to a loopback, private or link-local address (SSRF) */
  'URL_NOT_ALLOWED',
  /** an outside service the Panel called (a mod catalog) failed or answered nonsense */
  'UPSTREAM_ERROR',
  /** the Docker relay's policy refuses this for anyone but a Panel owner (privileged, host namespaces, binds…) */
  'DOCKER_POLICY_DENIED',
  /** no registry with that id (Panel-level registry credentials) */
  'REGISTRY_NOT_FOUND',
  /** the registry refused the stored credentials (a test login, or an injected pull/push) */
  'REGISTRY_AUTH_FAILED',
  /** the server was failed over to another node: this node's copy is fenced (never started here) */
  'SERVER_FENCED',
  /** a compose file with keys outside the supported subset (details.keys lists them; never ignored) */
  'STACK_UNSUPPORTED',
  /** no compose stack of that name on that node */
  'STACK_NOT_FOUND',
  /** a stack's deploy stopped at a service (details.service); the services before it are as they were */
  'STACK_DEPLOY_FAILED',
  /** a game server's container through the Docker relay: removing or updating it is the server's business (delete the server) */
  'DOCKER_MANAGED_CONTAINER',
  /** a player's name (or a reason) that cannot be put safely into the game's kick/ban command */
  'PLAYER_NAME_UNSAFE',
  /** the server's template declares no such player command (kick, ban), or it needs the player's id */
  'PLAYER_ACTION_UNSUPPORTED',
  /** the server is being transferred to another node: power actions and another transfer wait */
  'SERVER_TRANSFERRING',
  /** the Panel cannot reach its database (PostgreSQL restarting, network): retry shortly */
  'DATABASE_UNAVAILABLE',
  /** this Panel replica lost its database for most of its heartbeat TTL and fenced itself: go through another replica (the load balancer) or retry shortly */
  'REPLICA_FENCED',
]);
export type ErrorCode = z.infer<typeof ErrorCode>;

/** HTTP status each code maps to when it is returned by a REST endpoint. */
export const httpStatusOf: Record<ErrorCode, number> = {
  AGENT_OFFLINE: 503,
  SERVER_NOT_FOUND: 404,
  CONTAINER_NOT_FOUND: 404,
  INSUFFICIENT_RESOURCES: 409,
  PERMISSION_DENIED: 403,
  DOCKER_ERROR: 502,
  CONFIG_INVALID: 400,
  PORT_CONFLICT: 409,
  AUTH_FAILED: 401,
  INVALID_MESSAGE: 400,
  UNKNOWN_ACTION: 400,
  PROTOCOL_INCOMPATIBLE: 400,
  SERVER_EXISTS: 409,
  SERVER_BUSY: 409,
  INVALID_STATE: 409,
  NOT_RUNNING: 409,
  PATH_OUTSIDE_ROOT: 400,
  FILE_NOT_FOUND: 404,
  FILE_TOO_LARGE: 413,
  MESSAGE_TOO_LARGE: 413,
  TIMEOUT: 504,
  INTERNAL_ERROR: 500,
  DATABASE_UNAVAILABLE: 503,
  REPLICA_FENCED: 503,
  VALIDATION_FAILED: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  RATE_LIMITED: 429,
  CSRF_FAILED: 403,
  SETUP_REQUIRED: 409,
  TEMPLATE_INVALID: 400,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  TWO_FACTOR_REQUIRED: 403,
  OPERATION_SUPERSEDED: 409,
  AGENT_RESTARTED: 503,
  OPERATION_LOST: 503,
  TLS_PIN_MISMATCH: 502,
  ARCHIVE_INVALID: 422,
  ARCHIVE_UNSAFE: 422,
  ARCHIVE_TOO_LARGE: 413,
  BACKUP_NOT_FOUND: 404,
  BACKUP_LIMIT_REACHED: 409,
  FILE_CHANGED: 409,
  FILE_DENIED: 403,
  FILE_EXISTS: 409,
  NAME_INVALID: 400,
  STORAGE_AUTH_FAILED: 502,
  STORAGE_ERROR: 502,
  SCHEDULE_NOT_FOUND: 404,
  WEBHOOK_NOT_FOUND: 404,
  WEBHOOK_TARGET_REFUSED: 400,
  REMOTE_CONSOLE_AUTH_FAILED: 502,
  REMOTE_CONSOLE_UNAVAILABLE: 503,
  URL_NOT_ALLOWED: 400,
  UPSTREAM_ERROR: 502,
  DOCKER_POLICY_DENIED: 403,
  REGISTRY_NOT_FOUND: 404,
  REGISTRY_AUTH_FAILED: 502,
  SERVER_FENCED: 409,
  STACK_UNSUPPORTED: 400,
  STACK_NOT_FOUND: 404,
  STACK_DEPLOY_FAILED: 502,
  DOCKER_MANAGED_CONTAINER: 409,
  PLAYER_NAME_UNSAFE: 400,
  PLAYER_ACTION_UNSUPPORTED: 409,
  SERVER_TRANSFERRING: 409,
};

export const ErrorBody = z.object({
  code: ErrorCode,
  message: z.string(),
  /** where in the input the problem is: a field path, or line/column for parse errors */
  location: z.string().optional(),
  details: z.unknown().optional(),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

/** An error that carries a protocol code. Domain code throws this; transports map it. */
export class CodedError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;
  readonly location: string | undefined;
  constructor(
    code: ErrorCode,
    message: string,
    opts: { details?: unknown; location?: string; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CodedError';
    this.code = code;
    this.details = opts.details;
    this.location = opts.location;
  }
}

export function isCodedError(e: unknown): e is CodedError {
  return e instanceof CodedError;
}
