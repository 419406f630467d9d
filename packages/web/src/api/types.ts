/**
 * The types the UI works with, none of them a hand copy of the Panel:
 * - REST shapes are aliases into openapi.gen.ts, which openapi-typescript generates from the
 *   committed OpenAPI document (packages/panel/openapi.json); regenerate with
 *   `npm run gen:api -w packages/web` (src/api/openapi-gen.test.ts fails when it is stale);
 * - wire messages and the values they carry (`/ws/client` messages, FileEntry, SystemInfo,
 *   ServerStatus, ResourceSnapshot, FeatureName) come from @cap/protocol.
 * Only UI-only types are written by hand, and say so.
 */
import type { FileEntry, ResourceSnapshot, ServerStatus, SystemInfo } from '@cap/protocol';
import type { FeatureName } from '@cap/protocol/templates/features.ts';
import type { paths } from './openapi.gen.ts';

export type { FeatureName, FileEntry, paths, ResourceSnapshot, ServerStatus, SystemInfo };

/** The HTTP methods a path item of the generated `paths` may have. */
type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** The JSON body of the `status` answer of `method path` (as in the OpenAPI document). */
export type ApiResponse<
  P extends keyof paths,
  M extends Method,
  S extends number = 200,
> = paths[P][M] extends { responses: infer R }
  ? S extends keyof R
    ? R[S] extends { content: { 'application/json': infer T } }
      ? T
      : never
    : never
  : never;

/** The JSON request body of `method path`. */
export type ApiBody<P extends keyof paths, M extends Method> = paths[P][M] extends {
  requestBody?: { content: { 'application/json': infer T } };
}
  ? T
  : never;

// accounts
export type User = ApiResponse<'/api/users', 'get'>[number];
export type Role = User['role'];
export type Me = ApiResponse<'/api/auth/me', 'get'>;
export type TwoFactorState = Me['twoFactor'];
/** POST /auth/login: a session, or (2FA on) a ticket for the code step */
export type LoginAnswer = ApiResponse<'/api/auth/login', 'post'>;
export type TwoFactorStatus = ApiResponse<'/api/auth/2fa', 'get'>;
export type TwoFactorEnrolment = ApiResponse<'/api/auth/2fa/enrol', 'post'>;
export type SessionInfo = ApiResponse<'/api/auth/sessions', 'get'>[number];
export type ApiKeyInfo = ApiResponse<'/api/api-keys', 'get'>[number];
export type SshKey = ApiResponse<'/api/auth/ssh-keys', 'get'>[number];
export type ApiKeyScope = ApiKeyInfo['scope'];
export type RecoveryCodes = ApiResponse<'/api/auth/2fa/confirm', 'post'>;
export type CreatedApiKey = ApiResponse<'/api/api-keys', 'post', 201>;
export type CreateApiKeyInput = ApiBody<'/api/api-keys', 'post'>;

// nodes
export type PanelNode = ApiResponse<'/api/nodes/{id}', 'get'>;
export type NodeLoad = NonNullable<PanelNode['load']>;
export type DefaultLimits = NonNullable<PanelNode['defaultLimits']>;
export type CreatedNode = ApiResponse<'/api/nodes', 'post', 201>;
export type AgentCommands = ApiResponse<'/api/nodes/{id}/agent-commands', 'get'>;
export type Allocation = ApiResponse<'/api/nodes/{id}/allocations', 'get'>[number];

// servers
export type Server = ApiResponse<'/api/servers/{id}', 'get'>;
export type PortBinding = Server['ports'][string];
export type Limits = Server['limits'];
export type ServerVariable = NonNullable<Server['variables']>[number];
export type CreateServerInput = ApiBody<'/api/servers', 'post'>;
export type Telemetry = ApiResponse<'/api/servers/{id}/telemetry', 'get'>;
/** the template feature the console last called for (admins) */
export type PendingFeature = NonNullable<Telemetry['feature']>;
/** PUT /servers/:id/config?wait=true: the Agent's outcome */
export type ConfigUpdateAnswer = ApiResponse<'/api/servers/{id}/config', 'put'>;
export type MetricsRange = NonNullable<
  NonNullable<paths['/api/servers/{id}/metrics']['get']['parameters']['query']>['range']
>;
export type Bucket = ApiResponse<'/api/servers/{id}/metrics', 'get'>[number];
export type Dashboard = ApiResponse<'/api/dashboard', 'get'>;
/** Who is online on a server now, with time online (issue 12). */
export type CurrentPlayers = ApiResponse<'/api/servers/{id}/players', 'get'>;
export type PlayersBucket = ApiResponse<'/api/servers/{id}/players/history', 'get'>[number];
/** One page of a directory (directories first, then by name); `total` counts the whole directory. */
export type FileList = ApiResponse<'/api/servers/{id}/files', 'get'>;
export type FileContent = ApiResponse<'/api/servers/{id}/files/content', 'get'>;
export type FileSearch = ApiResponse<'/api/servers/{id}/files/search', 'get'>;
export type FileSaved = ApiResponse<'/api/servers/{id}/files/content', 'put'>;
export type TransferGrant = ApiResponse<'/api/servers/{id}/files/transfers', 'post', 201>;

// per-server access
/** a permission name of the catalog (GET /api/permissions) */
export type Permission = ApiResponse<'/api/permissions', 'get'>[number]['permissions'][number]['name'];
export type PermissionGroup = ApiResponse<'/api/permissions', 'get'>[number];
export type Subuser = ApiResponse<'/api/servers/{id}/users', 'get'>[number];
// backups (issue 10 item 4)
export type BackupList = ApiResponse<'/api/servers/{id}/backups', 'get'>;
export type Backup = BackupList['backups'][number];
export type BackupStarted = ApiResponse<'/api/servers/{id}/backups', 'post', 202>;
export type BackupLink = ApiResponse<'/api/servers/{id}/backups/{backupId}/download', 'post', 201>;
export type Schedule = ApiResponse<'/api/servers/{id}/schedules', 'post', 201>;
export type ScheduleInput = ApiBody<'/api/servers/{id}/schedules', 'post'>;
export type ScheduleTask = Schedule['tasks'][number];
export type ScheduleRun = ApiResponse<'/api/servers/{id}/schedules/{sid}/run', 'post', 200>;
export type Webhook = ApiResponse<'/api/webhooks/{hid}', 'get'>;
export type CreatedWebhook = ApiResponse<'/api/webhooks', 'post', 201>;
export type WebhookInput = ApiBody<'/api/webhooks', 'post'>;
export type WebhookDelivery = ApiResponse<'/api/webhooks/{hid}/test', 'post'>;
// registries (issue 11 item 3)
export type Registry = ApiResponse<'/api/registries', 'post', 201>;
export type RegistryInput = ApiBody<'/api/registries', 'post'>;
export type RegistryPatch = ApiBody<'/api/registries/{rid}', 'patch'>;

// templates
export type TemplateSummary = ApiResponse<'/api/templates', 'get'>[number];
export type TemplateFormat = TemplateSummary['format'];
export type TemplateImage = TemplateSummary['images'][number];
export type TemplateDetail = ApiResponse<'/api/templates/{id}', 'get'>;
/** The normalised template, as the Panel stores it. */
export type Template = TemplateDetail['template'];
export type TemplateVariable = Template['variables'][number];
export type ImportResult = ApiResponse<'/api/templates/import', 'post', 201>;
export type TemplateWarning = ImportResult['warnings'][number];

// operations
/** GET /api/operations/:id, GET /api/servers/:id/operations */
export type Operation = ApiResponse<'/api/operations/{id}', 'get'>;

// activity
/** GET /api/activity, GET /api/servers/:id/activity: one page, newest first */
export type ActivityPage = ApiResponse<'/api/activity', 'get'>;
export type ActivityEntry = ActivityPage['entries'][number];
