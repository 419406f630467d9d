import {
  AGENT_ID_HEADER,
  CodedError,
  RefreshRequest,
  RegisterRequest,
  RegisterResponse,
} from '@cap/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { bearerOf } from '../../http/auth.ts';
import type { PanelServices } from '../../services.ts';

export async function agentsRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const nodeOf = new WeakMap<FastifyRequest, string>();
  const agentId = (h: string | string[] | undefined) => (typeof h === 'string' ? h : undefined);
  r.post(
    '/api/agents/register',
    {
      config: { auth: 'agent' },
      // The secret is checked before the body is even read: an unauthenticated caller learns
      // nothing about the schema (401 AUTH_FAILED whatever it sends).
      onRequest: async (req) => {
        nodeOf.set(
          req,
          await s.agents.authenticateSecret(bearerOf(req), agentId(req.headers[AGENT_ID_HEADER])),
        );
      },
      schema: {
        tags: ['agents'],
        description:
          'Seed 003 registration. `Authorization: Bearer <AGENT_SECRET>`; 401 AUTH_FAILED otherwise (checked before the body).',
        body: RegisterRequest,
        response: { 200: RegisterResponse },
      },
    },
    async (req) => {
      const nodeId = nodeOf.get(req);
      if (nodeId === undefined) throw new CodedError('AUTH_FAILED', 'invalid agent secret');
      return s.agents.register(nodeId, req.body);
    },
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
