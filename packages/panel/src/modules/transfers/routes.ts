/** Server transfers between nodes (issue 16 item 2): POST starts one, GET lists a server's. */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { principalOf } from '../../http/auth.ts';
import type { PanelServices } from '../../services.ts';
import { TRANSFER_STEPS } from './service.ts';

const IdParams = z.object({ id: z.string().min(1).max(64) });
const WaitQuery = z.object({ wait: z.enum(['true', 'false']).optional() });

export const TransferView = z.object({
  id: z.string(),
  serverId: z.string(),
  operationId: z.string(),
  sourceNodeId: z.string(),
  targetNodeId: z.string(),
  targetAllocationId: z.string().nullable(),
  state: z.enum(['running', 'completed', 'failed']),
  /** the step reached, in this order: stopping, archiving, creating, streaming, restoring, starting, switching, cleaning */
  step: z.enum(TRANSFER_STEPS),
  /** how the archive went to the target: `direct` (source Agent → target Agent) or `relay` (through the Panel); null before the streaming step */
  path: z.enum(['direct', 'relay']).nullable(),
  errorCode: z.string().nullable(),
  errorMessage: z.string().nullable(),
  createdAt: z.string(),
  finishedAt: z.string().nullable(),
});

export async function transfersRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['servers'];
  r.post(
    '/api/servers/:id/transfer',
    {
      config: { auth: 'user', access: 'admin' },
      schema: {
        tags,
        description:
          "Moves the server to another node as one operation (kind `transfer`): 202 { transfer } at once; its stages arrive as `operation` messages on /ws/client and in GET /api/operations/:id: stopping (when it was running) → archiving (tar.zst on the source) → creating (on the target, with its new allocation) → streaming (never buffered, its size and sha256 checked on arrival: straight from the source Agent to the target Agent when the target node has a `transferUrl` its Agent serves transfers on, else, or when the source cannot reach it, through the Panel's relay; `path` says which: `direct` or `relay`; the server's local backups go with it) → restoring → starting (when it was running, until running) → switching (node and allocation in one transaction) → cleaning (the source's container, files and old allocation go). A failure at any step before the switch deletes what the target got (when its Agent is offline: once it is back), leaves the source whole and started again when it was running; the operation fails with `<step>: <reason>`. ?wait=true answers 200 { transfer } at the end, or the error. allocationId: one of the target's; without it a free one of the target's pool is taken (when the server has an allocation). 409 INSUFFICIENT_RESOURCES (target capacity), PORT_CONFLICT (no free allocation), SERVER_TRANSFERRING (one runs already; power actions get it too meanwhile). While it runs the server counts on the target's capacity (a create or another transfer there cannot take that room). A transfer a Panel restart cut fails; its target copy is removed and the source started again (when it ran) once their Agents are back; 503 AGENT_OFFLINE when either node is offline; 400 VALIDATION_FAILED for its own node.",
        params: IdParams,
        querystring: WaitQuery,
        body: z.object({
          nodeId: z.string().min(1).max(64),
          allocationId: z.string().min(1).max(64).optional(),
        }),
        response: { 200: z.object({ transfer: TransferView }), 202: z.object({ transfer: TransferView }) },
      },
    },
    async (req, reply) => {
      if (req.activity) req.activity.action = 'server.transfer';
      const { transfer, done } = await s.transfers.start(
        req.params.id,
        { nodeId: req.body.nodeId, allocationId: req.body.allocationId },
        principalOf(req).user.id,
      );
      if (req.query.wait === 'true') return reply.status(200).send({ transfer: await done });
      return reply.status(202).send({ transfer });
    },
  );
  r.get(
    '/api/servers/:id/transfers',
    {
      config: { auth: 'user', access: 'admin' },
      schema: {
        tags,
        description: "The server's transfers, newest first (at most 20).",
        params: IdParams,
        response: { 200: z.object({ transfers: z.array(TransferView) }) },
      },
    },
    async (req) => ({ transfers: await s.transfers.list(req.params.id) }),
  );
}
