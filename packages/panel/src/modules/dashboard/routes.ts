import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { PanelServices } from '../../services.ts';
import { viewerOf } from '../servers/routes.ts';
import { Dashboard } from './service.ts';

export async function dashboardRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  app
    .withTypeProvider<ZodTypeProvider>()
    .get(
      '/api/dashboard',
      { config: { auth: 'user' }, schema: { tags: ['dashboard'], response: { 200: Dashboard } } },
      async (req) => s.dashboard.get(viewerOf(req)),
    );
}
