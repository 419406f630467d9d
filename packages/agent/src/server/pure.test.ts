import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EggConfig } from '@cap/protocol';
import { firstHost } from '../environment/docker/docker.ts';
import { LineSplitter, MAX_LINE_CHARS, truncationMarker } from './console-lines.ts';
import { serverEnvironment, startupForEntrypoint, startupForShell } from './startup.ts';
import { LineThrottle } from './throttle.ts';

test('startup: {{VAR}} and its aliases become shell variables for sh, {{VAR}} for an entrypoint', () => {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: ${VAR} is shell syntax here, not a template
  const line = 'run {{PORT}} {{env.NAME}} {{ server.build.env.PORT }} [{{MISSING}}] ${KEEP}';
  // biome-ignore lint/suspicious/noTemplateCurlyInString: ${VAR} is shell syntax here, not a template
  assert.equal(startupForShell(line), 'run ${PORT} ${NAME} ${PORT} [${MISSING}] ${KEEP}');
  // biome-ignore lint/suspicious/noTemplateCurlyInString: ${VAR} is shell syntax here, not a template
  assert.equal(startupForEntrypoint(line), 'run {{PORT}} {{NAME}} {{PORT}} [{{MISSING}}] ${KEEP}');
  // inside single quotes the value is still meant: the quote is closed around a quoted expansion
  assert.equal(
    startupForShell(`redis --requirepass '{{PW}}' -a 'x{{PW}}y' "{{PW}}" \\'{{PW}} "it's {{PW}}"`),
    `redis --requirepass ''"\${PW}"'' -a 'x'"\${PW}"'y' "\${PW}" \\'\${PW} "it's \${PW}"`,
  );
  // only names are placeholders: anything else stays literal text
  assert.equal(startupForShell('{{$(id)}} {{a b}}'), '{{$(id)}} {{a b}}');
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
  // Wings passes STARTUP unexpanded: the image's entrypoint substitutes the values
  assert.equal(env.STARTUP, 'java -Xmx{{SERVER_MEMORY}}M --motd "{{MOTD}}"');
  assert.equal(env.MOTD, 'hi; rm -rf /');
});

test('serverEnvironment: values the Agent derives win over stale copies in the environment', () => {
  const egg = EggConfig.parse({
    name: 'x',
    image: 'img',
    ports: { '27960': { hostPort: 27960, hostIp: '127.0.0.1' } },
    environment: { SERVER_PORT: '', SERVER_IP: '0.0.0.0', SERVER_MEMORY: '0', STARTUP: 'old' },
    limits: { memory: 512 },
    startup: 'go {{SERVER_PORT}}',
  });
  const env = serverEnvironment(egg, { bindIp: '0.0.0.0', timezone: 'UTC' });
  assert.equal(env.SERVER_PORT, '27960');
  assert.equal(env.SERVER_IP, '127.0.0.1');
  assert.equal(env.SERVER_MEMORY, '512');
  assert.equal(env.STARTUP, 'go {{SERVER_PORT}}');
  // without ports or limits the egg's own values stay
  const bare = serverEnvironment(
    EggConfig.parse({ name: 'x', image: 'i', environment: { SERVER_PORT: '7777' } }),
    { bindIp: '0.0.0.0', timezone: 'UTC' },
  );
  assert.equal(bare.SERVER_PORT, '7777');
  assert.equal(bare.SERVER_MEMORY, '0');
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

test('firstHost: the bridge address from its subnet when the Engine states no gateway', () => {
  assert.equal(firstHost('172.17.0.0/16'), '172.17.0.1');
  assert.equal(firstHost('10.1.2.128/25'), '10.1.2.129');
  assert.equal(firstHost('192.168.5.77/24'), '192.168.5.1');
  assert.equal(firstHost('fd00::/64'), undefined);
  assert.equal(firstHost('10.0.0.1/32'), undefined);
  assert.equal(firstHost(undefined), undefined);
});

test('LineSplitter: lines cut at the cap with a marker; an unfinished line never grows past it', () => {
  const out: string[] = [];
  const sp = new LineSplitter((l) => out.push(l), 8);
  sp.push('short\r\nabc');
  sp.push('defghijklmnop'); // 16 chars without a newline: 8 kept, 8 counted
  sp.push('é\nnext');
  assert.deepEqual(out, ['short', `abcdefgh${truncationMarker(10)}`]);
  sp.flush();
  assert.deepEqual(out.at(-1), 'next');
  // a huge chunk costs no more than the cap
  const big = new LineSplitter((l) => out.push(l));
  big.push('x'.repeat(4 * 1024 * 1024));
  big.push('\n');
  assert.equal(
    out.at(-1),
    `${'x'.repeat(MAX_LINE_CHARS)}${truncationMarker(4 * 1024 * 1024 - MAX_LINE_CHARS)}`,
  );
});

test('LineThrottle as a token bucket: bursts at one instant still get the full rate over time', () => {
  let t = 0;
  let dropped = 0;
  const th = new LineThrottle({
    lines: 100,
    intervalMs: 100,
    onDropped: (n) => (dropped += n),
    now: () => t,
  });
  let admitted = 0;
  // one chunk of 500 lines every 150 ms for 3 s: the budget is 100 lines / 100 ms
  for (t = 0; t < 3000; t += 150) for (let i = 0; i < 500; i++) if (th.admit()) admitted++;
  th.flush();
  assert.equal(admitted + dropped, 20 * 500);
  assert.ok(admitted >= 100 * 20, `admitted ${admitted}`);
  assert.ok(admitted <= 3000 + 100, `admitted ${admitted}`);
});
