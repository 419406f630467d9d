/**
 * The systemd units in deploy/systemd pass `systemd-analyze verify` (in a root made for it: the
 * system's own units, the executables where the units expect them) and keep their sandboxing
 * (`systemd-analyze security --offline`: an exposure level under 3, "OK", for both).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, linkSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

const root = path.resolve(import.meta.dirname, '..');
const UNITS = ['ctrl-alt-play-agent.service', 'ctrl-alt-play-panel.service'];
const hasSystemd = existsSync('/usr/bin/systemd-analyze');

describe('systemd units', {
  skip: !hasSystemd && !process.env['CAP_REQUIRE_REAL'] ? 'no systemd-analyze' : false,
}, () => {
  const fake = mkdtempSync(path.join(tmpdir(), 'cap-systemd-'));

  before(() => {
    execFileSync(
      process.execPath,
      [path.join(root, 'scripts/build-dist.ts'), 'bin', '--arch', process.arch],
      {
        stdio: 'pipe',
      },
    );
    mkdirSync(path.join(fake, 'usr/local/bin'), { recursive: true });
    mkdirSync(path.join(fake, 'usr/lib/systemd'), { recursive: true });
    mkdirSync(path.join(fake, 'etc/systemd/system'), { recursive: true });
    mkdirSync(path.join(fake, 'etc/ctrl-alt-play'), { recursive: true });
    cpSync('/usr/lib/systemd/system', path.join(fake, 'usr/lib/systemd/system'), {
      recursive: true,
      verbatimSymlinks: true,
    });
    const place = (from: string, to: string) => {
      try {
        linkSync(from, to);
      } catch {
        cpSync(from, to);
      }
    };
    place(
      path.join(root, `dist/bin/ctrl-alt-play-agent-linux-${process.arch}`),
      path.join(fake, 'usr/local/bin/ctrl-alt-play-agent'),
    );
    place(process.execPath, path.join(fake, 'usr/local/bin/node'));
    for (const env of ['agent.env', 'panel.env'])
      writeFileSync(path.join(fake, 'etc/ctrl-alt-play', env), '');
    for (const u of UNITS)
      cpSync(path.join(root, 'deploy/systemd', u), path.join(fake, 'etc/systemd/system', u));
  });

  after(() => rmSync(fake, { recursive: true, force: true }));

  test('systemd-analyze verify passes for both units', () => {
    const r = spawnSync(
      'systemd-analyze',
      ['verify', `--root=${fake}`, ...UNITS.map((u) => path.join(fake, 'etc/systemd/system', u))],
      { encoding: 'utf8' },
    );
    const ours = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes('ctrl-alt-play'));
    assert.deepEqual(ours, [], 'no complaint about our units');
    assert.equal(r.status, 0, r.stderr);
  });

  test('a broken unit fails the same check (the check can fail)', () => {
    const broken = path.join(fake, 'etc/systemd/system/ctrl-alt-play-broken.service');
    writeFileSync(broken, '[Service]\nExecStart=/usr/local/bin/not-there\nProtectSystem=sideways\n');
    const r = spawnSync('systemd-analyze', ['verify', `--root=${fake}`, broken], { encoding: 'utf8' });
    rmSync(broken);
    assert.notEqual(r.status, 0);
  });

  test('both are sandboxed: exposure level under 3 (OK)', () => {
    for (const u of UNITS) {
      const r = spawnSync(
        'systemd-analyze',
        ['security', '--offline=yes', `--root=${fake}`, path.join(fake, 'etc/systemd/system', u)],
        { encoding: 'utf8' },
      );
      const m = /Overall exposure level for \S+: ([\d.]+) (\S+)/.exec(r.stdout);
      assert.ok(m, r.stdout + r.stderr);
      assert.ok(Number(m[1]) < 3, `${u}: ${m[0]}`);
    }
  });
});
