/** The servers API's zod schemas (inputs and the `Server` answer) and the types derived from them. */
import {
  DonePattern,
  Environment,
  Limits,
  PortNumber,
  Ports,
  ResourceSnapshot,
  ServerStatus,
} from '@cap/protocol';
import { z } from 'zod';
import { PERMISSIONS, Permission } from '../access/permissions.ts';
import { PlacementRequest } from './placement.ts';

export const DesiredState = z.enum(['running', 'offline']);
export const UpdateResult = z.object({
  operationId: z.string(),
  ok: z.boolean(),
  stage: z.string(),
  message: z.string().optional(),
  code: z.string().optional(),
  at: z.string(),
});
export const ServerVariable = z.object({
  name: z.string(),
  description: z.string(),
  envVariable: z.string(),
  value: z.string(),
  defaultValue: z.string(),
  rules: z.array(z.string()),
  userViewable: z.boolean(),
  userEditable: z.boolean(),
  fieldType: z.string(),
});
export const Server = z.object({
  id: z.string(),
  name: z.string(),
  nodeId: z.string(),
  /** the last status the node reported; with `nodeOnline: false` it is stale */
  status: ServerStatus,
  /** whether the server's node is connected now (its status is live only while it is) */
  nodeOnline: z.boolean(),
  desiredState: DesiredState,
  image: z.string(),
  /** in the list only: its registry has a newer digest for the image's tag (the last image check) */
  updateAvailable: z.boolean().optional(),
  startup: z.string(),
  /** the startup line filled in; values a viewer may not see show as [hidden] */
  startupDisplay: z.string(),
  /** for a template server: its variables' values (hidden ones left out for spectators) */
  environment: Environment,
  ports: Ports,
  limits: Limits,
  done: DonePattern.nullable(),
  stop: z.string().nullable(),
  stopTimeout: z.number().int().nullable(),
  templateId: z.string().nullable(),
  /** the template's variables with their values; hidden ones left out for spectators */
  variables: z.array(ServerVariable).nullable(),
  /** the primary allocation (SERVER_IP/SERVER_PORT) */
  allocation: z.object({ id: z.string(), ip: z.string(), port: z.number().int() }).nullable(),
  /** host:port players connect to: the allocation's IP, or the node's publicAddress for one on
   * 0.0.0.0; null without a primary allocation or when the node has no public address */
  address: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
  stats: ResourceSnapshot.nullable(),
  lastUpdate: UpdateResult.nullable(),
  /** the user who owns the server (every permission on it); null once that user was deleted */
  ownerId: z.string().nullable(),
  /** most backups the server may hold, locked ones included (null: no limit); admins set it */
  backupLimit: z.number().int().nullable(),
  /** failover (issue 16): restored on another node from its latest off-node backup when its node is offline `afterSeconds` */
  failover: z.object({ enabled: z.boolean(), afterSeconds: z.number().int() }),
  /** the caller's permissions on this server: the controls the UI shows */
  permissions: z.array(Permission),
});
export type Server = z.infer<typeof Server>;

const ServerName = z.string().min(1).max(191);
const Startup = z.string().max(16 * 1024);
const StopCommand = z.string().max(1024);
const StopTimeout = z.number().int().min(0).max(3600);
/** 0 = no backups at all (Pterodactyl's feature_limits.backups) */
const BackupLimit = z.number().int().min(0).max(1000);

/**
 * Failover opt-in: when the server's node has been offline `afterSeconds` (default 300; at least
 * PANEL_FAILOVER_MIN_SECONDS, default 30; at most 86400), the server is restored on another node
 * from its latest backup the Panel can reach (object storage) and started there.
 */
export const FailoverSettings = z
  .object({
    enabled: z.boolean(),
    afterSeconds: z.number().int().min(1).max(86_400).default(300),
  })
  .strict();
export type FailoverSettings = z.infer<typeof FailoverSettings>;

export const CreateServer = z.object({
  name: ServerName,
  /** absent: the Panel places it (the online node with the most headroom; see `placement`) */
  nodeId: z.string().min(1).max(64).optional(),
  /** without nodeId: only nodes with all these tags / at this location */
  placement: PlacementRequest.optional(),
  /** make it from a template: image, startup, done, stop, config files and install come from it */
  templateId: z.string().min(1).max(64).optional(),
  /** a raw image, or for a template one of its images (label or image; default its first) */
  image: z.string().min(1).max(512).optional(),
  startup: Startup.default(''),
  /** raw: the container environment; template: values for its variables (defaults fill the rest) */
  environment: Environment.default({}),
  ports: Ports.default({}),
  limits: Limits.default({}),
  done: DonePattern.optional(),
  stop: StopCommand.optional(),
  /** seconds from the stop to the kill (default: the Agent's, 30) */
  stopTimeout: StopTimeout.optional(),
  /** the primary port: an allocation of the node, or a port (claimed on the node) */
  allocationId: z.string().min(1).max(64).optional(),
  port: PortNumber.optional(),
  /** who owns it (any user; admins pick): default the creator */
  ownerId: z.string().min(1).max(64).optional(),
  /** most backups it may hold, locked ones included (default: no limit) */
  backupLimit: BackupLimit.optional(),
});
export type CreateServer = z.infer<typeof CreateServer>;
/**
 * A patch changes only what it names: no defaults here (zod's .partial() on a schema with
 * .default() still fills them in, which reset startup, limits, environment and ports).
 */
export const PatchServer = z.object({
  name: ServerName.optional(),
  image: z.string().min(1).max(512).optional(),
  startup: Startup.optional(),
  environment: Environment.optional(),
  ports: Ports.optional(),
  limits: Limits.optional(),
  done: DonePattern.nullable().optional(),
  stop: StopCommand.nullable().optional(),
  stopTimeout: StopTimeout.nullable().optional(),
  /** null: no limit (stored at once; existing backups are kept) */
  backupLimit: BackupLimit.nullable().optional(),
  /** failover (admins; stored at once): needs off-node (S3) backups to restore from */
  failover: FailoverSettings.optional(),
});
export type PatchServer = z.infer<typeof PatchServer>;
export const ConfigUpdate = z.object({ environment: Environment.optional(), limits: Limits.optional() });
export type ConfigUpdate = z.infer<typeof ConfigUpdate>;

/** Who looks, as requireAccess judged it on the server (modules/access/service.ts). */
export interface Viewer {
  /** sees values of variables that are not user_viewable: Panel admins/owners and the server's owner */
  admin: boolean;
  /** holds startup.read: sees the startup line's values and the viewable variables */
  startup: boolean;
  /** the caller's permissions on the server, listed on the answer */
  permissions: readonly Permission[];
}
export const ADMIN_VIEW: Viewer = { admin: true, startup: true, permissions: PERMISSIONS };
