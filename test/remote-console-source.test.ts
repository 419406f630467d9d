/**
 * Source RCON (issue 12): the project's test double of a Source server (test/doubles/source-server.ts)
 * is held to the protocol by third-party clients (npm `rcon-srcds` for RCON, `gamedig` for A2S as
 * teamfortress2 and css), multi-packet responses included; then the Agent's own transport
 * (packages/agent/src/remote-console) is run against it: login, a wrong password, a response of
 * several packets reassembled in order.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GameDig } from 'gamedig';
import pino from 'pino';
import RconModule from 'rcon-srcds';
import { queryByCommand } from '../packages/agent/src/players/command.ts';
import { ManagedRemoteConsole } from '../packages/agent/src/remote-console/managed.ts';
import { dialSourceRcon } from '../packages/agent/src/remote-console/transports.ts';
import { type SourceDouble, startSourceDouble } from './doubles/source-server.ts';

// a CommonJS module with an `exports.default`: its class is on `.default` under Node's ESM loader
const Rcon = RconModule.default;
const PASSWORD = 'rcon-secret-42';
/** a response longer than two packets, with a line number on each line to check the order */
const LONG = Array.from(
  { length: 400 },
  (_, i) => `line ${String(i).padStart(4, '0')} ${'x'.repeat(20)}`,
).join('\n');

describe('Source RCON + A2S test double, held to the protocol by rcon-srcds and gamedig', () => {
  let double: SourceDouble;
  before(async () => {
    double = await startSourceDouble({
      password: PASSWORD,
      name: 'Double TF2',
      map: 'ctf_2fort',
      maxPlayers: 24,
      players: [
        { name: 'alice', score: 3, seconds: 120 },
        { name: 'bob', score: 1, seconds: 60 },
      ],
      commands: (c) => (c === 'long' ? LONG : c.startsWith('echo ') ? c.slice(5) : `Unknown command "${c}"`),
    });
  });
  after(() => double?.close());

  it('rcon-srcds logs in, runs a command and reads a multi-packet response', async () => {
    const client = new Rcon({ host: '127.0.0.1', port: double.rconPort, timeout: 3000, encoding: 'utf8' });
    await client.authenticate(PASSWORD);
    assert.equal(await client.execute('echo hello-double'), 'hello-double');
    const long = await client.execute('long');
    assert.equal(long, LONG);
    assert.ok(Buffer.byteLength(LONG) > 2 * 4096, 'the response takes three packets');
    client.disconnect();
    const wrong = new Rcon({ host: '127.0.0.1', port: double.rconPort, timeout: 3000 });
    await assert.rejects(wrong.authenticate('nope'), /Unable to authenticate/);
  });

  for (const type of ['teamfortress2', 'css']) {
    it(`gamedig (${type}) reads A2S_INFO and A2S_PLAYER through the challenge`, async () => {
      const state = await GameDig.query({
        type,
        host: '127.0.0.1',
        port: double.queryPort,
        maxRetries: 1,
        socketTimeout: 2000,
      });
      assert.equal(state.name, 'Double TF2');
      assert.equal(state.map, 'ctf_2fort');
      assert.equal(state.maxplayers, 24);
      assert.deepEqual(Array.from(state.players as { name: string }[], (p) => p.name).sort(), [
        'alice',
        'bob',
      ]);
    });
  }

  it("the Agent's Source RCON transport: login, a multi-packet response in order, a wrong password", async () => {
    const session = dialSourceRcon({ host: '127.0.0.1', port: double.rconPort, password: PASSWORD });
    await session.ready;
    assert.equal(await session.exec('echo from-agent', 3000), 'from-agent');
    assert.equal(await session.exec('long', 3000), LONG);
    // commands in a row keep their own responses (the end marker of one is not the next's)
    const [a, b] = await Promise.all([session.exec('echo one', 3000), session.exec('echo two', 3000)]);
    assert.deepEqual([a, b], ['one', 'two']);
    session.close();
    const bad = dialSourceRcon({ host: '127.0.0.1', port: double.rconPort, password: 'nope' });
    await assert.rejects(bad.ready, (e: Error & { kind?: string }) => e.kind === 'wrong_password');
  });

  it('the managed console reports authenticated / wrong_password and answers send()', async () => {
    const log = pino({ level: 'silent' });
    const states: string[] = [];
    const make = (password: string) =>
      new ManagedRemoteConsole({
        serverId: 's1',
        transport: 'source-rcon',
        dial: dialSourceRcon,
        target: async () => ({ host: '127.0.0.1', port: double.rconPort, password }),
        log,
      });
    const good = make(PASSWORD);
    good.onState((s) => states.push(s));
    good.start();
    assert.deepEqual(await good.send('echo via-managed'), { response: 'via-managed' });
    assert.equal(good.state, 'authenticated');
    good.stop();
    assert.deepEqual(states, ['connecting', 'authenticated', 'idle']);
    const bad = make('wrong');
    bad.start();
    await assert.rejects(
      bad.send('echo x'),
      (e: Error & { code?: string }) => e.code === 'REMOTE_CONSOLE_AUTH_FAILED',
    );
    assert.equal(bad.state, 'wrong_password');
    bad.stop();
  });
});

describe("players by `command:source-status` through the Agent's Source RCON transport (issue 12)", () => {
  it("the double's `status` table parses into the players, with their user ids", async () => {
    const double = await startSourceDouble({
      password: PASSWORD,
      maxPlayers: 16,
      players: [
        { name: 'alice', score: 3, seconds: 120 },
        { name: 'Bob the "Builder"', score: 1, seconds: 3725 },
      ],
    });
    const rc = new ManagedRemoteConsole({
      serverId: 's1',
      transport: 'source-rcon',
      dial: dialSourceRcon,
      target: async () => ({ host: '127.0.0.1', port: double.rconPort, password: PASSWORD }),
      log: pino({ level: 'silent' }),
    });
    try {
      rc.start();
      await rc.send('echo up');
      assert.deepEqual(await queryByCommand('command:source-status', rc, 5000), {
        online: 2,
        max: 16,
        list: [
          { name: 'alice', id: '2', bot: false },
          { name: 'Bob the "Builder"', id: '3', bot: false },
        ],
      });
      assert.ok(double.executed.includes('status'), JSON.stringify(double.executed));
    } finally {
      rc.stop();
      await double.close();
    }
  });
});
