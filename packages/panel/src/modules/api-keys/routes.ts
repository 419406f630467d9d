import { CodedError } from '@cap/protocol';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { principalOf } from '../../http/auth.ts';
import type { PanelServices } from '../../services.ts';
import { ApiKeyInfo, ApiKeyScope, CreateApiKey } from './service.ts';

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
          'The key is shown once; only its hash is stored. Needs your current password (401 AUTH_FAILED when wrong); optional expiry (expiresAt or expiresInDays, at most 3650 days). scope `read` may only make GET requests and subscribe on /ws/client (403 FORBIDDEN otherwise); serverIds limits the key to those servers (others answer 404, GET /api/servers lists only them, other routes are 403). A password change revokes your keys unless it asks to keep them.',
        body: CreateApiKey,
        response: {
          201: z.object({
            id: z.string(),
            name: z.string(),
            key: z.string(),
            expiresAt: z.string().nullable(),
            scope: ApiKeyScope,
            serverIds: z.array(z.string()).nullable(),
          }),
        },
      },
    },
    async (req, reply) => {
      const userId = principalOf(req).user.id;
      await s.auth.verifyOwnPassword(userId, req.body.currentPassword);
      const { expiresAt, expiresInDays, scope, serverIds } = req.body;
      for (const [i, id] of (serverIds ?? []).entries()) {
        const known = await s.servers.status(id).then(
          () => true,
          () => false,
        );
        if (!known)
          throw new CodedError('VALIDATION_FAILED', `no server ${id}`, { location: `serverIds.${i}` });
      }
      const made = await s.apiKeys.create(
        userId,
        req.body.name,
        {
          ...(expiresAt === undefined ? {} : { expiresAt }),
          ...(expiresInDays === undefined ? {} : { expiresInDays }),
        },
        { ...(scope === undefined ? {} : { scope }), ...(serverIds === undefined ? {} : { serverIds }) },
      );
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
      const userId = principalOf(req).user.id;
      await s.apiKeys.delete(userId, req.params.id);
      s.clientSockets.endKey(userId, req.params.id);
      return reply.status(204).send(null);
    },
  );
}
