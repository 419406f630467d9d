/**
 * `players.query: 'command:<parser>'`: the parser's command sent through the server's remote
 * console, its answer parsed. No remote console, or one not connected (authenticated) now: the
 * query fails with REMOTE_CONSOLE_UNAVAILABLE at once (no wait, nothing sent), so the poller
 * publishes nothing and marks the server's players unavailable; it never throws anything else
 * than an Error.
 */
import { CodedError } from '@cap/protocol';
import type { RemoteConsole } from '../remote-console/types.ts';
import { commandParsers } from './parsers.ts';
import type { PlayersResult } from './query.ts';

export async function queryByCommand(
  query: string,
  console: RemoteConsole | undefined,
  timeoutMs: number,
): Promise<PlayersResult> {
  const name = query.startsWith('command:') ? query.slice('command:'.length) : '';
  const parser = commandParsers.get(name);
  if (!parser) throw new CodedError('CONFIG_INVALID', `unknown player list parser "${name}"`);
  if (!console || console.transport === 'stdin')
    throw new CodedError(
      'REMOTE_CONSOLE_UNAVAILABLE',
      `player query ${query}: the server has no remote console (its template's remote_console)`,
    );
  if (console.state !== 'authenticated')
    throw new CodedError(
      'REMOTE_CONSOLE_UNAVAILABLE',
      `player query ${query}: remote console ${console.state}`,
    );
  const reply = await console.send(parser.command, { timeoutMs });
  return parser.parse(reply.response ?? '');
}
