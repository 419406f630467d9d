import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { principalOf } from '../../http/auth.ts';
import type { PanelServices } from '../../services.ts';
import { PublicUser, Role, Username } from './service.ts';

const IdParams = z.object({ id: z.string().min(1).max(64) });

export async function usersRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/api/users',
    { config: { auth: 'admin' }, schema: { tags: ['users'], response: { 200: z.array(PublicUser) } } },
    async () => s.users.list(),
  );
  r.post(
    '/api/users',
    {
      config: { auth: 'admin' },
      schema: {
        tags: ['users'],
        body: z.object({
          email: z.email().max(254),
          password: z.string().min(8).max(256),
          role: Role,
          /** the SFTP login's first part; derived from the email when left out */
          username: Username.optional(),
        }),
        response: { 201: PublicUser },
      },
    },
    async (req, reply) => reply.status(201).send(await s.users.create(principalOf(req).user, req.body)),
  );
  r.patch(
    '/api/users/:id',
    {
      config: { auth: 'admin' },
      schema: {
        tags: ['users'],
        params: IdParams,
        body: z.object({
          role: Role.optional(),
          password: z.string().min(8).max(256).optional(),
          username: Username.optional(),
        }),
        response: { 200: PublicUser },
      },
    },
    async (req) => {
      const p = principalOf(req);
      const user = await s.users.update(p.user, req.params.id, req.body);
      // a new password ends the user's other sessions (a stolen cookie dies with the old password)
      if (req.body.password !== undefined) {
        const keep = user.id === p.user.id ? p.sessionId : undefined;
        await s.auth.endSessionsOf(user.id, keep);
        s.clientSockets.endUser(user.id, keep);
      }
      // open sockets were authorised under the old role: they reconnect under the new one
      if (req.body.role !== undefined) s.clientSockets.roleChanged(user.id, user.role);
      // SFTP sessions were opened under the old password, role or username: they close
      if (req.body.password !== undefined || req.body.role !== undefined || req.body.username !== undefined)
        await s.sftp.revoke(user.id);
      return user;
    },
  );
  r.delete(
    '/api/users/:id',
    {
      config: { auth: 'admin' },
      schema: { tags: ['users'], params: IdParams, response: { 204: z.null() } },
    },
    async (req, reply) => {
      await s.users.delete(principalOf(req).user, req.params.id);
      s.clientSockets.endUser(req.params.id);
      await s.sftp.revoke(req.params.id);
      return reply.status(204).send(null);
    },
  );
}
