/** The players poll loop (issue 12 item 2) with a fake query and a fake clock. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EventData } from '@cap/protocol';
import { PlayerPoller, type PollTarget } from './poller.ts';
import { fromGamedig, gamedigLoaded, normalise, type QueryFn } from './query.ts';

function setup(query: QueryFn, opts: { concurrency?: number; timeoutMs?: number } = {}) {
  let now = 1_000_000;
  const sent: EventData<'players_update'>[] = [];
  const errors: string[] = [];
  let targets: PollTarget[] = [];
  const poller = new PlayerPoller({
    targets: () => targets,
    query,
    publish: (d) => sent.push(d),
    onError: (id, e) => errors.push(`${id}: ${(e as Error).message}`),
    now: () => now,
    random: () => 0.5,
    ...opts,
  });
  return {
    poller,
    sent,
    errors,
    setTargets: (t: PollTarget[]) => {
      targets = t;
    },
    advance: (ms: number) => {
      now += ms;
    },
    /** one tick, and every query it started settled */
    tick: async () => {
      await Promise.all(poller.tick());
    },
  };
}

const target = (serverId: string, intervalMs = 30_000): PollTarget => ({
  serverId,
  query: 'fake',
  host: '127.0.0.1',
  port: 1,
  intervalMs,
});

describe('PlayerPoller', () => {
  it('polls at the interval and sends only changes; resendAll sends the last again', async () => {
    let online = 1;
    const t = setup(async () => ({ online, max: 8, list: [{ name: 'a' }] }));
    t.setTargets([target('s1')]);
    await t.tick(); // schedules the first poll (within 5 s)
    assert.equal(t.sent.length, 0);
    t.advance(2500);
    await t.tick();
    assert.deepEqual(t.sent, [{ serverId: 's1', online: 1, max: 8, list: [{ name: 'a' }] }]);
    assert.deepEqual(t.poller.snapshot('s1'), { online: 1, max: 8, list: ['a'] });
    t.advance(10_000);
    await t.tick(); // not due yet
    t.advance(20_000);
    await t.tick(); // due, same answer: nothing sent
    assert.equal(t.sent.length, 1);
    online = 2;
    t.advance(30_000);
    await t.tick();
    assert.equal(t.sent.length, 2);
    assert.equal(t.sent[1]?.online, 2);
    t.poller.resendAll();
    assert.deepEqual(t.sent[2], t.sent[1]);
  });

  it('a server that stops is sent once with nobody online, then forgotten', async () => {
    const t = setup(async () => ({ online: 3, max: 8, list: [] }));
    t.setTargets([target('s1')]);
    await t.tick();
    t.advance(5000);
    await t.tick();
    t.setTargets([]);
    await t.tick();
    assert.deepEqual(t.sent.at(-1), { serverId: 's1', online: 0, max: 8, list: [] });
    assert.equal(t.poller.snapshot('s1'), undefined);
  });

  it('a hanging, throwing or lying server cannot stall the loop or break the others', async () => {
    const q: QueryFn = async (x) => {
      if (x.port === 1) return new Promise(() => undefined); // never settles, ignores its timeout
      if (x.port === 2) throw new Error('boom');
      if (x.port === 3)
        return { online: Number.NaN, max: 1e300, list: [{ name: `\u0000${'x'.repeat(500)}` }, 7] } as never;
      return { online: 1, max: 4, list: [{ name: 'ok' }] };
    };
    const t = setup(q, { timeoutMs: 50 });
    t.setTargets([
      { ...target('hang'), port: 1 },
      { ...target('throw'), port: 2 },
      { ...target('liar'), port: 3 },
      { ...target('good'), port: 4 },
    ]);
    await t.tick();
    t.advance(5000);
    await t.tick();
    assert.ok(t.errors.some((e) => e.startsWith('hang: no answer within 50 ms')));
    assert.ok(t.errors.some((e) => e === 'throw: boom'));
    assert.equal(t.poller.inflight, 0);
    const liar = t.sent.find((d) => d.serverId === 'liar');
    assert.equal(liar?.online, 2); // the count cannot be under the names listed
    assert.equal(liar?.max, 1e6);
    assert.equal(liar?.list[0]?.name, 'x'.repeat(64));
    assert.deepEqual(t.sent.find((d) => d.serverId === 'good')?.list, [{ name: 'ok' }]);
  });

  it('runs at most `concurrency` queries at a time', async () => {
    let running = 0;
    let peak = 0;
    const t = setup(
      async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 10));
        running--;
        return { online: 0, max: 1, list: [] };
      },
      { concurrency: 2 },
    );
    t.setTargets(Array.from({ length: 6 }, (_, i) => target(`s${i}`)));
    await t.tick();
    t.advance(5000);
    for (let i = 0; i < 4; i++) await t.tick();
    assert.equal(peak, 2);
    assert.equal(t.sent.length, 6);
  });
});

describe('player query results', () => {
  it('gamedig: bots count as players, names bounded', () => {
    const r = fromGamedig({
      numplayers: 0,
      maxplayers: 12,
      players: [{ name: 'human', raw: { frags: 3 } }],
      bots: [{ name: 'Sarge', raw: { frags: 0, ping: 0 } }, { name: 'Grunt' }],
    });
    assert.deepEqual(r, {
      online: 3,
      max: 12,
      list: [
        { name: 'human', score: 3, bot: false },
        { name: 'Sarge', score: 0, bot: true },
        { name: 'Grunt', bot: true },
      ],
    });
    assert.deepEqual(fromGamedig({ numplayers: 0, maxplayers: 25, players: [] }), {
      online: 0,
      max: 25,
      list: [],
    });
    assert.deepEqual(fromGamedig('nonsense'), { online: 0, max: 0, list: [] });
    assert.equal(normalise({ online: -5, max: '7', list: 'x' }).max, 7);
  });

  it('gamedig is not loaded until a server needs it', () => {
    assert.equal(gamedigLoaded(), false);
  });
});

describe('PlayerPoller state (command queries, issue 12)', () => {
  it('a failing query publishes nothing and marks the server unavailable; an answer makes it ok', async () => {
    let fail = true;
    const t = setup(async () => {
      if (fail)
        throw Object.assign(new Error('remote console connecting'), { code: 'REMOTE_CONSOLE_UNAVAILABLE' });
      return { online: 1, max: 0, list: [{ name: 'Sarge', id: '0', bot: true }] };
    });
    t.setTargets([target('s1')]);
    await t.tick();
    assert.equal(t.poller.stateOf('s1'), 'pending');
    t.advance(5000);
    await t.tick();
    assert.equal(t.poller.stateOf('s1'), 'unavailable');
    assert.deepEqual(t.sent, []);
    fail = false;
    t.advance(40_000);
    await t.tick();
    assert.equal(t.poller.stateOf('s1'), 'ok');
    assert.deepEqual(t.sent, [
      { serverId: 's1', online: 1, max: 0, list: [{ name: 'Sarge', id: '0', bot: true }] },
    ]);
  });
});
