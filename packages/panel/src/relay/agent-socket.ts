/** `/ws/agents`: JWT + X-Agent-ID checked before the upgrade; protocol version checked after. */
import {
  AGENT_ID_HEADER,
  CodedError,
  PROTOCOL_VERSION_HEADER,
  SUPPORTED_PROTOCOL_VERSIONS,
} from '@cap/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { bearerOf } from '../http/auth.ts';
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
      const version = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : undefined;
      if (version === undefined || !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
        const reason = `PROTOCOL_INCOMPATIBLE: panel supports [${SUPPORTED_PROTOCOL_VERSIONS.join(',')}], agent sent ${raw ?? 'none'}`;
        s.log.warn({ nodeId, version: raw }, 'agent refused: incompatible protocol');
        socket.close(CLOSE_PROTOCOL, reason.slice(0, 120));
        return;
      }
      s.nodes.connected(nodeId, version).catch(() => undefined);
      s.hub.attach(nodeId, socket);
    },
  );
}
