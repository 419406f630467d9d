import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { principalOf } from '../../http/auth.ts';
import type { PanelServices } from '../../services.ts';
import { ApiKeyInfo, CreateApiKey } from './service.ts';

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
        description:
          'The key is shown once; only its hash is stored. Needs your current password (401 AUTH_FAILED when wrong); optional expiry (expiresAt or expiresInDays, at most 3650 days). A password change revokes your keys unless it asks to keep them.',
        body: CreateApiKey,
        response: {
          201: z.object({
            id: z.string(),
            name: z.string(),
            key: z.string(),
            expiresAt: z.string().nullable(),
          }),
        },
      },
    },
    async (req, reply) => {
      const userId = principalOf(req).user.id;
      await s.auth.verifyOwnPassword(userId, req.body.currentPassword);
      const { expiresAt, expiresInDays } = req.body;
      const made = await s.apiKeys.create(userId, req.body.name, {
        ...(expiresAt === undefined ? {} : { expiresAt }),
        ...(expiresInDays === undefined ? {} : { expiresInDays }),
      });
      return reply.status(201).send(made);
    },
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
