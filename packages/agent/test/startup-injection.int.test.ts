/**
 * Attack class: a variable's value must never be run as shell code, whether the image has no
 * entrypoint (the Agent runs `/bin/sh -c`) or has the Pterodactyl-style one that expands STARTUP.
 */
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { docker, egg, type Fixture, fixture, uid } from './helpers.ts';

/** Has the Pterodactyl-style /entrypoint.sh (scripts/images/common/entrypoint.sh). */
const ENTRYPOINT_IMAGE = 'ctrl-alt-play/openttd:latest';

const ATTACKS = [
  'x; echo PWNED > /home/container/pwned',
  '$(touch /home/container/pwned)',
  '`touch /home/container/pwned`',
  'a" ; touch /home/container/pwned ; echo "',
  "a' ; touch /home/container/pwned ; echo '",
  'x && touch /home/container/pwned',
  '$(echo {{SECOND}})',
];

describe('startup values are never parsed as shell code (real Docker)', () => {
  let f: Fixture;

  before(async () => {
    // fails (never skips) when the image is missing: scripts/images/build.sh games builds it
    const ep = (await docker.getImage(ENTRYPOINT_IMAGE).inspect()).Config.Entrypoint;
    assert.ok(ep && ep.length > 0, `${ENTRYPOINT_IMAGE} should have an entrypoint`);
    f = await fixture();
    await f.panel.waitConnected();
  });
  after(() => f.cleanup());

  for (const image of ['busybox (no entrypoint)', 'entrypoint image']) {
    it(`${image}: control — the startup itself can write the file the attacks aim at`, async () => {
      const id = uid('injc-');
      const eggConfig = egg('touch /home/container/pwned; echo end-of-run', {
        crashRestart: false,
        ...(image === 'entrypoint image' ? { image: ENTRYPOINT_IMAGE } : {}),
      });
      const mark = f.panel.received.length;
      assert.equal((await f.panel.command('create_server', { serverId: id, eggConfig })).success, true);
      assert.equal((await f.panel.command('start_server', {}, { serverId: id })).success, true);
      await f.panel.waitEvent('server_log', (d) => d.serverId === id && d.message === 'end-of-run', {
        since: mark,
      });
      await access(path.join(f.dataDir, 'servers', id, 'pwned'));
      await f.panel.command('delete_server', {}, { serverId: id });
    });
    for (const [i, attack] of ATTACKS.entries()) {
      it(`${image}: ${attack}`, async () => {
        const id = uid('inj-');
        const eggConfig = egg(
          'echo "value=[{{EVIL}}]"; echo unquoted {{EVIL}}; echo \'sq=[{{EVIL}}]\'; echo end-of-run',
          {
            environment: { EVIL: attack, SECOND: 'touch /home/container/pwned' },
            crashRestart: false,
            ...(image === 'entrypoint image' ? { image: ENTRYPOINT_IMAGE } : {}),
          },
        );
        const mark = f.panel.received.length;
        const created = await f.panel.command('create_server', { serverId: id, eggConfig });
        assert.equal(created.success, true, JSON.stringify(created.error));
        const started = await f.panel.command('start_server', {}, { serverId: id });
        assert.equal(started.success, true, JSON.stringify(started.error));
        const line = await f.panel.waitEvent(
          'server_log',
          (d) => d.serverId === id && d.message.startsWith('value=['),
          { since: mark },
        );
        // the value arrives as text, byte for byte
        assert.equal(line.data.message, `value=[${attack}]`);
        if (image !== 'entrypoint image') {
          // single-quoted placeholders mean the value too (the entrypoint image's sed leaves them literal)
          const sq = await f.panel.waitEvent(
            'server_log',
            (d) => d.serverId === id && d.message.startsWith('sq=['),
            {
              since: mark,
            },
          );
          assert.equal(sq.data.message, `sq=[${attack}]`);
        }
        await f.panel.waitEvent('server_log', (d) => d.serverId === id && d.message === 'end-of-run', {
          since: mark,
        });
        await f.panel.waitEvent(
          'server_status_changed',
          (d) => d.serverId === id && (d.currentStatus === 'crashed' || d.currentStatus === 'offline'),
          { since: mark },
        );
        const pwned = path.join(f.dataDir, 'servers', id, 'pwned');
        await assert.rejects(access(pwned), { code: 'ENOENT' }, `attack ${i} ran: ${pwned} exists`);
        await f.panel.command('delete_server', {}, { serverId: id });
      });
    }
  }
});
