import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CodedError } from '@cap/protocol';
import { applyVariableChanges } from '@cap/protocol/templates/runtime.ts';
import {
  agentCommandFor,
  agentCommandWithDataDir,
  defaultValues,
  fieldErrors,
  isIpAddress,
  isRequired,
  parsePortSpecs,
  ruleHint,
  ruleOptions,
} from './variables.ts';

describe('fieldErrors', () => {
  test("a template's rule errors, one message per variable", () => {
    const m = fieldErrors({
      MAX_PLAYERS: [
        { rule: 'integer', message: 'must be an integer' },
        { rule: 'max', message: 'must be at most 64' },
      ],
      MOTD: [{ rule: 'required', message: 'is required' }],
      BROKEN: 'not a list',
    });
    assert.deepEqual(
      [...m],
      [
        ['MAX_PLAYERS', 'must be an integer; must be at most 64'],
        ['MOTD', 'is required'],
      ],
    );
  });
  test('zod issues: the environment prefix is dropped, other paths kept', () => {
    const m = fieldErrors([
      { path: ['environment', 'X'], message: 'too long' },
      { path: ['name'], message: 'required' },
      { path: ['environment', 'X'], message: 'second one ignored' },
      { nonsense: true },
    ]);
    assert.deepEqual(
      [...m],
      [
        ['X', 'too long'],
        ['name', 'required'],
      ],
    );
  });
  test("the Panel's own VALIDATION_FAILED details (protocol applyVariableChanges) map to fields", () => {
    const vars = [
      { envVariable: 'MAX_PLAYERS', rules: ['required', 'integer', 'between:1,64'] },
      { envVariable: 'MOTD', rules: ['nullable', 'string'] },
    ].map((v) => ({
      ...v,
      name: v.envVariable,
      description: '',
      defaultValue: '8',
      userViewable: true,
      userEditable: true,
      fieldType: 'text',
      sort: null,
    }));
    let err: unknown;
    try {
      applyVariableChanges(vars, {}, { MAX_PLAYERS: '500' }, { admin: true });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof CodedError);
    assert.equal(err.code, 'VALIDATION_FAILED');
    const m = fieldErrors(err.details);
    assert.deepEqual([...m.keys()], ['MAX_PLAYERS']);
    assert.ok((m.get('MAX_PLAYERS') ?? '').length > 0);
  });
  test('nothing usable → empty', () => {
    assert.equal(fieldErrors(undefined).size, 0);
    assert.equal(fieldErrors('x').size, 0);
  });
});

describe('rules for display', () => {
  test('required, options and hint', () => {
    assert.equal(isRequired(['required', 'string']), true);
    assert.equal(isRequired(['nullable']), false);
    assert.deepEqual(ruleOptions(['required', 'in:vanilla, paper ,', 'string']), ['vanilla', 'paper']);
    assert.equal(ruleOptions(['string']), null);
    assert.equal(ruleOptions(['in:']), null);
    assert.equal(ruleHint(['required', 'in:a,b', 'max:20']), 'required · max:20');
  });
  test('defaults', () => {
    assert.deepEqual(defaultValues([{ envVariable: 'A', defaultValue: '1' }]), { A: '1' });
  });
});

describe('parsePortSpecs', () => {
  test('ports and ranges, separated by commas or spaces', () => {
    assert.deepEqual(parsePortSpecs('25565, 27000-27010  30000'), {
      specs: ['25565', '27000-27010', '30000'],
    });
  });
  test('bad input says why', () => {
    for (const bad of ['', 'abc', '0', '65536', '10-5', '1-2000', '1-2-3']) {
      assert.ok('error' in parsePortSpecs(bad), bad);
    }
  });
});

test('isIpAddress', () => {
  assert.equal(isIpAddress('0.0.0.0'), true);
  assert.equal(isIpAddress('192.168.1.20'), true);
  assert.equal(isIpAddress('::1'), true);
  assert.equal(isIpAddress('256.1.1.1'), false);
  assert.equal(isIpAddress('host.example'), false);
});

describe('agent command', () => {
  test('AGENT_DATA_DIR goes before npx, once', () => {
    const cmd = 'PANEL_URL=http://p:8080 NODE_ID=n1 AGENT_SECRET=s npx ctrl-alt-play agent';
    const out = agentCommandWithDataDir(cmd, '/var/lib/cap');
    assert.equal(
      out,
      'PANEL_URL=http://p:8080 NODE_ID=n1 AGENT_SECRET=s AGENT_DATA_DIR=/var/lib/cap npx ctrl-alt-play agent',
    );
    assert.equal(agentCommandWithDataDir(out, '/other'), out);
    assert.equal(agentCommandWithDataDir('run-agent', '/d'), 'AGENT_DATA_DIR=/d run-agent');
  });
  test('a later command names the node and data dir, never a secret', () => {
    const out = agentCommandFor('http://p', 'n2', '/d');
    assert.match(out, /NODE_ID=n2 /);
    assert.match(out, /AGENT_DATA_DIR=\/d /);
    assert.match(out, /AGENT_SECRET=<the secret shown when the node was added>/);
  });
});
