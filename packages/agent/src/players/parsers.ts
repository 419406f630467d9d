/**
 * Player lists from a remote console's answer (`players.query: 'command:<parser>'`, issue 12): the
 * command each parser sends and a pure function from the game's text to a PlayersResult. The
 * text is cut at MAX_INPUT_CHARS and at MAX_LINES lines before it is read, the list at
 * MAX_LISTED_PLAYERS, names go through playerName (control characters out, at most 64
 * characters); an id is kept only as 1–20 digits (the game's client slot, user id or Steam id,
 * used by kick/ban templates in preference to the name).
 */
import { MAX_LISTED_PLAYERS, type PlayerEntry } from '@cap/protocol';
import { count, type PlayersResult, playerName } from './query.ts';

export interface CommandParser {
  /** the console command that lists the players */
  command: string;
  parse: (text: string) => PlayersResult;
}

const MAX_INPUT_CHARS = 256 * 1024;
const MAX_LINES = 4096;

function lines(text: unknown): string[] {
  const s = typeof text === 'string' ? text.slice(0, MAX_INPUT_CHARS) : '';
  return s.split(/\r?\n|\r/, MAX_LINES);
}

function digits(v: string | undefined): string | undefined {
  return v !== undefined && /^\d{1,20}$/.test(v) ? v : undefined;
}

function entry(name: string, extra: Omit<PlayerEntry, 'name'> = {}): PlayerEntry {
  const out: PlayerEntry = { name: playerName(name) };
  if (extra.id !== undefined) out.id = extra.id;
  if (extra.score !== undefined && Number.isInteger(extra.score) && Math.abs(extra.score) <= 1e9)
    out.score = extra.score;
  if (extra.bot !== undefined) out.bot = extra.bot;
  if (extra.spectator) out.spectator = true;
  return out;
}

function result(online: number | null, max: number | null, list: PlayerEntry[]): PlayersResult {
  const capped = list.slice(0, MAX_LISTED_PLAYERS);
  return { online: Math.max(online ?? 0, capped.length), max: max ?? 0, list: capped };
}

/** Minecraft's colour and format codes (§x) are not part of a name. */
const stripSection = (s: string) => s.replace(/§[0-9a-fk-orx]/gi, '');

/**
 * Minecraft `list`: "There are 2 of a max of 20 players online: a, b" (1.13+), "There are 2 of a
 * max 20 players online: a, b" (Paper/Spigot) and "There are 2/20 players online:" with the names
 * on the next line (1.7–1.12). `list uuids` adds " (uuid)" after each name.
 */
export function parseMinecraftList(text: string): PlayersResult {
  const ls = lines(stripSection(typeof text === 'string' ? text.slice(0, MAX_INPUT_CHARS) : ''));
  for (let i = 0; i < ls.length; i++) {
    const m = /There are (\d{1,7})(?:\/| of a max(?: of)? )(\d{1,7}) players online:?\s*(.*)$/i.exec(ls[i]!);
    if (!m) continue;
    let names = m[3]!.trim();
    if (names === '' && i + 1 < ls.length && !/There are/i.test(ls[i + 1]!)) names = ls[i + 1]!.trim();
    const list: PlayerEntry[] = [];
    if (names !== '')
      for (const raw of names.split(/,\s*/, MAX_LISTED_PLAYERS)) {
        const name = raw.replace(/\s*\([0-9a-f-]{32,36}\)\s*$/i, '').trim();
        if (name !== '') list.push(entry(name));
      }
    return result(count(m[1]), count(m[2]), list);
  }
  throw new Error('not the answer of Minecraft "list"');
}

/**
 * Source engine `status`: the `players : 2 humans, 1 bots (24 max)` line and the table
 * `# userid name uniqueid connected ping loss state adr` (CS:GO adds the slot after the user id);
 * names are quoted, and may hold quotes themselves (the game does not escape them), so a name ends
 * at the last quote before the unique id. Bots have the unique id BOT.
 */
export function parseSourceStatus(text: string): PlayersResult {
  let online: number | null = null;
  let max: number | null = null;
  let table = false;
  const list: PlayerEntry[] = [];
  for (const line of lines(text)) {
    const p =
      /^players\s*:\s*(\d{1,7})(?:\s+humans?(?:,\s*(\d{1,7})\s+bots?)?)?\s*\((\d{1,7})\/?(?:\s*max)?/i.exec(
        line,
      );
    if (p) {
      online = (count(p[1]) ?? 0) + (count(p[2]) ?? 0);
      max = count(p[3]);
      continue;
    }
    if (/^#\s*userid\s+name/i.test(line)) {
      table = true;
      continue;
    }
    if (!table || list.length >= MAX_LISTED_PLAYERS) continue;
    const m = /^#\s*(\d{1,20})\s+(?:\d{1,4}\s+)?"(.*)"\s+(\S+)/.exec(line);
    if (!m) continue;
    const bot = m[3] === 'BOT';
    list.push(entry(m[2]!, { ...(digits(m[1]) ? { id: m[1]! } : {}), bot }));
  }
  if (!table && online === null) throw new Error('not the answer of Source "status"');
  return result(online, max, list);
}

/**
 * ARK `listplayers`: "0. Name, 76561198000000001" per player (a name may hold commas: the Steam
 * id is after the last one), or "No Players Connected". The id is the Steam id (KickPlayer takes it).
 */
export function parseArkListPlayers(text: string): PlayersResult {
  const list: PlayerEntry[] = [];
  let answered = false;
  for (const line of lines(text)) {
    if (/^\s*No Players Connected\s*$/i.test(line)) {
      answered = true;
      continue;
    }
    const m = /^\s*\d{1,4}\.\s+(.*),\s*(\d{1,20})\s*$/.exec(line);
    if (!m) continue;
    answered = true;
    if (list.length < MAX_LISTED_PLAYERS) list.push(entry(m[1]!.trim(), { id: m[2]! }));
  }
  if (!answered && lines(text).some((l) => l.trim() !== ''))
    throw new Error('not the answer of ARK "listplayers"');
  return result(null, null, list);
}

/** Quake 3 colour codes (^0–^9, ^a…) are not part of a name. */
const stripCaret = (s: string) => s.replace(/\^[0-9A-Za-z]/g, '');

/**
 * Quake 3 `status` (ioquake3 / OpenArena), over rcon or the console: after `map: …` a table, in
 * newer builds `cl score ping name address rate`, in older ones `num score ping name lastmsg
 * address qport rate`; a name is followed by `^7`; bots have the address `bot`; the client number
 * is the id (`clientkick {id}`). The game does not say its capacity here (max 0).
 */
export function parseQuake3Status(text: string): PlayersResult {
  let table = false;
  const list: PlayerEntry[] = [];
  for (const line of lines(text)) {
    if (/^\s*(?:cl|num)\s+score\s+ping\s+name/i.test(line)) {
      table = true;
      continue;
    }
    if (!table || list.length >= MAX_LISTED_PLAYERS || /^\s*-+\s/.test(line)) continue;
    // newer: name ^7address rate
    let m = /^\s*(\d{1,3})\s+(-?\d{1,9})\s+(\d{1,5}|CNCT|ZMBI)\s(.*)\^7(\S+)\s+(\d{1,9})\s*$/.exec(line);
    let address: string | undefined;
    if (m) address = m[5];
    else {
      // older: name^7 lastmsg address qport rate
      m =
        /^\s*(\d{1,3})\s+(-?\d{1,9})\s+(\d{1,5}|CNCT|ZMBI)\s(.*?)(?:\^7)?\s+\d{1,9}\s+(\S+)\s+\d{1,9}\s+\d{1,9}\s*$/.exec(
          line,
        );
      if (m) address = m[5];
    }
    if (!m) continue;
    const name = stripCaret(m[4]!).trim();
    list.push(entry(name, { id: m[1]!, score: Number(m[2]), bot: address === 'bot' }));
  }
  if (!table) throw new Error('not the answer of Quake 3 "status"');
  return result(null, null, list);
}

/**
 * OpenTTD `clients` (console, or the admin port's rcon): "Client #2  name: 'Alice'  company: 1
 * IP: 172.17.0.1". The dedicated server lists itself (IP `server`): not a player. Company 255 is
 * a spectator.
 */
export function parseOpenttdClients(text: string): PlayersResult {
  const list: PlayerEntry[] = [];
  for (const line of lines(text)) {
    const m = /^\s*Client #(\d{1,10})\s+name:\s*'(.*)'\s+company:\s*(\d{1,3})\s+IP:\s*(\S*)\s*$/.exec(line);
    if (!m || m[4] === 'server') continue;
    if (list.length >= MAX_LISTED_PLAYERS) break;
    list.push(entry(m[2]!, { id: m[1]!, spectator: m[3] === '255' }));
  }
  return result(null, null, list);
}

/** The parsers by the name `command:<name>` gives. */
export const commandParsers: ReadonlyMap<string, CommandParser> = new Map<string, CommandParser>([
  ['minecraft-list', { command: 'list', parse: parseMinecraftList }],
  ['source-status', { command: 'status', parse: parseSourceStatus }],
  ['ark-listplayers', { command: 'listplayers', parse: parseArkListPlayers }],
  ['quake3-status', { command: 'status', parse: parseQuake3Status }],
  ['openttd-clients', { command: 'clients', parse: parseOpenttdClients }],
]);
