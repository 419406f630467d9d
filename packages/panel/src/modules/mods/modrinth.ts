/**
 * The Modrinth catalog (https://docs.modrinth.com/api/): search projects for a loader and a game
 * version, list a project's versions, and pick the file to install. Every answer is parsed with
 * zod (unknown keys dropped), every request goes through the outbound guard (no private address
 * unless allowed). The adapter interface is what CurseForge/Thunderstore/uMod would implement.
 */
import { CodedError, type ModKind } from '@cap/protocol';
import { z } from 'zod';
import { outboundJson } from '../../net/outbound.ts';

export interface CatalogProject {
  id: string;
  slug: string;
  title: string;
  description: string;
  author: string;
  downloads: number;
  iconUrl: string | null;
  /** the newest game versions it supports (a few) */
  gameVersions: string[];
}
export interface CatalogFile {
  versionId: string;
  versionNumber: string;
  url: string;
  filename: string;
  size: number;
  sha512: string;
}
export interface ModCatalog {
  readonly name: string;
  /** which folder kinds it serves (the loaders it can filter by) */
  supports(kind: ModKind): boolean;
  search(q: { query: string; kind: ModKind; gameVersion?: string; offset: number; limit: number }): Promise<{
    projects: CatalogProject[];
    total: number;
  }>;
  /** the file to install: `versionId`, or the newest version for the kind and game version */
  file(q: {
    projectId: string;
    versionId?: string;
    kind: ModKind;
    gameVersion?: string;
  }): Promise<CatalogFile>;
}

const LOADERS: ReadonlyMap<ModKind, readonly string[]> = new Map([
  ['bukkit', ['paper', 'spigot', 'bukkit', 'purpur', 'folia']],
  ['fabric', ['fabric', 'quilt']],
  ['forge', ['forge', 'neoforge']],
]);
/** Modrinth ids and slugs: base62 ids, slugs of letters, digits and `-_.` */
const ProjectId = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/);

const SearchAnswer = z.object({
  hits: z
    .array(
      z.object({
        project_id: z.string().max(64),
        slug: z.string().max(128),
        title: z.string().max(256),
        description: z.string().max(2048).default(''),
        author: z.string().max(128).default(''),
        downloads: z.number().nonnegative().default(0),
        icon_url: z.string().max(2048).nullable().optional(),
        versions: z.array(z.string().max(64)).max(2000).default([]),
      }),
    )
    .max(100),
  total_hits: z.number().int().nonnegative(),
});
const VersionAnswer = z
  .array(
    z.object({
      id: z.string().max(64),
      version_number: z.string().max(128),
      files: z
        .array(
          z.object({
            url: z.string().max(2048),
            filename: z.string().max(255),
            primary: z.boolean().default(false),
            size: z.number().int().nonnegative(),
            hashes: z.object({ sha512: z.string().regex(/^[0-9a-f]{128}$/) }),
          }),
        )
        .max(50),
    }),
  )
  .max(1000);

export class ModrinthCatalog implements ModCatalog {
  readonly name = 'Modrinth';
  readonly #base: string;
  readonly #allowPrivate: boolean;
  constructor(base: string, allowPrivate: boolean) {
    this.#base = base.replace(/\/+$/, '');
    this.#allowPrivate = allowPrivate;
  }
  supports(kind: ModKind): boolean {
    return LOADERS.has(kind);
  }
  #get(path: string, params: Record<string, string>): Promise<unknown> {
    const qs = new URLSearchParams(params).toString();
    return outboundJson(`${this.#base}${path}${qs ? `?${qs}` : ''}`, {
      allowPrivate: this.#allowPrivate,
      maxBytes: 4 * 1024 * 1024,
    });
  }
  #loaders(kind: ModKind): readonly string[] {
    const l = LOADERS.get(kind);
    if (!l) throw new CodedError('VALIDATION_FAILED', `${this.name} has no ${kind} mods`);
    return l;
  }
  async search(q: { query: string; kind: ModKind; gameVersion?: string; offset: number; limit: number }) {
    const loaders = this.#loaders(q.kind);
    const facets: string[][] = [loaders.map((l) => `categories:${l}`)];
    if (q.gameVersion) facets.push([`versions:${q.gameVersion}`]);
    const raw = await this.#get('/v2/search', {
      query: q.query,
      facets: JSON.stringify(facets),
      offset: String(q.offset),
      limit: String(q.limit),
    });
    const a = SearchAnswer.safeParse(raw);
    if (!a.success)
      throw new CodedError('UPSTREAM_ERROR', `${this.name} answered an unexpected search shape`);
    return {
      total: a.data.total_hits,
      projects: a.data.hits.map((h) => ({
        id: h.project_id,
        slug: h.slug,
        title: h.title,
        description: h.description.slice(0, 512),
        author: h.author,
        downloads: h.downloads,
        iconUrl: h.icon_url ?? null,
        gameVersions: h.versions.slice(-5).reverse(),
      })),
    };
  }
  async file(q: { projectId: string; versionId?: string; kind: ModKind; gameVersion?: string }) {
    if (!ProjectId.safeParse(q.projectId).success)
      throw new CodedError('VALIDATION_FAILED', 'not a project id');
    const loaders = this.#loaders(q.kind);
    const raw = await this.#get(`/v2/project/${encodeURIComponent(q.projectId)}/version`, {
      loaders: JSON.stringify(loaders),
      ...(q.gameVersion ? { game_versions: JSON.stringify([q.gameVersion]) } : {}),
    });
    const a = VersionAnswer.safeParse(raw);
    if (!a.success)
      throw new CodedError('UPSTREAM_ERROR', `${this.name} answered an unexpected version list`);
    // newest first, as Modrinth lists them
    const version = q.versionId ? a.data.find((v) => v.id === q.versionId) : a.data[0];
    if (!version)
      throw new CodedError(
        'NOT_FOUND',
        q.versionId
          ? 'no such version of this project for this loader'
          : `no version of this project for ${loaders.join('/')}${q.gameVersion ? ` and ${q.gameVersion}` : ''}`,
      );
    const f = version.files.find((x) => x.primary) ?? version.files[0];
    if (!f) throw new CodedError('NOT_FOUND', 'this version has no file');
    return {
      versionId: version.id,
      versionNumber: version.version_number,
      url: f.url,
      filename: f.filename,
      size: f.size,
      sha512: f.hashes.sha512,
    };
  }
}
