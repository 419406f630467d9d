import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EggConfig } from '@cap/protocol';
import { CAP_DROP, containerSpec, installerSpec } from './container-spec.ts';

const base = {
  serverId: 's1',
  nodeId: 'n1',
  serverDir: '/data/servers/s1',
  bindIp: '0.0.0.0',
  timezone: 'UTC',
};

test('an image without an entrypoint runs the startup with /bin/sh -c, values from the environment', () => {
  const egg = EggConfig.parse({
    name: 'x',
    image: 'img',
    startup: 'run --port {{SERVER_PORT}} --name "{{NAME}}"',
    environment: { NAME: '$(touch /pwned); `id`' },
    ports: { '25565': 25565, '27015/udp': { hostPort: 27016, hostIp: '127.0.0.1' } },
    limits: { memory: '512m', swap: '256m', cpu: '1.5', pids: 100 },
  });
  const spec = containerSpec({ ...base, egg, imageEntrypoint: null });
  // {{VAR}} → ${VAR}: sh substitutes the value after parsing, so `$(…)` in it is never run
  // biome-ignore lint/suspicious/noTemplateCurlyInString: ${VAR} is shell syntax here, not a template
  assert.deepEqual(spec.Cmd, ['/bin/sh', '-c', 'run --port ${SERVER_PORT} --name "${NAME}"']);
  assert.ok(spec.Env?.includes('NAME=$(touch /pwned); `id`'));
  assert.equal(spec.User, undefined);
  assert.equal(spec.name, 'cap-s1');
  assert.equal(spec.Tty, true);
  assert.equal(spec.OpenStdin, true);
  assert.equal(spec.WorkingDir, '/home/container');
  assert.deepEqual(Object.keys(spec.ExposedPorts ?? {}).sort(), ['25565/tcp', '25565/udp', '27015/udp']);
  const hc = spec.HostConfig!;
  assert.deepEqual(hc.PortBindings['25565/udp'], [{ HostIp: '0.0.0.0', HostPort: '25565' }]);
  assert.deepEqual(hc.PortBindings['27015/udp'], [{ HostIp: '127.0.0.1', HostPort: '27016' }]);
  assert.equal(hc.Memory, 512 * 1024 ** 2);
  assert.equal(hc.MemorySwap, 768 * 1024 ** 2);
  assert.equal(hc.NanoCpus, 1.5e9);
  assert.equal(hc.PidsLimit, 100);
  assert.deepEqual(hc.CapDrop, CAP_DROP);
  assert.deepEqual(hc.SecurityOpt, ['no-new-privileges']);
  assert.deepEqual(hc.RestartPolicy, { Name: 'no' });
  assert.deepEqual(hc.Binds, ['/data/servers/s1:/home/container']);
  assert.ok(spec.Env?.includes('SERVER_MEMORY=512'));
  assert.deepEqual(spec.Labels, {
    'ctrl-alt-play.server': 's1',
    'ctrl-alt-play.node': 'n1',
    'ctrl-alt-play.managed': 'true',
  });
});

test('an image with its own entrypoint gets no Cmd: it expands STARTUP itself; unlimited stays unset', () => {
  const egg = EggConfig.parse({
    name: 'x',
    image: 'yolk',
    startup: 'java -jar {{JAR}}',
    environment: { JAR: 's.jar' },
  });
  const spec = containerSpec({ ...base, egg, imageEntrypoint: ['/entrypoint.sh'], user: '1000:1000' });
  assert.equal(spec.Cmd, undefined);
  assert.equal(spec.User, '1000:1000');
  // unexpanded, as Wings passes it: the entrypoint turns {{JAR}} into ${JAR}
  assert.ok(spec.Env?.includes('STARTUP=java -jar {{JAR}}'));
  assert.equal(spec.HostConfig?.Memory, undefined);
  assert.equal(spec.HostConfig?.NanoCpus, undefined);
  assert.equal(spec.HostConfig?.PidsLimit, 512);
  const unlimitedSwap = containerSpec({
    ...base,
    egg: EggConfig.parse({ name: 'x', image: 'i', limits: { memory: 256, swap: -1 } }),
    imageEntrypoint: null,
  });
  assert.equal(unlimitedSwap.HostConfig?.MemorySwap, -1);
});

test('the installer: script and files mounted, nothing else; root, hardened, installer limits', () => {
  const egg = EggConfig.parse({
    name: 'x',
    image: 'game',
    environment: { V: '1' },
    limits: { memory: 256 },
    install: { script: 'echo hi', container: 'debian:local', entrypoint: 'bash' },
  });
  const spec = installerSpec({ ...base, egg, scriptDir: '/data/servers/.install/s1' });
  assert.equal(spec.name, 'cap-install-s1');
  assert.equal(spec.Image, 'debian:local');
  assert.deepEqual(spec.Cmd, ['bash', '/mnt/install/install.sh']);
  assert.deepEqual(spec.Labels, { 'ctrl-alt-play.install': 's1', 'ctrl-alt-play.node': 'n1' });
  assert.ok(spec.Env?.includes('V=1'));
  assert.ok(spec.Env?.includes('SERVER_MEMORY=256'));
  const hc = spec.HostConfig!;
  assert.deepEqual(hc.Binds, ['/data/servers/s1:/mnt/server', '/data/servers/.install/s1:/mnt/install:ro']);
  assert.equal(hc.Memory, 1024 * 1024 ** 2);
  assert.equal(hc.NanoCpus, 1e9);
  assert.equal(hc.PidsLimit, 512);
  assert.deepEqual(hc.SecurityOpt, ['no-new-privileges']);
  assert.ok(hc.CapDrop?.includes('net_raw') && hc.CapDrop.includes('mknod'));
  assert.equal(hc.Privileged, undefined);
  assert.equal(hc.PortBindings, undefined);
  assert.throws(() =>
    installerSpec({ ...base, egg: EggConfig.parse({ name: 'x', image: 'i' }), scriptDir: '/t' }),
  );
});
