import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CORPUS } from './corpus.fixture.ts';
import { FEATURE_MATCHERS, FeatureName, featureOfLine, gslTokenVariable, knownFeatures } from './features.ts';
import { importTemplate } from './import.ts';

const ALL = FeatureName.options;

describe('egg features', () => {
  it('knows every feature the corpus declares, in the egg order', () => {
    const paper = importTemplate(
      readFileSync(join(CORPUS, 'pelican-eggs__minecraft/java/paper/egg-paper.yaml'), 'utf8'),
      { filename: 'egg-paper.yaml' },
    ).template;
    assert.deepEqual(knownFeatures(paper.features), ['eula', 'java_version', 'pid_limit']);
    assert.deepEqual(knownFeatures(['eula', 'made_up', 'eula', 'gsl_token']), ['eula', 'gsl_token']);
    assert.deepEqual([...FEATURE_MATCHERS.keys()].sort(), [...ALL].sort());
  });

  it('matches the console lines the games print', () => {
    const lines: [string, string | null][] = [
      [
        '[12:00:01] [Server thread/INFO]: You need to agree to the EULA in order to run the server. Go to eula.txt for more info.',
        'eula',
      ],
      // with ANSI colours, as Paper prints it: the escapes are not part of the text
      [
        '\u001b[33m[WARN]\u001b[0m You need to agree to the \u001b[1mEULA\u001b[0m in order to run the server.',
        'eula',
      ],
      ['\u001b[33mYou need to agree to the EULA in order to run the server.\u001b[0m', 'eula'],
      [
        'Error: LinkageError occurred while loading main class io.papermc.paperclip.Main java.lang.UnsupportedClassVersionError: io/papermc/paperclip/Main has been compiled by a more recent version of the Java Runtime (class file version 61.0)',
        'java_version',
      ],
      ['Minecraft 1.18 requires running the server with Java 17 or above.', 'java_version'],
      [
        '[0.012s][warning][os,thread] Failed to start thread "GC Thread#0" - pthread_create failed (EAGAIN)',
        'pid_limit',
      ],
      ['java.lang.OutOfMemoryError: unable to create new native thread', 'pid_limit'],
      ["Error! App '258550' state is 0x202 after update job.", 'steam_disk_space'],
      ['Login Failure: No Connection (GSL token expired)', 'gsl_token'],
      ['Done (3.2s)! For help, type "help"', null],
      ['', null],
    ];
    for (const [line, expected] of lines) assert.equal(featureOfLine(line, ALL), expected, line);
  });

  it('matches only the features the egg declares', () => {
    const eula = 'You need to agree to the EULA in order to run the server. Go to eula.txt for more info.';
    assert.equal(featureOfLine(eula, []), null);
    assert.equal(featureOfLine(eula, ['java_version']), null);
    assert.equal(featureOfLine(eula, ['eula']), 'eula');
    // a huge line is cut before matching, never scanned whole
    assert.equal(featureOfLine(`${'x'.repeat(10_000)}${eula}`, ['eula']), null);
  });

  it('finds the GSL token variable of the Source eggs', () => {
    for (const [rel, env] of [
      ['pterodactyl__panel/database/Seeders/eggs/source-engine/egg-garrys-mod.json', 'STEAM_ACC'],
      [
        'pelican-eggs__games-steamcmd/counter_strike/counter_strike_2/egg-counter--strike2.yaml',
        'STEAM_GSLT',
      ],
    ] as const) {
      const t = importTemplate(readFileSync(join(CORPUS, rel), 'utf8'), { filename: rel }).template;
      assert.equal(gslTokenVariable(t.variables), env, rel);
    }
    assert.equal(
      gslTokenVariable([{ envVariable: 'TOKEN', name: 'Game Server Login Token', description: '' }]),
      'TOKEN',
    );
    assert.equal(gslTokenVariable([{ envVariable: 'MAP', name: 'Map', description: 'the map' }]), null);
  });
});
