/** GET /api/servers/:id/failovers (the server's failovers and fences) and GET /api/nodes/:id/fences. */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { PanelServices } from '../../services.ts';
import { Failover, Fence } from './service.ts';

const IdParams = z.object({ id: z.string().min(1).max(64) });

export async function failoverRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/api/servers/:id/failovers',
    {
      config: { auth: 'user', access: 'activity.read' },
      schema: {
        tags: ['servers'],
        description:
          "The server's recent failovers, newest first (state pending → restoring → started | failed with error { code, message }; BACKUP_NOT_FOUND when no backup the Panel can reach without the offline node exists: failover needs off-node (S3) backups), and the nodes whose copy of it is fenced (never started there again).",
        params: IdParams,
        response: { 200: z.object({ failovers: z.array(Failover), fences: z.array(Fence) }) },
      },
    },
    async (req) => ({
      failovers: await s.failover.list(req.params.id),
      fences: await s.failover.fencesOfServer(req.params.id),
    }),
  );
  r.get(
    '/api/nodes/:id/fences',
    {
      config: { auth: 'admin' },
      schema: {
        tags: ['nodes'],
        description:
          'The servers failed over off this node: its Agent is told on every connect not to start them and keeps their files aside (<data>/fenced/<server>-<ts>).',
        params: IdParams,
        response: { 200: z.object({ fences: z.array(Fence) }) },
      },
    },
    async (req) => ({ fences: await s.failover.fencesOf(req.params.id) }),
  );
}
