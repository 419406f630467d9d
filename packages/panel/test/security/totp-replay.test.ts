/**
 * TOTP 2FA against the real Panel (issue 9 item 4). The attack class is replay: in Pterodactyl
 * before 1.12 (CVE-2025-69197) a TOTP code stayed valid for its whole window however often it
 * was used, so a code seen once (over a shoulder, in a proxy log) logged in a second time. Here
 * a time step accepted once, and every earlier one, is refused for that user, also for two
 * requests sent at once, and the enrolment code is spent too. Recovery codes work once each, wrong
 * codes are rate-limited, and the secret is stored sealed and never shown after enrolment.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generate } from 'otplib';
import { pino } from 'pino';
import { build } from '../../src/app.ts';
import { loadPanelConfig } from '../../src/config/index.ts';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  type Json,
  type Session,
  startTestPanel,
  type TestPanel,
} from '../helpers.ts';

const STEP = 30;
/** A code for `offset` steps from now (the Panel accepts one step either side). */
const codeAt = (secret: string, offset = 0, t = Date.now()) =>
  generate({ secret, epoch: Math.floor(t / 1000) + offset * STEP });

/** Keep the steps a test computes from moving under it: not within 4 s of a step boundary. */
async function awayFromBoundary(): Promise<void> {
  const into = (Date.now() / 1000) % STEP;
  if (into > STEP - 4) await new Promise((r) => setTimeout(r, (STEP - into + 0.5) * 1000));
}

async function post(panel: TestPanel, path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${panel.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : null) as Json, res };
}

function sessionOf(res: Response, body: Json): Session {
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  assert.match(cookie, /^cap_session=./);
  return { cookie, csrf: body.csrfToken, headers: { cookie, 'x-csrf-token': body.csrfToken } };
}

/** Password step: answers the ticket (2FA on). */
async function ticketFor(panel: TestPanel, email: string, password: string): Promise<string> {
  const r = await post(panel, '/api/auth/login', { email, password });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.twoFactorRequired, true, 'no session before the second factor');
  assert.equal(r.res.headers.get('set-cookie'), null, 'no cookie before the second factor');
  return r.body.ticket as string;
}

async function makeUser(panel: TestPanel, owner: Session, email: string, password: string, role = 'admin') {
  const r = await panel.api(owner, 'POST', '/api/users', { email, password, role });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return panel.login(email, password);
}

/** Enrols `s` (password `password`); the confirming code is for step `offset`. */
async function enrol(panel: TestPanel, s: Session, password: string, offset = 0) {
  const start = await panel.api(s, 'POST', '/api/auth/2fa/enrol');
  assert.equal(start.status, 200, JSON.stringify(start.body));
  const secret = start.body.secret as string;
  const code = await codeAt(secret, offset);
  const ok = await panel.api(s, 'POST', '/api/auth/2fa/confirm', { currentPassword: password, code });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  return { secret, code, recoveryCodes: ok.body.recoveryCodes as string[], start: start.body };
}

describe('2FA: enrolment, login with a code, replay refused', () => {
  let panel: TestPanel;
  let owner: Session;
  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
  });
  after(() => panel.stop());

  test('enrol: secret + otpauth URI + QR, confirm needs the password and a right code, secret never shown again', async () => {
    const pw = 'enrol-password-1';
    const s = await makeUser(panel, owner, 'enrol@example.test', pw);
    assert.deepEqual((await panel.api(s, 'GET', '/api/auth/me')).body.twoFactor, {
      enabled: false,
      required: false,
    });
    const start = await panel.api(s, 'POST', '/api/auth/2fa/enrol');
    assert.equal(start.status, 200);
    const secret = start.body.secret as string;
    assert.match(secret, /^[A-Z2-7]{16,}$/);
    assert.match(start.body.otpauthUri, /^otpauth:\/\/totp\/Ctrl-Alt-Play:enrol%40example\.test\?/);
    assert.ok(start.body.otpauthUri.includes(`secret=${secret}`));
    assert.match(start.body.qrDataUrl, /^data:image\/png;base64,/);

    await awayFromBoundary();
    const code = await codeAt(secret);
    const wrongPw = await panel.api(s, 'POST', '/api/auth/2fa/confirm', { currentPassword: 'nope', code });
    assert.equal(wrongPw.status, 401);
    const wrongCode = await panel.api(s, 'POST', '/api/auth/2fa/confirm', {
      currentPassword: pw,
      code: code === '000000' ? '111111' : '000000',
    });
    assert.equal(wrongCode.status, 401);
    assert.equal(wrongCode.body.code, 'AUTH_FAILED');
    assert.equal((await panel.api(s, 'GET', '/api/auth/2fa')).body.enabled, false, 'still off');

    const ok = await panel.api(s, 'POST', '/api/auth/2fa/confirm', { currentPassword: pw, code });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const codes = ok.body.recoveryCodes as string[];
    assert.equal(codes.length, 10);
    assert.equal(new Set(codes).size, 10);
    const st = await panel.api(s, 'GET', '/api/auth/2fa');
    assert.deepEqual(st.body, { enabled: true, required: false, recoveryCodesLeft: 10 });

    // never again: not in any answer, a second enrolment is refused, the column is sealed
    const again = await panel.api(s, 'POST', '/api/auth/2fa/enrol');
    assert.equal(again.status, 409);
    assert.equal(again.body.code, 'INVALID_STATE');
    for (const path of ['/api/auth/me', '/api/auth/2fa', '/api/users']) {
      const r = await panel.api(path === '/api/users' ? owner : s, 'GET', path);
      assert.ok(!JSON.stringify(r.body).includes(secret), path);
    }
    const row = await panel.app.panel.db
      .selectFrom('users')
      .select(['totp_secret', 'totp_pending_secret'])
      .where('email', '=', 'enrol@example.test')
      .executeTakeFirstOrThrow();
    assert.ok(row.totp_secret?.startsWith('v1.'), 'sealed');
    assert.ok(!row.totp_secret?.includes(secret));
    assert.equal(row.totp_pending_secret, null);
    const codeRows = await panel.app.panel.db.selectFrom('recovery_codes').select('code_hash').execute();
    for (const c of codes) assert.ok(!JSON.stringify(codeRows).includes(c.replace(/-/g, '')), 'hashed');

    // the enrolment code is spent: it cannot pass the login step
    const ticket = await ticketFor(panel, 'enrol@example.test', pw);
    const reuse = await post(panel, '/api/auth/login/2fa', { ticket, code });
    assert.equal(reuse.status, 401, 'the confirming code logged in');
  });

  test('log in with a code; the same code (a captured one) replayed in a second login is refused, and so is an earlier step', async () => {
    const pw = 'replay-password-1';
    await awayFromBoundary();
    // enrolled with the previous step's code: the current step is unused
    const { secret } = await enrol(panel, await makeUser(panel, owner, 'replay2@example.test', pw), pw, -1);
    const code = await codeAt(secret, 0);
    const t1 = await ticketFor(panel, 'replay2@example.test', pw);
    const first = await post(panel, '/api/auth/login/2fa', { ticket: t1, code });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.twoFactorRequired, false);
    const s = sessionOf(first.res, first.body);
    assert.equal((await panel.api(s, 'GET', '/api/auth/me')).body.user.email, 'replay2@example.test');

    // CVE-2025-69197: the attacker has the password and saw the code; a new login with it
    const t2 = await ticketFor(panel, 'replay2@example.test', pw);
    const replay = await post(panel, '/api/auth/login/2fa', { ticket: t2, code });
    assert.equal(replay.status, 401, 'a used code logged in again');
    assert.equal(replay.body.code, 'AUTH_FAILED');
    assert.equal(replay.res.headers.get('set-cookie'), null);
    // the step before it (still inside the tolerance window) is refused too
    const earlier = await post(panel, '/api/auth/login/2fa', { ticket: t2, code: await codeAt(secret, -1) });
    assert.equal(earlier.status, 401, 'an earlier step was accepted after a later one');
    // a later step still works
    const later = await post(panel, '/api/auth/login/2fa', { ticket: t2, code: await codeAt(secret, 1) });
    assert.equal(later.status, 200, JSON.stringify(later.body));
  });

  test('the same fresh code sent twice at once: exactly one login passes', async () => {
    const pw = 'race-password-1';
    const s = await makeUser(panel, owner, 'race@example.test', pw);
    await awayFromBoundary();
    const { secret } = await enrol(panel, s, pw, -1);
    const code = await codeAt(secret, 0);
    const tickets = await Promise.all(
      Array.from({ length: 6 }, () => ticketFor(panel, 'race@example.test', pw)),
    );
    const results = await Promise.all(
      tickets.map((ticket) => post(panel, '/api/auth/login/2fa', { ticket, code })),
    );
    assert.deepEqual(
      results.map((r) => r.status).sort(),
      [200, 401, 401, 401, 401, 401],
      JSON.stringify(results.map((r) => r.body)),
    );
  });

  test('a recovery code logs in once; the same one again is refused', async () => {
    const pw = 'recovery-password-1';
    const s = await makeUser(panel, owner, 'recovery@example.test', pw);
    const { recoveryCodes } = await enrol(panel, s, pw);
    const [rc] = recoveryCodes as [string];
    const t1 = await ticketFor(panel, 'recovery@example.test', pw);
    // typed in capitals without dashes: the same code
    const ok = await post(panel, '/api/auth/login/2fa', {
      ticket: t1,
      recoveryCode: rc.replace(/-/g, '').toUpperCase(),
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const fresh = sessionOf(ok.res, ok.body);
    assert.equal((await panel.api(fresh, 'GET', '/api/auth/2fa')).body.recoveryCodesLeft, 9);
    const t2 = await ticketFor(panel, 'recovery@example.test', pw);
    const again = await post(panel, '/api/auth/login/2fa', { ticket: t2, recoveryCode: rc });
    assert.equal(again.status, 401, 'a recovery code worked twice');
    const made = await post(panel, '/api/auth/login/2fa', {
      ticket: t2,
      recoveryCode: 'aaaa-bbbb-cccc-dddd',
    });
    assert.equal(made.status, 401);
    // neither both nor none
    const both = await post(panel, '/api/auth/login/2fa', { ticket: t2, recoveryCode: rc, code: '123456' });
    assert.equal(both.status, 400);
    assert.equal(both.body.code, 'VALIDATION_FAILED');
  });

  test('a ticket takes 5 codes, then it is dead; a bad or expired ticket is AUTH_FAILED', async () => {
    const pw = 'ticket-password-1';
    const s = await makeUser(panel, owner, 'ticket@example.test', pw);
    await awayFromBoundary();
    const { secret } = await enrol(panel, s, pw, -1);
    const ticket = await ticketFor(panel, 'ticket@example.test', pw);
    const right = await codeAt(secret, 0);
    const wrong = right === '000000' ? '111111' : '000000';
    for (let i = 0; i < 5; i += 1) {
      assert.equal((await post(panel, '/api/auth/login/2fa', { ticket, code: wrong })).status, 401);
    }
    const sixth = await post(panel, '/api/auth/login/2fa', { ticket, code: right });
    assert.equal(sixth.status, 429, 'the right code after five wrong ones on one ticket');
    assert.equal(sixth.body.code, 'RATE_LIMITED');
    assert.equal(
      (await post(panel, '/api/auth/login/2fa', { ticket, code: right })).status,
      401,
      'ticket gone',
    );
    assert.equal((await post(panel, '/api/auth/login/2fa', { ticket: 'forged', code: right })).status, 401);
  });

  test('disable needs the password and a code; afterwards the password alone logs in', async () => {
    const pw = 'disable-password-1';
    const s = await makeUser(panel, owner, 'disable@example.test', pw);
    await awayFromBoundary();
    const { secret, code } = await enrol(panel, s, pw, -1);
    const noCode = await panel.api(s, 'POST', '/api/auth/2fa/disable', { currentPassword: pw });
    assert.equal(noCode.status, 400);
    const used = await panel.api(s, 'POST', '/api/auth/2fa/disable', { currentPassword: pw, code });
    assert.equal(used.status, 401, 'the enrolment code (used) turned 2FA off');
    const badPw = await panel.api(s, 'POST', '/api/auth/2fa/disable', {
      currentPassword: 'nope',
      code: await codeAt(secret, 0),
    });
    assert.equal(badPw.status, 401);
    const ok = await panel.api(s, 'POST', '/api/auth/2fa/disable', {
      currentPassword: pw,
      code: await codeAt(secret, 0),
    });
    assert.equal(ok.status, 204, JSON.stringify(ok.body));
    const login = await post(panel, '/api/auth/login', { email: 'disable@example.test', password: pw });
    assert.equal(login.body.twoFactorRequired, false);
    assert.equal(
      await panel.app.panel.db
        .selectFrom('recovery_codes')
        .select('id')
        .where('user_id', '=', login.body.user.id)
        .executeTakeFirst(),
      undefined,
    );
  });
});

describe('2FA: wrong codes count against the login rate limit', () => {
  let panel: TestPanel;
  before(async () => {
    panel = await startTestPanel({ PANEL_LOGIN_RATE_PER_MIN: '4' });
  });
  after(() => panel.stop());

  test('after the budget even the right code is RATE_LIMITED, and a new ticket does not reset it', async () => {
    const owner = await panel.login();
    await awayFromBoundary();
    const { secret } = await enrol(panel, owner, ADMIN_PASSWORD, -1);
    const ticket = await ticketFor(panel, ADMIN_EMAIL, ADMIN_PASSWORD);
    const right = await codeAt(secret, 0);
    const wrong = right === '000000' ? '111111' : '000000';
    // four a minute: confirming spent one, three wrong codes spend the rest
    for (let i = 0; i < 3; i += 1) {
      assert.equal((await post(panel, '/api/auth/login/2fa', { ticket, code: wrong })).status, 401);
    }
    const limited = await post(panel, '/api/auth/login/2fa', { ticket, code: right });
    assert.equal(limited.status, 429, JSON.stringify(limited.body));
    assert.equal(limited.body.code, 'RATE_LIMITED');
    const other = await ticketFor(panel, ADMIN_EMAIL, ADMIN_PASSWORD);
    assert.equal((await post(panel, '/api/auth/login/2fa', { ticket: other, code: right })).status, 429);
  });
});

describe('2FA required for admins (PANEL_REQUIRE_2FA_FOR_ADMINS)', () => {
  let panel: TestPanel;
  before(async () => {
    panel = await startTestPanel({ PANEL_REQUIRE_2FA_FOR_ADMINS: 'true' });
  });
  after(() => panel.stop());

  test('an owner without 2FA may only enrol; a spectator is not asked', async () => {
    const owner = await panel.login();
    const me = await panel.api(owner, 'GET', '/api/auth/me');
    assert.deepEqual(me.body.twoFactor, { enabled: false, required: true });
    const nodes = await panel.api(owner, 'GET', '/api/nodes');
    assert.equal(nodes.status, 403);
    assert.equal(nodes.body.code, 'TWO_FACTOR_REQUIRED');
    const spectator = await panel.api(owner, 'POST', '/api/users', {
      email: 'sp@example.test',
      password: 'spectator-pw-1',
      role: 'spectator',
    });
    assert.equal(spectator.status, 403, 'an unenrolled owner made a user');
    await awayFromBoundary();
    await enrol(panel, owner, ADMIN_PASSWORD);
    assert.equal((await panel.api(owner, 'GET', '/api/nodes')).status, 200);
    const made = await panel.api(owner, 'POST', '/api/users', {
      email: 'sp@example.test',
      password: 'spectator-pw-1',
      role: 'spectator',
    });
    assert.equal(made.status, 201);
    const sp = await panel.login('sp@example.test', 'spectator-pw-1');
    assert.equal((await panel.api(sp, 'GET', '/api/nodes')).status, 200);
    assert.deepEqual((await panel.api(sp, 'GET', '/api/auth/me')).body.twoFactor, {
      enabled: false,
      required: false,
    });
  });
});

describe('2FA secrets stay out of the logs', () => {
  test('at trace level, neither the secret, the codes, the recovery codes nor the ticket are logged', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cap-totp-log-'));
    const lines: string[] = [];
    const app = await build(
      loadPanelConfig({ DATA_DIR: dir, ADMIN_EMAIL, ADMIN_PASSWORD, PANEL_LOGIN_RATE_PER_MIN: '1000' }),
      { logger: pino({ level: 'trace' }, { write: (s: string) => void lines.push(s) }) },
    );
    try {
      const login = await app.inject({
        method: 'POST',
        url: '/api/auth/login',
        payload: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD },
      });
      const cookie = `cap_session=${login.cookies.find((c) => c.name === 'cap_session')?.value}`;
      const headers = { cookie, 'x-csrf-token': login.json().csrfToken as string };
      const start = await app.inject({ method: 'POST', url: '/api/auth/2fa/enrol', headers });
      const secret = start.json().secret as string;
      await awayFromBoundary();
      const enrolCode = await codeAt(secret, -1);
      const confirm = await app.inject({
        method: 'POST',
        url: '/api/auth/2fa/confirm',
        headers,
        payload: { currentPassword: ADMIN_PASSWORD, code: enrolCode },
      });
      assert.equal(confirm.statusCode, 200, confirm.body);
      const codes = confirm.json().recoveryCodes as string[];
      const second = await app.inject({
        method: 'POST',
        url: '/api/auth/login',
        payload: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD },
      });
      const ticket = second.json().ticket as string;
      const code = await codeAt(secret, 0);
      const ok = await app.inject({ method: 'POST', url: '/api/auth/login/2fa', payload: { ticket, code } });
      assert.equal(ok.statusCode, 200, ok.body);
      assert.ok(lines.length > 5, 'the logger saw the requests');
      const all = lines.join('\n');
      for (const s of [secret, ticket, ...codes]) assert.ok(!all.includes(s), `logged: ${s}`);
      // six digits turn up by chance inside times and ids: look for them as values
      for (const c of [enrolCode, code]) assert.ok(!new RegExp(`[":=]${c}(?!\\d)`).test(all), `logged: ${c}`);
    } finally {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
