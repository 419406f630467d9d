import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { principalOf } from '../../http/auth.ts';
import type { PanelServices } from '../../services.ts';
import { ApiKeyInfo } from './service.ts';

export async function apiKeysRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/api/api-keys',
    { config: { auth: 'user' }, schema: { tags: ['api-keys'], response: { 200: z.array(ApiKeyInfo) } } },
    async (req) => s.apiKeys.list(principalOf(req).user.id),
  );
  r.post(
    '/api/api-keys',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['api-keys'],
        description: 'The key is shown once; only its hash is stored.',
        body: z.object({ name: z.string().min(1).max(100) }),
        response: { 201: z.object({ id: z.string(), name: z.string(), key: z.string() }) },
      },
    },
    async (req, reply) =>
      reply.status(201).send(await s.apiKeys.create(principalOf(req).user.id, req.body.name)),
  );
  r.delete(
    '/api/api-keys/:id',
    {
      config: { auth: 'user' },
      schema: {
        tags: ['api-keys'],
        params: z.object({ id: z.string().min(1).max(64) }),
        response: { 204: z.null() },
      },
    },
    async (req, reply) => {
      await s.apiKeys.delete(principalOf(req).user.id, req.params.id);
      return reply.status(204).send(null);
    },
  );
}
