/**
 * Fuzzing the real Agent (real Docker) through both of its doors, the Panel link (driven by the
 * fake Panel) and its HTTP API, with hostile input: inherited property names (`constructor`,
 * `__proto__`, …) as type/action/field names, huge, negative and non-finite numbers (1e400
 * parses to Infinity), deep nesting and long strings. Every bad command gets an error response
 * with a code, the Agent stays up, the link stays up, and later valid commands still succeed.
 * Seeded: the seed is printed; rerun with FUZZ_SEED=<seed>.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ErrorCode, newMessageId, type ResponseMessage } from '@cap/protocol';
import { deep, Fuzz, seedFromEnv, toWire } from '@cap/protocol/testing/fuzz.ts';
import { egg, type Fixture, fixture, uid } from '../helpers.ts';

const SEED = seedFromEnv();
const API_KEY = 'fuzz-api-key-0123456789abcdef';
const now = () => new Date().toISOString();
/** actions whose payload is the strict empty object: any added field makes them invalid */
const EMPTY_ACTIONS = [
  'start_server',
  'kill_server',
  'delete_server',
  'get_status',
  'system_info',
  'list_servers',
  'reinstall_server',
];

describe(`fuzz: the Agent's Panel link and HTTP API (FUZZ_SEED=${SEED})`, () => {
  let f: Fixture;
  let serverId: string;

  before(async () => {
    console.log(`fuzz seed: FUZZ_SEED=${SEED}`);
    f = await fixture({
      env: { AGENT_API_KEY: API_KEY, AGENT_COMMAND_RATE: '100000', AGENT_HTTP_RATE: '100000' },
    });
    await f.panel.waitConnected();
    serverId = uid('fz');
    const r = await f.panel.command('create_server', { serverId, eggConfig: egg('sleep 3600') });
    assert.equal(r.success, true, JSON.stringify(r));
  });
  after(() => f.cleanup());

  /** Hostile commands, each bad by construction; `id` is kept so its answer can be matched. */
  function hostile(fuzz: Fuzz, id: string): unknown {
    const env = { id, type: 'command', timestamp: now(), serverId };
    switch (fuzz.int(6)) {
      case 0:
        return { ...env, action: fuzz.name(), payload: fuzz.value() };
      case 1:
        // an inherited name, or a type the Panel may not send (the Agent's own kinds)
        return {
          ...fuzz.mutate({
            type: fuzz.pick([fuzz.name(), fuzz.name(), 'response', 'event', 'pong']),
            timestamp: now(),
            action: 'get_status',
          }),
          id,
        };
      case 2:
        return { ...env, action: fuzz.pick(EMPTY_ACTIONS), payload: fuzz.mutate({}) };
      case 3: {
        const field = fuzz.pick(['timestamp', 'serverId', 'action']);
        return { ...env, action: 'get_status', payload: {}, [field]: fuzz.value() };
      }
      case 4:
        return {
          ...env,
          action: fuzz.pick(['list_files', 'get_file']),
          payload: {
            path: fuzz.pick([fuzz.name(), fuzz.number(), fuzz.longString(), { [fuzz.name()]: '/' }]),
          },
        };
      default:
        return {
          ...env,
          action: fuzz.pick(['stop_server', 'restart_server', 'send_command']),
          payload: {
            timeout: fuzz.number(),
            signal: fuzz.name(),
            command: fuzz.pick([fuzz.number(), fuzz.longString(8000), [fuzz.name()]]),
          },
        };
    }
  }

  function assertRefused(r: ResponseMessage, sent: string): void {
    assert.equal(r.success, false, `accepted: ${sent.slice(0, 300)}`);
    assert.ok(ErrorCode.safeParse(r.error?.code).success, `no code: ${JSON.stringify(r).slice(0, 300)}`);
    assert.notEqual(r.error?.code, 'RATE_LIMITED');
  }

  async function stillWorks(): Promise<void> {
    assert.ok(f.panel.connected, 'the link went down');
    const st = await f.panel.command('get_status', {}, { serverId });
    assert.equal(st.success, true, JSON.stringify(st));
    const files = await f.panel.command('list_files', { path: '/' }, { serverId });
    assert.equal(files.success, true, JSON.stringify(files));
    const health = await fetch(`http://127.0.0.1:${f.agent.httpPort}/health`);
    assert.equal(health.status, 200);
  }

  test('hostile commands down the link: each answered with an error code, the link stays up', async () => {
    const fuzz = new Fuzz(SEED);
    const connections = f.panel.connections.length;
    const n = 300;
    const answers: Promise<ResponseMessage>[] = [];
    const sent = new Map<string, string>();
    for (let i = 0; i < n; i++) {
      const id = newMessageId('fz');
      const text = toWire(hostile(fuzz, id));
      sent.set(id, text);
      answers.push(f.panel.waitFor<ResponseMessage>((m) => m.type === 'response' && m.id === id, 30_000));
      f.panel.sendRaw(text);
    }
    for (const r of await Promise.all(answers)) assertRefused(r, sent.get(r.id) ?? '');
    // no id to answer to: not JSON, deep nesting, a bare value; answered as id "unknown"
    const before = f.panel.received.length;
    const anonymous = ['{"type":', deep(50_000), deep(20_000, 'object'), '1e400', '"constructor"', '[]'];
    for (const text of anonymous) f.panel.sendRaw(text);
    await f.panel.waitFor(
      () =>
        f.panel.received
          .slice(before)
          .filter((m) => m.type === 'response' && m.id === 'unknown' && m.success === false).length >=
        anonymous.length,
    );
    assert.deepEqual(f.panel.invalid, []);
    assert.equal(f.panel.connections.length, connections, 'the Agent reconnected: its link went down');
    await stillWorks();
  });

  test('hostile requests to the HTTP API: each answered 4xx with a code; valid ones still work', async () => {
    const fuzz = new Fuzz(SEED + 1);
    const base = `http://127.0.0.1:${f.agent.httpPort}`;
    const headers = { 'x-api-key': API_KEY, 'content-type': 'application/json' };
    const requests: { url: string; body: string }[] = [];
    for (const name of [
      ...new Set([fuzz.name(), 'constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']),
    ]) {
      requests.push({ url: `/api/servers/${serverId}/${name}`, body: '{}' });
      requests.push({ url: `/api/servers/${name}/status`, body: '{}' });
    }
    requests.push({ url: `/api/servers/${serverId}/status`, body: '{"__proto__":{"polluted":1}}' });
    requests.push({ url: `/api/servers/${serverId}/status`, body: deep(20_000, 'object') });
    requests.push({ url: '/api/command', body: deep(50_000) });
    requests.push({ url: '/api/command', body: `{"x":"${'a'.repeat(2 * 1024 * 1024)}"}` });
    for (let i = 0; i < 100; i++) {
      requests.push({ url: '/api/command', body: toWire(hostile(fuzz, newMessageId('fz'))) });
    }
    for (const r of requests) {
      const res = await fetch(`${base}${r.url}`, { method: 'POST', headers, body: r.body });
      const body = (await res.json()) as { code?: string; error?: { code?: string } };
      const what = `${r.url} ${r.body.slice(0, 200)} → ${res.status} ${JSON.stringify(body).slice(0, 300)}`;
      assert.ok(res.status >= 400 && res.status < 500, what);
      assert.ok(ErrorCode.safeParse(body.code ?? body.error?.code).success, what);
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    }
    const ok = await fetch(`${base}/api/servers/${serverId}/status`, { method: 'POST', headers, body: '{}' });
    assert.equal(ok.status, 200);
    await stillWorks();
  });
});
