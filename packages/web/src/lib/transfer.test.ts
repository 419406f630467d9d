import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { healthUrlOf, isNetworkError, withRelayFallback } from './transfer.ts';

async function server(status: number) {
  const hits: string[] = [];
  const srv = createServer((req, res) => {
    hits.push(req.url ?? '');
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ at: req.url }));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const base = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  return { base, hits, close: () => new Promise<void>((r) => srv.close(() => r())) };
}

/** a port that was free a moment ago: nothing answers there */
async function deadBase(): Promise<string> {
  const s = await server(200);
  await s.close();
  return s.base;
}

const get = async (url: string) => {
  const res = await fetch(url);
  return { status: res.status, body: await res.json() };
};

test('withRelayFallback: a network failure of the direct URL goes to the relay with the same ticket', async (t) => {
  const relay = await server(200);
  t.after(() => relay.close());
  const grant = { url: `${await deadBase()}/transfers/T1`, relayUrl: `${relay.base}/api/transfers/T1` };
  const r = await withRelayFallback(grant, get);
  assert.equal(r.status, 200);
  assert.deepEqual(relay.hits, ['/api/transfers/T1']);
});

test('withRelayFallback: any non-2xx answer of the direct URL goes to the relay (401 of an Agent without an API key)', async (t) => {
  const relay = await server(200);
  t.after(() => relay.close());
  for (const status of [401, 403, 404, 500, 302]) {
    const agent = await server(status);
    try {
      const grant = { url: `${agent.base}/transfers/T2`, relayUrl: `${relay.base}/api/transfers/T2` };
      // the answer as a result (fetch) and as a thrown error with its status (the upload's XHR)
      const r = await withRelayFallback(grant, get);
      assert.equal(r.status, 200, `after ${status}`);
      const thrown = await withRelayFallback(grant, async (u) => {
        const x = await get(u);
        if (x.status < 200 || x.status > 299)
          throw Object.assign(new Error(`HTTP ${x.status}`), { code: 'X', status: x.status });
        return x;
      });
      assert.equal(thrown.status, 200, `after a thrown ${status}`);
      assert.deepEqual(agent.hits, ['/transfers/T2', '/transfers/T2']);
    } finally {
      await agent.close();
    }
  }
  assert.equal(relay.hits.length, 10);
});

test('withRelayFallback: a 2xx of the direct URL is the answer; a relay answering non-2xx is the answer too', async (t) => {
  const agent = await server(201);
  const relay = await server(404);
  t.after(() => Promise.all([agent.close(), relay.close()]));
  const direct = await withRelayFallback(
    { url: `${agent.base}/transfers/T4`, relayUrl: `${relay.base}/api/transfers/T4` },
    get,
  );
  assert.equal(direct.status, 201);
  assert.deepEqual(relay.hits, []);
  const dead = `${await deadBase()}/transfers/T5`;
  const relayed = await withRelayFallback({ url: dead, relayUrl: `${relay.base}/api/transfers/T5` }, get);
  assert.equal(relayed.status, 404);
});

test('withRelayFallback: a relay-only grant is tried once; other errors pass through', async () => {
  const dead = `${await deadBase()}/api/transfers/T3`;
  let calls = 0;
  await assert.rejects(
    withRelayFallback({ url: dead, relayUrl: dead }, (u) => {
      calls += 1;
      return get(u);
    }),
    TypeError,
  );
  assert.equal(calls, 1);
  calls = 0;
  await assert.rejects(
    withRelayFallback({ url: 'https://a/transfers/x', relayUrl: '/api/transfers/x' }, async () => {
      calls += 1;
      throw new Error('quota');
    }),
    /quota/,
  );
  assert.equal(calls, 1);
});

test('healthUrlOf and isNetworkError', () => {
  assert.equal(healthUrlOf('https://n1.example:8443/transfers/abc'), 'https://n1.example:8443/health');
  assert.equal(
    healthUrlOf('https://proxy.example/agent1/transfers/abc'),
    'https://proxy.example/agent1/health',
  );
  assert.equal(healthUrlOf('/api/x'), null);
  assert.equal(isNetworkError(new TypeError('fetch failed')), true);
  assert.equal(isNetworkError(new Error('HTTP 500')), false);
});

test('a coded NETWORK_ERROR (an XHR upload that got no answer) falls back to the relay', async () => {
  const tried: string[] = [];
  const r = await withRelayFallback(
    { url: 'https://node/transfers/t', relayUrl: '/api/transfers/t' },
    async (url) => {
      tried.push(url);
      if (url.startsWith('https://')) throw Object.assign(new Error('cut off'), { code: 'NETWORK_ERROR' });
      return 'ok';
    },
  );
  assert.equal(r, 'ok');
  assert.deepEqual(tried, ['https://node/transfers/t', '/api/transfers/t']);
  // a coded HTTP answer is the answer: no retry
  await assert.rejects(
    withRelayFallback({ url: 'https://node/transfers/u', relayUrl: '/api/transfers/u' }, async () => {
      throw Object.assign(new Error('full'), { code: 'INSUFFICIENT_RESOURCES' });
    }),
    /full/,
  );
});
