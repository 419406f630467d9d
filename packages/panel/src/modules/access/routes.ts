/** GET /api/permissions (the catalog) and a server's subusers under /api/servers/:id/users. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { principalOf, serverAccessOf } from '../../http/auth.ts';
import type { PanelServices } from '../../services.ts';
import { PermissionCatalog, permissionCatalog } from './permissions.ts';
import { AddSubuser, ChangeSubuser, type Manager, Subuser } from './subusers.ts';

const IdParams = z.object({ id: z.string().min(1).max(64) });
const SubuserParams = IdParams.extend({ userId: z.string().min(1).max(64) });

function managerOf(req: FastifyRequest): Manager {
  return { userId: principalOf(req).user.id, access: serverAccessOf(req) };
}

function note(req: FastifyRequest, details: Record<string, string>): void {
  if (req.activity) req.activity.details = details;
}

export async function accessRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['subusers'];
  r.get(
    '/api/permissions',
    {
      config: { auth: 'user' },
      schema: {
        tags,
        description:
          'The per-server permission catalog, grouped (Pterodactyl names). GET /api/servers lists the caller’s own per server.',
        response: { 200: PermissionCatalog },
      },
    },
    async () => permissionCatalog(),
  );
  r.get(
    '/api/servers/:id/users',
    {
      config: { auth: 'user', access: 'user.read' },
      schema: { tags, params: IdParams, response: { 200: z.array(Subuser) } },
    },
    async (req) => s.subusers.list(req.params.id),
  );
  r.post(
    '/api/servers/:id/users',
    {
      config: { auth: 'user', access: 'user.create', activity: 'server.subuser.create' },
      schema: {
        tags,
        description:
          'Adds an existing user (by email) as a subuser with these permissions. 403 FORBIDDEN for a permission the caller does not hold or for adding oneself; 409 CONFLICT for the server’s owner or an existing subuser; 404 NOT_FOUND for an unknown email; unknown permission names are 400 VALIDATION_FAILED.',
        params: IdParams,
        body: AddSubuser,
        response: { 201: Subuser },
      },
    },
    async (req, reply) => {
      note(req, { email: req.body.email, permissions: req.body.permissions.join(',') });
      const sub = await s.subusers.add(managerOf(req), req.params.id, req.body);
      note(req, { userId: sub.userId, email: sub.email, permissions: sub.permissions.join(',') });
      return reply.status(201).send(sub);
    },
  );
  r.patch(
    '/api/servers/:id/users/:userId',
    {
      config: { auth: 'user', access: 'user.update', activity: 'server.subuser.update' },
      schema: {
        tags,
        description:
          "Replaces a subuser's permissions (only with ones the caller holds; never one's own). Sockets of the subuser drop their subscription to the server when permissions shrink.",
        params: SubuserParams,
        body: ChangeSubuser,
        response: { 200: Subuser },
      },
    },
    async (req) => {
      note(req, { userId: req.params.userId, permissions: req.body.permissions.join(',') });
      const sub = await s.subusers.update(
        managerOf(req),
        req.params.id,
        req.params.userId,
        req.body.permissions,
      );
      note(req, { userId: sub.userId, email: sub.email, permissions: sub.permissions.join(',') });
      return sub;
    },
  );
  r.delete(
    '/api/servers/:id/users/:userId',
    {
      config: { auth: 'user', access: 'user.delete', activity: 'server.subuser.delete' },
      schema: {
        tags,
        description: "Removes a subuser; their open sockets stop receiving the server's events at once.",
        params: SubuserParams,
        response: { 204: z.null() },
      },
    },
    async (req, reply) => {
      const target = await s.users.get(req.params.userId);
      note(req, { userId: req.params.userId, ...(target ? { email: target.email } : {}) });
      await s.subusers.remove(managerOf(req), req.params.id, req.params.userId);
      return reply.status(204).send(null);
    },
  );
}
