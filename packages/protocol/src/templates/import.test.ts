import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { CodedError } from '../errors.ts';
import { CORPUS, eggFiles, MALFORMED } from './corpus.fixture.ts';
import { exportPtdlV2Text } from './export.ts';
import { importTemplate, renameHostnameRefs } from './import.ts';
import { findJsonError, parseJson } from './parse-source.ts';
import { validateVariables } from './rules.ts';
import { logFile, templateToEggConfig } from './runtime.ts';
import type { Template } from './template.ts';

function rejects(fn: () => unknown, location: string | RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CodedError, `not a CodedError: ${String(e)}`);
    assert.equal(e.code, 'TEMPLATE_INVALID');
    if (typeof location === 'string') assert.equal(e.location, location);
    else assert.match(e.location ?? '', location);
    return true;
  });
}

function withoutSource(t: Template): Omit<Template, 'source'> & { updateUrl: string | null } {
  const { source, ...rest } = t;
  return { ...rest, updateUrl: source.updateUrl };
}

describe('egg corpus', () => {
  const files = eggFiles(CORPUS);

  it('has the 47 files', () => {
    assert.equal(files.length, 47);
  });

  it('imports every well-formed egg, round-trips it through PTDL_v2, and rejects each malformed one', () => {
    let imported = 0;
    let rejected = 0;
    let warnings = 0;
    const formats: Record<string, number> = {};
    for (const file of files) {
      const rel = relative(CORPUS, file);
      const content = readFileSync(file, 'utf8');
      const expected = MALFORMED[rel];
      if (expected) {
        rejects(() => importTemplate(content, { filename: file }), expected);
        rejected++;
        continue;
      }
      const first = importTemplate(content, { filename: file });
      imported++;
      warnings += first.warnings.length;
      formats[first.template.source.format] = (formats[first.template.source.format] ?? 0) + 1;
      const exported = exportPtdlV2Text(first.template);
      const again = importTemplate(exported, { filename: 'export.json' });
      assert.equal(again.template.source.format, 'PTDL_v2', rel);
      assert.deepEqual(withoutSource(again.template), withoutSource(first.template), rel);
      // and the export of the export is the same text
      assert.equal(
        exportPtdlV2Text(again.template, { exportedAt: 'x' }),
        exportPtdlV2Text(first.template, { exportedAt: 'x' }),
      );
    }
    assert.equal(rejected, Object.keys(MALFORMED).length);
    assert.equal(imported + rejected, 47);
    console.log(
      `imported ${imported}, rejected ${rejected}, warnings ${warnings}, formats ${JSON.stringify(formats)}`,
    );
  });

  it('keeps the corpus quirks', () => {
    const load = (rel: string) => importTemplate(readFileSync(join(CORPUS, rel), 'utf8'), { filename: rel });
    // PTDL_v2 JSON strings with CRLF → native objects
    const paper = load('pterodactyl__panel/database/Seeders/eggs/minecraft/egg-paper.json').template;
    assert.equal(paper.config.files['server.properties']?.parser, 'properties');
    assert.deepEqual(paper.config.startup.done, [')! For help, type ']);
    assert.ok(!paper.install.script.includes('\r'));
    // YAML with native config and non-string defaults
    const ts = load('pelican-eggs__voice/teamspeak/egg-teamspeak3-server.yaml').template;
    assert.equal(ts.source.syntax, 'yaml');
    assert.equal(ts.variables.find((v) => v.envVariable === 'FILE_TRANSFER')?.defaultValue, '30033');
    // docker_images as a list, and PTDL_v2 with only `images`
    const feather = load('pelican-eggs__minecraft/java/feather/egg-feather.json').template;
    assert.ok(feather.images.length > 0);
    assert.equal(feather.images[0]?.label, feather.images[0]?.image);
    const feather2 = load('parkervcp__eggs/game_eggs/minecraft/java/feather/egg-feather.json').template;
    assert.ok(feather2.images.length > 0);
    // duplicate env_variable: one variable, later wins
    const mordhau = load('pelican-eggs__games-steamcmd/mordhau/egg-mordhau-wine.json');
    assert.equal(mordhau.template.variables.filter((v) => v.envVariable === 'WINDOWS_INSTALL').length, 1);
    assert.ok(mordhau.warnings.some((w) => /duplicate WINDOWS_INSTALL/.test(w.message)));
    // PLCN_v3 startup_commands
    const paperY = load('pelican-eggs__minecraft/java/paper/egg-paper.yaml').template;
    assert.equal(paperY.source.format, 'PLCN_v3');
    assert.ok(paperY.icon?.startsWith('data:'));
    // Venice Unleashed's ANSI done string survives
    const vu = load('pelican-eggs__games-standalone/venice_unleashed/egg-venice-unleashed.json').template;
    assert.ok(vu.config.startup.done[0]?.includes('\u001b['));
  });
});

const BASE = {
  meta: { version: 'PTDL_v2', update_url: null },
  name: 'Test',
  author: 'a@b.c',
  description: 'd',
  features: null,
  docker_images: { 'Java 21': 'ghcr.io/x/y:java_21' },
  file_denylist: [],
  startup: 'java -Xmx{{SERVER_MEMORY}}M -jar {{JAR}}',
  config: {
    files:
      '{\r\n    "server.properties": {\r\n        "parser": "properties",\r\n        "find": {\r\n            "server-port": "{{server.build.default.port}}"\r\n        }\r\n    }\r\n}',
    startup: '{\r\n    "done": ")! For help"\r\n}',
    logs: '{}',
    stop: 'stop',
  },
  scripts: { installation: { script: '#!/bin/ash\r\necho hi\r\n', container: 'alpine', entrypoint: 'ash' } },
  variables: [
    {
      name: 'Jar',
      description: '',
      env_variable: 'JAR',
      default_value: 'server.jar',
      user_viewable: true,
      user_editable: true,
      rules: 'required|string|max:20|',
      field_type: 'text',
    },
  ],
};

function egg(patch: (e: Record<string, unknown>) => void): string {
  const e = structuredClone(BASE) as Record<string, unknown>;
  patch(e);
  return JSON.stringify(e, null, 2);
}

describe('importTemplate', () => {
  it('normalises a PTDL_v2 egg', () => {
    const { template, warnings } = importTemplate(egg(() => {}));
    assert.deepEqual(warnings, []);
    assert.deepEqual(template.images, [{ label: 'Java 21', image: 'ghcr.io/x/y:java_21' }]);
    assert.deepEqual(template.variables[0]?.rules, ['required', 'string', 'max:20']);
    assert.deepEqual(template.config.files, {
      'server.properties': { parser: 'properties', find: { 'server-port': '{{server.build.default.port}}' } },
    });
    assert.equal(template.install.script, '#!/bin/ash\necho hi\n');
    assert.deepEqual(template.features, []);
  });

  it('takes rules as a list, a string or {}', () => {
    const list = importTemplate(
      egg((e) => ((e['variables'] as Record<string, unknown>[])[0]!['rules'] = ['nullable', 'int'])),
    );
    assert.deepEqual(list.template.variables[0]?.rules, ['nullable', 'int']);
    const empty = importTemplate(
      egg((e) => ((e['variables'] as Record<string, unknown>[])[0]!['rules'] = {})),
    );
    assert.deepEqual(empty.template.variables[0]?.rules, []);
  });

  it('turns non-string defaults into strings', () => {
    const n = importTemplate(
      egg((e) => ((e['variables'] as Record<string, unknown>[])[0]!['default_value'] = 25565)),
    );
    assert.equal(n.template.variables[0]?.defaultValue, '25565');
    const b = importTemplate(
      egg((e) => {
        const v = (e['variables'] as Record<string, unknown>[])[0]!;
        v['default_value'] = false;
        v['rules'] = 'boolean';
      }),
    );
    assert.equal(b.template.variables[0]?.defaultValue, '0');
  });

  it('reads legacy images and PTDL_v1 image', () => {
    const v1 = importTemplate(
      egg((e) => {
        e['meta'] = { version: 'PTDL_v1' };
        delete e['docker_images'];
        e['image'] = 'quay.io/parkervcp/pterodactyl-images:debian_openjdk-8';
      }),
    );
    assert.deepEqual(
      v1.template.images.map((i) => i.image),
      ['quay.io/parkervcp/pterodactyl-images:debian_openjdk-8'],
    );
    const list = importTemplate(
      egg((e) => {
        delete e['docker_images'];
        e['images'] = ['a/b:1', 'a/b:2'];
      }),
    );
    assert.deepEqual(
      list.template.images.map((i) => i.label),
      ['a/b:1', 'a/b:2'],
    );
    const none = egg((e) => delete e['docker_images']);
    rejects(() => importTemplate(none), 'docker_images');
  });

  it('keeps lowercase env names and warns about unknown rules and bad defaults', () => {
    const r = importTemplate(
      egg((e) => {
        const v = (e['variables'] as Record<string, unknown>[])[0]!;
        v['env_variable'] = 'discord_token';
        v['rules'] = 'required|string|sometimes|in:moon,sun';
        v['default_value'] = 'Moon';
      }),
    );
    assert.equal(r.template.variables[0]?.envVariable, 'discord_token');
    assert.deepEqual(
      r.warnings.map((w) => w.location),
      ['variables[0].rules', 'variables[0].default_value'],
    );
  });

  it('reads YAML with native config and startup_commands', () => {
    const yaml = [
      'meta:',
      '  version: PLCN_v3',
      'name: Y',
      'author: a',
      'docker_images:',
      "  'Java 21': 'ghcr.io/x:21'",
      'startup_commands:',
      "  Default: 'java -jar {{JAR}}'",
      "  Debug: 'java -Ddebug -jar {{JAR}}'",
      'config:',
      '  files:',
      '    config.yml:',
      '      parser: yaml',
      '      find:',
      "        'listeners[0].host': '0.0.0.0:{{server.allocations.default.port}}'",
      '  startup:',
      '    done:',
      "      - 'Done ('",
      "      - 'regex:^Ready'",
      '  logs: {  }',
      '  stop: end',
      'features: {  }',
      'file_denylist: {  }',
      'variables: {  }',
      '',
    ].join('\n');
    const { template } = importTemplate(yaml, { filename: 'egg.yaml' });
    assert.equal(template.startup, 'java -jar {{JAR}}');
    assert.equal(template.startupCommands.length, 2);
    assert.deepEqual(template.config.startup.done, ['Done (', 'regex:^Ready']);
    assert.equal(template.config.files['config.yml']?.parser, 'yaml');
    // round trip keeps startup_commands
    const again = importTemplate(exportPtdlV2Text(template));
    assert.deepEqual(again.template.startupCommands, template.startupCommands);
  });

  it('rejects malformed input with a precise location', () => {
    rejects(() => importTemplate('{\n  "meta": {\n    "version": "PTDL_v2",\n  }\n}'), 'line 4, column 3');
    rejects(() => importTemplate('{"a": "x\\\'y"}'), 'line 1, column 9');
    rejects(() => importTemplate('#!/bin/bash\necho hi\n', { filename: 'x.json' }), 'line 1, column 1');
    rejects(() => importTemplate('{', { filename: 'x.json' }), 'line 1, column 2');
    rejects(
      () => importTemplate('meta:\n  version: PLCN_v3\n  version: x\n', { filename: 'x.yaml' }),
      /^line 3, column 3$/,
    );
    rejects(() => importTemplate('meta: [\n', { filename: 'x.yaml' }), /^line \d+, column \d+$/);
    rejects(() => importTemplate('just text', { filename: 'x.yaml' }), '(root)');
    rejects(() => importTemplate(egg((e) => (e['meta'] = { version: 'PTDL_v9' }))), 'meta.version');
    rejects(() => importTemplate(egg((e) => delete e['meta'])), 'meta');
    rejects(() => importTemplate(egg((e) => (e['name'] = ''))), 'name');
    rejects(
      () =>
        importTemplate(egg((e) => ((e['config'] as Record<string, unknown>)['files'] = '{\n  "a": {,\n}'))),
      'config.files (line 2, column 9)',
    );
    rejects(
      () =>
        importTemplate(
          egg(
            (e) =>
              ((e['config'] as Record<string, unknown>)['files'] = {
                'a.toml': { parser: 'toml', find: {} },
              }),
          ),
        ),
      'config.files["a.toml"].parser',
    );
    rejects(
      () =>
        importTemplate(
          egg((e) => ((e['variables'] as Record<string, unknown>[])[0]!['env_variable'] = 'A B')),
        ),
      'variables[0].env_variable',
    );
    rejects(
      () => importTemplate(egg((e) => ((e['variables'] as Record<string, unknown>[])[0]!['rules'] = 5))),
      'variables[0].rules',
    );
    rejects(() => importTemplate(egg((e) => (e['docker_images'] = { a: 5 }))), 'docker_images.a');
  });

  it('rejects values beyond the limits the Agent accepts, at the egg field', () => {
    rejects(
      () =>
        importTemplate(
          egg((e) => ((e['config'] as Record<string, unknown>)['startup'] = { done: Array(17).fill('x') })),
        ),
      'config.startup.done',
    );
    rejects(
      () => importTemplate(egg((e) => (e['docker_images'] = { a: `x${'y'.repeat(600)}` }))),
      // refused at the image itself (too long for a reference), named by its label
      'docker_images.a',
    );
    rejects(
      () =>
        importTemplate(
          egg((e) => ((e['variables'] as Record<string, unknown>[])[0]!['env_variable'] = 'A'.repeat(129))),
        ),
      'variables[0].env_variable',
    );
  });

  it('survives hostile nesting', () => {
    rejects(() => importTemplate('['.repeat(200_000), { filename: 'deep.json' }), /^line 1, column \d+$/);
    rejects(() => importTemplate(`${'['.repeat(50_000)}${']'.repeat(50_000)}`), '(root)');
  });

  it('accepts duplicate JSON keys, last wins, like PHP', () => {
    const r = importTemplate(egg(() => {}).replace('"name": "Test"', '"name": "First", "name": "Second"'));
    assert.equal(r.template.name, 'Second');
  });

  it('imports two eggs with the same uuid independently', () => {
    const a = importTemplate(egg((e) => (e['uuid'] = 'u-1'))).template;
    const b = importTemplate(
      egg((e) => {
        e['uuid'] = 'u-1';
        e['name'] = 'Other';
      }),
    ).template;
    assert.equal(a.uuid, b.uuid);
    assert.notEqual(a.name, b.name);
  });

  it('locates JSON errors where JSON.parse does too', () => {
    for (const bad of ['{"a":1,}', '[1 2]', '{"a":"\u0001"}', '{"a":tru}', '{"a":01}', '']) {
      assert.throws(() => JSON.parse(bad));
      assert.notEqual(findJsonError(bad), null, bad);
    }
    assert.equal(findJsonError('{"a": [1, 2.5e3, "x\\u00e9", true, null], "b": {}}'), null);
    assert.deepEqual(parseJson('{"x":1,"x":2}'), { x: 2 });
  });
});

describe('egg fidelity (issue 17)', () => {
  const read = (rel: string) => readFileSync(join(CORPUS, rel), 'utf8');
  const load = (rel: string) => importTemplate(read(rel), { filename: rel });

  it('reads YAML boolean defaults as "true"/"false", as the JSON twin writes them; "1"/"0" only under `boolean`', () => {
    // Space Engineers' variables default to "true"/"false" with `in:true,false`. Its YAML twin, as
    // Pelican's exporter writes YAML, carries the same defaults as native booleans.
    const rel = 'pelican-eggs__games-steamcmd/space_engineers/default/egg-space-engineers.json';
    const json = load(rel);
    const data = JSON.parse(read(rel)) as { variables: Record<string, unknown>[] };
    const booleans = data.variables.filter(
      (v) => v['default_value'] === 'true' || v['default_value'] === 'false',
    );
    assert.ok(booleans.length >= 4);
    for (const v of booleans) v['default_value'] = v['default_value'] === 'true';
    const yaml = importTemplate(YAML.stringify(data), { filename: 'egg-space-engineers.yaml' });
    assert.match(YAML.stringify(data), /default_value: false\n/);
    for (const v of booleans) {
      const env = v['env_variable'];
      const fromYaml = yaml.template.variables.find((x) => x.envVariable === env);
      const fromJson = json.template.variables.find((x) => x.envVariable === env);
      assert.equal(fromYaml?.defaultValue, fromJson?.defaultValue, String(env));
      assert.match(fromYaml?.defaultValue ?? '', /^(true|false)$/);
    }
    // defaults that pass `in:true,false`: no warning for them, and the server's defaults validate
    assert.ok(!yaml.warnings.some((w) => /default/.test(w.message)), JSON.stringify(yaml.warnings));
    const values = Object.fromEntries(yaml.template.variables.map((v) => [v.envVariable, v.defaultValue]));
    assert.deepEqual(validateVariables(yaml.template.variables, values).errors, {});
    // where the rules say `boolean`, the form values 1/0 stay
    const withBool = importTemplate(
      'meta: {version: PLCN_v3}\nname: B\nstartup: run\ndocker_images: {x: busybox}\nvariables:\n' +
        '  - {name: A, env_variable: A, default_value: true, rules: "required|boolean"}\n' +
        '  - {name: B, env_variable: B, default_value: false, rules: [required, string, "in:true,false"]}\n',
      { filename: 'b.yaml' },
    ).template.variables;
    assert.deepEqual(
      withBool.map((v) => v.defaultValue),
      ['1', 'false'],
    );
  });

  it('keeps config.startup.userInteraction and exports it back', () => {
    // the BungeeCord egg before it was rewritten: done "Listening on ", userInteraction [...]
    const rel =
      '_history/ptdl_v1/pelican-eggs__games-steamcmd/370b3ec49904/stock_eggs/minecraft/egg-bungeecord.json';
    const { template } = load(rel);
    assert.deepEqual(template.config.startup.userInteraction, ['Listening on /0.0.0.0:25577']);
    const again = importTemplate(exportPtdlV2Text(template), { filename: 'e.json' }).template;
    assert.deepEqual(again.config.startup, template.config.startup);
    // an egg without it has none
    const paper = load('pterodactyl__panel/database/Seeders/eggs/minecraft/egg-paper.json').template;
    assert.equal(paper.config.startup.userInteraction, undefined);
    rejects(
      () =>
        importTemplate(
          egg((e) => ((e['config'] as Record<string, unknown>)['startup'] = { userInteraction: [1] })),
        ),
      'config.startup.userInteraction[0]',
    );
  });

  it("keeps config.logs and tells the game's log file", () => {
    const rel =
      '_history/ptdl_v1/pelican-eggs__games-steamcmd/370b3ec49904/stock_eggs/minecraft/egg-bungeecord.json';
    const { template } = load(rel);
    assert.deepEqual(template.config.logs, { custom: false, location: 'proxy.log.0' });
    assert.equal(logFile(template), '/proxy.log.0');
    const atl = load('_history/ptdl_v1/parkervcp__eggs/2bea0340a844/bots/discord/atlbot/egg-a-t-l-bot.json');
    assert.equal(logFile(atl.template), '/logs/latest.log');
    const paper = load('pterodactyl__panel/database/Seeders/eggs/minecraft/egg-paper.json').template;
    assert.equal(logFile(paper), null);
    // only a path inside the server's folder
    for (const location of ['../etc/passwd', '/a/../../b', '', 5, 'a\0b'])
      assert.equal(logFile({ config: { logs: { location } } }), null, String(location));
  });

  it('renames a HOSTNAME variable SERVER_HOSTNAME, with its references, and warns', () => {
    // Pterodactyl's Rust egg: startup `+server.hostname \"{{HOSTNAME}}\"`
    const rust = load('pterodactyl__panel/database/Seeders/eggs/rust/egg-rust.json');
    const names = rust.template.variables.map((v) => v.envVariable);
    assert.ok(names.includes('SERVER_HOSTNAME') && !names.includes('HOSTNAME'));
    assert.ok(rust.template.startup.includes('{{SERVER_HOSTNAME}}'));
    assert.ok(!/\{\{HOSTNAME\}\}/.test(rust.template.startup));
    assert.ok(rust.warnings.some((w) => /renamed SERVER_HOSTNAME/.test(w.message)));
    // Pelican's Rust staging egg: a config file reads {{server.environment.HOSTNAME}}
    const staging = load('pelican-eggs__games-steamcmd/rust/rust_staging/egg-rust-staging.yaml').template;
    assert.ok(staging.variables.some((v) => v.envVariable === 'SERVER_HOSTNAME'));
    assert.doesNotMatch(JSON.stringify(staging.config.files), /\.HOSTNAME\}\}/);
    assert.match(JSON.stringify(staging.config.files), /\{\{server\.environment\.SERVER_HOSTNAME\}\}/);
    // the other forms, and the container's own env untouched elsewhere
    assert.equal(
      renameHostnameRefs(
        // biome-ignore lint/suspicious/noTemplateCurlyInString: shell syntax under test
        '{{HOSTNAME}} {{ env.HOSTNAME }} {{server.build.env.HOSTNAME}} ${HOSTNAME} $HOSTNAME $HOSTNAMES {{HOSTNAME_X}}',
      ),
      // biome-ignore lint/suspicious/noTemplateCurlyInString: shell syntax under test
      '{{SERVER_HOSTNAME}} {{ env.SERVER_HOSTNAME }} {{server.build.env.SERVER_HOSTNAME}} ${SERVER_HOSTNAME} $SERVER_HOSTNAME $HOSTNAMES {{HOSTNAME_X}}',
    );
    // the server gets SERVER_HOSTNAME in its environment and the filled startup, never HOSTNAME
    const cfg = templateToEggConfig(rust.template, {
      name: 'r',
      environment: { RCON_PASS: 'secret-password' },
      system: { memoryMiB: 1024, ip: '0.0.0.0', port: 28015 },
    });
    assert.equal(cfg.environment['HOSTNAME'], undefined);
    assert.equal(cfg.environment['SERVER_HOSTNAME'], 'A Rust Server');
    assert.match(cfg.environment['STARTUP'] ?? '', /server\.hostname \\"\{\{SERVER_HOSTNAME\}\}/);
    // an egg that already has SERVER_HOSTNAME: nothing renamed
    const both = importTemplate(
      egg((e) => {
        (e['variables'] as Record<string, unknown>[]).push(
          { name: 'H', env_variable: 'HOSTNAME', default_value: 'h', rules: 'string' },
          { name: 'S', env_variable: 'SERVER_HOSTNAME', default_value: 's', rules: 'string' },
        );
      }),
    );
    assert.deepEqual(
      both.template.variables.map((v) => v.envVariable),
      ['JAR', 'HOSTNAME', 'SERVER_HOSTNAME'],
    );
    assert.ok(both.warnings.some((w) => /not renamed/.test(w.message)));
  });
});

describe('backup commands (issue 10 item 4: our egg extension `backup`)', () => {
  it('reads backup.commandsBefore/After and keeps them through export → import', () => {
    const egg = {
      ...BASE,
      backup: { commandsBefore: ['save-off', 'save-all'], commandsAfter: ['save-on'] },
    };
    const { template } = importTemplate(JSON.stringify(egg));
    assert.deepEqual(template.backup, {
      commandsBefore: ['save-off', 'save-all'],
      commandsAfter: ['save-on'],
    });
    const again = importTemplate(exportPtdlV2Text(template)).template;
    assert.deepEqual(again.backup, template.backup);
    // an egg without it has none, and exports none
    const plain = importTemplate(JSON.stringify(BASE)).template;
    assert.equal(plain.backup, undefined);
    assert.equal('backup' in JSON.parse(exportPtdlV2Text(plain)), false);
  });

  it('refuses a malformed backup key with its location', () => {
    for (const [backup, location] of [
      ['save-off', 'backup'],
      [{ commandsBefore: 'save-off' }, 'backup.commandsBefore'],
      [{ commandsAfter: [1] }, 'backup.commandsAfter[0]'],
      [{ commandsBefore: Array.from({ length: 17 }, () => 'x') }, 'backup.commandsBefore'],
      [{ commandsBefore: [''] }, 'backup.commandsBefore[0]'],
    ] as const) {
      assert.throws(
        () => importTemplate(JSON.stringify({ ...BASE, backup })),
        (e: unknown) => e instanceof CodedError && e.code === 'TEMPLATE_INVALID' && e.location === location,
        JSON.stringify(backup),
      );
    }
  });
});

describe('remote console (issue 12: our egg extension `remote_console`)', () => {
  const RCON_VARS = [
    ...BASE.variables,
    {
      name: 'Rcon Password',
      description: '',
      env_variable: 'RCON_PASSWORD',
      default_value: '',
      user_viewable: false,
      user_editable: true,
      rules: 'nullable|string',
    },
    {
      name: 'Rcon Port',
      description: '',
      env_variable: 'RCON_PORT',
      default_value: '25575',
      user_viewable: true,
      user_editable: true,
      rules: 'required|integer',
    },
  ];
  const minecraft = (find: Record<string, unknown>) => ({
    ...BASE,
    variables: RCON_VARS,
    config: {
      ...BASE.config,
      files: JSON.stringify({ 'server.properties': { parser: 'properties', find } }),
    },
  });

  it('reads remote_console, keeps it through export → import and into the eggConfig', () => {
    const spec = { transport: 'source-rcon', portVariable: 'RCON_PORT', passwordVariable: 'RCON_PASSWORD' };
    const { template } = importTemplate(
      JSON.stringify({ ...BASE, variables: RCON_VARS, remote_console: spec }),
    );
    assert.deepEqual(template.remoteConsole, spec);
    const exported = JSON.parse(exportPtdlV2Text(template));
    assert.deepEqual(exported.remote_console, spec);
    assert.deepEqual(importTemplate(exportPtdlV2Text(template)).template.remoteConsole, spec);
    const egg = templateToEggConfig(template, { name: 'x', environment: { RCON_PASSWORD: 'pw' } });
    assert.deepEqual(egg.remoteConsole, spec);
    const plain = importTemplate(JSON.stringify(BASE)).template;
    assert.equal(plain.remoteConsole, undefined);
    assert.equal('remote_console' in JSON.parse(exportPtdlV2Text(plain)), false);
  });

  it('refuses a malformed remote_console with its location', () => {
    for (const [rc, location] of [
      ['source-rcon', 'remote_console'],
      [{ transport: 'telnet' }, 'remote_console.transport'],
      [{ transport: 'source-rcon', host: '10.0.0.1' }, 'remote_console.host'],
      [{ transport: 'source-rcon', passwordVariable: 'NOPE' }, 'remote_console.passwordVariable'],
      [{ transport: 'source-rcon', portVariable: 'NOPE' }, 'remote_console.portVariable'],
      [{ transport: 'source-rcon', port: 70000 }, 'remote_console.port'],
      [{ transport: 'source-rcon', port: 25575, portVariable: 'RCON_PORT' }, 'remote_console.port'],
      [{ transport: 'source-rcon', passwordVariable: 'bad name' }, 'remote_console.passwordVariable'],
    ] as const) {
      rejects(
        () => importTemplate(JSON.stringify({ ...BASE, variables: RCON_VARS, remote_console: rc })),
        location,
      );
    }
  });

  it('infers Source RCON from a Minecraft egg whose server.properties turns rcon on', () => {
    const withPort = importTemplate(
      JSON.stringify(
        minecraft({
          'enable-rcon': 'true',
          'rcon.password': '{{server.build.env.RCON_PASSWORD}}',
          'rcon.port': '{{server.build.env.RCON_PORT}}',
        }),
      ),
    );
    assert.deepEqual(withPort.template.remoteConsole, {
      transport: 'source-rcon',
      portVariable: 'RCON_PORT',
      passwordVariable: 'RCON_PASSWORD',
    });
    assert.ok(withPort.warnings.some((w) => w.location === 'remote_console'));
    const defaultPort = importTemplate(
      JSON.stringify(minecraft({ 'enable-rcon': true, 'rcon.password': '{{env.RCON_PASSWORD}}' })),
    );
    assert.deepEqual(defaultPort.template.remoteConsole, {
      transport: 'source-rcon',
      port: 25575,
      passwordVariable: 'RCON_PASSWORD',
    });
    // not plain: rcon off, a literal password, a password from no variable of the egg
    for (const find of [
      { 'enable-rcon': 'false', 'rcon.password': '{{server.build.env.RCON_PASSWORD}}' },
      { 'enable-rcon': 'true', 'rcon.password': 'hunter2' },
      { 'enable-rcon': 'true', 'rcon.password': '{{server.build.env.OTHER}}' },
      { 'rcon.password': '{{server.build.env.RCON_PASSWORD}}' },
    ])
      assert.equal(importTemplate(JSON.stringify(minecraft(find))).template.remoteConsole, undefined);
  });

  it('the built-in OpenArena, Teeworlds and OpenTTD templates declare theirs', () => {
    const dir = new URL('../../../../templates/builtin/', import.meta.url);
    const want = new Map([
      ['openarena.json', { transport: 'quake3-rcon', passwordVariable: 'RCON_PASSWORD' }],
      [
        'teeworlds.json',
        { transport: 'teeworlds-econ', portVariable: 'ECON_PORT', passwordVariable: 'ECON_PASSWORD' },
      ],
      [
        'openttd.json',
        { transport: 'openttd-admin', portVariable: 'ADMIN_PORT', passwordVariable: 'ADMIN_PASSWORD' },
      ],
    ]);
    for (const [file, spec] of want) {
      const { template } = importTemplate(readFileSync(new URL(file, dir), 'utf8'), { filename: file });
      assert.deepEqual(template.remoteConsole, spec, file);
      // the password variable is hidden from users without permission
      const v = template.variables.find((x) => x.envVariable === spec.passwordVariable);
      assert.equal(v?.userViewable, false, file);
    }
  });
});

describe('mod folders (issue 13 item 4: our egg extension `mods`)', () => {
  const corpusEgg = (rel: string) => importTemplate(readFileSync(join(CORPUS, rel), 'utf8')).template;

  it('inferred where the egg makes it plain, from real published eggs', () => {
    assert.deepEqual(corpusEgg('pterodactyl__panel/database/Seeders/eggs/minecraft/egg-paper.json').mods, [
      { path: 'plugins', kind: 'bukkit' },
    ]);
    assert.deepEqual(
      corpusEgg('pterodactyl__panel/database/Seeders/eggs/source-engine/egg-garrys-mod.json').mods,
      [{ path: 'garrysmod/addons', kind: 'source' }],
    );
    assert.deepEqual(
      corpusEgg('pelican-eggs__games-steamcmd/valheim/valheim_bepinex/egg-pterodactyl-valheim-bep-i-nex.json')
        .mods,
      [{ path: 'BepInEx/plugins', kind: 'bepinex' }],
    );
    assert.equal(
      corpusEgg('pelican-eggs__minecraft/java/vanilla/pterodactyl-egg-vanilla-minecraft.json').mods,
      undefined,
    );
    assert.equal(
      corpusEgg('pelican-eggs__minecraft/java/curseforge/egg-curse-forge-generic.json').mods,
      undefined,
    );
  });

  it('an explicit `mods` key wins and survives export → import; an empty list turns inference off', () => {
    const mods = [
      { path: 'mods', kind: 'fabric' },
      { path: 'config/openloader', kind: 'other' },
    ];
    const { template } = importTemplate(JSON.stringify({ ...BASE, name: 'Paper', mods }));
    assert.deepEqual(template.mods, mods);
    assert.deepEqual(importTemplate(exportPtdlV2Text(template)).template.mods, mods);
    assert.deepEqual(importTemplate(JSON.stringify({ ...BASE, name: 'Paper', mods: [] })).template.mods, []);
  });

  it('refuses folders that leave the server root, with the location', () => {
    for (const [mods, location] of [
      ['plugins', 'mods'],
      [[{ path: '../etc', kind: 'other' }], 'mods[0]'],
      [[{ path: '/etc', kind: 'other' }], 'mods[0]'],
      [[{ path: 'a/../../b', kind: 'other' }], 'mods[0]'],
      [[{ path: 'plugins', kind: 'minecraft' }], 'mods[0]'],
    ] as const) {
      assert.throws(
        () => importTemplate(JSON.stringify({ ...BASE, mods })),
        (e: unknown) => e instanceof CodedError && e.code === 'TEMPLATE_INVALID' && e.location === location,
        JSON.stringify(mods),
      );
    }
  });
});

describe('player tracking (issue 12 item 2: our egg extension `players`)', () => {
  it('reads players, defaults the interval to 30 s, keeps it through export → import', () => {
    const { template } = importTemplate(
      JSON.stringify({ ...BASE, players: { query: 'gamedig:openarena', portVariable: 'GAME_PORT' } }),
    );
    assert.deepEqual(template.players, {
      query: 'gamedig:openarena',
      portVariable: 'GAME_PORT',
      intervalSeconds: 30,
    });
    assert.deepEqual(importTemplate(exportPtdlV2Text(template)).template.players, template.players);
    const plain = importTemplate(JSON.stringify(BASE)).template;
    assert.equal(plain.players, undefined);
    assert.equal('players' in JSON.parse(exportPtdlV2Text(plain)), false);
    for (const query of ['teeworlds', 'command:minecraft', 'none'])
      assert.equal(
        importTemplate(JSON.stringify({ ...BASE, players: { query, intervalSeconds: 5 } })).template.players
          ?.query,
        query,
      );
  });

  it('refuses a malformed players key with its location', () => {
    for (const [players, location] of [
      ['gamedig:q3a', 'players'],
      [{ query: 'rcon' }, 'players.query'],
      [{ query: 'gamedig:' }, 'players.query'],
      [{ query: 'gamedig:../x' }, 'players.query'],
      [{ query: 'teeworlds', intervalSeconds: 4 }, 'players.intervalSeconds'],
      [{ query: 'teeworlds', intervalSeconds: 3601 }, 'players.intervalSeconds'],
      [{ query: 'teeworlds', intervalSeconds: 1.5 }, 'players.intervalSeconds'],
      [{ query: 'teeworlds', intervalSeconds: '30' }, 'players.intervalSeconds'],
      [{ query: 'teeworlds', portVariable: 'A-B' }, 'players.portVariable'],
    ] as const) {
      assert.throws(
        () => importTemplate(JSON.stringify({ ...BASE, players })),
        (e: unknown) => e instanceof CodedError && e.code === 'TEMPLATE_INVALID' && e.location === location,
        JSON.stringify(players),
      );
    }
  });

  it('the built-ins declare theirs, and templateToEggConfig passes it to the Agent', async () => {
    const { readFile } = await import('node:fs/promises');
    const expected: Record<string, string> = {
      openarena: 'gamedig:openarena',
      openttd: 'gamedig:openttd',
      teeworlds: 'teeworlds',
    };
    for (const [name, query] of Object.entries(expected)) {
      const text = await readFile(
        new URL(`../../../../templates/builtin/${name}.json`, import.meta.url),
        'utf8',
      );
      const { template } = importTemplate(text);
      assert.equal(template.players?.query, query, name);
      const egg = templateToEggConfig(template, { name: 'x' });
      assert.deepEqual(egg.players, template.players, name);
    }
  });
});
