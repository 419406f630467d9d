/** First-run setup: a one-time token, never an open setup, and one owner even under a race. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { build } from '../../src/app.ts';
import { loadPanelConfig } from '../../src/config/index.ts';
import { openDatabase } from '../../src/db/index.ts';
import { injectPanel, slowQueries } from '../helpers.ts';

const silent = pino({ level: 'silent' });
const tokenOf = (setupUrl: string | undefined) =>
  new URL(setupUrl ?? 'http://x/').searchParams.get('token') ?? '';

test('parallel setups with the right token make exactly one owner; the token then is dead', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cap-setup-race-'));
  const config = loadPanelConfig({ DATA_DIR: dir });
  const db = (await openDatabase(config)).withPlugin(slowQueries());
  const app = await build(config, { logger: silent, db });
  try {
    const token = tokenOf(app.setupUrl);
    assert.ok(token.length >= 20);
    // no token / empty / wrong: never an open setup
    const bad = await Promise.all(
      [undefined, '', 'wrong'].map((t) =>
        app.inject({
          method: 'POST',
          url: '/api/setup',
          payload: { email: 'x@x.test', password: 'password-1', ...(t === undefined ? {} : { token: t }) },
        }),
      ),
    );
    assert.deepEqual(
      bad.map((r) => r.json().code),
      ['VALIDATION_FAILED', 'VALIDATION_FAILED', 'AUTH_FAILED'],
    );
    const rs = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        app.inject({
          method: 'POST',
          url: '/api/setup',
          payload: { token, email: `racer${i}@x.test`, password: 'password-1' },
        }),
      ),
    );
    assert.equal(rs.filter((r) => r.statusCode === 200).length, 1, rs.map((r) => r.body).join('\n'));
    for (const r of rs.filter((x) => x.statusCode !== 200)) assert.equal(r.json().code, 'INVALID_STATE');
    const users = await app.panel.db.selectFrom('users').select(['email', 'role']).execute();
    assert.equal(users.length, 1);
    const again = await app.inject({
      method: 'POST',
      url: '/api/setup',
      payload: { token, email: 'late@x.test', password: 'password-1' },
    });
    assert.equal(again.json().code, 'INVALID_STATE');
  } finally {
    await app.close();
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('each boot before setup mints a new token and the old one stops working; after setup none', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cap-setup-boot-'));
  try {
    const first = await build(loadPanelConfig({ DATA_DIR: dir }), { logger: silent });
    const old = tokenOf(first.setupUrl);
    await first.close();
    const second = await build(loadPanelConfig({ DATA_DIR: dir }), { logger: silent });
    const fresh = tokenOf(second.setupUrl);
    assert.notEqual(fresh, old);
    const stale = await second.inject({
      method: 'POST',
      url: '/api/setup',
      payload: { token: old, email: 'o@x.test', password: 'password-1' },
    });
    assert.equal(stale.json().code, 'AUTH_FAILED');
    const ok = await second.inject({
      method: 'POST',
      url: '/api/setup',
      payload: { token: fresh, email: 'o@x.test', password: 'password-1' },
    });
    assert.equal(ok.statusCode, 200);
    await second.close();
    const third = await build(loadPanelConfig({ DATA_DIR: dir }), { logger: silent });
    assert.equal(third.setupUrl, undefined);
    assert.equal((await third.inject({ method: 'GET', url: '/api/setup' })).json().required, false);
    await third.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with ADMIN_EMAIL/ADMIN_PASSWORD there is no setup token at all', async () => {
  const p = await injectPanel();
  try {
    assert.equal(p.app.setupUrl, undefined);
    const stored = await p.app.panel.db
      .selectFrom('settings')
      .select('key')
      .where('key', '=', 'setup_token_hash')
      .executeTakeFirst();
    assert.equal(stored, undefined);
    const r = await p.app.inject({
      method: 'POST',
      url: '/api/setup',
      payload: { token: 'anything-at-all', email: 'z@x.test', password: 'password-1' },
    });
    assert.equal(r.statusCode, 409);
    assert.equal(r.json().code, 'INVALID_STATE');
  } finally {
    await p.stop();
  }
});
