import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestPanel, type TestPanel } from '../../../test/helpers.ts';

describe('changing your own password', () => {
  let panel: TestPanel;
  before(async () => {
    panel = await startTestPanel();
  });
  after(() => panel.stop());

  it('needs the current password, ends the other sessions, keeps this one', async () => {
    const spectator = await panel.userWithRole('spectator');
    // userWithRole makes `<role><n>@…` with the password `<role>-password-<n>`
    const n = /(\d+)@/.exec(spectator.email)?.[1];
    const current = `spectator-password-${n}`;
    const other = await panel.login(spectator.email, current);

    const wrong = await panel.api(spectator, 'POST', '/api/auth/password', {
      currentPassword: 'not-it-at-all',
      newPassword: 'a-new-password-1',
    });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.code, 'AUTH_FAILED');

    const short = await panel.api(spectator, 'POST', '/api/auth/password', {
      currentPassword: current,
      newPassword: 'short',
    });
    assert.equal(short.body.code, 'VALIDATION_FAILED');

    const ok = await panel.api(spectator, 'POST', '/api/auth/password', {
      currentPassword: current,
      newPassword: 'a-new-password-1',
    });
    assert.equal(ok.status, 204);

    assert.equal((await panel.api(spectator, 'GET', '/api/auth/me')).status, 200, 'this session lives on');
    assert.equal((await panel.api(other, 'GET', '/api/auth/me')).status, 401, 'the other session ended');
    await assert.rejects(panel.login(spectator.email, current));
    const fresh = await panel.login(spectator.email, 'a-new-password-1');
    assert.equal((await panel.api(fresh, 'GET', '/api/auth/me')).body.user.email, spectator.email);
  });
});
