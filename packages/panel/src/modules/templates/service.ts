/**
 * Templates ("eggs"): imported from the published Pterodactyl/Pelican files by the protocol
 * library, stored normalised, exported back as PTDL_v2. Built-ins come from `templates/builtin`.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CodedError, type RemoteConsoleSpec } from '@cap/protocol';
import {
  diffTemplates,
  exportPtdlV2Text,
  importTemplate,
  remoteConsoleProblem,
  serverImpact,
  Template,
  TemplateFormat,
  TemplateImage,
  TemplateWarning,
} from '@cap/protocol/templates/index.ts';
import type { Logger } from 'pino';
import { z } from 'zod';
import { nowIso } from '../../db/index.ts';
import type { TemplatesTable } from '../../db/schema.ts';
import { shortId } from '../../lib/crypto.ts';
import { isUniqueViolation } from '../../lib/db-errors.ts';
import type { TemplatesRepo } from './repo.ts';

/** The repository's `templates/builtin`, found from this file so it works from any cwd. */
export const BUILTIN_TEMPLATES_DIR = fileURLToPath(
  new URL('../../../../../templates/builtin/', import.meta.url),
);

export const TemplateSummary = z.object({
  id: z.string(),
  uuid: z.string().nullable(),
  name: z.string(),
  author: z.string(),
  description: z.string(),
  format: TemplateFormat,
  builtin: z.boolean(),
  images: z.array(TemplateImage),
  variables: z.number().int(),
  hasInstall: z.boolean(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type TemplateSummary = z.infer<typeof TemplateSummary>;
export const TemplateDetail = TemplateSummary.extend({ template: Template });
export type TemplateDetail = z.infer<typeof TemplateDetail>;
export const ImportResponse = z.object({
  template: TemplateSummary,
  warnings: z.array(TemplateWarning),
  replaced: z.boolean(),
});
export type ImportResponse = z.infer<typeof ImportResponse>;
export const TemplateUpdateAnswer = z.object({
  /** true once the new version replaced the stored one (servers keep their id and values) */
  applied: z.boolean(),
  /** where the new version came from: `upload` or the egg's update_url */
  from: z.string(),
  changes: z.array(
    z.object({
      field: z.string(),
      kind: z.enum(['added', 'removed', 'changed']),
      before: z.string().optional(),
      after: z.string().optional(),
    }),
  ),
  warnings: z.array(TemplateWarning),
  /** servers made from it, and how their kept values fare under the new version */
  servers: z.array(
    z.object({
      id: z.string(),
      name: z.string(),
      failingValues: z.record(z.string(), z.array(z.string())),
      imageGone: z.boolean(),
    }),
  ),
});
export type TemplateUpdateAnswer = z.infer<typeof TemplateUpdateAnswer>;

function parseEnvironment(text: string): Record<string, string> {
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return {};
    return Object.fromEntries(
      Object.entries(v).filter((e): e is [string, string] => typeof e[1] === 'string'),
    );
  } catch {
    return {};
  }
}

function parseTemplate(row: TemplatesTable): Template {
  return Template.parse(JSON.parse(row.template));
}

export class TemplatesService {
  readonly #repo: TemplatesRepo;
  readonly #log: Logger;
  constructor(repo: TemplatesRepo, log: Logger) {
    this.#repo = repo;
    this.#log = log;
  }

  #summary(row: TemplatesTable, t: Template = parseTemplate(row)): TemplateSummary {
    return {
      id: row.id,
      uuid: row.uuid,
      name: row.name,
      author: row.author,
      description: row.description,
      format: TemplateFormat.parse(row.source_format),
      builtin: row.builtin === 1,
      images: t.images,
      variables: t.variables.length,
      hasInstall: t.install.script.trim() !== '' && t.install.container !== '',
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    };
  }

  async #row(id: string): Promise<TemplatesTable> {
    const row = await this.#repo.findById(id);
    if (!row) throw new CodedError('NOT_FOUND', 'no such template');
    return row;
  }

  async list(): Promise<TemplateSummary[]> {
    return (await this.#repo.list()).map((r) => this.#summary(r));
  }

  async get(id: string): Promise<TemplateDetail> {
    const row = await this.#row(id);
    const template = parseTemplate(row);
    return { ...this.#summary(row, template), template };
  }

  /**
   * An admin sets (or, with null, removes: stdin) the template's remote console. Its variables
   * must be the template's (VALIDATION_FAILED at `remoteConsole.…` otherwise). Servers made from
   * it take it with their next create or configuration update.
   */
  async setRemoteConsole(id: string, spec: RemoteConsoleSpec | null): Promise<TemplateDetail> {
    const row = await this.#row(id);
    const template = parseTemplate(row);
    const problem = remoteConsoleProblem(template.variables, spec ?? undefined);
    if (problem)
      throw new CodedError('VALIDATION_FAILED', problem.message, {
        location: problem.location.replace(/^remote_console/, 'remoteConsole'),
      });
    // null is kept as an explicit stdin, so that a built-in's declared one is not put back at start
    const next: Template = { ...template, remoteConsole: spec ?? { transport: 'stdin' } };
    await this.#repo.update(id, { template: JSON.stringify(next), updated_at: nowIso() });
    this.#log.info(
      { templateId: id, action: 'template_remote_console', transport: spec?.transport ?? 'stdin' },
      'template remote console set',
    );
    return this.get(id);
  }

  /** The normalised template, for servers made from it. */
  async template(id: string): Promise<Template> {
    return parseTemplate(await this.#row(id));
  }

  /**
   * Store an already-imported template. The same uuid twice is a CONFLICT unless `replace`, which
   * updates that one template in place (servers using it keep their id).
   */
  async store(
    template: Template,
    opts: { replace?: boolean; builtin?: boolean } = {},
  ): Promise<{ summary: TemplateSummary; replaced: boolean }> {
    const now = nowIso();
    const fields = {
      uuid: template.uuid,
      name: template.name,
      author: template.author,
      description: template.description,
      source_format: template.source.format,
      template: JSON.stringify(template),
      updated_at: now,
    };
    const existing = template.uuid ? await this.#repo.findByUuid(template.uuid) : undefined;
    if (existing) {
      if (!opts.replace)
        throw new CodedError('CONFLICT', `a template with uuid ${template.uuid} exists; use replace`, {
          location: 'uuid',
          details: { id: existing.id },
        });
      await this.#repo.update(existing.id, fields);
      const row = await this.#row(existing.id);
      return { summary: this.#summary(row, template), replaced: true };
    }
    const row: TemplatesTable = {
      id: shortId('t'),
      ...fields,
      builtin: opts.builtin ? 1 : 0,
      created_at: now,
    };
    try {
      await this.#repo.insert(row);
    } catch (e) {
      // a parallel import of the same uuid won the race
      if (isUniqueViolation(e))
        throw new CodedError('CONFLICT', `a template with uuid ${template.uuid} exists; use replace`, {
          location: 'uuid',
        });
      throw e;
    }
    this.#log.info({ templateId: row.id, name: row.name, action: 'import_template' }, 'template imported');
    return { summary: this.#summary(row, template), replaced: false };
  }

  /**
   * A newer version of a stored template's egg (a file, or fetched from its `update_url` by the
   * caller): the differences and each server's impact; with `apply` it replaces the stored one in
   * place (same id: servers keep their values; a variable it adds gets its default). A file of
   * another egg (a different uuid) is 409 CONFLICT.
   */
  async update(
    id: string,
    content: string,
    opts: { filename?: string; from: string; apply: boolean },
  ): Promise<TemplateUpdateAnswer> {
    const row = await this.#row(id);
    const current = parseTemplate(row);
    const { template: parsed, warnings } = importTemplate(
      content,
      opts.filename ? { filename: opts.filename } : {},
    );
    if (current.uuid !== null && parsed.uuid !== null && parsed.uuid !== current.uuid)
      throw new CodedError(
        'CONFLICT',
        `that file is another egg (uuid ${parsed.uuid}, this one is ${current.uuid})`,
        {
          location: 'uuid',
        },
      );
    // a version without a uuid keeps this one's; the update URL is kept when the new one names none
    const next: Template = {
      ...parsed,
      uuid: parsed.uuid ?? current.uuid,
      source: { ...parsed.source, updateUrl: parsed.source.updateUrl ?? current.source.updateUrl },
    };
    const servers = (await this.#repo.serversOf(id)).map((srv) => ({
      id: srv.id,
      name: srv.name,
      ...serverImpact(next, { image: srv.image, environment: parseEnvironment(srv.environment) }),
    }));
    const changes = diffTemplates(current, next);
    if (opts.apply && changes.length > 0) {
      await this.#repo.update(id, {
        uuid: next.uuid,
        name: next.name,
        author: next.author,
        description: next.description,
        source_format: next.source.format,
        template: JSON.stringify(next),
        updated_at: nowIso(),
      });
      this.#log.info(
        { templateId: id, changes: changes.length, action: 'update_template' },
        'template updated',
      );
    }
    return { applied: opts.apply && changes.length > 0, from: opts.from, changes, warnings, servers };
  }

  /** Parse, normalise and store one file; TEMPLATE_INVALID (with location) stores nothing. */
  async import(
    content: string,
    opts: { filename?: string; replace?: boolean } = {},
  ): Promise<ImportResponse> {
    const { template, warnings } = importTemplate(content, opts.filename ? { filename: opts.filename } : {});
    const { summary, replaced } = await this.store(template, { replace: opts.replace ?? false });
    return { template: summary, warnings, replaced };
  }

  async export(id: string): Promise<{ filename: string; content: string }> {
    const row = await this.#row(id);
    const slug =
      row.name
        .toLowerCase()
        .replace(/[^a-z0-9]+/g, '-')
        .replace(/^-|-$/g, '') || 'template';
    return { filename: `egg-${slug}.json`, content: exportPtdlV2Text(parseTemplate(row)) };
  }

  async delete(id: string): Promise<void> {
    await this.#row(id);
    const n = await this.#repo.serverCount(id);
    if (n > 0) throw new CodedError('CONFLICT', `${n} server(s) use this template; delete them first`);
    await this.#repo.delete(id);
  }

  /** Import the built-in templates that are not stored yet (by uuid, else by name+author). */
  async ensureBuiltins(dir = BUILTIN_TEMPLATES_DIR): Promise<number> {
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
    } catch {
      this.#log.warn({ dir }, 'no built-in templates directory');
      return 0;
    }
    let added = 0;
    for (const name of names) {
      try {
        const { template } = importTemplate(await readFile(join(dir, name), 'utf8'), { filename: name });
        const exists = template.uuid
          ? await this.#repo.findByUuid(template.uuid)
          : await this.#repo.findByNameAuthor(template.name, template.author);
        if (exists) {
          // a built-in stored before remote consoles (issue 12) gets the one its file declares
          const stored = parseTemplate(exists);
          if (exists.builtin === 1 && template.remoteConsole && stored.remoteConsole === undefined) {
            await this.#repo.update(exists.id, {
              template: JSON.stringify({ ...stored, remoteConsole: template.remoteConsole }),
              updated_at: nowIso(),
            });
            this.#log.info({ templateId: exists.id, file: name }, 'built-in template: remote console added');
          }
          continue;
        }
        await this.store(template, { builtin: true });
        added += 1;
      } catch (e) {
        this.#log.error({ file: name, err: (e as Error).message }, 'built-in template failed to import');
      }
    }
    return added;
  }

  /**
   * Built-ins stored before player tracking (issue 12 item 2) get the `players` their files
   * declare; one that has any (set since) keeps them, and gets only the kick/ban commands of its
   * file when it has neither (stored before those existed). Returns how many were changed.
   */
  async addBuiltinPlayers(dir = BUILTIN_TEMPLATES_DIR): Promise<number> {
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
    } catch {
      return 0;
    }
    let changed = 0;
    for (const name of names) {
      try {
        const { template } = importTemplate(await readFile(join(dir, name), 'utf8'), { filename: name });
        if (!template.players) continue;
        const row = template.uuid
          ? await this.#repo.findByUuid(template.uuid)
          : await this.#repo.findByNameAuthor(template.name, template.author);
        if (row?.builtin !== 1) continue;
        const stored = parseTemplate(row);
        let players = template.players;
        if (stored.players) {
          const { kick, ban } = template.players;
          if (stored.players.kick !== undefined || stored.players.ban !== undefined) continue;
          if (kick === undefined && ban === undefined) continue;
          players = {
            ...stored.players,
            ...(kick === undefined ? {} : { kick }),
            ...(ban === undefined ? {} : { ban }),
          };
        }
        await this.#repo.update(row.id, {
          template: JSON.stringify({ ...stored, players }),
          updated_at: nowIso(),
        });
        this.#log.info({ templateId: row.id, file: name }, 'built-in template: player query added');
        changed += 1;
      } catch (e) {
        this.#log.error({ file: name, err: (e as Error).message }, 'built-in template players not added');
      }
    }
    return changed;
  }
}
