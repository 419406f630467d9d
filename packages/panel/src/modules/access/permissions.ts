/**
 * The per-server permission catalog (Pterodactyl/Pelican names). A subuser holds a set of these
 * on one server; the server's owner and Panel admins/owners hold all of them; spectators hold the
 * read-only ones on every server. Unknown names are refused (the zod enum: VALIDATION_FAILED).
 *
 * `control.console` is seeing the console (its history and live lines, Pterodactyl's
 * `websocket.connect`); `control.command` is typing into it. Build settings (memory, CPU, disk
 * limits), the image, ports, the owner and deletion are for Panel admins only, as in Pterodactyl.
 */
import type { PowerAction } from '@cap/protocol';
import { z } from 'zod';

export const PERMISSION_GROUPS = {
  control: {
    description: 'The console and the power state.',
    keys: {
      console: 'See the console: its history and live output.',
      command: 'Send commands to the console.',
      start: 'Start the server.',
      stop: 'Stop (and kill) the server.',
      restart: 'Restart the server.',
    },
  },
  user: {
    description: "The server's subusers.",
    keys: {
      create: 'Add subusers (with permissions they hold themselves).',
      read: 'See the subusers and their permissions.',
      update: "Change subusers' permissions (only to ones they hold themselves).",
      delete: 'Remove subusers.',
    },
  },
  file: {
    description: "The server's files.",
    keys: {
      create: 'Create files and folders.',
      read: 'List folders.',
      'read-content': 'Read the contents of files.',
      update: 'Change files (and accept a EULA, which writes eula.txt).',
      delete: 'Delete files.',
      archive: 'Make and unpack archives.',
      sftp: 'Connect over SFTP.',
    },
  },
  backup: {
    description: "The server's backups.",
    keys: {
      create: 'Make backups.',
      read: 'See backups.',
      delete: 'Delete backups.',
      download: 'Download backups.',
      restore: 'Restore a backup (replaces the files).',
    },
  },
  allocation: {
    description: "The server's address and ports.",
    keys: { read: 'See the allocation and ports.', update: 'Change the primary allocation.' },
  },
  startup: {
    description: 'The startup line and variables.',
    keys: {
      read: 'See the startup line and the values of the viewable variables.',
      update: 'Change the editable variables (the server is recreated with them).',
    },
  },
  schedule: {
    description: 'Scheduled tasks.',
    keys: {
      create: 'Create schedules.',
      read: 'See schedules.',
      update: 'Change schedules.',
      delete: 'Delete schedules.',
    },
  },
  webhook: {
    description: "The server's webhooks (Discord, signed JSON).",
    keys: {
      create: 'Create webhooks.',
      read: 'See webhooks and their delivery log (never their secrets).',
      update: 'Change webhooks and send a test.',
      delete: 'Delete webhooks.',
    },
  },
  settings: {
    description: "The server's settings.",
    keys: {
      rename: 'Rename the server.',
      reinstall: 'Run the install script again.',
      'image-update':
        "Update the server's image to what its tag points at now (recreated; rolled back when not ready).",
    },
  },
  activity: {
    description: "The server's activity log.",
    keys: { read: "See the server's activity log." },
  },
  player: {
    description: "The game's players (through its console, where the template declares the command).",
    keys: { kick: 'Kick a player.', ban: 'Ban a player.' },
  },
} as const;

type Groups = typeof PERMISSION_GROUPS;
type PermissionName = {
  [G in keyof Groups]: `${G & string}.${keyof Groups[G]['keys'] & string}`;
}[keyof Groups];

export const PERMISSIONS = Object.entries(PERMISSION_GROUPS).flatMap(([g, def]) =>
  Object.keys(def.keys).map((k) => `${g}.${k}`),
) as [PermissionName, ...PermissionName[]];

export const Permission = z.enum(PERMISSIONS).meta({ id: 'Permission' });
export type Permission = z.infer<typeof Permission>;

/** A set of permissions as sent and stored: unique names, at most the whole catalog. */
export const PermissionList = z
  .array(Permission)
  .max(PERMISSIONS.length)
  .transform((l) => [...new Set(l)].sort());

/** What a spectator holds on every server: reading, never changing, never hidden values. */
export const READ_ONLY_PERMISSIONS: readonly Permission[] = [
  'control.console',
  'file.read',
  'file.read-content',
  'backup.read',
  'allocation.read',
  'startup.read',
  'schedule.read',
  'user.read',
  'activity.read',
];

/** The permission each power action needs (kill is a stop). */
export const POWER_PERMISSION: Record<PowerAction, Permission> = {
  start: 'control.start',
  stop: 'control.stop',
  restart: 'control.restart',
  kill: 'control.stop',
};
/** Accepting a template feature's dialog (the EULA) writes eula.txt and restarts the server. */
export const FEATURE_NEED: readonly Permission[] = ['file.update', 'control.restart'];

/** The catalog as served to the web (GET /api/permissions), for the checkboxes. */
export const PermissionCatalog = z
  .array(
    z.object({
      group: z.string(),
      description: z.string(),
      permissions: z.array(z.object({ name: Permission, description: z.string() })),
    }),
  )
  .meta({ id: 'PermissionCatalog' });
export type PermissionCatalog = z.infer<typeof PermissionCatalog>;

export function permissionCatalog(): PermissionCatalog {
  return Object.entries(PERMISSION_GROUPS).map(([group, def]) => ({
    group,
    description: def.description,
    permissions: Object.entries(def.keys).map(([k, description]) => ({
      name: Permission.parse(`${group}.${k}`),
      description,
    })),
  }));
}

const ALL = new Set<string>(PERMISSIONS);
/** Stored permissions (JSON) back to names; what is no longer in the catalog is dropped. */
export function parsePermissions(json: string): Permission[] {
  try {
    const v: unknown = JSON.parse(json);
    return Array.isArray(v) ? v.filter((x): x is Permission => typeof x === 'string' && ALL.has(x)) : [];
  } catch {
    return [];
  }
}
