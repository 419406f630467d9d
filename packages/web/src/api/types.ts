import type { FileEntry, ResourceSnapshot, ServerStatus, SystemInfo } from '@cap/protocol';
import type { FeatureName } from '@cap/protocol/templates/features.ts';

export type { FeatureName, FileEntry, ResourceSnapshot, ServerStatus, SystemInfo };

export type Role = 'owner' | 'admin' | 'spectator';

export interface User {
  id: string;
  email: string;
  role: Role;
  createdAt?: string;
}

export interface TwoFactorState {
  enabled: boolean;
  /** the Panel requires it for this user (admins/owners with PANEL_REQUIRE_2FA_FOR_ADMINS) */
  required: boolean;
}

export interface Me {
  user: User;
  csrfToken: string;
  twoFactor?: TwoFactorState;
}

/** POST /auth/login: a session, or (2FA on) a ticket for the code step */
export type LoginAnswer =
  | ({ twoFactorRequired: false } & Me)
  | { twoFactorRequired: true; ticket: string; expiresAt: string };

export interface TwoFactorStatus extends TwoFactorState {
  recoveryCodesLeft: number;
}

export interface TwoFactorEnrolment {
  secret: string;
  otpauthUri: string;
  /** PNG data URL of the otpauth URI */
  qrDataUrl: string;
}

export interface SessionInfo {
  id: string;
  createdAt: string;
  lastSeenAt: string | null;
  ip: string | null;
  userAgent: string | null;
  expiresAt: string;
  current: boolean;
}

export type ApiKeyScope = 'full' | 'read';

export interface NodeLoad {
  cpu: number;
  memory: number;
  disk: number;
}

export interface PanelNode {
  id: string;
  name: string;
  online: boolean;
  lastHeartbeatAt: string | null;
  protocolVersion: number | null;
  systemInfo: SystemInfo | null;
  load: NodeLoad | null;
  serverCount: number;
  /** the node's own default limits for new servers; null = the Panel's (absent from older Panels) */
  defaultLimits?: DefaultLimits | null;
  /** what a server created here without limits gets */
  effectiveDefaultLimits?: DefaultLimits;
}

export interface DefaultLimits {
  memory?: string | number;
  cpu?: string | number;
  disk?: string | number;
}

export type PortBinding = number | { hostPort: number; hostIp?: string };

export interface Limits {
  memory?: string | number;
  cpu?: string | number;
  disk?: string | number;
  swap?: string | number;
  pids?: number;
}

export interface Server {
  id: string;
  name: string;
  nodeId: string;
  status: ServerStatus;
  desiredState: string;
  image: string;
  startup: string;
  environment: Record<string, string>;
  ports: Record<string, PortBinding>;
  limits: Limits;
  done: string | string[] | null;
  stop: string | null;
  /** the startup line filled in (hidden values as [hidden]); absent from older Panels */
  startupDisplay?: string;
  templateId?: string | null;
  /** a template server's variables with their values (hidden ones left out for spectators) */
  variables?: ServerVariable[] | null;
  /** the primary allocation (SERVER_IP / SERVER_PORT) */
  allocation?: { id: string; ip: string; port: number } | null;
  createdAt: string;
  updatedAt: string;
  stats: ResourceSnapshot | null;
}

export interface Bucket {
  t: string;
  cpu: number;
  memoryBytes: number;
  rxBytes: number;
  txBytes: number;
  diskBytes: number;
}

export interface Telemetry {
  server: Server;
  status: ServerStatus;
  stats: ResourceSnapshot | null;
  console: string[];
  metrics: Bucket[];
  /** admins: the template feature the console last called for while not running (absent from older Panels) */
  feature?: { feature: FeatureName; line: string } | null;
}

export interface Dashboard {
  nodes: PanelNode[];
  servers: Server[];
  totals: {
    servers: number;
    running: number;
    nodes: number;
    online: number;
    cpu: number;
    memoryBytes: number;
  };
  players: {
    online: number;
    max: number;
    byServer: { serverId: string; online: number; max: number; list: string[] }[];
    tracked: boolean;
  };
}

/** One page of a directory (directories first, then by name); `total` counts the whole directory. */
export interface FileList {
  path: string;
  entries: FileEntry[];
  total: number;
  offset: number;
  limit: number;
}

export interface FileContent {
  path: string;
  size: number;
  encoding: 'utf8' | 'base64';
  content: string;
}

export interface CreatedNode {
  node: PanelNode;
  agentSecret: string;
  command: string;
}

export interface ServerVariable {
  name: string;
  description: string;
  envVariable: string;
  value: string;
  defaultValue: string;
  rules: string[];
  userViewable: boolean;
  userEditable: boolean;
  fieldType: string;
}

export type TemplateFormat = 'PTDL_v1' | 'PTDL_v2' | 'PLCN_v1' | 'PLCN_v2' | 'PLCN_v3';

export interface TemplateImage {
  label: string;
  image: string;
}

export interface TemplateVariable {
  name: string;
  description: string;
  envVariable: string;
  defaultValue: string;
  userViewable: boolean;
  userEditable: boolean;
  rules: string[];
  fieldType: string;
  sort: number | null;
}

export interface TemplateSummary {
  id: string;
  uuid: string | null;
  name: string;
  author: string;
  description: string;
  format: TemplateFormat;
  builtin: boolean;
  images: TemplateImage[];
  /** how many variables */
  variables: number;
  hasInstall: boolean;
  createdAt: string;
  updatedAt: string;
}

/** The normalised template, as the Panel stores it (only what the UI reads). */
export interface Template {
  source: {
    format: TemplateFormat;
    syntax: 'json' | 'yaml';
    updateUrl: string | null;
    exportedAt: string | null;
  };
  uuid: string | null;
  name: string;
  author: string;
  description: string;
  tags: string[];
  images: TemplateImage[];
  startup: string;
  startupCommands: { label: string; command: string }[];
  variables: TemplateVariable[];
  config: {
    files: Record<string, { parser: string; find: Record<string, unknown> }>;
    startup: { done: string[]; stripAnsi?: boolean; userInteraction?: string[] };
    stop: string;
    logs: Record<string, unknown>;
  };
  install: { script: string; container: string; entrypoint: string };
  features: string[];
}

export interface TemplateDetail extends TemplateSummary {
  template: Template;
}

export interface TemplateWarning {
  location: string;
  message: string;
}

export interface ImportResult {
  template: TemplateSummary;
  warnings: TemplateWarning[];
  replaced: boolean;
}

export interface Allocation {
  id: string;
  nodeId: string;
  ip: string;
  port: number;
  serverId: string | null;
  /** false for a port claimed by a server's raw port binding (goes away with the server) */
  pooled: boolean;
}

export interface ApiKeyInfo {
  id: string;
  name: string;
  scope: ApiKeyScope;
  /** null: every server */
  serverIds: string[] | null;
  createdAt: string;
  lastUsedAt: string | null;
  /** null: never expires */
  expiresAt: string | null;
}

export interface CreatedApiKey {
  id: string;
  name: string;
  key: string;
  expiresAt: string | null;
  scope: ApiKeyScope;
  serverIds: string[] | null;
}

export interface CreateApiKeyInput {
  name: string;
  /** the Panel asks for your password before it mints a key */
  currentPassword: string;
  /** days from now; absent: never expires */
  expiresInDays?: number;
  /** read: GET and live subscriptions only; default full */
  scope?: ApiKeyScope;
  /** limit the key to these servers */
  serverIds?: string[];
}

/** GET /api/operations/:id, GET /api/servers/:id/operations (the Panel's Operation schema) */
export interface Operation {
  id: string;
  kind: string;
  serverId: string;
  nodeId: string;
  actorUserId: string | null;
  stage: string;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  success: boolean | null;
  errorCode: string | null;
  errorMessage: string | null;
}
