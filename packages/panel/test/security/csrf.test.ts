/**
 * CSRF (Pterodactyl GHSA-wwgq-9jhf-qgw6 class): a browser carrying the session cookie but not the
 * session's X-CSRF-Token must not change anything, on every state-changing route of the table.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { type InjectPanel, type InjectSession, injectPanel } from '../helpers.ts';

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

describe('CSRF', () => {
  let p: InjectPanel;
  let owner: InjectSession;
  let other: InjectSession;

  before(async () => {
    p = await injectPanel();
    owner = await p.login();
    other = await p.login();
  });
  after(() => p.stop());

  test('every cookie-authenticated write refuses a missing, empty, foreign or altered token', async () => {
    const writes = p.app.panel.routes.filter(
      (r) => !SAFE.has(r.method) && r.url.startsWith('/api/') && r.auth !== 'public' && r.auth !== 'agent',
    );
    // the table really is walked (a refactor that empties it must not pass this test)
    assert.ok(writes.length >= 19, `${writes.length} state-changing routes`);
    for (const r of writes) {
      const url = r.url.replace(/:(\w+)/g, 'zz-$1');
      for (const token of [undefined, '', other.csrf, `${owner.csrf}x`]) {
        const res = await p.app.inject({
          method: r.method as 'POST',
          url,
          headers: { cookie: owner.cookie, ...(token === undefined ? {} : { 'x-csrf-token': token }) },
          payload: {},
        });
        assert.equal(res.statusCode, 403, `${r.method} ${r.url} token=${token}: ${res.body}`);
        assert.equal(res.json().code, 'CSRF_FAILED', `${r.method} ${r.url}`);
      }
    }
  });

  test('a forged write stores nothing; the same write with the token does', async () => {
    const forged = await p.app.inject({
      method: 'POST',
      url: '/api/users',
      headers: { cookie: owner.cookie },
      payload: { email: 'csrf-victim@x.test', password: 'password-123', role: 'owner' },
    });
    assert.equal(forged.json().code, 'CSRF_FAILED');
    const list = await p.app.inject({ method: 'GET', url: '/api/users', headers: owner.headers });
    assert.equal(
      list.json().some((u: { email: string }) => u.email === 'csrf-victim@x.test'),
      false,
    );
    const real = await p.app.inject({
      method: 'POST',
      url: '/api/users',
      headers: owner.headers,
      payload: { email: 'csrf-ok@x.test', password: 'password-123', role: 'spectator' },
    });
    assert.equal(real.statusCode, 201, real.body);
  });

  test('logout is a write too: a cross-site POST cannot end the session', async () => {
    const res = await p.app.inject({
      method: 'POST',
      url: '/api/auth/logout',
      headers: { cookie: owner.cookie },
    });
    assert.equal(res.json().code, 'CSRF_FAILED');
    const me = await p.app.inject({ method: 'GET', url: '/api/auth/me', headers: owner.headers });
    assert.equal(me.statusCode, 200);
  });

  test('/ws/client refuses a foreign or opaque Origin before the upgrade (cross-site WebSocket hijacking)', async () => {
    await p.app.listen({ port: 0, host: '127.0.0.1' });
    const addr = p.app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    const url = `ws://127.0.0.1:${port}/ws/client`;
    const status = (origin: string) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(url, { headers: { cookie: owner.cookie, origin } });
        ws.once('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0));
        ws.once('open', () => {
          ws.close();
          resolve(101);
        });
        ws.once('error', () => undefined);
      });
    assert.equal(await status('https://evil.example'), 403);
    assert.equal(await status('null'), 403);
    assert.equal(await status(`http://127.0.0.1:${port}.evil.example`), 403);
    assert.equal(await status(`http://127.0.0.1:${port}`), 101);
  });
});
