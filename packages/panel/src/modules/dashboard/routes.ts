import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { hasRole, principalOf } from '../../http/auth.ts';
import type { PanelServices } from '../../services.ts';
import { viewerFor } from '../servers/routes.ts';
import { Dashboard } from './service.ts';

export async function dashboardRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  app
    .withTypeProvider<ZodTypeProvider>()
    .get(
      '/api/dashboard',
      { config: { auth: 'user' }, schema: { tags: ['dashboard'], response: { 200: Dashboard } } },
      async (req) => {
        const p = principalOf(req);
        const visible = await s.access.accessMany(p);
        return s.dashboard.get(
          (id) => {
            const a = visible.get(id);
            return a ? viewerFor(a) : undefined;
          },
          hasRole(p.user.role, 'spectator'),
        );
      },
    );
}
