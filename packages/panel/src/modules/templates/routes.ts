import { CodedError, RemoteConsoleSpec } from '@cap/protocol';
import { TemplateImportRequest } from '@cap/protocol/templates/index.ts';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { outboundText } from '../../net/outbound.ts';
import type { PanelServices } from '../../services.ts';
import { viewerOf } from '../servers/routes.ts';
import { ImportResponse, TemplateDetail, TemplateSummary, TemplateUpdateAnswer } from './service.ts';

/** A value that is not user_viewable never reaches a spectator, not even as a template default. */
function withoutHiddenDefaults(d: TemplateDetail): TemplateDetail {
  return {
    ...d,
    template: {
      ...d.template,
      variables: d.template.variables.map((v) => (v.userViewable ? v : { ...v, defaultValue: '' })),
    },
  };
}

const IdParams = z.object({ id: z.string().min(1).max(64) });

export async function templatesRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['templates'];
  r.get(
    '/api/templates',
    { config: { auth: 'user' }, schema: { tags, response: { 200: z.array(TemplateSummary) } } },
    async () => s.templates.list(),
  );
  r.post(
    '/api/templates/import',
    {
      config: { auth: 'admin' },
      // eggs with embedded icons reach a few MiB
      bodyLimit: 16 * 1024 * 1024,
      schema: {
        tags,
        description:
          'The egg file as published (PTDL_v1/v2, PLCN_v1-3; JSON or YAML). 400 TEMPLATE_INVALID with `location` (line/column or field path) stores nothing; an existing uuid is 409 CONFLICT unless ?replace=true (200, updated in place).',
        querystring: z.object({ replace: z.enum(['true', 'false']).optional() }),
        body: TemplateImportRequest,
        response: { 200: ImportResponse, 201: ImportResponse },
      },
    },
    async (req, reply) => {
      const res = await s.templates.import(req.body.content, {
        ...(req.body.filename ? { filename: req.body.filename } : {}),
        replace: req.query.replace === 'true',
      });
      return reply.status(res.replaced ? 200 : 201).send(res);
    },
  );
  r.get(
    '/api/templates/:id',
    {
      config: { auth: 'user' },
      schema: {
        tags,
        description: 'For spectators the default values of variables that are not user_viewable are blanked.',
        params: IdParams,
        response: { 200: TemplateDetail },
      },
    },
    async (req) => {
      const detail = await s.templates.get(req.params.id);
      return viewerOf(req).admin ? detail : withoutHiddenDefaults(detail);
    },
  );
  r.post(
    '/api/templates/:id/update',
    {
      config: { auth: 'admin', activity: 'template.update' },
      bodyLimit: 16 * 1024 * 1024,
      schema: {
        tags,
        description:
          "A newer version of this template's egg: `content` (a file), or `fromUpdateUrl: true` to fetch the egg's `update_url` (http(s), ≤ 16 MiB, no private addresses unless PANEL_OUTBOUND_ALLOW_PRIVATE: 400 URL_NOT_ALLOWED; 502 UPSTREAM_ERROR when it fails). Answers the differences and, per server made from it, the kept values that fail the new rules and whether its image is gone. `apply: true` replaces the template in place (servers keep their values; new variables get their defaults when the container is next made). 409 CONFLICT for another egg (a different uuid); 400 TEMPLATE_INVALID as for import.",
        params: IdParams,
        body: z.union([
          z.object({
            content: z
              .string()
              .min(1)
              .max(16 * 1024 * 1024),
            filename: z.string().max(255).optional(),
            apply: z.boolean().default(false),
          }),
          z.object({ fromUpdateUrl: z.literal(true), apply: z.boolean().default(false) }),
        ]),
        response: { 200: TemplateUpdateAnswer },
      },
    },
    async (req) => {
      const body = req.body;
      if ('content' in body)
        return s.templates.update(req.params.id, body.content, {
          ...(body.filename ? { filename: body.filename } : {}),
          from: 'upload',
          apply: body.apply,
        });
      const url = (await s.templates.template(req.params.id)).source.updateUrl;
      if (!url)
        throw new CodedError('VALIDATION_FAILED', 'this egg has no update_url', {
          location: 'fromUpdateUrl',
        });
      const text = await outboundText(url, {
        allowPrivate: s.config.outboundAllowPrivate,
        maxBytes: 16 * 1024 * 1024,
        headers: { accept: 'application/json, application/yaml, text/plain' },
      });
      const name = new URL(url).pathname.split('/').pop() ?? '';
      return s.templates.update(req.params.id, text, {
        ...(name ? { filename: name } : {}),
        from: url,
        apply: body.apply,
      });
    },
  );
  r.get(
    '/api/templates/:id/export',
    {
      // the whole egg, hidden defaults included: for admins, like import
      config: { auth: 'admin' },
      schema: {
        tags,
        description: 'PTDL_v2 JSON, as a download.',
        params: IdParams,
        response: { 200: z.string() },
      },
    },
    async (req, reply) => {
      const { filename, content } = await s.templates.export(req.params.id);
      return reply
        .header('content-type', 'application/json; charset=utf-8')
        .header('content-disposition', `attachment; filename="${filename}"`)
        .serializer((p: unknown) => p as string)
        .send(content);
    },
  );
  r.put(
    '/api/templates/:id/remote-console',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        description:
          "Sets how console commands reach the template's game: { remoteConsole: { transport, portVariable | port, passwordVariable } }, or null for stdin. Exported as the egg key remote_console. Servers made from it take it with their next create or configuration update. VALIDATION_FAILED when a variable named is not the template's.",
        params: IdParams,
        body: z.object({ remoteConsole: RemoteConsoleSpec.nullable() }),
        response: { 200: TemplateDetail },
      },
    },
    async (req) => s.templates.setRemoteConsole(req.params.id, req.body.remoteConsole),
  );
  r.delete(
    '/api/templates/:id',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        description: '409 CONFLICT while servers use it.',
        params: IdParams,
        response: { 204: z.null() },
      },
    },
    async (req, reply) => {
      await s.templates.delete(req.params.id);
      return reply.status(204).send(null);
    },
  );
}
