import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  parseRule,
  phpRegex,
  ruleErrors,
  ruleProblems,
  ruleTokens,
  validateValue,
  validateVariables,
} from './rules.ts';

/** [rules, value, passes?] — value undefined = absent, '' = empty (null in Laravel). */
type Case = [string, string | undefined, boolean];

function check(cases: Case[]): void {
  for (const [rules, value, ok] of cases) {
    const errors = validateValue(ruleTokens(rules), value);
    assert.equal(
      errors.length === 0,
      ok,
      `${rules} with ${JSON.stringify(value)}: ${JSON.stringify(errors)}`,
    );
  }
}

describe('Laravel rules', () => {
  it('required / nullable / present', () => {
    check([
      ['required', 'x', true],
      ['required', '', false],
      ['required', '   ', false],
      ['required', undefined, false],
      ['required|nullable', '', false], // both in a real egg: required wins
      ['nullable|string|max:3', '', true],
      ['string|max:3', '', false], // null is not a string
      ['present', '', true],
      ['present', undefined, false],
    ]);
  });

  it('string / integer / int / numeric / boolean', () => {
    check([
      ['string', 'abc', true],
      ['integer', '42', true],
      ['integer', '-7', true],
      ['integer', '4.2', false],
      ['integer', '012', false],
      ['integer', 'x', false],
      ['int', '5', true],
      ['int', 'five', false],
      ['numeric', '4.2', true],
      ['numeric', '1e3', true],
      ['numeric', ' 7', true],
      ['numeric', '0x1A', false],
      ['numeric', 'abc', false],
      ['boolean', '1', true],
      ['boolean', '0', true],
      ['boolean', 'true', false], // PHP's in_array(…, strict) rejects the string "true"
      ['boolean', 'yes', false],
      ['nullable|boolean', '', true],
    ]);
  });

  it('in / not_in, including an empty option and spaces', () => {
    check([
      ['in:a,b', 'a', true],
      ['in:a,b', 'c', false],
      ['in:Moon,Sun', 'moon', false],
      ['in:,beta', '', true],
      ['in:,beta', 'beta', true],
      ['in: DefaultStart,Other', 'DefaultStart', true],
      ['in:"a,b",c', 'a,b', true],
      ['not_in:anonymous', 'anonymous', false],
      ['not_in:anonymous', 'bob', true],
    ]);
  });

  it('min / max / size / between / gt: length for strings, value for numbers', () => {
    check([
      ['string|max:3', 'abcd', false],
      ['string|max:3', 'abc', true],
      ['string|max:3', 'äöü', true], // characters, not bytes
      ['integer|max:100', '100', true],
      ['integer|max:100', '101', false],
      ['numeric|min:1', '0.5', false],
      ['numeric|min:1', '1', true],
      ['string|min:2', 'a', false],
      ['max:3', '1234', false], // no numeric rule: length
      ['size:2', 'ab', true],
      ['size:2', 'abc', false],
      ['integer|size:2', '2', true],
      ['integer|between:1,10', '10', true],
      ['integer|between:1,10', '11', false],
      ['string|between:2,3', 'abcd', false],
      ['integer|gt:0', '0', false],
      ['integer|gt:0', '1', true],
      ['integer|gt:0', 'x', false],
    ]);
  });

  it('digits_between', () => {
    check([
      ['digits_between:1,5', '12345', true],
      ['digits_between:1,5', '123456', false],
      ['digits_between:1,5', '12a', false],
      ['digits_between:1,5', '-1', false],
    ]);
  });

  it('regex with /…/, bracket delimiters, flags and none', () => {
    check([
      ['regex:/^[\\w.-]*$/', 'my-world.1', true],
      ['regex:/^[\\w.-]*$/', 'no spaces', false],
      ['regex:/^([\\w\\d._-]+)(\\.jar)$/', 'server.jar', true],
      ['regex:/^([\\w\\d._-]+)(\\.jar)$/', 'server.zip', false],
      ['regex:([a-z-0-9]+$)', 'abc-1', true],
      ['regex:([a-z-0-9]+$)', 'ABC', false],
      ['regex:/^abc$/i', 'ABC', true],
      ['regex:^[0-9]+$', '123', true],
      ['regex:^[0-9]+$', '12a', false],
      ['regex:#^a+$#', 'aaa', true],
      ['regex:/^([a-z0-9]{32} ?)*$/', `${'a'.repeat(32)} ${'b'.repeat(32)}`, true],
      ['regex:/^\\Aabc\\z/', 'abc', true],
    ]);
    assert.equal(phpRegex('([a-z]+)').pattern(), '[a-z]+');
    assert.equal(phpRegex('/x/i').test('X'), true);
  });

  it('alpha_dash / alpha_num / url / ends_with', () => {
    check([
      ['alpha_dash', 'a-b_c9', true],
      ['alpha_dash', 'a b', false],
      ['alpha_dash', 'çğış', true],
      ['alpha_num', 'abc123', true],
      ['alpha_num', 'abc-123', false],
      ['url', 'https://example.com/x?y=1', true],
      ['url', 'example.com', false],
      ['url', 'http://', false],
      ['ends_with:==', 'abc==', true],
      ['ends_with:==', 'abc=', false],
      ['ends_with:.jar,.zip', 'a.zip', true],
    ]);
  });

  it('parses tokens and reports unknown ones', () => {
    assert.deepEqual(ruleTokens('required|string|'), ['required', 'string']);
    assert.deepEqual(ruleTokens(['required', ' max:5 ']), ['required', 'max:5']);
    assert.deepEqual(parseRule('regex:/a,b|c/').params, ['/a,b|c/']);
    assert.deepEqual(parseRule('in:a, b').params, ['a', 'b']);
    assert.deepEqual(ruleProblems(['required', 'sometimes', 'max:x', 'regex:/(/', 'between:1']), [
      'unknown rule "sometimes" is ignored',
      'rule "max:x" needs a number and is ignored',
      'rule "between:1" needs two numbers and is ignored',
    ]);
    // patterns RE2 cannot run are errors (import refuses them), not warnings
    assert.equal(
      ruleErrors(['required', 'regex:/(/', 'regex:/^(a)\\1$/', 'regex:/^a(?=b)/', 'regex:/^a+$/']).length,
      3,
    );
    // a stored one fails closed
    assert.equal(validateValue(['regex:/^(a)\\1$/'], 'aa')[0]?.rule, 'regex:/^(a)\\1$/');
    // unknown tokens do not fail a value
    assert.deepEqual(validateValue(['sometimes', 'confirmed'], 'x'), []);
  });

  it('validates all variables with errors per env name', () => {
    const vars = [
      { envVariable: 'PORT', rules: ['required', 'integer', 'between:1024,65535'] },
      { envVariable: 'NAME', rules: ['required', 'string', 'max:5'] },
      { envVariable: 'OPT', rules: ['nullable', 'string'] },
    ];
    const good = validateVariables(vars, { PORT: '25565', NAME: 'abc', OPT: '' });
    assert.deepEqual(good, { ok: true, errors: {} });
    const bad = validateVariables(vars, { PORT: '80', NAME: 'toolong' });
    assert.equal(bad.ok, false);
    assert.deepEqual(Object.keys(bad.errors), ['PORT', 'NAME']);
    assert.equal(bad.errors['PORT']?.[0]?.rule, 'between:1024,65535');
    assert.equal(bad.errors['NAME']?.[0]?.rule, 'max:5');
  });
});
