import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  applyPullEvent,
  buildCreateRequest,
  type DockerContainer,
  emptyCreateForm,
  emptyFilter,
  emptyPull,
  filterContainers,
  JsonLines,
  LogDemuxer,
  LogLines,
  logsAsText,
  managedServerId,
  type NodeContainer,
  prunePreview,
  pullFraction,
  retarget,
  searchLogs,
  splitCommand,
  splitTag,
  statsFrom,
} from './docker.ts';

const c = (name: string, over: Partial<NodeContainer> = {}): NodeContainer => ({
  Id: `${name}000000000000000000`,
  Names: [`/${name}`],
  Image: 'ctrl-alt-play/busybox:latest',
  ImageID: 'sha256:bb',
  Command: 'sh',
  Created: 0,
  State: 'running',
  Status: 'Up',
  Ports: [],
  Labels: {},
  nodeId: 'n1',
  nodeName: 'local',
  ...over,
});

test('filters: name, image, label key and key=value, state, node, managed, free text; sorted by name', () => {
  const list = [
    c('web', { Labels: { tier: 'front' } }),
    c('db', { Image: 'postgres:16', State: 'exited', Labels: { tier: 'back' } }),
    c('game', {
      Labels: { 'ctrl-alt-play.server': 's1', 'ctrl-alt-play.managed': 'true' },
      nodeId: 'n2',
      nodeName: 'far',
    }),
  ];
  const names = (f: Partial<typeof emptyFilter>) =>
    filterContainers(list, { ...emptyFilter, ...f }).map((x) => x.Names[0]);
  assert.deepEqual(names({}), ['/db', '/game', '/web']);
  assert.deepEqual(names({ name: 'WE' }), ['/web']);
  assert.deepEqual(names({ image: 'postgres' }), ['/db']);
  assert.deepEqual(names({ label: 'tier' }), ['/db', '/web']);
  assert.deepEqual(names({ label: 'tier=back' }), ['/db']);
  assert.deepEqual(names({ label: 'tier=side' }), []);
  // a label named like an Object.prototype member is not "present"
  assert.deepEqual(names({ label: 'constructor' }), []);
  assert.deepEqual(names({ state: 'exited' }), ['/db']);
  assert.deepEqual(names({ node: 'n2' }), ['/game']);
  assert.deepEqual(names({ managed: 'managed' }), ['/game']);
  assert.deepEqual(names({ managed: 'unmanaged' }), ['/db', '/web']);
  assert.deepEqual(names({ text: 'far' }), ['/game']);
  assert.deepEqual(names({ text: 'tier=front' }), ['/web']);
  assert.deepEqual(names({ text: 'web', state: 'exited' }), []);
  assert.equal(managedServerId(list[2] as DockerContainer), 's1');
  assert.equal(managedServerId(list[0] as DockerContainer), null);
});

test('filtering 5,000 containers stays well under a frame budget', () => {
  const many = Array.from({ length: 5000 }, (_, i) => c(`c-${i}`, { State: i % 2 ? 'exited' : 'running' }));
  const t0 = performance.now();
  const out = filterContainers(many, { ...emptyFilter, text: 'c-4', state: 'running' });
  const ms = performance.now() - t0;
  assert.equal(out.length, 556);
  assert.ok(ms < 100, `${ms} ms`);
});

test('pull progress: per layer, download then extract, weighted by size, messages apart, errors end it', () => {
  const events = [
    { status: 'Pulling from library/busybox', id: 'latest' },
    { status: 'Pulling fs layer', id: 'aaa' },
    { status: 'Pulling fs layer', id: 'bbb' },
    { status: 'Downloading', id: 'aaa', progressDetail: { current: 50, total: 100 } },
    { status: 'Downloading', id: 'bbb', progressDetail: { current: 300, total: 300 } },
  ];
  let s = emptyPull();
  const lines = new JsonLines();
  const text = events.map((e) => JSON.stringify(e)).join('\n');
  // split mid-line to check a JSON value spanning chunks
  for (const v of [...lines.push(text.slice(0, 37)), ...lines.push(`${text.slice(37)}\n`)])
    s = applyPullEvent(s, v);
  assert.deepEqual(
    s.layers.map((l) => [l.id, l.phase, l.current, l.total, l.size]),
    [
      ['aaa', 'downloading', 50, 100, 100],
      ['bbb', 'downloading', 300, 300, 300],
    ],
  );
  assert.deepEqual(s.messages, ['latest: Pulling from library/busybox']);
  // (100 * 0.25 + 300 * 0.5) / 400
  assert.equal(pullFraction(s), (25 + 150) / 400);
  s = applyPullEvent(s, { status: 'Download complete', id: 'aaa' });
  s = applyPullEvent(s, { status: 'Extracting', id: 'aaa', progressDetail: { current: 100, total: 100 } });
  s = applyPullEvent(s, { status: 'Pull complete', id: 'aaa' });
  s = applyPullEvent(s, { status: 'Pull complete', id: 'bbb' });
  assert.equal(pullFraction(s), 1);
  s = applyPullEvent(s, { status: 'Already exists', id: 'ccc' });
  assert.equal(pullFraction(s), 1, 'an existing layer does not hold the bar back');
  s = applyPullEvent(s, { errorDetail: { message: 'manifest unknown' }, error: 'manifest unknown' });
  assert.equal(s.error, 'manifest unknown');
  assert.equal(s.done, true);
  assert.equal(applyPullEvent(s, 'junk'), s);
  assert.deepEqual(lines.push('not json\n'), []);
});

test('log frames: 8-byte headers split across chunks, stderr apart; a TTY passes bytes through', () => {
  const frame = (type: number, text: string) => {
    const data = new TextEncoder().encode(text);
    const out = new Uint8Array(8 + data.length);
    out[0] = type;
    new DataView(out.buffer).setUint32(4, data.length);
    out.set(data, 8);
    return out;
  };
  const all = new Uint8Array([...frame(1, 'hello\n'), ...frame(2, 'oops\n'), ...frame(1, 'x'.repeat(70000))]);
  const d = new LogDemuxer(false);
  const got = [...d.push(all.slice(0, 3)), ...d.push(all.slice(3, 17)), ...d.push(all.slice(17))];
  const dec = new TextDecoder();
  assert.deepEqual(
    got.map((g) => [g.stream, dec.decode(g.data).slice(0, 6)]),
    [
      ['stdout', 'hello\n'],
      ['stderr', 'oops\n'],
      ['stdout', 'xxxxxx'],
    ],
  );
  assert.equal(got[2]?.data.length, 70000);
  assert.deepEqual(
    new LogDemuxer(true).push(new Uint8Array([65])).map((g) => g.stream),
    ['stdout'],
  );
});

test('log lines: timestamps split off, partial lines kept, search plain and /regex/, download text', () => {
  const l = new LogLines(true);
  const a = l.push('stdout', '2026-12-01T10:00:00.123456789Z first line\n2026-12-01T10:00:01.000000000Z sec');
  assert.deepEqual(a, [{ stream: 'stdout', time: '2026-12-01T10:00:00.123456789Z', text: 'first line' }]);
  const b = [...l.push('stdout', 'ond ERROR\n'), ...l.push('stderr', 'no stamp'), ...l.flush()];
  assert.deepEqual(
    b.map((x) => [x.time, x.text]),
    [
      ['2026-12-01T10:00:01.000000000Z', 'second ERROR'],
      [null, 'no stamp'],
    ],
  );
  const lines = [...a, ...b];
  assert.deepEqual(
    searchLogs(lines, 'error').lines.map((x) => x.text),
    ['second ERROR'],
  );
  assert.deepEqual(
    searchLogs(lines, '/^f.*e$/').lines.map((x) => x.text),
    ['first line'],
  );
  assert.deepEqual(
    searchLogs(lines, '/Sec/i').lines.map((x) => x.text),
    ['second ERROR'],
  );
  assert.match(searchLogs(lines, '/(/').error ?? '', /.+/);
  assert.equal(searchLogs(lines, '').lines.length, 3);
  assert.equal(
    logsAsText(lines),
    '2026-12-01T10:00:00.123456789Z first line\n2026-12-01T10:00:01.000000000Z second ERROR\nno stamp\n',
  );
});

test('stats: CPU % from the deltas, memory without the inactive file cache, networks summed', () => {
  const s = statsFrom({
    cpu_stats: { cpu_usage: { total_usage: 3_000 }, system_cpu_usage: 20_000, online_cpus: 2 },
    precpu_stats: { cpu_usage: { total_usage: 1_000 }, system_cpu_usage: 10_000 },
    memory_stats: { usage: 10_000, limit: 100_000, stats: { inactive_file: 4_000 } },
    networks: { eth0: { rx_bytes: 5, tx_bytes: 7 }, eth1: { rx_bytes: 1, tx_bytes: 1 } },
    blkio_stats: {
      io_service_bytes_recursive: [
        { op: 'Read', value: 9 },
        { op: 'write', value: 3 },
      ],
    },
    pids_stats: { current: 4 },
  });
  assert.deepEqual(s, {
    cpu: 40,
    memUsed: 6_000,
    memLimit: 100_000,
    rx: 6,
    tx: 8,
    blkRead: 9,
    blkWrite: 3,
    pids: 4,
  });
  assert.equal(statsFrom({}).cpu, 0);
});

test('prune preview: stopped containers, unused dangling images, unused non-builtin networks and volumes', () => {
  const containers = [
    c('up', {
      ImageID: 'sha256:used',
      NetworkSettings: { Networks: { appnet: { NetworkID: 'N1' } } },
      Mounts: [{ Type: 'volume', Name: 'data', Source: '', Destination: '/d' }],
    }),
    c('down', { State: 'exited', ImageID: 'sha256:old' }),
  ];
  const images = [
    { Id: 'sha256:used', RepoTags: ['<none>:<none>'], RepoDigests: null, Created: 0, Size: 1 },
    { Id: 'sha256:dangling', RepoTags: null, RepoDigests: null, Created: 0, Size: 10 },
    { Id: 'sha256:tagged', RepoTags: ['x:1'], RepoDigests: null, Created: 0, Size: 100 },
    { Id: 'sha256:old', RepoTags: null, RepoDigests: null, Created: 0, Size: 1000 },
  ];
  const networks = ['bridge', 'host', 'none', 'appnet', 'spare'].map((n) => ({
    Id: n === 'appnet' ? 'N1' : n,
    Name: n,
    Driver: 'bridge',
    Scope: 'local',
  }));
  const volumes = [
    { Name: 'data', Driver: 'local', Mountpoint: '/v/data' },
    { Name: 'old', Driver: 'local', Mountpoint: '/v/old', UsageData: { Size: 5, RefCount: 0 } },
  ];
  const p = prunePreview({ containers, images, networks, volumes });
  assert.deepEqual(
    p.containers.map((x) => x.Names[0]),
    ['/down'],
  );
  // sha256:old is used by a stopped container: it stays until that one is gone (as the Engine does)
  assert.deepEqual(
    p.images.map((x) => x.Id),
    ['sha256:dangling'],
  );
  assert.deepEqual(
    p.networks.map((x) => x.Name),
    ['spare'],
  );
  assert.deepEqual(
    p.volumes.map((x) => x.Name),
    ['old'],
  );
  assert.equal(p.bytes, 15);
  assert.deepEqual(
    prunePreview({ containers, images, networks, volumes }, true).images.map((x) => x.Id),
    ['sha256:dangling', 'sha256:tagged'],
  );
});

test('create wizard: command split like a shell, fields checked, the Engine body built', () => {
  assert.deepEqual(splitCommand(`sh -c "echo 'hi there'; sleep 1" x\\ y ''`), [
    'sh',
    '-c',
    "echo 'hi there'; sleep 1",
    'x y',
    '',
  ]);
  assert.deepEqual(splitCommand('["a b","c"]'), ['a b', 'c']);
  assert.throws(() => splitCommand('sh -c "oops'), /unbalanced/);
  const bad = buildCreateRequest({
    ...emptyCreateForm(),
    name: '-bad',
    command: '"x',
    env: [{ key: 'A B', value: '1' }],
    ports: [{ host: '70000', container: '80', protocol: 'tcp', hostIp: '' }],
    mounts: [{ type: 'bind', source: 'rel', target: '/x', readOnly: false }],
    memoryMiB: '1',
    cpus: 'lots',
  });
  assert.equal(bad.request, null);
  assert.deepEqual(Object.keys(bad.errors).sort(), [
    'command',
    'cpus',
    'env.0',
    'image',
    'memoryMiB',
    'mounts.0',
    'name',
    'ports.0',
  ]);
  const ok = buildCreateRequest({
    ...emptyCreateForm(),
    image: 'ctrl-alt-play/busybox:latest',
    name: 'web',
    command: 'sh -c "sleep 100"',
    entrypoint: '',
    env: [
      { key: 'A', value: 'b=c' },
      { key: '', value: '' },
    ],
    ports: [
      { host: '8081', container: '80', protocol: 'tcp', hostIp: '127.0.0.1' },
      { host: '', container: '53', protocol: 'udp', hostIp: '' },
    ],
    mounts: [{ type: 'volume', source: 'data', target: '/data', readOnly: true }],
    network: 'appnet',
    restart: 'on-failure',
    maxRetries: '3',
    memoryMiB: '64',
    cpus: '0.5',
    labels: [{ key: 'tier', value: 'front' }],
  });
  assert.deepEqual(ok.errors, {});
  assert.deepEqual(ok.request, {
    name: 'web',
    body: {
      Image: 'ctrl-alt-play/busybox:latest',
      Cmd: ['sh', '-c', 'sleep 100'],
      Env: ['A=b=c'],
      ExposedPorts: { '80/tcp': {}, '53/udp': {} },
      Labels: { tier: 'front' },
      HostConfig: {
        RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 3 },
        PortBindings: {
          '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '8081' }],
          '53/udp': [{ HostIp: '', HostPort: '' }],
        },
        Mounts: [{ Type: 'volume', Source: 'data', Target: '/data', ReadOnly: true }],
        NetworkMode: 'appnet',
        Memory: 64 * 1024 * 1024,
        NanoCpus: 500_000_000,
      },
    },
  });
});

test('retarget and splitTag: a local image pushed to a chosen registry', () => {
  assert.equal(
    retarget('ctrl-alt-play/busybox:latest', '127.0.0.1:5000'),
    '127.0.0.1:5000/ctrl-alt-play/busybox:latest',
  );
  assert.equal(retarget('ghcr.io/me/app:1', '127.0.0.1:5000'), '127.0.0.1:5000/me/app:1');
  assert.equal(retarget('localhost/app', 'ghcr.io'), 'ghcr.io/app');
  assert.equal(retarget('127.0.0.1:5000/x/y:2', 'docker.io'), 'x/y:2');
  assert.deepEqual(splitTag('127.0.0.1:5000/x/y'), { name: '127.0.0.1:5000/x/y', tag: 'latest' });
  assert.deepEqual(splitTag('127.0.0.1:5000/x/y:v2'), { name: '127.0.0.1:5000/x/y', tag: 'v2' });
});
