/**
 * Login brute force: 5 tries a minute per address + email, a cap per address over all emails
 * (password spraying), and X-Forwarded-For believed only from a configured proxy.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LOGIN_EMAILS_PER_IP } from '../../src/modules/auth/service.ts';
import { ADMIN_EMAIL, ADMIN_PASSWORD, injectPanel } from '../helpers.ts';

const login = (
  p: Awaited<ReturnType<typeof injectPanel>>,
  email: string,
  password: string,
  opts: { xff?: string; remoteAddress?: string } = {},
) =>
  p.app.inject({
    method: 'POST',
    url: '/api/auth/login',
    ...(opts.remoteAddress ? { remoteAddress: opts.remoteAddress } : {}),
    headers: opts.xff ? { 'x-forwarded-for': opts.xff } : {},
    payload: { email, password },
  });

describe('login brute force', () => {
  test('the 6th try a minute is refused, even with the right password', async () => {
    const p = await injectPanel({ PANEL_LOGIN_RATE_PER_MIN: '5' });
    try {
      const codes = [];
      for (let i = 0; i < 5; i++) codes.push((await login(p, ADMIN_EMAIL, `guess-${i}`)).json().code);
      assert.deepEqual(codes, Array(5).fill('AUTH_FAILED'));
      const right = await login(p, ADMIN_EMAIL, ADMIN_PASSWORD);
      assert.equal(right.statusCode, 429);
      assert.equal(right.json().code, 'RATE_LIMITED');
      assert.equal(right.cookies.length, 0, 'no session for a refused try');
    } finally {
      await p.stop();
    }
  });

  test('a forged X-Forwarded-For does not buy new tries when no proxy is trusted', async () => {
    const p = await injectPanel({ PANEL_LOGIN_RATE_PER_MIN: '5' });
    try {
      const codes = [];
      for (let i = 0; i < 8; i++) {
        const r = await login(p, ADMIN_EMAIL, `guess-${i}`, { xff: `198.51.100.${i + 1}` });
        codes.push(r.json().code);
      }
      assert.deepEqual(codes, [...Array(5).fill('AUTH_FAILED'), ...Array(3).fill('RATE_LIMITED')]);
    } finally {
      await p.stop();
    }
  });

  test('behind a trusted proxy each client address counts alone; an untrusted peer cannot spoof', async () => {
    const p = await injectPanel({ PANEL_LOGIN_RATE_PER_MIN: '5', PANEL_TRUST_PROXY: '127.0.0.1' });
    try {
      for (let i = 0; i < 5; i++) await login(p, ADMIN_EMAIL, 'x', { xff: '198.51.100.7' });
      assert.equal((await login(p, ADMIN_EMAIL, 'x', { xff: '198.51.100.7' })).json().code, 'RATE_LIMITED');
      // another client behind the same proxy is not locked out by the first one
      const other = await login(p, ADMIN_EMAIL, ADMIN_PASSWORD, { xff: '198.51.100.8' });
      assert.equal(other.statusCode, 200);
      // a peer that is not the proxy: its own address counts, whatever the header says
      const direct = { remoteAddress: '203.0.113.9' };
      for (let i = 0; i < 5; i++)
        await login(p, ADMIN_EMAIL, 'x', { ...direct, xff: `198.51.100.${20 + i}` });
      const sixth = await login(p, ADMIN_EMAIL, 'x', { ...direct, xff: '198.51.100.99' });
      assert.equal(sixth.json().code, 'RATE_LIMITED');
    } finally {
      await p.stop();
    }
  });

  test('spraying one password over many emails from one address is capped too', async () => {
    const p = await injectPanel({ PANEL_LOGIN_RATE_PER_MIN: '5' });
    try {
      const budget = 5 * LOGIN_EMAILS_PER_IP;
      const codes: string[] = [];
      for (let i = 0; i < budget + 2; i++)
        codes.push((await login(p, `user${i}@x.test`, 'Summer2026!')).json().code);
      assert.deepEqual(codes.slice(0, budget), Array(budget).fill('AUTH_FAILED'));
      assert.deepEqual(codes.slice(budget), ['RATE_LIMITED', 'RATE_LIMITED']);
      // another address is not affected
      const elsewhere = await login(p, ADMIN_EMAIL, ADMIN_PASSWORD, { remoteAddress: '192.0.2.50' });
      assert.equal(elsewhere.statusCode, 200);
    } finally {
      await p.stop();
    }
  });
});
