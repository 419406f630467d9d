/**
 * API keys as long-lived credentials (issue 8 item 17): minting one needs the current password
 * (a stolen session alone cannot), a password change revokes the user's keys unless they ask to
 * keep them, and keys can expire.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ADMIN_PASSWORD, type Session, startTestPanel, type TestPanel } from '../helpers.ts';

describe('API keys are bound to the password and can expire', () => {
  let panel: TestPanel;
  let owner: Session;
  const withKey = (key: string, path = '/api/auth/me') =>
    fetch(`${panel.url}${path}`, { headers: { authorization: `Bearer ${key}` } });

  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
  });
  after(() => panel.stop());

  test('a session without the password cannot mint a key', async () => {
    const none = await panel.api(owner, 'POST', '/api/api-keys', { name: 'stolen' });
    assert.equal(none.status, 400);
    assert.equal(none.body.code, 'VALIDATION_FAILED');
    const wrong = await panel.api(owner, 'POST', '/api/api-keys', {
      name: 'stolen',
      currentPassword: 'guess',
    });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.code, 'AUTH_FAILED');
    const list = await panel.api(owner, 'GET', '/api/api-keys');
    assert.equal(
      list.body.some((k: { name: string }) => k.name === 'stolen'),
      false,
    );
    const ok = await panel.api(owner, 'POST', '/api/api-keys', {
      name: 'mine',
      currentPassword: ADMIN_PASSWORD,
    });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    assert.equal((await withKey(ok.body.key)).status, 200);
  });

  test('a password change revokes the keys, unless keepApiKeys', async () => {
    const u = await panel.userWithRole('admin');
    const pw = (n: number) => `${u.email}-pw-${n}`;
    // the helper's password for this user
    const first = u.email.replace(/@.*/, '').replace(/(\D+)(\d+)/, '$1-password-$2');
    const mk = async (password: string, name: string) => {
      const r = await panel.api(u, 'POST', '/api/api-keys', { name, currentPassword: password });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body.key as string;
    };
    const k1 = await mk(first, 'k1');
    assert.equal((await withKey(k1)).status, 200);
    const change1 = await panel.api(u, 'POST', '/api/auth/password', {
      currentPassword: first,
      newPassword: pw(1),
    });
    assert.equal(change1.status, 204);
    assert.equal((await withKey(k1)).status, 401, 'the key died with the old password');
    assert.deepEqual((await panel.api(u, 'GET', '/api/api-keys')).body, []);

    const k2 = await mk(pw(1), 'k2');
    const change2 = await panel.api(u, 'POST', '/api/auth/password', {
      currentPassword: pw(1),
      newPassword: pw(2),
      keepApiKeys: true,
    });
    assert.equal(change2.status, 204);
    assert.equal((await withKey(k2)).status, 200, 'kept on request');

    // an admin resetting the password revokes them too
    const reset = await panel.api(
      owner,
      'PATCH',
      `/api/users/${(await withKey(k2).then((r) => r.json())).user.id}`,
      {
        password: pw(3),
      },
    );
    assert.equal(reset.status, 200);
    assert.equal((await withKey(k2)).status, 401);
  });

  test('keys expire: expiresInDays / expiresAt, listed, refused with AUTH_FAILED afterwards', async () => {
    const inDays = await panel.api(owner, 'POST', '/api/api-keys', {
      name: 'week',
      currentPassword: ADMIN_PASSWORD,
      expiresInDays: 7,
    });
    assert.equal(inDays.status, 201, JSON.stringify(inDays.body));
    const exp = Date.parse(inDays.body.expiresAt);
    assert.ok(Math.abs(exp - (Date.now() + 7 * 86400_000)) < 60_000, inDays.body.expiresAt);
    const soon = new Date(Date.now() + 1500).toISOString();
    const short = await panel.api(owner, 'POST', '/api/api-keys', {
      name: 'short',
      currentPassword: ADMIN_PASSWORD,
      expiresAt: soon,
    });
    assert.equal(short.status, 201, JSON.stringify(short.body));
    const list = (await panel.api(owner, 'GET', '/api/api-keys')).body as {
      name: string;
      expiresAt: string | null;
    }[];
    assert.equal(list.find((k) => k.name === 'short')?.expiresAt, soon);
    assert.equal(list.find((k) => k.name === 'mine')?.expiresAt, null);
    assert.equal((await withKey(short.body.key)).status, 200);
    await new Promise((r) => setTimeout(r, 1700));
    const late = await withKey(short.body.key);
    assert.equal(late.status, 401);
    assert.equal(((await late.json()) as { code: string }).code, 'AUTH_FAILED');
    for (const bad of [
      { expiresAt: new Date(Date.now() - 1000).toISOString() },
      { expiresAt: 'tomorrow' },
      { expiresInDays: 0 },
      { expiresInDays: 1e9 },
      { expiresInDays: 1, expiresAt: soon },
    ]) {
      const r = await panel.api(owner, 'POST', '/api/api-keys', {
        name: 'bad',
        currentPassword: ADMIN_PASSWORD,
        ...bad,
      });
      assert.equal(r.status, 400, JSON.stringify(bad));
      assert.equal(r.body.code, 'VALIDATION_FAILED');
    }
  });
});
