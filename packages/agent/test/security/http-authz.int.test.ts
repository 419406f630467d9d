/**
 * Attack class: authorisation bypass on the Agent's HTTP API. Every route the app really has
 * (read from Fastify, not from a list kept by hand) is called without credentials, with wrong
 * ones and through path tricks; only `/health` may answer, and the command handler must never run.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { CodedError, type ResponseMessage } from '@cap/protocol';
import pino from 'pino';
import { buildHealthOnly } from '../../src/http/health.ts';
import { buildAgentHttp, buildHttp, keyMatches } from '../../src/http/http.ts';
import { fixture } from '../helpers.ts';

const KEY = 'k_3f1c0a9e8d7b6a5f4e3d2c1b';

async function app(acceptedKeys: (string | null | undefined)[] = [KEY, null]) {
  const handled: unknown[] = [];
  const a = await buildHttp({
    logger: pino({ level: 'silent' }),
    corsOrigins: ['*'],
    rate: 10_000, // the walk below makes more requests than a default burst; the limit has its own suite
    acceptedKeys: () => acceptedKeys,
    handle: async (raw) => {
      handled.push(raw);
      return {
        id: 'x',
        type: 'response',
        timestamp: new Date().toISOString(),
        success: true,
      } as ResponseMessage;
    },
    docker: async () => ({ reachable: true, version: '20.10' }),
    panelConnected: () => true,
    backupFile: async (serverId, backupId) => {
      handled.push({ serverId, backupId });
      throw new CodedError('BACKUP_NOT_FOUND', 'no such backup');
    },
  });
  await a.ready();
  return { a, handled };
}

/** `[method, url]` for every route the app registered, params filled in. */
function routesOf(printed: string): [string, string][] {
  const out: [string, string][] = [];
  for (const line of printed.split('\n')) {
    const m = /(\/\S*) \(([^)]+)\)/.exec(line);
    if (!m) continue;
    const url = m[1]!.replace(/:[a-zA-Z]+/g, 'start');
    for (const method of m[2]!.split(',').map((s) => s.trim())) out.push([method, url]);
  }
  return out;
}

test('every route but /health refuses a request without a valid key, and runs nothing', async (t) => {
  const { a, handled } = await app();
  t.after(() => a.close());
  const routes = routesOf(a.printRoutes({ commonPrefix: false }));
  // the walk must see the command routes, or it proves nothing
  assert.ok(routes.some(([m, u]) => m === 'POST' && u === '/api/command'));
  assert.ok(routes.some(([m, u]) => m === 'POST' && u === '/api/servers/start/start'));
  assert.ok(routes.some(([m, u]) => m === 'GET' && u === '/api/servers/start/backups/start/download'));
  const badCredentials: Record<string, string>[] = [
    {},
    { 'x-api-key': '' },
    { 'x-api-key': 'wrong' },
    { 'x-api-key': `${KEY} ` },
    { 'x-api-key': KEY.slice(0, -1) },
    { authorization: 'Bearer ' },
    { authorization: 'Bearer wrong' },
    { authorization: `Basic ${Buffer.from(`x:${KEY}`).toString('base64')}` },
    { authorization: KEY },
    { authorization: 'Bearer null' },
    { authorization: 'Bearer undefined' },
  ];
  let checked = 0;
  for (const [method, url] of routes) {
    if (url === '/health' || method === 'OPTIONS') continue;
    for (const headers of badCredentials) {
      const res = await a.inject({
        method: method as 'POST',
        url,
        headers: { ...headers, 'content-type': 'application/json' },
        payload: method === 'POST' ? '{}' : undefined,
      });
      assert.equal(res.statusCode, 401, `${method} ${url} ${JSON.stringify(headers)}`);
      assert.equal(res.json().code, 'AUTH_FAILED');
      checked++;
    }
    const ok = await a.inject({
      method: method as 'POST',
      url,
      headers: { 'x-api-key': KEY, 'content-type': 'application/json' },
      payload: method === 'POST' ? '{}' : undefined,
    });
    assert.notEqual(ok.statusCode, 401, `${method} ${url} with the key`);
  }
  assert.ok(checked >= 2 * badCredentials.length);
  // only the requests with the key reached the handler
  // every route runs the command handler but /health and /metrics (which run none)
  assert.equal(
    handled.length,
    routes.filter(([m, u]) => u !== '/health' && u !== '/metrics' && m !== 'OPTIONS').length,
  );
});

test('path tricks do not reach a command route through the /health exemption', async (t) => {
  const { a, handled } = await app();
  t.after(() => a.close());
  const urls = [
    '/health/../api/command',
    '/health%2F..%2Fapi%2Fcommand',
    '/api/command?/health',
    '/api/command?x=/health',
    '/api/command#/health',
    '//api/command',
    '/api//command',
    '/API/COMMAND',
    '/api/command/',
    '/api/servers/x/start?health',
    '/api/servers/health/start',
    '/api/servers/x/..%2f..%2fhealth',
  ];
  for (const url of urls) {
    const res = await a.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/json' },
      payload: '{}',
    });
    assert.ok([401, 404].includes(res.statusCode), `${url} → ${res.statusCode}`);
  }
  // an OPTIONS preflight on the key's API is not answered as CORS (and runs nothing)
  const pre = await a.inject({ method: 'OPTIONS', url: '/api/command', headers: { origin: 'http://x' } });
  assert.equal(pre.statusCode, 401);
  assert.equal(pre.headers['access-control-allow-origin'], undefined);
  assert.equal(handled.length, 0);
  const health = await a.inject({ method: 'GET', url: '/health' });
  assert.equal(health.statusCode, 200);
});

test('CORS only on /transfers/* (allowed origins, no credentials); never on the key-protected API', async (t) => {
  const PANEL = 'https://panel.example';
  const taken: string[] = [];
  const a = await buildHttp({
    logger: pino({ level: 'silent' }),
    corsOrigins: [PANEL],
    rate: 10_000,
    acceptedKeys: () => [KEY],
    handle: async () => ({ id: 'x', type: 'response', timestamp: new Date().toISOString(), success: true }),
    docker: async () => ({ reachable: true, version: '27.0' }),
    panelConnected: () => true,
    transfers: {
      take: (ticket) => {
        taken.push(ticket);
        throw new CodedError('NOT_FOUND', 'unknown, used or expired transfer ticket');
      },
      download: async () => {
        throw new Error('not reached');
      },
      upload: async () => {
        throw new Error('not reached');
      },
    },
  });
  t.after(() => a.close());
  const ticket = 'A'.repeat(43);
  const preflight = (origin: string | undefined, url = `/transfers/${ticket}`, method = 'PUT') =>
    a.inject({
      method: 'OPTIONS',
      url,
      headers: {
        ...(origin ? { origin } : {}),
        'access-control-request-method': method,
        'access-control-request-headers': 'content-type',
      },
    });
  const ok = await preflight(PANEL);
  assert.equal(ok.statusCode, 204);
  assert.equal(ok.headers['access-control-allow-origin'], PANEL);
  assert.equal(ok.headers['access-control-allow-credentials'], undefined);
  assert.match(String(ok.headers['access-control-allow-methods']), /\bPUT\b/);
  assert.match(String(ok.headers['access-control-allow-methods']), /\bGET\b/);
  assert.match(String(ok.headers['access-control-allow-headers']), /content-type/);
  assert.match(String(ok.headers['access-control-expose-headers']), /x-checksum-sha256/);
  assert.match(String(ok.headers['access-control-expose-headers']), /content-disposition/);
  assert.match(String(ok.headers.vary), /origin/i);
  for (const refused of ['https://evil.example', 'https://panel.example.evil', 'null', undefined]) {
    const r = await preflight(refused);
    assert.equal(r.statusCode, 403, String(refused));
    assert.equal(r.json().code, 'FORBIDDEN');
    assert.equal(r.headers['access-control-allow-origin'], undefined, String(refused));
  }
  // the real request carries the headers too (an error answer included, so the page can read it)
  const get = await a.inject({ method: 'GET', url: `/transfers/${ticket}`, headers: { origin: PANEL } });
  assert.equal(get.statusCode, 404);
  assert.equal(get.headers['access-control-allow-origin'], PANEL);
  const evil = await a.inject({
    method: 'GET',
    url: `/transfers/${ticket}`,
    headers: { origin: 'https://evil.example' },
  });
  assert.equal(evil.headers['access-control-allow-origin'], undefined);
  assert.deepEqual(taken, [ticket, ticket], 'preflights take no ticket');
  // the key's routes and /health: no CORS for any origin, a preflight is not answered
  for (const [method, url] of [
    ['POST', '/api/command'],
    ['POST', '/api/servers/x/start'],
    ['GET', '/api/servers/x/backups/b/download'],
    ['GET', '/metrics'],
    ['GET', '/health'],
    ['OPTIONS', '/api/command'],
    ['OPTIONS', '/api/servers/x/start'],
  ] as const) {
    const r = await a.inject({
      method,
      url,
      headers: { origin: PANEL, 'x-api-key': KEY, 'content-type': 'application/json' },
      ...(method === 'POST' ? { payload: '{}' } : {}),
    });
    assert.equal(r.headers['access-control-allow-origin'], undefined, `${method} ${url}`);
    assert.notEqual(r.statusCode, 204, `${method} ${url}`);
  }
});

test('no key configured and no Panel token yet: nothing is accepted, not even an empty key', async (t) => {
  const { a, handled } = await app([undefined, null, '']);
  t.after(() => a.close());
  for (const headers of [
    {},
    { 'x-api-key': '' },
    { authorization: 'Bearer ' },
    { 'x-api-key': 'undefined' },
  ]) {
    const res = await a.inject({ method: 'POST', url: '/api/command', headers, payload: {} });
    assert.equal(res.statusCode, 401);
  }
  assert.equal(handled.length, 0);
});

test('keyMatches: exact match only, any accepted key, empty keys never match', () => {
  assert.equal(keyMatches(KEY, [KEY]), true);
  assert.equal(keyMatches(KEY, [null, 'other', KEY]), true);
  assert.equal(keyMatches(`${KEY}x`, [KEY]), false);
  assert.equal(keyMatches(KEY.toUpperCase(), [KEY]), false);
  assert.equal(keyMatches('', ['', null, undefined]), false);
  assert.equal(keyMatches('x', []), false);
});

test('no key configured: the health-only server (no Fastify) answers every request as the Fastify API does', async (t) => {
  const deps = {
    corsOrigins: ['http://allowed.example'],
    rate: 3,
    docker: async () => ({ reachable: true, version: '27.0' }),
    panelConnected: () => false,
  };
  const handled: unknown[] = [];
  const fastifyApi = await buildAgentHttp({
    ...deps,
    logger: pino({ level: 'silent' }),
    acceptedKeys: () => [undefined],
    handle: async (raw) => {
      handled.push(raw);
      return {
        id: 'x',
        type: 'response',
        timestamp: new Date().toISOString(),
        success: true,
      } as ResponseMessage;
    },
  });
  const healthOnly = buildHealthOnly(deps);
  t.after(() => Promise.all([fastifyApi.close(), healthOnly.close()]));
  const ports = [await fastifyApi.listen(0, '127.0.0.1'), await healthOnly.listen(0, '127.0.0.1')];
  const requests: [string, string, Record<string, string>][] = [
    ['GET', '/health', {}],
    ['GET', '/health?x=1', { origin: 'http://allowed.example' }],
    ['HEAD', '/health', {}],
    ['GET', '/health', { origin: 'http://evil.example' }],
    ['POST', '/api/command', { 'x-api-key': KEY, 'content-type': 'application/json' }],
    [
      'POST',
      '/api/servers/x/start',
      { authorization: 'Bearer undefined', 'content-type': 'application/json' },
    ],
    ['GET', '/health/../api/command', {}],
    ['POST', '/api/command?/health', { 'content-type': 'application/json' }],
    ['GET', '/nothing', { origin: 'http://allowed.example' }],
    ['OPTIONS', '/api/command', { origin: 'http://allowed.example' }],
  ];
  const answers: { status: number; code?: string; cors: string | null; body?: unknown }[][] = [[], []];
  for (const [i, port] of ports.entries()) {
    for (const [method, url, headers] of requests) {
      const res = await fetch(`http://127.0.0.1:${port}${url}`, {
        method,
        headers,
        ...(method === 'POST' ? { body: '{}' } : {}),
      });
      const text = await res.text();
      const json = text ? JSON.parse(text) : undefined;
      answers[i]?.push({
        status: res.status,
        ...(json?.code ? { code: json.code } : {}),
        cors: res.headers.get('access-control-allow-origin'),
        ...(url.startsWith('/health') && method === 'GET' ? { body: json } : {}),
      });
      await new Promise((r) => setTimeout(r, 400)); // refill: 3 a second
    }
  }
  assert.deepEqual(answers[1], answers[0]);
  assert.equal(answers[0]?.[0]?.status, 200);
  assert.equal(answers[0]?.[4]?.code, 'AUTH_FAILED');
  assert.equal(handled.length, 0);
  // the same burst (twice the rate), then 429 RATE_LIMITED from both
  for (const port of ports) {
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await fetch(`http://127.0.0.1:${port}/health`)).status);
    assert.equal(statuses[0], 200, `port ${port}: ${statuses}`);
    assert.equal(statuses.at(-1), 429, `port ${port}: ${statuses}`);
  }
});

describe('the real Agent', () => {
  test('the Panel-issued Agent JWT is not an API key: only AGENT_API_KEY opens the HTTP API', async (t) => {
    const f = await fixture({ env: { AGENT_API_KEY: KEY } });
    t.after(() => f.cleanup());
    await f.panel.waitConnected();
    const stored = JSON.parse(await readFile(path.join(f.dataDir, 'credentials.json'), 'utf8'));
    const token = stored.agent.token as string;
    assert.ok(token.length > 0);
    const call = (headers: Record<string, string>) =>
      fetch(`http://127.0.0.1:${f.agent.httpPort}/api/command`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({
          id: 'a1',
          type: 'command',
          timestamp: new Date().toISOString(),
          action: 'list_servers',
        }),
      });
    const tries: Record<string, string>[] = [{ authorization: `Bearer ${token}` }, { 'x-api-key': token }];
    for (const headers of tries) {
      const res = await call(headers);
      assert.equal(res.status, 401, JSON.stringify(headers));
      assert.equal(((await res.json()) as { code: string }).code, 'AUTH_FAILED');
    }
    assert.equal((await call({ 'x-api-key': KEY })).status, 200);
  });

  test('without AGENT_HTTP_HOST the HTTP API listens on loopback only', async (t) => {
    // an address of this host that is not loopback (the Docker bridge's gateway at least)
    const external = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
    assert.ok(external, 'this host has no non-loopback IPv4 address to test with');
    const f = await fixture({ env: { AGENT_HTTP_HOST: '' } });
    t.after(() => f.cleanup());
    assert.equal(f.config.httpHost, '127.0.0.1');
    assert.equal((await fetch(`http://127.0.0.1:${f.agent.httpPort}/health`)).status, 200);
    // a TCP connect to the same port on the other address: refused (or no answer), never accepted
    const outcome = await new Promise<string>((resolve) => {
      const sock = connect({ host: external, port: f.agent.httpPort });
      const timer = setTimeout(() => {
        sock.destroy();
        resolve('no answer');
      }, 3000);
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.destroy();
        resolve('connected');
      });
      sock.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        resolve(e.code ?? 'error');
      });
    });
    assert.notEqual(outcome, 'connected', `the HTTP API answers on ${external}`);
  });
});

test('transfer_push is for the Panel link only: the HTTP API refuses it even with the key (no proxy to anywhere)', async (t) => {
  const { a, handled } = await app();
  t.after(() => a.close());
  const push = {
    backupId: 'b1',
    url: `http://169.254.169.254/transfers/${'A'.repeat(43)}`,
    ticket: 'A'.repeat(43),
    targetNodeId: 'n2',
  };
  const viaCommand = await a.inject({
    method: 'POST',
    url: '/api/command',
    headers: { 'x-api-key': KEY },
    payload: {
      id: 'm1',
      type: 'command',
      timestamp: new Date().toISOString(),
      serverId: 's1',
      action: 'transfer_push',
      payload: push,
    },
  });
  assert.equal(viaCommand.statusCode, 403, viaCommand.body);
  assert.equal(viaCommand.json().code, 'FORBIDDEN');
  const viaPath = await a.inject({
    method: 'POST',
    url: '/api/servers/s1/transfer_push',
    headers: { 'x-api-key': KEY },
    payload: push,
  });
  assert.equal(viaPath.statusCode, 403, viaPath.body);
  assert.equal(handled.length, 0, 'the command handler never ran');
  // another action with the key still runs (the refusal is that action's only)
  const other = await a.inject({
    method: 'POST',
    url: '/api/servers/s1/status',
    headers: { 'x-api-key': KEY },
    payload: {},
  });
  assert.equal(other.statusCode, 200, other.body);
  assert.equal(handled.length, 1);
});
