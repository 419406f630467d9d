import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { PanelServices } from '../../services.ts';
import { CurrentPlayers, PlayersBucket, PlayersRange } from './service.ts';

const IdParams = z.object({ id: z.string().min(1).max(64) });

/** Players of a server: whoever may see the server sees them (`access: null`). */
export async function playersRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['servers'];
  r.get(
    '/api/servers/:id/players',
    {
      config: { auth: 'user', access: null },
      schema: {
        tags,
        description:
          "Who is online now, each with the time since this Panel saw them join, from the server's player query (the template's `players`). `tracked` is false until the server's Agent reports players (not running, no query, or no answer yet).",
        params: IdParams,
        response: { 200: CurrentPlayers },
      },
    },
    async (req) => {
      await s.servers.status(req.params.id);
      return s.players.current(req.params.id);
    },
  );
  r.get(
    '/api/servers/:id/players/history',
    {
      config: { auth: 'user', access: null },
      schema: {
        tags,
        description:
          'Players online over time: per minute for 1h, per 5 minutes for 24h, per 30 minutes for 7d (average online, peak, capacity); kept 7 days.',
        params: IdParams,
        querystring: z.object({ range: PlayersRange.default('1h') }),
        response: { 200: z.array(PlayersBucket) },
      },
    },
    async (req) => {
      await s.servers.status(req.params.id);
      return s.players.history(req.params.id, req.query.range);
    },
  );
}
