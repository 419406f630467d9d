/**
 * Sessions: fixation (a planted or earlier cookie never becomes the logged-in one), logout and
 * password changes end sessions on the server, deleted users and demoted roles take effect at once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sha256 } from '../../src/lib/crypto.ts';
import { type InjectPanel, type InjectSession, injectPanel } from '../helpers.ts';

describe('session fixation and invalidation', () => {
  let p: InjectPanel;
  let owner: InjectSession;
  const me = (s: { cookie: string }) =>
    p.app.inject({ method: 'GET', url: '/api/auth/me', headers: { cookie: s.cookie } });
  const mkUser = async (email: string, role: string) => {
    const r = await p.app.inject({
      method: 'POST',
      url: '/api/users',
      headers: owner.headers,
      payload: { email, password: 'password-123', role },
    });
    assert.equal(r.statusCode, 201, r.body);
    return r.json().id as string;
  };

  before(async () => {
    p = await injectPanel();
    owner = await p.login();
  });
  after(() => p.stop());

  test('a cookie planted before login is not adopted', async () => {
    const planted = 'cap_session=attacker-chosen-value-0123456789abcdef';
    const s = await p.login(undefined, undefined, { cookie: planted });
    assert.notEqual(s.cookie, planted);
    assert.equal((await me({ cookie: planted })).statusCode, 401);
    assert.equal((await me(s)).statusCode, 200);
  });

  test('logging in again ends the session the browser came with (no second live session left behind)', async () => {
    const first = await p.login();
    const second = await p.login(undefined, undefined, { cookie: first.cookie });
    assert.notEqual(first.cookie, second.cookie);
    assert.equal((await me(first)).statusCode, 401);
    assert.equal((await me(second)).statusCode, 200);
  });

  test('logout deletes the session on the server: the replayed cookie and its CSRF token are dead', async () => {
    const s = await p.login();
    const out = await p.app.inject({ method: 'POST', url: '/api/auth/logout', headers: s.headers });
    assert.equal(out.statusCode, 204);
    const cleared = out.cookies.find((c) => c.name === 'cap_session');
    assert.equal(cleared?.value, '', 'the browser is told to drop it');
    // an attacker who kept the cookie value
    assert.equal((await me(s)).json().code, 'UNAUTHENTICATED');
    const write = await p.app.inject({
      method: 'POST',
      url: '/api/nodes',
      headers: s.headers,
      payload: { name: 'after-logout' },
    });
    assert.equal(write.statusCode, 401);
    const row = await p.app.panel.db
      .selectFrom('sessions')
      .select('id')
      .where('id', '=', sha256(s.cookie.slice('cap_session='.length)))
      .executeTakeFirst();
    assert.equal(row, undefined, 'the row is gone, not just the cookie');
  });

  test("a new password ends the user's other sessions; the one that changed it stays", async () => {
    await mkUser('pw@x.test', 'admin');
    const a = await p.login('pw@x.test', 'password-123');
    const b = await p.login('pw@x.test', 'password-123');
    const id = (await me(a)).json().user.id as string;
    const self = await p.app.inject({
      method: 'PATCH',
      url: `/api/users/${id}`,
      headers: a.headers,
      payload: { password: 'password-456' },
    });
    assert.equal(self.statusCode, 200, self.body);
    assert.equal((await me(a)).statusCode, 200);
    assert.equal((await me(b)).statusCode, 401);
    // an owner resetting it ends all of them
    const byOwner = await p.app.inject({
      method: 'PATCH',
      url: `/api/users/${id}`,
      headers: owner.headers,
      payload: { password: 'password-789' },
    });
    assert.equal(byOwner.statusCode, 200);
    assert.equal((await me(a)).statusCode, 401);
    assert.equal((await me(owner)).statusCode, 200);
  });

  test('a deleted user loses sessions and API keys; a demoted one loses the role on the next request', async () => {
    const id = await mkUser('gone@x.test', 'admin');
    const s = await p.login('gone@x.test', 'password-123');
    const key = await p.app.inject({
      method: 'POST',
      url: '/api/api-keys',
      headers: s.headers,
      payload: { name: 'k', currentPassword: 'password-123' },
    });
    const bearer = { authorization: `Bearer ${key.json().key}` };
    assert.equal((await p.app.inject({ method: 'GET', url: '/api/nodes', headers: bearer })).statusCode, 200);
    const demote = await p.app.inject({
      method: 'PATCH',
      url: `/api/users/${id}`,
      headers: owner.headers,
      payload: { role: 'spectator' },
    });
    assert.equal(demote.statusCode, 200);
    const write = await p.app.inject({
      method: 'POST',
      url: '/api/nodes',
      headers: s.headers,
      payload: { name: 'as-demoted' },
    });
    assert.equal(write.json().code, 'FORBIDDEN');
    await p.app.inject({ method: 'DELETE', url: `/api/users/${id}`, headers: owner.headers });
    assert.equal((await me(s)).statusCode, 401);
    assert.equal((await p.app.inject({ method: 'GET', url: '/api/nodes', headers: bearer })).statusCode, 401);
  });

  test('the cookie is HttpOnly, SameSite=Lax, Path=/; Secure behind an https PANEL_URL', async () => {
    const login = async (q: InjectPanel) =>
      (
        await q.app.inject({
          method: 'POST',
          url: '/api/auth/login',
          payload: { email: 'owner@example.test', password: 'owner-password-1' },
        })
      ).cookies.find((c) => c.name === 'cap_session');
    const plain = await login(p);
    assert.equal(plain?.httpOnly, true);
    assert.equal(plain?.sameSite, 'Lax');
    assert.equal(plain?.path, '/');
    assert.notEqual(plain?.secure, true);
    const tls = await injectPanel({ PANEL_URL: 'https://panel.example.test' });
    try {
      assert.equal((await login(tls))?.secure, true);
    } finally {
      await tls.stop();
    }
  });
});

describe("one's own sessions: listed and revocable", () => {
  let p: InjectPanel;
  before(async () => {
    p = await injectPanel();
  });
  after(() => p.stop());
  const me = (s: { cookie: string }) =>
    p.app.inject({ method: 'GET', url: '/api/auth/me', headers: { cookie: s.cookie } });
  const list = async (s: InjectSession) => {
    const r = await p.app.inject({ method: 'GET', url: '/api/auth/sessions', headers: s.headers });
    assert.equal(r.statusCode, 200, r.body);
    return r.json() as {
      id: string;
      createdAt: string;
      lastSeenAt: string | null;
      ip: string | null;
      userAgent: string | null;
      current: boolean;
    }[];
  };

  test('listed with created, last seen, address, user agent and the current one marked; a revoked one is 401 next time', async () => {
    const phone = await p.login(undefined, undefined, { 'user-agent': 'PhoneBrowser/1.0' });
    const laptop = await p.login(undefined, undefined, { 'user-agent': 'LaptopBrowser/2.0' });
    const seen = await list(laptop);
    const mine = seen.filter(
      (x) => x.userAgent === 'PhoneBrowser/1.0' || x.userAgent === 'LaptopBrowser/2.0',
    );
    assert.equal(mine.length, 2);
    const cur = seen.filter((x) => x.current);
    assert.equal(cur.length, 1);
    assert.equal(cur[0]?.userAgent, 'LaptopBrowser/2.0');
    for (const x of mine) {
      assert.ok(Date.parse(x.createdAt) > 0);
      assert.ok(x.lastSeenAt && Date.parse(x.lastSeenAt) > 0);
      assert.equal(x.ip, '127.0.0.1');
      // the listed id is not the cookie nor its stored hash
      assert.ok(!phone.cookie.includes(x.id) && !laptop.cookie.includes(x.id));
      assert.notEqual(x.id, sha256(phone.cookie.slice('cap_session='.length)));
    }
    const phoneRow = mine.find((x) => x.userAgent === 'PhoneBrowser/1.0');
    assert.ok(phoneRow);
    const del = await p.app.inject({
      method: 'DELETE',
      url: `/api/auth/sessions/${phoneRow.id}`,
      headers: laptop.headers,
    });
    assert.equal(del.statusCode, 204, del.body);
    assert.equal((await me(phone)).statusCode, 401, 'the revoked session still works');
    assert.equal((await me(laptop)).statusCode, 200);
    const again = await p.app.inject({
      method: 'DELETE',
      url: `/api/auth/sessions/${phoneRow.id}`,
      headers: laptop.headers,
    });
    assert.equal(again.statusCode, 404);
  });

  test("another user's session id is 404, and 'log out other sessions' keeps only this one", async () => {
    const owner = await p.login();
    const made = await p.app.inject({
      method: 'POST',
      url: '/api/users',
      headers: owner.headers,
      payload: { email: 'other-user@x.test', password: 'password-123', role: 'admin' },
    });
    assert.equal(made.statusCode, 201);
    const other = await p.login('other-user@x.test', 'password-123');
    const otherId = (await list(other)).find((x) => x.current)?.id;
    assert.ok(otherId);
    const cross = await p.app.inject({
      method: 'DELETE',
      url: `/api/auth/sessions/${otherId}`,
      headers: owner.headers,
    });
    assert.equal(cross.statusCode, 404);
    assert.equal((await me(other)).statusCode, 200);

    const second = await p.login();
    const third = await p.login();
    const out = await p.app.inject({
      method: 'POST',
      url: '/api/auth/sessions/revoke-others',
      headers: third.headers,
    });
    assert.equal(out.statusCode, 204);
    assert.equal((await me(owner)).statusCode, 401);
    assert.equal((await me(second)).statusCode, 401);
    assert.equal((await me(third)).statusCode, 200);
    assert.equal((await list(third)).length, 1);
    assert.equal((await me(other)).statusCode, 200, "another user's sessions are untouched");
  });
});
