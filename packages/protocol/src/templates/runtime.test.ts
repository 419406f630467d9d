import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CodedError } from '../errors.ts';
import { importTemplate } from './import.ts';
import {
  applyVariableChanges,
  displayStartup,
  doneMatcher,
  fillStartup,
  parseStop,
  stripAnsi,
  templateToEggConfig,
  visibleVariables,
} from './runtime.ts';
import type { TemplateVariable } from './template.ts';

function variable(p: Partial<TemplateVariable> & { envVariable: string }): TemplateVariable {
  return {
    name: p.envVariable,
    description: '',
    defaultValue: '',
    userViewable: true,
    userEditable: true,
    rules: [],
    fieldType: 'text',
    sort: null,
    ...p,
  };
}

function code(fn: () => unknown, expected: string): CodedError {
  let caught: unknown;
  assert.throws(fn, (e: unknown) => {
    caught = e;
    return e instanceof CodedError && e.code === expected;
  });
  return caught as CodedError;
}

describe('startup', () => {
  it('fills {{VAR}} and the system values, leaves $VAR expansion to the shell', () => {
    const home = '$' + '{HOME}';
    const env = { SERVER_MEMORY: '1024', SERVER_PORT: '25565', JAR: 'server.jar' };
    assert.equal(
      fillStartup(`java -Xmx{{SERVER_MEMORY}}M -jar {{JAR}} --port {{ SERVER_PORT }} ${home} {{NOPE}}`, env),
      `java -Xmx1024M -jar server.jar --port 25565 ${home} `,
    );
  });

  it('shows hidden values as [hidden] to users without the right', () => {
    const vars = [
      variable({ envVariable: 'TOKEN', userViewable: false, defaultValue: 's3cret' }),
      variable({ envVariable: 'MAP', defaultValue: 'dm4' }),
    ];
    const line = './run +map {{MAP}} +token {{TOKEN}} -p {{SERVER_PORT}}';
    assert.equal(
      displayStartup(line, vars, {}, { canViewHidden: false, system: { port: 27015 } }),
      './run +map dm4 +token [hidden] -p 27015',
    );
    assert.equal(displayStartup(line, vars, {}, { canViewHidden: true }), './run +map dm4 +token s3cret -p ');
    const visible = visibleVariables(vars, { MAP: 'q3dm17' }, { canViewHidden: false });
    assert.deepEqual(
      visible.map((v) => [v.envVariable, v.value]),
      [['MAP', 'q3dm17']],
    );
    assert.ok(!JSON.stringify(visible).includes('s3cret'));
  });

  it('lets users change only viewable+editable variables, and validates', () => {
    const vars = [
      variable({ envVariable: 'LOCKED', userEditable: false, defaultValue: 'a' }),
      variable({ envVariable: 'HIDDEN', userViewable: false, defaultValue: 'h' }),
      variable({ envVariable: 'PLAYERS', rules: ['required', 'integer', 'max:64'], defaultValue: '8' }),
    ];
    assert.deepEqual(applyVariableChanges(vars, {}, { PLAYERS: '16' }, { admin: false }), {
      LOCKED: 'a',
      HIDDEN: 'h',
      PLAYERS: '16',
    });
    assert.equal(
      code(() => applyVariableChanges(vars, {}, { LOCKED: 'b' }, { admin: false }), 'PERMISSION_DENIED')
        .location,
      'LOCKED',
    );
    code(() => applyVariableChanges(vars, {}, { HIDDEN: 'x' }, { admin: false }), 'PERMISSION_DENIED');
    assert.equal(applyVariableChanges(vars, {}, { LOCKED: 'b' }, { admin: true })['LOCKED'], 'b');
    code(() => applyVariableChanges(vars, {}, { NOPE: 'x' }, { admin: true }), 'VALIDATION_FAILED');
    const e = code(
      () => applyVariableChanges(vars, {}, { PLAYERS: '100' }, { admin: false }),
      'VALIDATION_FAILED',
    );
    assert.equal(e.location, 'PLAYERS');
    assert.deepEqual(Object.keys(e.details as object), ['PLAYERS']);
  });
});

describe('done and stop', () => {
  it('matches substrings, lists and regex:', () => {
    const m = doneMatcher([')! For help, type ', 'regex:^Server started on port \\d+$']);
    assert.equal(m('[12:00:00] Done (3.2s)! For help, type "help"'), true);
    assert.equal(m('Server started on port 27960'), true);
    assert.equal(m('Server started on port x'), false);
    assert.equal(m('Loading...'), false);
    assert.equal(doneMatcher('Game ready...')('Game ready...'), true);
  });

  it('ignores ANSI colour on the line and in the pattern', () => {
    assert.equal(doneMatcher('Server started')('\u001b[32mServer\u001b[0m started'), true);
    // Venice Unleashed's pattern is letters between cursor escapes
    const vu = 'n\u001b[?25h\u001b[?25lo\u001b[?25h\u001b[?25lw\u001b[K\u001b[1C\u001b[?25ha';
    assert.equal(stripAnsi(vu), 'nowa');
    assert.equal(doneMatcher(vu)(`xx ${vu} yy`), true);
    assert.equal(doneMatcher(vu)('now a'), false);
    // a pattern made only of escapes still needs the escapes
    assert.equal(doneMatcher('\u001b[0m')('plain'), false);
  });

  it('an empty pattern matches at once; none never does', () => {
    assert.equal(doneMatcher('')('anything'), true);
    assert.equal(doneMatcher([])('anything'), false);
    assert.equal(doneMatcher(undefined)('anything'), false);
    assert.equal(doneMatcher('regex:(')('('), false);
  });

  it('turns stop into a signal or a command', () => {
    assert.deepEqual(parseStop('^C'), { type: 'signal', signal: 'SIGINT' });
    assert.deepEqual(parseStop('^c'), { type: 'signal', signal: 'SIGINT' });
    assert.deepEqual(parseStop('^^C'), { type: 'signal', signal: 'SIGKILL' });
    assert.deepEqual(parseStop('^X'), { type: 'signal', signal: 'SIGKILL' });
    assert.deepEqual(parseStop('^SIGKILL'), { type: 'signal', signal: 'SIGKILL' });
    assert.deepEqual(parseStop(''), { type: 'signal', signal: 'SIGTERM' });
    assert.deepEqual(parseStop('stop'), { type: 'command', command: 'stop' });
    assert.deepEqual(parseStop('quit now'), { type: 'command', command: 'quit now' });
  });
});

describe('templateToEggConfig', () => {
  const egg = JSON.stringify({
    meta: { version: 'PTDL_v2' },
    name: 'Game',
    author: 'a',
    docker_images: { Default: 'local/game:1', Beta: 'local/game:beta' },
    startup: './game +port {{SERVER_PORT}} +map {{MAP}}',
    config: {
      files: '{"game.cfg":{"parser":"file","find":{"port ":"port {{server.build.default.port}}"}}}',
      startup: '{"done":"Server ready"}',
      logs: '{}',
      stop: 'quit',
    },
    scripts: { installation: { script: 'echo install\r\n', container: 'local/installer', entrypoint: 'sh' } },
    variables: [
      {
        name: 'Map',
        description: '',
        env_variable: 'MAP',
        default_value: 'dm4',
        user_viewable: true,
        user_editable: true,
        rules: 'required|alpha_dash|max:32',
      },
    ],
  });
  const { template } = importTemplate(egg);

  it('builds the Agent eggConfig with STARTUP and the system values', () => {
    const cfg = templateToEggConfig(template, {
      name: 'srv',
      environment: { MAP: 'q3dm17' },
      system: { memoryMiB: 512, port: 27960 },
      ports: { '27960/udp': 27960 },
    });
    assert.equal(cfg.image, 'local/game:1');
    assert.equal(cfg.startup, './game +port {{SERVER_PORT}} +map {{MAP}}');
    assert.equal(cfg.environment['STARTUP'], cfg.startup);
    assert.equal(cfg.environment['MAP'], 'q3dm17');
    assert.equal(cfg.environment['SERVER_PORT'], '27960');
    assert.equal(cfg.environment['SERVER_MEMORY'], '512');
    assert.deepEqual(cfg.done, ['Server ready']);
    assert.equal(cfg.stop, 'quit');
    assert.deepEqual(cfg.install, {
      script: 'echo install\n',
      container: 'local/installer',
      entrypoint: 'sh',
    });
    assert.equal(cfg.configFiles?.['game.cfg']?.parser, 'file');
    assert.equal(fillStartup(cfg.startup, cfg.environment), './game +port 27960 +map q3dm17');
    assert.equal(templateToEggConfig(template, { name: 's', image: 'Beta' }).image, 'local/game:beta');
  });

  it('refuses bad values and unknown images', () => {
    const e = code(
      () => templateToEggConfig(template, { name: 's', environment: { MAP: 'bad map!' } }),
      'VALIDATION_FAILED',
    );
    assert.equal(e.location, 'MAP');
    code(() => templateToEggConfig(template, { name: 's', image: 'other/image' }), 'VALIDATION_FAILED');
    const long = code(
      () =>
        templateToEggConfig(template, {
          name: 's',
          environment: { MAP: 'a'.repeat(20) },
          stopTimeout: 99_999,
        }),
      'VALIDATION_FAILED',
    );
    assert.equal(long.location, 'stopTimeout');
  });
});

describe('variables named like inherited properties', () => {
  // a template may name a variable `constructor`: a plain-object lookup would "find" Object
  const vars = ['constructor', 'toString', 'valueOf', 'hasOwnProperty'].map((envVariable) =>
    variable({ envVariable, defaultValue: `default-${envVariable}` }),
  );
  it('take their default, not a prototype member, when no value is given', () => {
    for (const v of visibleVariables(vars, {}, { canViewHidden: true })) {
      assert.equal(v.value, `default-${v.envVariable}`);
    }
    assert.equal(
      displayStartup('run {{constructor}} {{toString}}', vars, {}, { canViewHidden: true }),
      'run default-constructor default-toString',
    );
    const next = applyVariableChanges(vars, {}, { valueOf: 'v' }, { admin: true });
    assert.deepEqual(next, {
      constructor: 'default-constructor',
      toString: 'default-toString',
      valueOf: 'v',
      hasOwnProperty: 'default-hasOwnProperty',
    });
  });
});
