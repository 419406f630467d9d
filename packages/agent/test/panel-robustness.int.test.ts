/**
 * What a broken or compromised Panel can send the Agent: malformed frames, binary frames, deep
 * JSON, prototype-polluting keys, a frame over the size limit, a flood of commands. The Agent
 * must answer what it can, refuse the rest with a code, and keep running.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ResponseMessage } from '@cap/protocol';
import { type Fixture, fixture, sleep, uid } from './helpers.ts';

const RATE = 50;

describe('a hostile Panel', () => {
  let f: Fixture;

  before(async () => {
    f = await fixture({ env: { AGENT_COMMAND_RATE: String(RATE) } });
    await f.panel.waitConnected();
    // the fence_servers the Panel sends after the hello: its answer must not count among the
    // answers to the frames below (on a loaded machine it came after them)
    while (!f.panel.received.some((m) => m.type === 'event' && m.event === 'agent_hello')) await sleep(20);
    await f.panel.fencing;
  });
  after(() => f.cleanup());

  const responses = (id: string) =>
    f.panel.received.filter((m): m is ResponseMessage => m.type === 'response' && m.id === id);

  it('malformed, binary, deep and polluting frames each get one INVALID_MESSAGE answer, nothing breaks', async () => {
    const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
    const frames: (string | Buffer)[] = [
      '{not json',
      'null',
      '[]',
      '"command"',
      '{}',
      Buffer.from([0xff, 0xfe, 0x00, 0x01]),
      deep,
      JSON.stringify({ type: 'command', id: 42, action: 'list_servers', payload: {} }),
    ];
    const mark = f.panel.received.length;
    for (const fr of frames) f.panel.sendRaw(fr);
    // a marker command after them: once it is answered, all before it were handled
    const marker = await f.panel.command('list_servers', {});
    assert.equal(marker.success, true);
    const answered = f.panel.received
      .slice(mark)
      .filter((m): m is ResponseMessage => m.type === 'response' && m.id !== marker.id);
    assert.equal(answered.length, frames.length, JSON.stringify(answered));
    for (const r of answered) assert.equal(r.error?.code, 'INVALID_MESSAGE', JSON.stringify(r));

    const polluting = `{"__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":1}},"id":"${uid('p')}","type":"command","timestamp":"${new Date().toISOString()}","action":"list_servers","payload":{"__proto__":{"polluted":1}}}`;
    f.panel.sendRaw(polluting);
    await f.panel.command('list_servers', {});
    assert.equal(({} as { polluted?: unknown }).polluted, undefined);
    assert.equal(Object.hasOwn(Object.prototype, 'polluted'), false);
    assert.deepEqual(f.panel.invalid, []);
  });

  it('a frame over 16 MiB closes the link (1009); the Agent reconnects and still answers', async () => {
    const before = f.panel.connections.length;
    f.panel.sendRaw(Buffer.alloc(16 * 1024 * 1024 + 1, 0x20));
    const t0 = Date.now();
    while (f.panel.connections.length === before || !f.panel.connected) {
      if (Date.now() - t0 > 20_000) assert.fail('the Agent did not come back');
      await sleep(50);
    }
    assert.ok(f.panel.closes.includes(1009), `close codes ${f.panel.closes.join(',')}`);
    const res = await f.panel.command('list_servers', {});
    assert.equal(res.success, true);
  });

  it(`a command flood is cut at ${RATE}/s (burst ${2 * RATE}): the rest answered RATE_LIMITED, not run`, async () => {
    await sleep((1000 * (2 * RATE)) / RATE); // let the bucket fill up again
    const ids = Array.from({ length: 1000 }, () => uid('flood-'));
    const t0 = Date.now();
    for (const id of ids) {
      f.panel.sendRaw(
        JSON.stringify({
          id,
          type: 'command',
          timestamp: new Date().toISOString(),
          action: 'list_servers',
          payload: {},
        }),
      );
    }
    const tEnd = Date.now() + 30_000;
    while (ids.some((id) => responses(id).length === 0)) {
      if (Date.now() > tEnd) assert.fail('not every flooded command was answered');
      await sleep(50);
    }
    const elapsedS = (Date.now() - t0) / 1000;
    const codes = ids.map((id) => {
      const rs = responses(id);
      assert.equal(rs.length, 1, `${id} answered ${rs.length} times`);
      return rs[0]!.success ? 'ok' : rs[0]!.error?.code;
    });
    const ok = codes.filter((c) => c === 'ok').length;
    const limited = codes.filter((c) => c === 'RATE_LIMITED').length;
    assert.equal(ok + limited, ids.length, `other codes: ${[...new Set(codes)].join(',')}`);
    assert.ok(ok >= 2 * RATE, `${ok} run: the burst was not honoured`);
    assert.ok(ok <= 2 * RATE + Math.ceil(RATE * elapsedS) + 1, `${ok} run in ${elapsedS} s`);
    // a flood does not cost the link, and the bucket refills
    await sleep(200);
    const after = await f.panel.command('list_servers', {});
    assert.equal(after.success, true);
  });
});
