import { AGENT_ID_HEADER, RefreshRequest, RegisterRequest, RegisterResponse } from '@cap/protocol';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { bearerOf } from '../../http/auth.ts';
import type { PanelServices } from '../../services.ts';

export async function agentsRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const agentId = (h: string | string[] | undefined) => (typeof h === 'string' ? h : undefined);
  r.post(
    '/api/agents/register',
    {
      config: { auth: 'agent' },
      schema: {
        tags: ['agents'],
        description:
          'Seed 003 registration. `Authorization: Bearer <AGENT_SECRET>`; 401 AUTH_FAILED otherwise.',
        body: RegisterRequest,
        response: { 200: RegisterResponse },
      },
    },
    async (req) => s.agents.register(bearerOf(req), req.body, agentId(req.headers[AGENT_ID_HEADER])),
  );
  r.post(
    '/api/agents/refresh',
    {
      config: { auth: 'agent' },
      schema: {
        tags: ['agents'],
        description: 'Rotate credentials with a single-use refresh token (`X-Agent-ID` header).',
        body: RefreshRequest,
        response: { 200: RegisterResponse },
      },
    },
    async (req) => s.agents.refresh(agentId(req.headers[AGENT_ID_HEADER]), req.body.refreshToken),
  );
}
