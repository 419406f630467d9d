import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CodedError } from '@cap/protocol';
import { importTemplate } from '@cap/protocol/templates/index.ts';
import { applyConfigFiles, type ConfigContext, configContextFromEnvironment } from './index.ts';
import { resolveConfigPath } from './paths.ts';
import { decide, fillPlaceholders } from './placeholders.ts';
import { parseKeyPath, rewriteJson, rewriteYaml } from './structured.ts';
import { rewriteFile, rewriteIni, rewriteProperties, splitIniKey } from './text-parsers.ts';
import { rewriteXml, scanXml } from './xml.ts';

const ctx: ConfigContext = {
  serverPort: 25577,
  serverIp: '10.0.0.5',
  memoryMiB: 2048,
  environment: { SERVER_NAME: 'My Server', discord_token: 'tok', MAX_PLAYERS: '32', QUERY_PORT: '27016' },
  dockerInterface: '172.18.0.1',
};

let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'cap-config-files-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function serverRoot(): Promise<string> {
  const root = join(tmp, `root-${Math.random().toString(36).slice(2)}`);
  await mkdir(root);
  return root;
}

describe('placeholders', () => {
  it('resolves every placeholder the eggs use', () => {
    const cases: [string, string][] = [
      ['{{server.build.default.port}}', '25577'],
      ['{{server.allocations.default.port}}', '25577'],
      ['{{server.build.default.ip}}', '10.0.0.5'],
      ['{{server.allocations.default.ip}}', '10.0.0.5'],
      ['{{server.build.memory}}', '2048'],
      ['{{server.build.env.SERVER_NAME}}', 'My Server'],
      ['{{server.environment.MAX_PLAYERS}}', '32'],
      ['{{env.discord_token}}', 'tok'],
      ['{{env.DISCORD_TOKEN}}', 'tok'], // Pelican upper-cased the name
      ['{{config.docker.interface}}', '172.18.0.1'],
      ['{{QUERY_PORT}}', '27016'], // the bare-name egg bug
      ['{{server.build.env.NOPE}}', ''],
      ['{{ server.build.default.port }}', '25577'],
      ['port={{server.build.default.port}} name={{env.SERVER_NAME}}', 'port=25577 name=My Server'],
    ];
    for (const [input, expected] of cases) assert.equal(fillPlaceholders(input, ctx), expected, input);
  });

  it('decides if-value maps, literal and regex with back-references', () => {
    const spec = {
      'regex:^(127\\.0\\.0\\.1|localhost)(:\\d{1,5})?$': '{{config.docker.interface}}$2',
      old: 'new',
    };
    assert.deepEqual(decide(spec, 'localhost:25565', ctx), { set: true, value: '172.18.0.1:25565' });
    assert.deepEqual(decide(spec, '127.0.0.1', ctx), { set: true, value: '172.18.0.1' });
    assert.deepEqual(decide(spec, 'mc.example.com:25565', ctx), { set: false });
    assert.deepEqual(decide(spec, 'old', ctx), { set: true, value: 'new' });
    assert.deepEqual(decide(spec, undefined, ctx), { set: false });
    // a `$` in a value is literal in a regex replacement
    const dollar = { ...ctx, environment: { P: 'a$1b' } };
    assert.deepEqual(decide({ 'regex:^(x)$': '{{env.P}}' }, 'x', dollar), { set: true, value: 'a$1b' });
    assert.deepEqual(decide(5, 'x', ctx), { set: true, value: 5 });
  });
});

describe('configContextFromEnvironment', () => {
  it('reads the system values templateToEggConfig sets', () => {
    const env = { SERVER_PORT: '27960', SERVER_IP: '0.0.0.0', SERVER_MEMORY: '512', MAP: 'dm4' };
    const c = configContextFromEnvironment(env, { dockerInterface: '172.17.0.1' });
    assert.equal(
      fillPlaceholders('{{server.build.default.port}} {{server.build.memory}} {{env.MAP}}', c),
      '27960 512 dm4',
    );
    assert.equal(fillPlaceholders('{{config.docker.interface}}', c), '172.17.0.1');
    assert.equal(configContextFromEnvironment({ SERVER_PORT: '' }).serverPort, undefined);
  });
});

describe('file parser', () => {
  it('replaces whole lines by prefix, keeping indentation and other lines', () => {
    const before = '# comment\r\ntoken = "abc"\r\n  port = 1\r\nother\r\n';
    const after = rewriteFile(
      before,
      { 'token =': 'token = "{{env.discord_token}}"', 'port =': 'port = {{server.build.default.port}}' },
      ctx,
    );
    assert.equal(after, '# comment\r\ntoken = "tok"\r\n  port = 25577\r\nother\r\n');
    // a key that looks like a regex never matches, as in Wings
    assert.equal(rewriteFile('token = "x"\n', { 'token = "(.*)"': 'y' }, ctx), 'token = "x"\n');
  });
});

describe('properties parser', () => {
  it('sets values in place, keeps comments and order, appends missing keys', () => {
    const before = [
      '#Minecraft server properties',
      '! another comment',
      'server-ip=1.2.3.4',
      'server-port = 25565',
      'motd=A Minecraft Server',
      'long=a \\',
      '   b',
      'enable-query=false',
      '',
    ].join('\n');
    const after = rewriteProperties(
      before,
      {
        'server-ip': '',
        'server-port': '{{server.build.default.port}}',
        'query.port': '{{server.build.default.port}}',
        long: 'c:\\path',
        'enable-query': { false: 'true' },
        motd: { nomatch: 'x' },
      },
      ctx,
    );
    assert.equal(
      after,
      [
        '#Minecraft server properties',
        '! another comment',
        'server-ip=',
        'server-port = 25577',
        'motd=A Minecraft Server',
        'long=c:\\\\path',
        'enable-query=true',
        'query.port=25577',
        '',
      ].join('\n'),
    );
  });

  it('creates a file from nothing', () => {
    assert.equal(rewriteProperties('', { 'server-port': 1 }, ctx), 'server-port=1\n');
  });
});

describe('ini parser', () => {
  it('splits section keys like the eggs write them', () => {
    assert.deepEqual(splitIniKey('[/Script/Astro.AstroServerSettings].PublicIP'), {
      section: '/Script/Astro.AstroServerSettings',
      key: 'PublicIP',
    });
    assert.deepEqual(splitIniKey('[Host Settings].MaxPlayers'), {
      section: 'Host Settings',
      key: 'MaxPlayers',
    });
    assert.deepEqual(splitIniKey('User:admin.Password'), { section: 'User:admin', key: 'Password' });
    assert.deepEqual(splitIniKey('url.Port'), { section: 'url', key: 'Port' });
    assert.deepEqual(splitIniKey('Key'), { section: '', key: 'Key' });
  });

  it('rewrites in place, inserts into a section, adds a missing section', () => {
    const before = [
      '; top comment',
      'global=1',
      '[URL]',
      'Port=7777',
      '',
      '[/Script/Astro.AstroServerSettings]',
      'PublicIP=',
      '# keep me',
      'ServerName = old',
      '',
      '[Host Settings]',
      'MaxPlayers=8',
    ].join('\r\n');
    const after = rewriteIni(
      before,
      {
        'url.Port': '{{server.build.default.port}}',
        '[/Script/Astro.AstroServerSettings].PublicIP': '{{server.build.default.ip}}',
        '[/Script/Astro.AstroServerSettings].ServerName': '{{env.SERVER_NAME}}',
        '[/Script/Astro.AstroServerSettings].OwnerName': 'me',
        '[Host Settings].MaxPlayers': '{{server.environment.MAX_PLAYERS}}',
        '[SystemSettings].net.AllowEncryption': 'false',
        global: '2',
      },
      ctx,
    );
    assert.equal(
      after,
      [
        '; top comment',
        'global=2',
        '[URL]',
        'Port=25577',
        '',
        '[/Script/Astro.AstroServerSettings]',
        'PublicIP=10.0.0.5',
        '# keep me',
        'ServerName = My Server',
        'OwnerName=me',
        '',
        '[Host Settings]',
        'MaxPlayers=32',
        '',
        '[SystemSettings]',
        'net.AllowEncryption=false',
      ].join('\r\n'),
    );
  });
});

describe('yaml parser', () => {
  it('keeps comments, follows indexes and wildcards, applies regex if-values', () => {
    const before = [
      '# BungeeCord config',
      'listeners:',
      '- query_port: 25577',
      '  host: 0.0.0.0:25577 # the bind address',
      '  motd: hi',
      'servers:',
      '  lobby:',
      '    address: localhost:25565',
      '  remote:',
      '    address: mc.example.com:25565',
      'ip_forward: false',
      '',
    ].join('\n');
    const after = rewriteYaml(
      before,
      {
        'listeners[0].query_port': '{{server.allocations.default.port}}',
        'listeners[0].host': '0.0.0.0:{{server.allocations.default.port}}',
        'servers.*.address': {
          'regex:^(127\\.0\\.0\\.1|localhost)(:\\d{1,5})?$': '{{config.docker.interface}}$2',
        },
        ip_forward: 'true',
        'new.nested.key': '{{env.SERVER_NAME}}',
      },
      { ...ctx, serverPort: 30000 },
    );
    assert.match(after, /^# BungeeCord config/);
    assert.match(after, /- query_port: 30000\n/);
    assert.match(after, /host: 0\.0\.0\.0:30000 # the bind address/);
    assert.match(after, /address: 172\.18\.0\.1:25565\n/);
    assert.match(after, /address: mc\.example\.com:25565\n/);
    assert.match(after, /ip_forward: true\n/);
    assert.match(after, /new:\n {2}nested:\n {4}key: My Server\n/);
  });

  it('parses key paths', () => {
    assert.deepEqual(parseKeyPath('listeners[0].host'), ['listeners', 0, 'host']);
    assert.deepEqual(parseKeyPath('a.*.b[2][3]'), ['a', '*', 'b', 2, 3]);
  });

  it('refuses a broken file', () => {
    assert.throws(
      () => rewriteYaml('a: [\n', { a: 1 }, ctx),
      (e: unknown) => e instanceof CodedError && e.code === 'CONFIG_INVALID',
    );
  });
});

describe('json parser', () => {
  it('sets nested values with types, keeps string-typed keys strings and the indentation', () => {
    const before =
      '{\n    "port": 1,\n    "name": "x",\n    "list": [{"host": "a"}],\n    "flag": false\n}\n';
    const after = rewriteJson(
      before,
      {
        port: '{{server.build.default.port}}',
        name: '12345',
        'list[0].host': '{{server.build.default.ip}}',
        flag: 'true',
        'deep.er': '{{env.SERVER_NAME}}',
      },
      ctx,
    );
    assert.deepEqual(JSON.parse(after), {
      port: 25577,
      name: '12345',
      list: [{ host: '10.0.0.5' }],
      flag: true,
      deep: { er: 'My Server' },
    });
    assert.match(after, /^\{\n {4}"port": 25577,/);
  });

  it('does not pollute prototypes', () => {
    const after = rewriteJson('{}', { '__proto__.polluted': 'yes', 'constructor.prototype.p2': 'yes' }, ctx);
    rewriteYaml('a: 1\n', { '__proto__.polluted': 'yes', 'constructor.prototype.p2': 'yes' }, ctx);
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
    assert.equal(({} as Record<string, unknown>)['p2'], undefined);
    assert.deepEqual(Object.keys(JSON.parse(after)), ['__proto__', 'constructor']);
  });
});

describe('xml parser', () => {
  const cfg = [
    '<?xml version="1.0"?>',
    '<!-- Space Engineers -->',
    '<MyConfigDedicated xmlns:xsd="http://www.w3.org/2001/XMLSchema">',
    '  <SessionSettings>',
    '    <GameMode>Creative</GameMode>',
    '    <MaxPlayers>4</MaxPlayers>',
    '    <Flag />',
    '  </SessionSettings>',
    '  <ServerPort>27016</ServerPort>',
    '  <ServerName attr="a>b">old</ServerName>',
    '</MyConfigDedicated>',
    '',
  ].join('\n');

  it('edits text in place and creates missing elements', () => {
    const after = rewriteXml(
      cfg,
      {
        'MyConfigDedicated.SessionSettings.MaxPlayers': '{{server.build.env.MAX_PLAYERS}}',
        'MyConfigDedicated.SessionSettings.Flag': 'true',
        'MyConfigDedicated.ServerPort': '{{server.build.default.port}}',
        'MyConfigDedicated.ServerName': '{{env.SERVER_NAME}} <&>',
        'MyConfigDedicated.LoadWorld': 'Z:\\home\\container\\Saves\\{{env.SERVER_NAME}}\\Sandbox.sbc',
        'MyConfigDedicated.SessionSettings.GameMode': { Creative: 'Survival' },
        'WrongRoot.X': 'never',
      },
      ctx,
    );
    assert.equal(
      after,
      [
        '<?xml version="1.0"?>',
        '<!-- Space Engineers -->',
        '<MyConfigDedicated xmlns:xsd="http://www.w3.org/2001/XMLSchema">',
        '  <SessionSettings>',
        '    <GameMode>Survival</GameMode>',
        '    <MaxPlayers>32</MaxPlayers>',
        '    <Flag>true</Flag>',
        '  </SessionSettings>',
        '  <ServerPort>25577</ServerPort>',
        '  <ServerName attr="a>b">My Server &lt;&amp;&gt;</ServerName>',
        '  <LoadWorld>Z:\\home\\container\\Saves\\My Server\\Sandbox.sbc</LoadWorld>',
        '</MyConfigDedicated>',
        '',
      ].join('\n'),
    );
    // idempotent
    assert.equal(rewriteXml(after, { 'MyConfigDedicated.ServerPort': '25577' }, ctx), after);
  });

  it('refuses malformed XML', () => {
    for (const bad of ['<a><b></a>', '<a>', '<a></a><b></b>', '<a attr="x></a>']) {
      assert.throws(
        () => scanXml(bad),
        (e: unknown) => e instanceof CodedError && e.code === 'CONFIG_INVALID',
        bad,
      );
    }
  });
});

describe('paths and applyConfigFiles', () => {
  it('resolves /x, ./x and sub/dir/x inside the root, refuses ..', async () => {
    const root = await serverRoot();
    const { realpath } = await import('node:fs/promises');
    const real = await realpath(root);
    assert.equal(
      await resolveConfigPath(root, '/.local/share/Game/server_config.sii'),
      join(real, '.local/share/Game/server_config.sii'),
    );
    assert.equal(await resolveConfigPath(root, './cfg/x.ini'), join(real, 'cfg/x.ini'));
    for (const bad of ['../outside.cfg', 'a/../../outside.cfg', '..', '/', '']) {
      await assert.rejects(
        resolveConfigPath(root, bad),
        (e: unknown) => e instanceof CodedError && e.code === 'PATH_OUTSIDE_ROOT',
        bad,
      );
    }
  });

  it('refuses symlinks out of the root and does not write through them', async () => {
    const root = await serverRoot();
    const outside = join(tmp, `outside-${Math.random().toString(36).slice(2)}`);
    await mkdir(outside);
    await writeFile(join(outside, 'server.properties'), 'server-port=1\n');
    await symlink(join(outside, 'server.properties'), join(root, 'server.properties'));
    await symlink(outside, join(root, 'cfg'));
    const results = await applyConfigFiles(
      root,
      {
        'server.properties': {
          parser: 'properties',
          find: { 'server-port': '{{server.build.default.port}}' },
        },
        'cfg/server.properties': { parser: 'properties', find: { 'server-port': '2' } },
        'cfg/new.json': { parser: 'json', find: { a: 'b' } },
        '../escape.yml': { parser: 'yaml', find: { a: 'b' } },
      },
      ctx,
    );
    assert.deepEqual(
      results.map((r) => [r.file, r.ok, r.code]),
      [
        ['server.properties', false, 'PATH_OUTSIDE_ROOT'],
        ['cfg/server.properties', false, 'PATH_OUTSIDE_ROOT'],
        ['cfg/new.json', false, 'PATH_OUTSIDE_ROOT'],
        ['../escape.yml', false, 'PATH_OUTSIDE_ROOT'],
      ],
    );
    assert.equal(await readFile(join(outside, 'server.properties'), 'utf8'), 'server-port=1\n');
    assert.equal(existsSync(join(outside, 'new.json')), false);
    assert.equal(existsSync(join(tmp, 'escape.yml')), false);
  });

  it('keeps a BOM and Latin-1 bytes as they were', async () => {
    const root = await serverRoot();
    await writeFile(
      join(root, 'bom.json'),
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a": 1}')]),
    );
    // "motd=Caf\xe9" in ISO-8859-1, not valid UTF-8
    await writeFile(join(root, 'latin1.properties'), Buffer.from('motd=Caf\xe9\nserver-port=1\n', 'latin1'));
    const results = await applyConfigFiles(
      root,
      {
        'bom.json': { parser: 'json', find: { a: '2' } },
        'latin1.properties': {
          parser: 'properties',
          find: { 'server-port': '{{server.build.default.port}}' },
        },
      },
      ctx,
    );
    assert.deepEqual(
      results.map((r) => r.ok),
      [true, true],
    );
    const bom = await readFile(join(root, 'bom.json'));
    assert.deepEqual([...bom.subarray(0, 3)], [0xef, 0xbb, 0xbf]);
    assert.deepEqual(JSON.parse(bom.subarray(3).toString('utf8')), { a: 2 });
    assert.deepEqual(
      await readFile(join(root, 'latin1.properties')),
      Buffer.from('motd=Caf\xe9\nserver-port=25577\n', 'latin1'),
    );
  });

  it('applies a real egg (Pelican BungeeCord) and reports each file', async () => {
    const corpus = fileURLToPath(new URL('../../../../../shared/eggs/', import.meta.url));
    const egg = importTemplate(
      await readFile(
        join(corpus, 'pelican-eggs__minecraft/proxy/java/bungeecord/egg-bungeecord.yaml'),
        'utf8',
      ),
      { filename: 'egg-bungeecord.yaml' },
    ).template;
    const root = await serverRoot();
    await writeFile(
      join(root, 'config.yml'),
      'listeners:\n- query_port: 25577\n  host: 0.0.0.0:25577\nservers:\n  lobby:\n    address: localhost:25565\n',
    );
    const files = {
      ...egg.config.files,
      'plugins/x/settings.json': { parser: 'json' as const, find: { port: '{{server.build.default.port}}' } },
      'missing.txt': { parser: 'file' as const, find: { 'a=': 'a=1' } },
      'broken.json': { parser: 'json' as const, find: { a: 1 } },
    };
    await writeFile(join(root, 'broken.json'), '{oops');
    const results = await applyConfigFiles(root, files, { ...ctx, serverPort: 30001 });
    assert.deepEqual(
      results.map((r) => [r.file, r.ok, r.changed, r.code]),
      [
        ['config.yml', true, true, undefined],
        ['plugins/x/settings.json', true, true, undefined],
        ['missing.txt', true, false, undefined],
        ['broken.json', false, false, 'CONFIG_INVALID'],
      ],
    );
    const yml = await readFile(join(root, 'config.yml'), 'utf8');
    assert.match(yml, /query_port: 30001/);
    assert.match(yml, /host: 0\.0\.0\.0:30001/);
    assert.match(yml, /address: 172\.18\.0\.1:25565/);
    assert.deepEqual(JSON.parse(await readFile(join(root, 'plugins/x/settings.json'), 'utf8')), {
      port: 30001,
    });
    assert.equal(existsSync(join(root, 'missing.txt')), false);
    // a second run changes nothing
    const again = await applyConfigFiles(
      root,
      { 'config.yml': egg.config.files['config.yml']! },
      { ...ctx, serverPort: 30001 },
    );
    assert.deepEqual(
      again.map((r) => r.changed),
      [false],
    );
  });
});
