import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EggConfig } from '@cap/protocol';
import { doneMatcher, stripAnsi } from './done.ts';
import { fillStartup, serverEnvironment } from './startup.ts';
import { LineThrottle } from './throttle.ts';

test('fillStartup fills {{VAR}}, {{env.VAR}}, {{server.build.env.VAR}}; unknown is empty', () => {
  const env = { PORT: '25565', NAME: 'a b' };
  assert.equal(
    fillStartup('run {{PORT}} {{env.NAME}} {{server.build.env.PORT}} [{{MISSING}}]', env),
    'run 25565 a b 25565 []',
  );
  // values are not re-expanded: a value that looks like a placeholder stays literal
  assert.equal(fillStartup('{{A}}', { A: '{{B}}', B: 'x' }), '{{B}}');
});

test('serverEnvironment adds TZ, STARTUP, SERVER_MEMORY, SERVER_IP, SERVER_PORT', () => {
  const egg = EggConfig.parse({
    name: 'x',
    image: 'img',
    ports: { '25565': 25565, '27015/udp': { hostPort: 27016, hostIp: '127.0.0.1' } },
    environment: { MOTD: 'hi; rm -rf /' },
    limits: { memory: '1g' },
    startup: 'java -Xmx{{SERVER_MEMORY}}M --motd "{{MOTD}}"',
  });
  const env = serverEnvironment(egg, { bindIp: '0.0.0.0', timezone: 'UTC' });
  assert.equal(env.SERVER_MEMORY, '1024');
  assert.equal(env.SERVER_PORT, '25565');
  assert.equal(env.SERVER_IP, '0.0.0.0');
  assert.equal(env.TZ, 'UTC');
  assert.equal(env.STARTUP, 'java -Xmx1024M --motd "hi; rm -rf /"');
});

test('done patterns: substring, regex:, list, ANSI stripped', () => {
  assert.equal(doneMatcher(undefined), null);
  assert.equal(doneMatcher([]), null);
  const sub = doneMatcher('Done (')!;
  assert.ok(sub('[12:00] Done (3.2s)! For help'));
  assert.ok(!sub('Loading'));
  const re = doneMatcher('regex:^ready \\d+$')!;
  assert.ok(re('ready 42'));
  assert.ok(!re('not ready 42'));
  const list = doneMatcher(['alpha', 'regex:be+ta'])!;
  assert.ok(list('xx beeeta'));
  assert.ok(list('alpha'));
  assert.ok(doneMatcher('Server started')!('\x1b[32mServer\x1b[0m started'));
  assert.equal(stripAnsi('\x1b[1;31mred\x1b[0m'), 'red');
});

test('LineThrottle admits N lines per window and reports the dropped count', () => {
  let t = 0;
  const dropped: number[] = [];
  const th = new LineThrottle({ lines: 3, intervalMs: 100, onDropped: (n) => dropped.push(n), now: () => t });
  const admitted = Array.from({ length: 10 }, () => th.admit()).filter(Boolean).length;
  assert.equal(admitted, 3);
  t = 150;
  assert.equal(th.admit(), true);
  assert.deepEqual(dropped, [7]);
});
