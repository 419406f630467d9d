import { z } from 'zod';
import { ConfigFile, RemoteConsoleSpec } from '../messages.ts';
import { ModFolder } from '../mods.ts';
import { PlayerCommand } from '../player-commands.ts';

/**
 * The normalised template ("egg"): what the Panel stores, whatever format the file came in.
 * Every quirk of the published formats (JSON-encoded config strings, rules as string or list,
 * non-string defaults, image maps or lists…) is resolved by the importer, so this shape is strict.
 */

export const TemplateFormat = z.enum(['PTDL_v1', 'PTDL_v2', 'PLCN_v1', 'PLCN_v2', 'PLCN_v3']);
export type TemplateFormat = z.infer<typeof TemplateFormat>;

export const TemplateSource = z.object({
  format: TemplateFormat,
  syntax: z.enum(['json', 'yaml']),
  updateUrl: z.string().nullable(),
  exportedAt: z.string().nullable(),
});
export type TemplateSource = z.infer<typeof TemplateSource>;

export const TemplateImage = z.object({ label: z.string().max(191), image: z.string().min(1).max(512) });
export type TemplateImage = z.infer<typeof TemplateImage>;

export const TemplateVariable = z.object({
  name: z.string(),
  description: z.string(),
  /** as written in the egg: lowercase names are kept, because `{{env.discord_token}}` needs them */
  envVariable: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/),
  defaultValue: z.string().max(32 * 1024),
  userViewable: z.boolean(),
  userEditable: z.boolean(),
  /** Laravel rule tokens, e.g. ['required', 'string', 'max:20']; empty tokens dropped */
  rules: z.array(z.string()),
  fieldType: z.string(),
  sort: z.number().int().nullable(),
});
export type TemplateVariable = z.infer<typeof TemplateVariable>;

export const TemplateConfig = z.object({
  /** target path → {parser, find}, as native objects (never JSON strings) */
  files: z.record(z.string(), ConfigFile),
  startup: z.object({
    /** substrings (or `regex:…`) that mark the server as running; [] = running at once */
    done: z.array(z.string().max(1024)).max(16),
    stripAnsi: z.boolean().optional(),
    /** Pterodactyl's legacy `userInteraction`: what the user must do when the done line does not come */
    userInteraction: z.array(z.string().max(1024)).max(32).optional(),
  }),
  /** `^C` → SIGINT, other `^…` → SIGKILL, '' → SIGTERM, anything else is a console command */
  stop: z.string().max(1024),
  /** `{custom, location}`: `location` is the game's log file (relative to the server root), shown on the Files tab */
  logs: z.record(z.string(), z.unknown()),
});
export type TemplateConfig = z.infer<typeof TemplateConfig>;

export const TemplateInstall = z.object({
  /** LF line endings */
  script: z.string().max(1024 * 1024),
  container: z.string().max(512),
  entrypoint: z.string().max(256),
});
export type TemplateInstall = z.infer<typeof TemplateInstall>;

const BackupCommands = z.array(z.string().min(1).max(4096)).max(16);
export const TemplateBackup = z.object({
  commandsBefore: BackupCommands,
  commandsAfter: BackupCommands,
});
export type TemplateBackup = z.infer<typeof TemplateBackup>;

/**
 * Our extension (egg key `players`): how the Agent counts a running server's players.
 * `gamedig:<type>` (one of gamedig's game ids), `teeworlds` (our own 0.7 query),
 * `command:<parser>` (a remote-console command and its parser), or `none`.
 */
export const PLAYER_QUERY =
  /^(gamedig:[a-z0-9][a-z0-9_-]{0,63}|teeworlds|command:[a-z0-9][a-z0-9_-]{0,31}|none)$/;
export const TemplatePlayers = z.object({
  query: z
    .string()
    .max(80)
    .regex(PLAYER_QUERY, "one of 'gamedig:<type>', 'teeworlds', 'command:<parser>', 'none'"),
  /** the variable holding the port queried (inside the container); absent: SERVER_PORT */
  portVariable: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/)
    .optional(),
  /** seconds between two polls (5–3600, default 30) */
  intervalSeconds: z.number().int().min(5).max(3600),
  /** the console command that kicks a player (`{id}`, `{name}`, `{reason}`; see player-commands.ts) */
  kick: PlayerCommand.optional(),
  /** the console command that bans a player */
  ban: PlayerCommand.optional(),
});
export type TemplatePlayers = z.infer<typeof TemplatePlayers>;

export const Template = z.object({
  source: TemplateSource,
  uuid: z.string().nullable(),
  name: z.string().min(1).max(191),
  author: z.string(),
  description: z.string(),
  /** a `data:` URL or an http(s) URL (Pelican's `image`), or null */
  icon: z.string().nullable(),
  tags: z.array(z.string()),
  /** label → image, in the file's order; the first is the default */
  images: z.array(TemplateImage),
  /** the default startup command, with {{VAR}} placeholders */
  startup: z.string().max(16 * 1024),
  /** Pelican's startup_commands (label → command), in order; [] when the egg has a single `startup` */
  startupCommands: z.array(z.object({ label: z.string(), command: z.string().max(16 * 1024) })),
  variables: z.array(TemplateVariable),
  config: TemplateConfig,
  install: TemplateInstall,
  features: z.array(z.string()),
  fileDenylist: z.array(z.string()),
  /**
   * Our extension (egg key `backup`, kept by export → import): console commands sent around a
   * backup while the server runs, e.g. Minecraft's `save-off`, `save-all` before and `save-on` after.
   */
  backup: TemplateBackup.optional(),
  /**
   * Our extension (egg key `remote_console`, kept by export → import): how console commands reach
   * the game (absent: stdin), e.g. `{ transport: 'source-rcon', portVariable: 'RCON_PORT',
   * passwordVariable: 'RCON_PASSWORD' }`. Both variables must be the template's (or SERVER_PORT).
   */
  remoteConsole: RemoteConsoleSpec.optional(),
  /**
   * Our extension (egg key `mods`, kept by export → import): the folders the mod manager shows,
   * e.g. `[{ path: 'plugins', kind: 'bukkit' }]`; absent on import, inferred from the egg's name.
   */
  mods: z.array(ModFolder).max(8).optional(),
  /** Our extension (egg key `players`, kept by export → import): how players are counted. */
  players: TemplatePlayers.optional(),
});
export type Template = z.infer<typeof Template>;

/** A problem that does not stop the import (unknown rule token, duplicate env name…). */
export const TemplateWarning = z.object({ location: z.string(), message: z.string() });
export type TemplateWarning = z.infer<typeof TemplateWarning>;
