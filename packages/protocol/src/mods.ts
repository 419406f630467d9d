import { z } from 'zod';

/**
 * The mod manager's wire shapes. A template names the folders (`mods: [{ path, kind }]`); the
 * Agent lists what is in them with the metadata each format carries (`list_mods`), read from
 * inside the archives with every size capped; enabling and disabling is a rename to and from
 * `<name>.disabled` (nothing is deleted), done with the file actions.
 */

/** How a game loads mods from a folder: which entries count and which metadata they carry. */
export const ModKind = z.enum(['bukkit', 'fabric', 'forge', 'bepinex', 'source', 'other']);
export type ModKind = z.infer<typeof ModKind>;

/** A folder relative to the server's root: no leading `/`, no `.`/`..` segments. */
export const ModFolderPath = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[A-Za-z0-9_\-. ]+(\/[A-Za-z0-9_\-. ]+)*$/, 'a relative folder like plugins or BepInEx/plugins')
  .refine((p) => p.split('/').every((seg) => seg !== '.' && seg !== '..'), 'no . or .. segments');
export const ModFolder = z.object({ path: ModFolderPath, kind: ModKind });
export type ModFolder = z.infer<typeof ModFolder>;

/** The suffix that turns a mod off: games load neither `x.jar.disabled` nor `x.dll.disabled`. */
export const MOD_DISABLED_SUFFIX = '.disabled';
export const LIST_MODS_MAX_LIMIT = 200;

export const ListModsPayload = z.object({
  folders: z.array(ModFolder).min(1).max(8),
  offset: z.number().int().min(0).max(1_000_000).default(0),
  limit: z.number().int().min(1).max(LIST_MODS_MAX_LIMIT).default(100),
});
export type ListModsPayload = z.infer<typeof ListModsPayload>;

/** What a mod says about itself (plugin.yml, fabric.mod.json, mods.toml, a DLL's version resource). */
export const ModMeta = z.object({
  /** where it came from: `plugin.yml`, `fabric.mod.json`, `META-INF/mods.toml`, `version resource`… */
  source: z.string().max(64),
  id: z.string().max(128).optional(),
  name: z.string().max(128).optional(),
  version: z.string().max(64).optional(),
  description: z.string().max(512).optional(),
  authors: z.array(z.string().max(64)).max(8).optional(),
  /** the game or loader versions it declares (`api-version`, `depends.minecraft`…) */
  requires: z.string().max(128).optional(),
});
export type ModMeta = z.infer<typeof ModMeta>;

export const ModEntry = z.object({
  /** the folder it is in, as the template names it */
  folder: z.string(),
  kind: ModKind,
  /** the entry's name in that folder, with `.disabled` when off */
  file: z.string(),
  /** from the server's root: `<folder>/<file>` */
  path: z.string(),
  enabled: z.boolean(),
  type: z.enum(['file', 'directory']),
  size: z.number(),
  modifiedAt: z.string(),
  meta: ModMeta.nullable(),
  /** why no metadata could be read (not an archive, too big, malformed…) */
  problem: z.string().max(256).optional(),
});
export type ModEntry = z.infer<typeof ModEntry>;

export const ListModsData = z.object({
  mods: z.array(ModEntry),
  /** mods in all the folders */
  total: z.number().int().nonnegative(),
  offset: z.number().int().nonnegative(),
  limit: z.number().int().positive(),
  /** folders that do not exist yet (the game creates them, or an upload does) */
  missing: z.array(z.string()),
});
export type ListModsData = z.infer<typeof ListModsData>;
