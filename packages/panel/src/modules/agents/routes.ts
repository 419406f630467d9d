import {
  AGENT_ID_HEADER,
  CodedError,
  PROTOCOL_VERSION_HEADER,
  RefreshRequest,
  RegisterRequest,
  RegisterResponse,
  SUPPORTED_PROTOCOL_VERSIONS,
} from '@cap/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { bearerOf } from '../../http/auth.ts';
import type { PanelServices } from '../../services.ts';
import { protocolRefusal, versionOfHeader } from './protocol.ts';

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
          'Seed 003 registration. `Authorization: Bearer <AGENT_SECRET>`; 401 AUTH_FAILED otherwise (checked before the body). An Agent whose protocolVersion (body, else X-Protocol-Version) the Panel does not support gets 400 PROTOCOL_INCOMPATIBLE (details { supported, sent }), logged and shown on its node as agentRefusal.',
        body: RegisterRequest,
        response: { 200: RegisterResponse },
      },
    },
    async (req) => {
      const nodeId = nodeOf.get(req);
      if (nodeId === undefined) throw new CodedError('AUTH_FAILED', 'invalid agent secret');
      // an Agent of another protocol version is told so before it gets any token
      const version = req.body.protocolVersion ?? versionOfHeader(req.headers[PROTOCOL_VERSION_HEADER]);
      const refusal = version === undefined ? undefined : protocolRefusal(version);
      if (refusal !== undefined) {
        const protocolVersion = version === undefined || Number.isNaN(version) ? null : version;
        req.log.warn(
          { nodeId, protocolVersion, reason: refusal },
          'agent registration refused: incompatible protocol',
        );
        await s.nodes.refused(nodeId, { code: 'PROTOCOL_INCOMPATIBLE', protocolVersion, message: refusal });
        throw new CodedError('PROTOCOL_INCOMPATIBLE', refusal, {
          details: { supported: [...SUPPORTED_PROTOCOL_VERSIONS], sent: protocolVersion },
        });
      }
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
