import { PlayerTarget, RemoteConsoleTransport } from '@cap/protocol';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { serverAccessOf } from '../../http/auth.ts';
import type { PanelServices } from '../../services.ts';
import { CurrentPlayers, PlayersBucket, PlayersRange } from './service.ts';

/** A name as the activity log keeps it: control characters shown as `?`. */
function printable(name: string): string {
  return [...name]
    .map((c) => (c.charCodeAt(0) < 0x20 || (c.charCodeAt(0) >= 0x7f && c.charCodeAt(0) <= 0x9f) ? '?' : c))
    .join('');
}

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
      return { ...s.players.current(req.params.id), commands: await s.servers.playerCommands(req.params.id) };
    },
  );
  for (const action of ['kick', 'ban'] as const) {
    r.post(
      `/api/servers/:id/players/${action}`,
      {
        config: { auth: 'user', access: action === 'kick' ? 'player.kick' : 'player.ban' },
        schema: {
          tags,
          description: `${action === 'kick' ? 'Kicks' : 'Bans'} a player through the server's console, by the template's \`players.${action}\` command (e.g. \`clientkick {id}\`, \`kick "{name}"\`): the id from GET …/players when it has one, else the name. Needs \`player.${action}\`. The command sent and the game's response (where its remote console gives one) come back. PLAYER_NAME_UNSAFE (400) for a name or reason with a control character, line break, quote, backslash or \`;\` (or a space where the game does not quote): nothing is sent; PLAYER_ACTION_UNSUPPORTED (409) when the template declares no ${action} command or it needs the id; NOT_RUNNING, REMOTE_CONSOLE_* as for the console.`,
          params: IdParams,
          body: PlayerTarget,
          response: {
            200: z.object({
              command: z.string(),
              transport: RemoteConsoleTransport.optional(),
              response: z.string().optional(),
            }),
          },
        },
      },
      async (req) => {
        req.activity = {
          ...req.activity,
          details: {
            ...(req.body.id !== undefined ? { playerId: req.body.id } : {}),
            ...(req.body.name !== undefined ? { player: printable(req.body.name) } : {}),
          },
        };
        return s.servers.playerAction(req.params.id, action, req.body, {
          seesHidden: serverAccessOf(req).seesHidden,
        });
      },
    );
  }
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
