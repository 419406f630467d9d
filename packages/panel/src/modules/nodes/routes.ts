import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { PanelServices } from '../../services.ts';
import { DefaultLimits, Node } from './service.ts';

const IdParams = z.object({ id: z.string().min(1).max(64) });

export async function nodesRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/api/nodes',
    { config: { auth: 'spectator' }, schema: { tags: ['nodes'], response: { 200: z.array(Node) } } },
    async () => s.nodes.list(),
  );
  r.post(
    '/api/nodes',
    {
      config: { auth: 'admin' },
      schema: {
        tags: ['nodes'],
        description: 'Returns the AGENT_SECRET once (stored hashed) and the command that starts the Agent.',
        body: z.object({ name: z.string().min(1).max(100) }),
        response: { 201: z.object({ node: Node, agentSecret: z.string(), command: z.string() }) },
      },
    },
    async (req, reply) => reply.status(201).send(await s.nodes.create(req.body.name)),
  );
  r.get(
    '/api/nodes/:id',
    { config: { auth: 'spectator' }, schema: { tags: ['nodes'], params: IdParams, response: { 200: Node } } },
    async (req) => s.nodes.get(req.params.id),
  );
  r.patch(
    '/api/nodes/:id',
    {
      config: { auth: 'admin' },
      schema: {
        tags: ['nodes'],
        description:
          "Default limits ({ memory?, cpu?, disk? }) for servers created on this node without them; null = the Panel's (PANEL_DEFAULT_MEMORY/CPU/DISK). 0 = unlimited.",
        params: IdParams,
        body: z.object({ defaultLimits: DefaultLimits.nullable() }).strict(),
        response: { 200: Node },
      },
    },
    async (req) => s.nodes.setDefaultLimits(req.params.id, req.body.defaultLimits),
  );
  r.delete(
    '/api/nodes/:id',
    { config: { auth: 'admin' }, schema: { tags: ['nodes'], params: IdParams, response: { 204: z.null() } } },
    async (req, reply) => {
      await s.nodes.delete(req.params.id);
      return reply.status(204).send(null);
    },
  );
}
