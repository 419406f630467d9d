/**
 * The remote-console player list parsers (issue 12), on captured answers: OpenArena 0.8.8 and
 * OpenTTD 13 from Debian bookworm (captured here on the project's images), Minecraft, Source and
 * ARK as their servers print them; and hostile input (oversized, control characters, huge lists).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_LISTED_PLAYERS } from '@cap/protocol';
import type { RemoteConsole } from '../remote-console/types.ts';
import { queryByCommand } from './command.ts';
import {
  commandParsers,
  parseArkListPlayers,
  parseMinecraftList,
  parseOpenttdClients,
  parseQuake3Status,
  parseSourceStatus,
} from './parsers.ts';

describe('Minecraft list', () => {
  it('reads the 1.13+ format, the Paper one, the 1.7–1.12 two-line one, and list uuids', () => {
    assert.deepEqual(parseMinecraftList('There are 2 of a max of 20 players online: Alex, Steve\n'), {
      online: 2,
      max: 20,
      list: [{ name: 'Alex' }, { name: 'Steve' }],
    });
    assert.deepEqual(parseMinecraftList('There are 1 of a max 50 players online: §cNotch§r'), {
      online: 1,
      max: 50,
      list: [{ name: 'Notch' }],
    });
    assert.deepEqual(parseMinecraftList('There are 2/20 players online:\nAlex, Steve\n'), {
      online: 2,
      max: 20,
      list: [{ name: 'Alex' }, { name: 'Steve' }],
    });
    assert.deepEqual(parseMinecraftList('There are 0 of a max of 20 players online: '), {
      online: 0,
      max: 20,
      list: [],
    });
    assert.deepEqual(
      parseMinecraftList(
        'There are 1 of a max of 20 players online: Steve (8667ba71-b85a-4004-af54-457a9734eed7)',
      ).list,
      [{ name: 'Steve' }],
    );
  });
  it('refuses an answer that is not a list', () => {
    assert.throws(() => parseMinecraftList('Unknown command. Type "/help" for help.'));
  });
});

const SOURCE_TF2 = `hostname: Ctrl-Alt-Play TF2
version : 8622567/24 8622567 secure
udp/ip  : 0.0.0.0:27015  (public ip: 203.0.113.7)
steamid : [A:1:123456789:12345] (90071992547409920)
account : not logged in  (No account specified)
map     : ctf_2fort at: 0 x, 0 y, 0 z
tags    : ctf,increased_maxplayers
players : 2 humans, 1 bots (24 max)
edicts  : 726 used of 2048 max
# userid name                uniqueid            connected ping loss state  adr
#      2 "Alice"             [U:1:12345]         05:12       50    0 active 10.0.0.2:27005
#      3 "Bob "the" Builder" [U:1:67890]         1:02:03     70    0 active 10.0.0.3:27005
#      4 "Heavy"             BOT                                     active
`;
const SOURCE_CSGO = `hostname: csgo
players : 1 humans, 0 bots (10/0 max) (not hibernating)

# userid name uniqueid connected ping loss state rate adr
# 2 1 "Player One" STEAM_1:0:1234 00:21 40 0 active 196608 10.0.0.4:27005
#end
`;

describe('Source status', () => {
  it('reads the TF2 table: quoted names (with quotes in them), user ids, bots, the capacity', () => {
    assert.deepEqual(parseSourceStatus(SOURCE_TF2), {
      online: 3,
      max: 24,
      list: [
        { name: 'Alice', id: '2', bot: false },
        { name: 'Bob "the" Builder', id: '3', bot: false },
        { name: 'Heavy', id: '4', bot: true },
      ],
    });
  });
  it('reads the CS:GO one (user id, then slot)', () => {
    assert.deepEqual(parseSourceStatus(SOURCE_CSGO), {
      online: 1,
      max: 10,
      list: [{ name: 'Player One', id: '2', bot: false }],
    });
  });
  it('refuses an answer without the table', () => {
    assert.throws(() => parseSourceStatus('Unknown command "status"'));
  });
});

describe('ARK listplayers', () => {
  it('reads players (commas in names, the Steam id after the last) and "No Players Connected"', () => {
    assert.deepEqual(
      parseArkListPlayers('\n0. Survivor, 76561198000000001\n1. Rex, the Tamer, 76561198000000002 \n'),
      {
        online: 2,
        max: 0,
        list: [
          { name: 'Survivor', id: '76561198000000001' },
          { name: 'Rex, the Tamer', id: '76561198000000002' },
        ],
      },
    );
    assert.deepEqual(parseArkListPlayers('No Players Connected\n'), { online: 0, max: 0, list: [] });
    assert.throws(() => parseArkListPlayers('Command not found'));
  });
});

// captured from ctrl-alt-play/openarena (OpenArena 0.8.8, Debian bookworm) after three addbot
const OPENARENA = `map: oa_dm1
cl score ping name            address                                 rate 
-- ----- ---- --------------- --------------------------------------- -----
 0     0    0 Sarge           ^7bot                                     16384
 1     3    0 Angelyss        ^7bot                                     16384
 2     0   48 ^1Red^7Rocket     ^7172.17.0.1:27960                        25000
`;
// ioquake3 1.36 / older OpenArena builds
const OLD_Q3 = `map: q3dm17
num score ping name            lastmsg address               qport rate
--- ----- ---- --------------- ------- --------------------- ----- -----
  0    12   35 Player^7              0 192.168.1.5:27960     4242 25000
  1     0    0 Bot Crash^7           50 bot                       0 16384
`;

describe('Quake 3 status', () => {
  it('reads OpenArena 0.8.8 as captured: client numbers as ids, scores, bots, colours out', () => {
    assert.deepEqual(parseQuake3Status(OPENARENA), {
      online: 3,
      max: 0,
      list: [
        { name: 'Sarge', id: '0', score: 0, bot: true },
        { name: 'Angelyss', id: '1', score: 3, bot: true },
        { name: 'RedRocket', id: '2', score: 0, bot: false },
      ],
    });
  });
  it('reads the older ioquake3 table (lastmsg, qport)', () => {
    assert.deepEqual(parseQuake3Status(OLD_Q3).list, [
      { name: 'Player', id: '0', score: 12, bot: false },
      { name: 'Bot Crash', id: '1', score: 0, bot: true },
    ]);
  });
  it('an empty server is an empty list; a refused rcon is an error', () => {
    assert.deepEqual(parseQuake3Status(OPENARENA.split('\n').slice(0, 3).join('\n')).list, []);
    assert.throws(() => parseQuake3Status('Bad rconpassword.\n'));
  });
});

// captured from ctrl-alt-play/openttd (OpenTTD 13, Debian bookworm), plus two clients
const OPENTTD = `Client #1  name: 'Unnamed Client'  company: 255  IP: server
Client #2  name: 'Alice'  company: 1  IP: 172.17.0.1
Client #5  name: 'It's me'  company: 255  IP: 172.17.0.1
`;

describe('OpenTTD clients', () => {
  it('reads clients, leaves the server itself out, company 255 is a spectator', () => {
    assert.deepEqual(parseOpenttdClients(OPENTTD), {
      online: 2,
      max: 0,
      list: [
        { name: 'Alice', id: '2' },
        { name: "It's me", id: '5', spectator: true },
      ],
    });
  });
});

describe('hostile answers', () => {
  it('caps the list, the names, strips control characters, and keeps only digit ids', () => {
    const many = Array.from({ length: 5000 }, (_, i) => `P${i}`).join(', ');
    const mc = parseMinecraftList(`There are 5000 of a max of 9999999 players online: ${many}`);
    assert.equal(mc.list.length, MAX_LISTED_PLAYERS);
    assert.equal(mc.online, 5000);
    const long = 'x'.repeat(10_000);
    const q3 = parseQuake3Status(`cl score ping name address rate\n 0 0 0 ${long}\u0007\u001b[31m ^7bot 1\n`);
    assert.equal(q3.list[0]!.name.length, 64);
    assert.ok([...q3.list[0]!.name].every((c) => c.charCodeAt(0) >= 0x20));
    const src = parseSourceStatus(`# userid name uniqueid\n# 99999999999 "a\u0000b" BOT\n`);
    assert.deepEqual(src.list, [{ name: 'ab', bot: true, id: '99999999999' }]);
    const ttd = Array.from({ length: 1000 }, (_, i) => `Client #${i + 2}  name: 'n${i}'  company: 1  IP: x`);
    assert.equal(parseOpenttdClients(ttd.join('\n')).list.length, MAX_LISTED_PLAYERS);
  });
  it('a 10 MB answer is read only up to its first 256 KiB, quickly', () => {
    const big = `cl score ping name address rate\n${' 1 0 0 a ^7bot 1\n'.repeat(700_000)}`;
    const t = performance.now();
    for (const [, p] of commandParsers) {
      try {
        const r = p.parse(big);
        assert.ok(r.list.length <= MAX_LISTED_PLAYERS);
      } catch {
        // not that game's answer: fine, as long as it does not hang
      }
    }
    assert.ok(performance.now() - t < 2000, `parsing took ${performance.now() - t} ms`);
  });
  it('every parser is registered by its name with its command', () => {
    assert.deepEqual(
      [...commandParsers].map(([k, v]) => `${k}=${v.command}`),
      [
        'minecraft-list=list',
        'source-status=status',
        'ark-listplayers=listplayers',
        'quake3-status=status',
        'openttd-clients=clients',
      ],
    );
  });
});

function fakeConsole(state: RemoteConsole['state'], answer: string, sent: string[]): RemoteConsole {
  return {
    serverId: 's1',
    transport: 'quake3-rcon',
    state,
    send: async (c) => {
      sent.push(c);
      return { response: answer };
    },
    onState: () => () => undefined,
  };
}

describe('queryByCommand', () => {
  it("sends the parser's command through the remote console and parses the answer", async () => {
    const sent: string[] = [];
    const r = await queryByCommand(
      'command:quake3-status',
      fakeConsole('authenticated', OPENARENA, sent),
      1000,
    );
    assert.deepEqual(sent, ['status']);
    assert.equal(r.list.length, 3);
  });
  it('no console, stdin, or not connected: REMOTE_CONSOLE_UNAVAILABLE and nothing sent', async () => {
    const sent: string[] = [];
    for (const c of [undefined, fakeConsole('connecting', '', sent), fakeConsole('wrong_password', '', sent)])
      await assert.rejects(queryByCommand('command:quake3-status', c, 1000), {
        code: 'REMOTE_CONSOLE_UNAVAILABLE',
      });
    const stdin = { ...fakeConsole('authenticated', '', sent), transport: 'stdin' as const };
    await assert.rejects(queryByCommand('command:quake3-status', stdin, 1000), {
      code: 'REMOTE_CONSOLE_UNAVAILABLE',
    });
    assert.deepEqual(sent, []);
    await assert.rejects(queryByCommand('command:nope', fakeConsole('authenticated', '', sent), 1000), {
      code: 'CONFIG_INVALID',
    });
  });
});
