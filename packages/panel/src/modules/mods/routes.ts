/**
 * The mod manager (issue 13 item 4): the template's mod folders (`mods: [{ path, kind }]`)
 * listed by the Agent with each mod's metadata; enable/disable is a rename to and from
 * `<name>.disabled`; remove deletes; upload is the file API's transfer into the folder; install
 * from a catalog (Modrinth) downloads through the outbound guard into the Panel's data dir,
 * checks the catalog's sha512, then streams it to the Agent over the relay. Every route checks
 * a `file.*` permission; every path must be an entry directly inside a declared folder.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CodedError,
  CreateTransferData,
  FileName,
  LIST_MODS_MAX_LIMIT,
  ListModsData,
  MOD_DISABLED_SUFFIX,
  type ModFolder,
  ModKind,
} from '@cap/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { outboundGet } from '../../net/outbound.ts';
import type { PanelServices } from '../../services.ts';
import { pushToAgent } from '../files/relay.ts';
import { viewerOf } from '../servers/routes.ts';
import { type ModCatalog, ModrinthCatalog } from './modrinth.ts';

const IdParams = z.object({ id: z.string().min(1).max(64) });
const ModPath = z.string().min(1).max(1024);
const ModsAnswer = ListModsData.extend({
  /** the template's mod folders ([] when it declares none: the tab has nothing to show) */
  folders: z.array(z.object({ path: z.string(), kind: ModKind })),
  /** the catalog that can install into each kind, or null */
  catalogs: z.record(z.string(), z.string().nullable()),
});
const ToggleBody = z.object({ path: ModPath, enabled: z.boolean() });
const RemoveBody = z.object({ path: ModPath });
const CatalogQuery = z.object({
  folder: z.string().min(1).max(256),
  query: z.string().max(200).default(''),
  gameVersion: z
    .string()
    .regex(/^[A-Za-z0-9._+-]{1,32}$/)
    .optional(),
  offset: z.coerce.number().int().min(0).max(10_000).default(0),
  limit: z.coerce.number().int().min(1).max(50).default(20),
});
const CatalogAnswer = z.object({
  catalog: z.string(),
  total: z.number().int(),
  projects: z.array(
    z.object({
      id: z.string(),
      slug: z.string(),
      title: z.string(),
      description: z.string(),
      author: z.string(),
      downloads: z.number(),
      iconUrl: z.string().nullable(),
      gameVersions: z.array(z.string()),
    }),
  ),
});
const InstallBody = z.object({
  folder: z.string().min(1).max(256),
  projectId: z.string().min(1).max(64),
  versionId: z.string().min(1).max(64).optional(),
  gameVersion: z
    .string()
    .regex(/^[A-Za-z0-9._+-]{1,32}$/)
    .optional(),
});
const InstallAnswer = z.object({
  path: z.string(),
  size: z.number(),
  versionId: z.string(),
  versionNumber: z.string(),
  sha512: z.string(),
});

export async function modsRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['mods'];
  const cfg = s.config;
  const catalog: ModCatalog = new ModrinthCatalog(cfg.modrinthUrl, cfg.outboundAllowPrivate);

  const foldersOf = async (req: FastifyRequest, id: string): Promise<ModFolder[]> => {
    const server = await s.servers.get(id, viewerOf(req));
    if (!server.templateId) return [];
    const t = await s.templates.template(server.templateId).catch(() => null);
    return t?.mods ?? [];
  };
  /** `path` must be `<declared folder>/<one name>`: nothing deeper, nothing outside */
  const entryIn = (folders: ModFolder[], p: string): { folder: ModFolder; name: string } => {
    const slash = p.lastIndexOf('/');
    const folder = folders.find((f) => f.path === p.slice(0, slash));
    const name = p.slice(slash + 1);
    if (
      slash < 0 ||
      !folder ||
      !FileName.safeParse(name).success ||
      name === '.' ||
      name === '..' ||
      name.includes('\\')
    )
      throw new CodedError('VALIDATION_FAILED', "not an entry of one of the template's mod folders", {
        location: 'path',
      });
    return { folder, name };
  };
  const folderNamed = (folders: ModFolder[], p: string): ModFolder => {
    const f = folders.find((x) => x.path === p);
    if (!f)
      throw new CodedError('VALIDATION_FAILED', "not one of the template's mod folders", {
        location: 'folder',
      });
    return f;
  };

  r.get(
    '/api/servers/:id/mods',
    {
      config: { auth: 'user', access: 'file.read' },
      schema: {
        tags,
        description: `One page of the mods in the template's mod folders (template \`mods: [{ path, kind }]\`), sorted by folder then name, each with the metadata its format carries (plugin.yml, fabric.mod.json, mods.toml, a DLL's version resource) or a \`problem\`. A disabled mod is named \`<name>${MOD_DISABLED_SUFFIX}\`. \`missing\`: declared folders that do not exist yet.`,
        params: IdParams,
        querystring: z.object({
          offset: z.coerce.number().int().min(0).max(1_000_000).default(0),
          limit: z.coerce.number().int().min(1).max(LIST_MODS_MAX_LIMIT).default(100),
        }),
        response: { 200: ModsAnswer },
      },
    },
    async (req) => {
      const folders = await foldersOf(req, req.params.id);
      const catalogs = Object.fromEntries(
        folders.map((f) => [f.path, catalog.supports(f.kind) ? catalog.name : null]),
      );
      if (folders.length === 0)
        return {
          mods: [],
          total: 0,
          offset: req.query.offset,
          limit: req.query.limit,
          missing: [],
          folders,
          catalogs,
        };
      const data = ListModsData.parse(
        await s.gateway.request(
          await s.servers.nodeIdOf(req.params.id),
          'list_mods',
          { folders, offset: req.query.offset, limit: req.query.limit },
          { serverId: req.params.id },
        ),
      );
      return { ...data, folders, catalogs };
    },
  );

  r.post(
    '/api/servers/:id/mods/toggle',
    {
      config: { auth: 'user', access: 'file.update', activity: 'mod.toggle' },
      schema: {
        tags,
        description: `Turns a mod off (renamed to \`<name>${MOD_DISABLED_SUFFIX}\`, nothing deleted) or on again. Takes effect when the game next loads its mods (usually a restart). 409 FILE_EXISTS when the other name is taken.`,
        params: IdParams,
        body: ToggleBody,
        response: { 200: z.object({ path: z.string(), enabled: z.boolean() }) },
      },
    },
    async (req) => {
      const { folder, name } = entryIn(await foldersOf(req, req.params.id), req.body.path);
      const disabled = name.endsWith(MOD_DISABLED_SUFFIX);
      const base = disabled ? name.slice(0, -MOD_DISABLED_SUFFIX.length) : name;
      const target = req.body.enabled ? base : `${base}${MOD_DISABLED_SUFFIX}`;
      if (req.activity) req.activity.details = { path: req.body.path, enabled: String(req.body.enabled) };
      if (target === name) return { path: req.body.path, enabled: req.body.enabled };
      const to = `${folder.path}/${target}`;
      await s.gateway.request(
        await s.servers.nodeIdOf(req.params.id),
        'rename_file',
        { from: req.body.path, to },
        { serverId: req.params.id },
      );
      return { path: to, enabled: req.body.enabled };
    },
  );

  r.post(
    '/api/servers/:id/mods/remove',
    {
      config: { auth: 'user', access: 'file.delete', activity: 'mod.remove' },
      schema: {
        tags,
        description: 'Deletes one mod (a file or a plugin folder) from a mod folder.',
        params: IdParams,
        body: RemoveBody,
        response: { 200: z.object({ path: z.string() }) },
      },
    },
    async (req) => {
      const { folder, name } = entryIn(await foldersOf(req, req.params.id), req.body.path);
      if (req.activity) req.activity.details = { path: req.body.path };
      await s.gateway.request(
        await s.servers.nodeIdOf(req.params.id),
        'delete_files',
        { root: folder.path, names: [name] },
        { serverId: req.params.id },
      );
      return { path: req.body.path };
    },
  );

  r.get(
    '/api/servers/:id/mods/catalog',
    {
      config: { auth: 'user', access: 'file.read' },
      schema: {
        tags,
        description: `Searches the catalog for the folder's kind (Modrinth for bukkit/paper plugins, fabric and forge mods), optionally for one game version. 400 VALIDATION_FAILED when the kind has no catalog; 502 UPSTREAM_ERROR when the catalog fails; 400 URL_NOT_ALLOWED when its address is private and PANEL_OUTBOUND_ALLOW_PRIVATE is off.`,
        params: IdParams,
        querystring: CatalogQuery,
        response: { 200: CatalogAnswer },
      },
    },
    async (req) => {
      const folder = folderNamed(await foldersOf(req, req.params.id), req.query.folder);
      const found = await catalog.search({
        query: req.query.query,
        kind: folder.kind,
        ...(req.query.gameVersion ? { gameVersion: req.query.gameVersion } : {}),
        offset: req.query.offset,
        limit: req.query.limit,
      });
      return { catalog: catalog.name, ...found };
    },
  );

  r.post(
    '/api/servers/:id/mods/install',
    {
      config: { auth: 'user', access: 'file.create', activity: 'mod.install' },
      schema: {
        tags,
        description: `Installs a catalog project's file (\`versionId\`, or its newest for the folder's loader and \`gameVersion\`) into the folder: downloaded by the Panel (refusing private addresses unless PANEL_OUTBOUND_ALLOW_PRIVATE, at most PANEL_MOD_MAX_MB), checked against the catalog's sha512 (502 UPSTREAM_ERROR on a mismatch, nothing written), then streamed to the Agent (the disk quota applies: 409 INSUFFICIENT_RESOURCES). An existing file of the same name is replaced.`,
        params: IdParams,
        body: InstallBody,
        response: { 201: InstallAnswer },
      },
    },
    async (req, reply) => {
      const folder = folderNamed(await foldersOf(req, req.params.id), req.body.folder);
      const f = await catalog.file({
        projectId: req.body.projectId,
        kind: folder.kind,
        ...(req.body.versionId ? { versionId: req.body.versionId } : {}),
        ...(req.body.gameVersion ? { gameVersion: req.body.gameVersion } : {}),
      });
      const name = f.filename;
      if (
        !FileName.safeParse(name).success ||
        name.includes('/') ||
        name.includes('\\') ||
        name.startsWith('.')
      )
        throw new CodedError('UPSTREAM_ERROR', 'the catalog named the file oddly');
      if (f.size > cfg.modMaxBytes)
        throw new CodedError('FILE_TOO_LARGE', `the file is ${f.size} bytes, over PANEL_MOD_MAX_MB`);
      if (req.activity)
        req.activity.details = { folder: folder.path, project: req.body.projectId, version: f.versionId };
      // the whole file is checked before the Agent sees a byte of it
      const dir = path.join(cfg.dataDir, 'tmp');
      await mkdir(dir, { recursive: true });
      const tmp = path.join(dir, `mod-${randomUUID()}`);
      try {
        const res = await outboundGet(f.url, {
          allowPrivate: cfg.outboundAllowPrivate,
          maxBytes: f.size,
          timeoutMs: 30_000,
        });
        if (res.status !== 200) {
          res.body.resume();
          throw new CodedError('UPSTREAM_ERROR', `the download answered ${res.status}`);
        }
        const hash = createHash('sha512');
        let size = 0;
        const count = new Transform({
          transform(c: Buffer, _enc, done) {
            hash.update(c);
            size += c.length;
            done(null, c);
          },
        });
        await pipeline(res.body, count, createWriteStream(tmp, { flags: 'wx', mode: 0o600 })).catch(
          (e: Error) => {
            throw e instanceof CodedError
              ? e
              : new CodedError('UPSTREAM_ERROR', `the download failed: ${e.message}`);
          },
        );
        const sha512 = hash.digest('hex');
        if (size !== f.size || sha512 !== f.sha512)
          throw new CodedError(
            'UPSTREAM_ERROR',
            'the downloaded file does not match the catalog (size or sha512)',
            {
              details: { expectedSize: f.size, size },
            },
          );
        const nodeId = await s.servers.nodeIdOf(req.params.id);
        const target = `${folder.path}/${name}`;
        const grant = CreateTransferData.parse(
          await s.gateway.request(
            nodeId,
            'create_transfer',
            { direction: 'upload', path: target, size, ttlSeconds: 120 },
            { serverId: req.params.id },
          ),
        );
        const done = await pushToAgent(
          { transfers: s.transferRelay, gateway: s.gateway },
          { nodeId, serverId: req.params.id, ticket: grant.ticket, size },
          createReadStream(tmp),
        );
        return reply.status(201).send({
          path: done.path,
          size: done.size,
          versionId: f.versionId,
          versionNumber: f.versionNumber,
          sha512,
        });
      } finally {
        await rm(tmp, { force: true });
      }
    },
  );
}
