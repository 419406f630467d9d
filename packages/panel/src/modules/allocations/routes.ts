import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { PanelServices } from '../../services.ts';
import { AddAllocations, Allocation } from './service.ts';

const NodeParams = z.object({ id: z.string().min(1).max(64) });
const AllocParams = NodeParams.extend({ allocId: z.string().min(1).max(64) });

export async function allocationsRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['allocations'];
  r.get(
    '/api/nodes/:id/allocations',
    {
      config: { auth: 'spectator' },
      schema: { tags, params: NodeParams, response: { 200: z.array(Allocation) } },
    },
    async (req) => s.allocations.list(req.params.id),
  );
  r.post(
    '/api/nodes/:id/allocations',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        description:
          'Adds ip:port entries to the node\'s pool ("25565" or "27000-27010", at most 1000 ports); any one already there is 409 PORT_CONFLICT and nothing is added.',
        params: NodeParams,
        body: AddAllocations,
        response: { 201: z.array(Allocation) },
      },
    },
    async (req, reply) => reply.status(201).send(await s.allocations.add(req.params.id, req.body)),
  );
  r.delete(
    '/api/nodes/:id/allocations/:allocId',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        description: '409 CONFLICT while a server holds it.',
        params: AllocParams,
        response: { 204: z.null() },
      },
    },
    async (req, reply) => {
      await s.allocations.remove(req.params.id, req.params.allocId);
      return reply.status(204).send(null);
    },
  );
}
