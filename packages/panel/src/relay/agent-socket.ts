/** `/ws/agents`: JWT + X-Agent-ID checked before the upgrade; protocol version checked after. */
import { AGENT_ID_HEADER, CodedError, PROTOCOL_VERSION_HEADER } from '@cap/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { bearerOf } from '../http/auth.ts';
import { protocolRefusal, versionOfHeader } from '../modules/agents/protocol.ts';
import type { PanelServices } from '../services.ts';
import { CLOSE_PROTOCOL } from './agent-hub.ts';
import { allowFrames } from './frame-limit.ts';

/** what an Agent may send in one frame (the Agent's own limit for what it receives) */
export const AGENT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

const nodeIds = new WeakMap<FastifyRequest, string>();

export async function agentSocketRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  app.get(
    '/ws/agents',
    {
      websocket: true,
      config: { auth: 'agent' },
      preValidation: async (req) => {
        const token = bearerOf(req);
        const agentId = req.headers[AGENT_ID_HEADER];
        if (!token || typeof agentId !== 'string') {
          throw new CodedError('AUTH_FAILED', 'send Authorization: Bearer <token> and X-Agent-ID');
        }
        const sub = await s.agents.verify(token);
        if (sub !== agentId || !(await s.nodes.exists(sub))) {
          throw new CodedError('AUTH_FAILED', 'token does not belong to this agent');
        }
        nodeIds.set(req, sub);
        allowFrames(req, AGENT_MAX_FRAME_BYTES);
      },
    },
    (socket, req) => {
      const nodeId = nodeIds.get(req);
      if (!nodeId) {
        socket.close(1008, 'AUTH_FAILED');
        return;
      }
      const raw = req.headers[PROTOCOL_VERSION_HEADER];
      const version = versionOfHeader(raw);
      const refusal = protocolRefusal(version);
      if (refusal !== undefined || version === undefined) {
        const message = refusal ?? protocolRefusal(undefined) ?? '';
        s.log.warn({ nodeId, version: raw ?? null, reason: message }, 'agent refused: incompatible protocol');
        s.nodes
          .refused(nodeId, {
            code: 'PROTOCOL_INCOMPATIBLE',
            protocolVersion: version === undefined || Number.isNaN(version) ? null : version,
            message,
          })
          .catch(() => undefined);
        socket.close(CLOSE_PROTOCOL, `PROTOCOL_INCOMPATIBLE: ${message}`);
        return;
      }
      s.nodes.connected(nodeId, version).catch(() => undefined);
      s.hub.attach(nodeId, socket);
    },
  );
}
