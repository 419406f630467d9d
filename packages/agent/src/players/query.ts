/**
 * Player queries, by the template's `players.query`: `teeworlds` (our own 0.7 query, teeworlds.ts),
 * `gamedig:<type>` (gamedig, loaded only when a server needs it: it is a good part of an idle
 * Agent's memory otherwise), `command:<parser>` (a remote console's command and its parser:
 * command.ts, run by the ServerManager, which knows the server's remote console). Every answer is normalised and bounded here: counts are
 * whole numbers from 0 to 1e6, at most MAX_LISTED_PLAYERS names of at most 64 characters,
 * control characters removed.
 */
import { MAX_LISTED_PLAYERS, type PlayerEntry } from '@cap/protocol';
import { queryTeeworlds } from './teeworlds.ts';

export interface PlayersResult {
  online: number;
  max: number;
  list: PlayerEntry[];
}

export interface QueryTarget {
  /** the server polled (command queries go through its remote console) */
  serverId?: string;
  query: string;
  host: string;
  port: number;
  timeoutMs: number;
}

export type QueryFn = (target: QueryTarget) => Promise<PlayersResult>;

const MAX_COUNT = 1e6;

/** A whole count from 0 to 1e6, or null. */
export function count(v: unknown): number | null {
  const n = typeof v === 'string' && /^\d{1,7}$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return null;
  return Math.min(MAX_COUNT, Math.floor(n));
}

/** A player's name as shown: a string, control characters out, at most 64 characters. */
export function playerName(v: unknown): string {
  if (typeof v !== 'string') return '';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
  return [...v.replace(/[\u0000-\u001f\u007f-\u009f]/g, '')].slice(0, 64).join('');
}

function score(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && Math.abs(v) <= 1e9 ? v : undefined;
}

/** gamedig's result → ours (bots count as players, as OpenArena shows them). */
export function fromGamedig(state: unknown): PlayersResult {
  const s = (typeof state === 'object' && state !== null ? state : {}) as Record<string, unknown>;
  const list: PlayerEntry[] = [];
  for (const [key, bot] of [
    ['players', false],
    ['bots', true],
  ] as const) {
    const arr = Object.hasOwn(s, key) ? s[key] : undefined;
    if (!Array.isArray(arr)) continue;
    for (const p of arr.slice(0, MAX_LISTED_PLAYERS)) {
      if (list.length >= MAX_LISTED_PLAYERS) break;
      const rec = (typeof p === 'object' && p !== null ? p : {}) as Record<string, unknown>;
      const raw = (typeof rec['raw'] === 'object' && rec['raw'] !== null ? rec['raw'] : {}) as Record<
        string,
        unknown
      >;
      const sc = score(Object.hasOwn(raw, 'frags') ? raw['frags'] : raw['score']);
      list.push({ name: playerName(rec['name']), ...(sc === undefined ? {} : { score: sc }), bot });
    }
  }
  const n = count(s['numplayers']);
  return {
    online: Math.max(n ?? 0, list.length),
    max: count(s['maxplayers']) ?? 0,
    list,
  };
}

/** Any query's answer made safe to send: bounded counts, names and list (online ≥ listed). */
export function normalise(r: unknown): PlayersResult {
  const o = (typeof r === 'object' && r !== null ? r : {}) as Record<string, unknown>;
  const raw = Array.isArray(o['list']) ? o['list'].slice(0, MAX_LISTED_PLAYERS) : [];
  const list: PlayerEntry[] = raw.map((p) => {
    const e = (typeof p === 'object' && p !== null ? p : {}) as Record<string, unknown>;
    const sc = score(e['score']);
    const id = typeof e['id'] === 'string' && /^\d{1,20}$/.test(e['id']) ? e['id'] : undefined;
    return {
      name: playerName(e['name']),
      ...(id === undefined ? {} : { id }),
      ...(sc === undefined ? {} : { score: sc }),
      ...(e['bot'] === true ? { bot: true } : e['bot'] === false ? { bot: false } : {}),
      ...(e['spectator'] === true ? { spectator: true } : {}),
    };
  });
  return { online: Math.max(count(o['online']) ?? 0, list.length), max: count(o['max']) ?? 0, list };
}

let gamedig: Promise<typeof import('gamedig')> | null = null;

/** For tests: whether gamedig was loaded. */
export function gamedigLoaded(): boolean {
  return gamedig !== null;
}

async function queryGamedig(type: string, t: QueryTarget): Promise<PlayersResult> {
  gamedig ??= import('gamedig');
  const { GameDig } = await gamedig;
  const state = await GameDig.query({
    type,
    host: t.host,
    port: t.port,
    givenPortOnly: true,
    socketTimeout: Math.max(500, Math.floor(t.timeoutMs / 2)),
    attemptTimeout: t.timeoutMs,
    maxRetries: 1,
    maxAttempts: 1,
  });
  return fromGamedig(state);
}

async function queryTee(t: QueryTarget): Promise<PlayersResult> {
  const info = await queryTeeworlds(t.host, t.port, t.timeoutMs);
  const list = info.clients.slice(0, MAX_LISTED_PLAYERS).map((c) => ({
    name: playerName(c.name),
    score: c.score,
    ...(c.bot ? { bot: true } : {}),
    ...(c.spectator ? { spectator: true } : {}),
  }));
  return { online: Math.max(info.numClients, list.length), max: info.maxClients, list };
}

/** The query a template names; throws for one this Agent cannot run. */
export const runQuery: QueryFn = async (t) => {
  if (t.query === 'teeworlds') return queryTee(t);
  if (t.query.startsWith('gamedig:')) return queryGamedig(t.query.slice('gamedig:'.length), t);
  if (t.query.startsWith('command:'))
    throw new Error(`player query ${t.query}: needs the server's remote console (ServerManager)`);
  throw new Error(`unknown player query ${t.query}`);
};
