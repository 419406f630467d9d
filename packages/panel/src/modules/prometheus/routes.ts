/**
 * GET /metrics (Prometheus text format): for `Authorization: Bearer <PANEL_METRICS_TOKEN>`, or an
 * admin's or owner's API key not limited to some servers. No cookie sessions (a scraper has none,
 * and a page could not read it anyway); not in the OpenAPI document (it is not JSON).
 */
import { CodedError } from '@cap/protocol';
import type { FastifyInstance } from 'fastify';
import { bearerOf, hasRole } from '../../http/auth.ts';
import { safeEqual } from '../../lib/crypto.ts';
import type { PanelServices } from '../../services.ts';

export async function prometheusRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  app.get('/metrics', { config: { auth: 'public' }, schema: { hide: true } }, async (req, reply) => {
    const bearer = bearerOf(req);
    if (!bearer)
      throw new CodedError(
        'UNAUTHENTICATED',
        'send PANEL_METRICS_TOKEN or an admin API key as a Bearer token',
      );
    const token = s.config.metricsToken;
    if (!(token && safeEqual(bearer, token))) {
      const p = await s.auth.fromApiKey(bearer);
      if (!p) throw new CodedError('AUTH_FAILED', 'wrong metrics token or API key');
      if (!hasRole(p.user.role, 'admin') || p.serverIds !== undefined)
        throw new CodedError(
          'FORBIDDEN',
          "metrics need an admin's API key that is not limited to some servers",
        );
    }
    const body = await s.prometheus.registry.metrics();
    return reply.header('content-type', s.prometheus.registry.contentType).send(body);
  });
}
