import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ErrorCode } from '@cap/protocol';
import { pino } from 'pino';
import { build } from '../app.ts';
import { loadPanelConfig } from '../config/index.ts';

const silent = pino({ level: 'silent' });

test('first run without ADMIN_*: a one-time setup token, never an open setup', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cap-setup-'));
  const app = await build(loadPanelConfig({ DATA_DIR: dir }), { logger: silent });
  try {
    assert.ok(app.setupUrl);
    const token = new URL(app.setupUrl).searchParams.get('token') ?? '';
    assert.equal((await app.inject({ method: 'GET', url: '/api/setup' })).json().required, true);
    const body = { email: 'first@x.test', password: 'first-password' };
    const noToken = await app.inject({
      method: 'POST',
      url: '/api/setup',
      payload: { ...body, token: 'wrong' },
    });
    assert.equal(noToken.statusCode, 401);
    assert.equal(noToken.json().code, 'AUTH_FAILED');
    const ok = await app.inject({ method: 'POST', url: '/api/setup', payload: { ...body, token } });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(ok.json().user.role, 'owner');
    assert.ok(ok.cookies.find((c) => c.name === 'cap_session'));
    const again = await app.inject({ method: 'POST', url: '/api/setup', payload: { ...body, token } });
    assert.equal(again.json().code, 'INVALID_STATE');
    assert.equal((await app.inject({ method: 'GET', url: '/api/setup' })).json().required, false);
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('login: wrong password 401 AUTH_FAILED, then 429 RATE_LIMITED after 5 a minute', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cap-login-'));
  const app = await build(
    loadPanelConfig({ DATA_DIR: dir, ADMIN_EMAIL: 'a@x.test', ADMIN_PASSWORD: 'right-password' }),
    { logger: silent },
  );
  try {
    assert.equal(app.setupUrl, undefined);
    const codes: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await app.inject({
        method: 'POST',
        url: '/api/auth/login',
        payload: { email: 'a@x.test', password: 'wrong' },
      });
      codes.push(r.json().code);
    }
    assert.deepEqual(codes, [...Array(5).fill('AUTH_FAILED'), 'RATE_LIMITED']);
    // another email from the same address is counted separately
    const other = await app.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { email: 'b@x.test', password: 'x' },
    });
    assert.equal(other.json().code, 'AUTH_FAILED');
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('OpenAPI: served with a docs page, and every error code the Panel uses is documented', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cap-openapi-'));
  const app = await build(loadPanelConfig({ DATA_DIR: dir }), { logger: silent });
  try {
    const doc = (await app.inject({ method: 'GET', url: '/api/openapi.json' })).json();
    assert.equal(doc.openapi, '3.0.3');
    assert.ok(doc.paths['/api/servers/{id}/config'].put);
    const documented: string[] = doc.components.schemas.Error.properties.code.enum;
    assert.deepEqual([...documented].sort(), [...ErrorCode.options].sort());
    // every code the Panel's source can emit must be in the document
    const { readFileSync, readdirSync } = await import('node:fs');
    const src = new URL('..', import.meta.url).pathname;
    const files = readdirSync(src, { recursive: true, encoding: 'utf8' }).filter(
      (f) => f.endsWith('.ts') && !f.endsWith('.test.ts'),
    );
    const used = new Set<string>();
    for (const f of files) {
      const text = readFileSync(join(src, f), 'utf8');
      for (const m of text.matchAll(/(?:CodedError\(\s*|fail\(\s*|code: )'([A-Z_]+)'/g)) used.add(m[1] ?? '');
    }
    assert.ok(used.size > 10);
    for (const code of used) assert.ok(documented.includes(code), `${code} is not documented`);
    const docs = await app.inject({ method: 'GET', url: '/api/docs/' });
    assert.equal(docs.statusCode, 200);
    assert.match(docs.body, /swagger/i);
    // a route's 4XX answer is the documented error
    assert.ok(doc.paths['/api/nodes'].post.responses['4XX']);
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('config: every bad key is named', async () => {
  assert.throws(
    () => loadPanelConfig({ PORT: 'x', DATABASE_URL: 'mysql://x', ADMIN_EMAIL: 'nope' }),
    (e: { code: string; details: string[] }) =>
      e.code === 'CONFIG_INVALID' &&
      ['PORT', 'DATABASE_URL', 'ADMIN_EMAIL'].every((k) => e.details.includes(k)),
  );
});

test('the built web UI is served at / with an SPA fallback; /api misses stay JSON 404s', async () => {
  const { mkdirSync, writeFileSync } = await import('node:fs');
  const dir = mkdtempSync(join(tmpdir(), 'cap-web-'));
  const web = join(dir, 'dist');
  mkdirSync(web);
  writeFileSync(join(web, 'index.html'), '<!doctype html><title>cap</title>');
  writeFileSync(join(web, 'app.js'), 'console.log(1)');
  const app = await build(loadPanelConfig({ DATA_DIR: dir, PANEL_WEB_DIST: web }), { logger: silent });
  try {
    const root = await app.inject({ method: 'GET', url: '/' });
    assert.equal(root.statusCode, 200);
    assert.match(root.body, /<title>cap/);
    assert.equal((await app.inject({ method: 'GET', url: '/app.js' })).body, 'console.log(1)');
    const deep = await app.inject({ method: 'GET', url: '/servers/abc?tab=console' });
    assert.equal(deep.statusCode, 200);
    assert.match(deep.headers['content-type'] ?? '', /text\/html/);
    const api = await app.inject({ method: 'GET', url: '/api/nothing-here' });
    assert.equal(api.statusCode, 404);
    assert.equal(api.json().code, 'NOT_FOUND');
    assert.equal((await app.inject({ method: 'POST', url: '/somewhere' })).json().code, 'NOT_FOUND');
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
