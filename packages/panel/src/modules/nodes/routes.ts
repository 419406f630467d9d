import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { PanelServices } from '../../services.ts';
import { AgentCommands, agentCommands } from './agent-commands.ts';
import {
  CapacityOverrides,
  DefaultLimits,
  Node,
  NodeLocation,
  NodeTags,
  OverallocatePatch,
  PublicAddress,
  TransferUrl,
} from './service.ts';

const IdParams = z.object({ id: z.string().min(1).max(64) });

export async function nodesRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/api/nodes',
    { config: { auth: 'spectator' }, schema: { tags: ['nodes'], response: { 200: z.array(Node) } } },
    async () => s.nodes.list(),
  );
  r.post(
    '/api/nodes',
    {
      config: { auth: 'admin' },
      schema: {
        tags: ['nodes'],
        description:
          "Returns the AGENT_SECRET once (stored hashed) and the commands that start the Agent, one per form (binary, docker, systemd, npx; `command` is the npx one), with the Panel's PANEL_URL.",
        body: z.object({
          name: z.string().min(1).max(100),
          /** the browser-reachable base URL of the node's Agent HTTP API; null/absent: relay only */
          transferUrl: TransferUrl.nullable().optional(),
        }),
        response: {
          201: z.object({
            node: Node,
            agentSecret: z.string(),
            command: z.string(),
            commands: AgentCommands,
          }),
        },
      },
    },
    async (req, reply) => {
      const created = await s.nodes.create(req.body.name, { transferUrl: req.body.transferUrl ?? null });
      const commands = commandsFor(s, created.node.id, created.agentSecret);
      return reply.status(201).send({ ...created, command: commands.npx, commands });
    },
  );
  r.get(
    '/api/nodes/:id/agent-commands',
    {
      config: { auth: 'admin' },
      schema: {
        tags: ['nodes'],
        description:
          "The commands that start this node's Agent, with the Panel's PANEL_URL and a placeholder for the secret (shown only when the node was added).",
        params: IdParams,
        response: { 200: AgentCommands },
      },
    },
    async (req) => {
      const node = await s.nodes.get(req.params.id);
      return commandsFor(s, node.id, null);
    },
  );
  r.get(
    '/api/nodes/:id',
    { config: { auth: 'spectator' }, schema: { tags: ['nodes'], params: IdParams, response: { 200: Node } } },
    async (req) => s.nodes.get(req.params.id),
  );
  r.patch(
    '/api/nodes/:id',
    {
      config: { auth: 'admin' },
      schema: {
        tags: ['nodes'],
        description:
          "Changes what the body names. `defaultLimits` ({ memory?, cpu?, disk? }): for servers created on this node without them; null = the Panel's (PANEL_DEFAULT_MEMORY/CPU/DISK). 0 = unlimited. `transferUrl`: the base URL of this node's Agent HTTP API as browsers reach it (http(s), no credentials, query or fragment; e.g. https://node1.example.com:8443); transfer links point at `<transferUrl>/transfers/<ticket>` while the Agent is connected and reports that its HTTP API serves transfers (AGENT_API_KEY set); null = relayed by the Panel only. publicAddress: the hostname or IP players reach the node's servers at (each server's `address` is it with the server's port); null = not set. `capacity` ({ memory?, disk?, cpu? }: sizes, cores; null = what the Agent reports) and `overallocate` ({ memory?, disk?, cpu? }: percent, as Pterodactyl: a resource may hold capacity × (1 + overallocate/100) of its servers' limits; 0 = no over-allocation, -1 = not checked): creating or resizing a server beyond them is 409 INSUFFICIENT_RESOURCES. `tags` (replaces them; lowercased) and `location` (null = none) narrow automatic placement.",
        params: IdParams,
        body: z
          .object({
            defaultLimits: DefaultLimits.nullable().optional(),
            publicAddress: PublicAddress.nullable().optional(),
            transferUrl: TransferUrl.nullable().optional(),
            capacity: CapacityOverrides.optional(),
            overallocate: OverallocatePatch.optional(),
            tags: NodeTags.optional(),
            location: NodeLocation.nullable().optional(),
          })
          .strict(),
        response: { 200: Node },
      },
    },
    async (req) => s.nodes.update(req.params.id, req.body),
  );
  r.delete(
    '/api/nodes/:id',
    { config: { auth: 'admin' }, schema: { tags: ['nodes'], params: IdParams, response: { 204: z.null() } } },
    async (req, reply) => {
      await s.nodes.delete(req.params.id);
      return reply.status(204).send(null);
    },
  );
}

function commandsFor(s: PanelServices, nodeId: string, secret: string | null): AgentCommands {
  return agentCommands({ panelUrl: s.publicUrl(), configured: s.config.publicUrlSet, nodeId, secret });
}
