/**
 * Laravel validation rules, as eggs write them, with PHP-compatible semantics for the values a
 * server's variables can take (strings). An empty value is `null`, as Laravel's
 * ConvertEmptyStringsToNull middleware makes it for Pterodactyl: `nullable` lets it pass, other
 * rules see null (so `string` fails on it) and `required` fails.
 *
 * Rules are data written by strangers and run on the Panel's event loop, so every check is linear
 * in the value: `regex:` patterns run on RE2 (re2js; no backreferences or lookaround, which are
 * refused at import), the built-in checks are written not to backtrack, and values longer than
 * MAX_RULE_VALUE_CHARS fail before any rule looks at them.
 */
import { RE2JS } from 're2js';

/** The longest value a rule looks at (the Panel's own cap on an environment value). */
export const MAX_RULE_VALUE_CHARS = 32 * 1024;
/** The longest `regex:` pattern a template may carry. */
export const MAX_RULE_PATTERN_CHARS = 4096;

export interface RuleError {
  rule: string;
  message: string;
}

export interface ParsedRule {
  /** lower case, e.g. `max`, `alpha_dash` */
  name: string;
  params: string[];
  token: string;
}

export const KNOWN_RULES = new Set([
  'required',
  'nullable',
  'string',
  'integer',
  'int',
  'numeric',
  'boolean',
  'bool',
  'in',
  'not_in',
  'min',
  'max',
  'between',
  'digits_between',
  'size',
  'gt',
  'regex',
  'alpha_dash',
  'alpha_num',
  'url',
  'ends_with',
  'present',
]);

/** Rules that make size rules compare the value instead of its length (Laravel's numericRules + `int`). */
const NUMERIC_RULES = new Set(['numeric', 'integer', 'int']);

/** `in:a,b` → ['a','b'] like PHP's str_getcsv (quotes allowed); spaces around options are dropped. */
function parseCsv(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quoted) {
      if (c === '"' && s[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"' && cur.trim() === '') {
      quoted = true;
      cur = '';
    } else if (c === ',') {
      out.push(cur.trim());
      cur = '';
    } else cur += c;
  }
  out.push(quoted ? cur : cur.trim());
  return out;
}

/** Split a rules value (pipe string or list) into tokens; empty tokens from a trailing `|` are dropped. */
export function ruleTokens(rules: string | readonly string[]): string[] {
  const list = typeof rules === 'string' ? rules.split('|') : rules;
  return list.map((t) => t.trim()).filter((t) => t !== '');
}

export function parseRule(token: string): ParsedRule {
  const colon = token.indexOf(':');
  const name = (colon < 0 ? token : token.slice(0, colon)).trim().toLowerCase();
  const rest = colon < 0 ? '' : token.slice(colon + 1);
  if (colon < 0) return { name, params: [], token };
  return { name, params: name === 'regex' ? [rest] : parseCsv(rest), token };
}

const CLOSERS: Record<string, string> = { '(': ')', '[': ']', '{': '}', '<': '>' };

/**
 * A PHP (PCRE) pattern compiled for RE2 (linear-time matching): `/…/flags`, any other delimiter
 * (`#…#`), bracket delimiters (`(…)`, as in `regex:([a-z-0-9]+$)`), or a bare pattern with no
 * delimiters. Throws for what RE2 cannot run (backreferences, lookaround, possessive quantifiers).
 */
export function phpRegex(source: string): RE2JS {
  const s = source.trim();
  if (s.length > MAX_RULE_PATTERN_CHARS) throw new Error(`pattern longer than ${MAX_RULE_PATTERN_CHARS}`);
  const open = s[0];
  if (open !== undefined && !/[A-Za-z0-9\\\s]/.test(open)) {
    const close = CLOSERS[open] ?? open;
    const end = s.lastIndexOf(close);
    if (end > 0) {
      const flags = s.slice(end + 1);
      if (/^[imsxuADUXJn]*$/.test(flags)) {
        // With bracket delimiters PCRE keeps the brackets' meaning out of the pattern.
        return toRe2(s.slice(1, end), flags);
      }
    }
  }
  return toRe2(s, '');
}

function toRe2(pattern: string, phpFlags: string): RE2JS {
  let flags = 0;
  if (phpFlags.includes('i')) flags |= RE2JS.CASE_INSENSITIVE;
  if (phpFlags.includes('m')) flags |= RE2JS.MULTILINE;
  if (phpFlags.includes('s')) flags |= RE2JS.DOTALL;
  let body = pattern.replace(/\\A/g, '^').replace(/\\[zZ]/g, '$');
  if (phpFlags.includes('x'))
    body = body
      .replace(/\\#/g, '\uE000')
      .replace(/#[^\n]*/g, '')
      .replace(/\s+/g, '');
  body = body.replace(/\uE000/g, '\\#');
  if (phpFlags.includes('A') && !body.startsWith('^')) body = `^(?:${body})`;
  return RE2JS.compile(body, flags);
}

const compiled = new Map<string, RE2JS | Error>();

/** phpRegex, remembered (a template's few patterns are checked again and again). */
function cachedRegex(source: string): RE2JS | Error {
  let re = compiled.get(source);
  if (re === undefined) {
    try {
      re = phpRegex(source);
    } catch (e) {
      re = e instanceof Error ? e : new Error(String(e));
    }
    if (compiled.size >= 512) compiled.clear();
    compiled.set(source, re);
  }
  return re;
}

/** Rules a template must not carry: `regex:` patterns RE2 cannot compile (import refuses them). */
export function ruleErrors(tokens: readonly string[]): string[] {
  const errors: string[] = [];
  for (const token of tokens) {
    const r = parseRule(token);
    if (r.name !== 'regex') continue;
    const re = cachedRegex(r.params[0] ?? '');
    if (re instanceof Error)
      errors.push(
        `regex in "${token}" cannot be used: ${re.message} (patterns run on RE2: no backreferences or lookaround)`,
      );
  }
  return errors;
}

/** Tokens this validator does not know, and rules without the numbers they need: import warnings. */
export function ruleProblems(tokens: readonly string[]): string[] {
  const problems: string[] = [];
  for (const token of tokens) {
    const r = parseRule(token);
    if (!KNOWN_RULES.has(r.name)) problems.push(`unknown rule "${token}" is ignored`);
    else if (['min', 'max', 'size', 'gt'].includes(r.name) && !isNumeric(r.params[0] ?? '')) {
      problems.push(`rule "${token}" needs a number and is ignored`);
    } else if (
      ['between', 'digits_between'].includes(r.name) &&
      !(isNumeric(r.params[0] ?? '') && isNumeric(r.params[1] ?? ''))
    ) {
      problems.push(`rule "${token}" needs two numbers and is ignored`);
    }
  }
  return problems;
}

/** PHP is_numeric (PHP 8: leading and trailing whitespace allowed). */
export function isNumeric(v: string): boolean {
  return /^[ \t\n\r\v\f]*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?[ \t\n\r\v\f]*$/.test(v);
}

/** filter_var(FILTER_VALIDATE_INT): optional sign, no leading zeros, whitespace trimmed. */
function isInteger(v: string): boolean {
  return /^[+-]?(0|[1-9]\d*)$/.test(v.trim());
}

/** Laravel: in_array($v, [true, false, 0, 1, '0', '1'], true): from a form only "0" and "1". */
const BOOLEANS = new Set(['0', '1']);

function isUrl(v: string): boolean {
  if (!/^[a-z][a-z0-9+.-]*:\/\/[^\s/?#]\S*$/i.test(v)) return false;
  try {
    return new URL(v).host !== '';
  } catch {
    return false;
  }
}

/** Laravel getSize: the number for numeric-ruled numeric values, else the length in characters. */
function sizeOf(value: string | null, numeric: boolean): number {
  if (value === null) return 0;
  if (numeric && isNumeric(value)) return Number(value);
  return [...value].length;
}

export interface VariableRuleSpec {
  envVariable: string;
  rules: readonly string[];
}

/**
 * Check one value against a token list. `value` undefined = the key is absent; '' = empty.
 * Unknown tokens are ignored (they are reported when the template is imported).
 */
export function validateValue(tokens: readonly string[], value: string | undefined): RuleError[] {
  if (value !== undefined && value.length > MAX_RULE_VALUE_CHARS)
    return [{ rule: 'length', message: `must be at most ${MAX_RULE_VALUE_CHARS} characters` }];
  const rules = tokens.map(parseRule);
  const has = (name: string) => rules.some((r) => r.name === name);
  const v: string | null = value === undefined || value.trim() === '' ? null : value;
  const numeric = rules.some((r) => NUMERIC_RULES.has(r.name));
  const errors: RuleError[] = [];
  const err = (rule: string, message: string) => errors.push({ rule, message });
  for (const r of rules) {
    const p = r.params;
    // Implicit rules run on empty values; the others are skipped for null when nullable.
    if (r.name === 'required') {
      if (v === null) err(r.token, 'is required');
      continue;
    }
    if (r.name === 'present') {
      if (value === undefined) err(r.token, 'must be present');
      continue;
    }
    if (v === null && has('nullable')) continue;
    switch (r.name) {
      case 'nullable':
        break;
      case 'string':
        if (v === null) err(r.token, 'must be a string');
        break;
      case 'integer':
      case 'int':
        if (v === null || !isInteger(v)) err(r.token, 'must be an integer');
        break;
      case 'numeric':
        if (v === null || !isNumeric(v)) err(r.token, 'must be a number');
        break;
      case 'boolean':
      case 'bool':
        if (v === null || !BOOLEANS.has(v)) err(r.token, 'must be 1 or 0');
        break;
      case 'in':
        if (!p.includes(v ?? '')) err(r.token, `must be one of: ${p.join(', ')}`);
        break;
      case 'not_in':
        if (p.includes(v ?? '')) err(r.token, `must not be one of: ${p.join(', ')}`);
        break;
      case 'min':
      case 'max':
      case 'size':
      case 'gt': {
        const limit = p[0] !== undefined && isNumeric(p[0]) ? Number(p[0]) : Number.NaN;
        if (Number.isNaN(limit)) break;
        const size = sizeOf(v, numeric);
        const unit = numeric && v !== null && isNumeric(v) ? '' : ' characters';
        if (r.name === 'min' && size < limit) err(r.token, `must be at least ${limit}${unit}`);
        if (r.name === 'max' && size > limit) err(r.token, `must be at most ${limit}${unit}`);
        if (r.name === 'size' && size !== limit) err(r.token, `must be exactly ${limit}${unit}`);
        if (r.name === 'gt' && !(size > limit)) err(r.token, `must be greater than ${limit}${unit}`);
        break;
      }
      case 'between': {
        const [lo, hi] = [Number(p[0]), Number(p[1])];
        if (Number.isNaN(lo) || Number.isNaN(hi) || p.length < 2) break;
        const size = sizeOf(v, numeric);
        if (size < lo || size > hi) err(r.token, `must be between ${lo} and ${hi}`);
        break;
      }
      case 'digits_between': {
        const [lo, hi] = [Number(p[0]), Number(p[1])];
        if (Number.isNaN(lo) || Number.isNaN(hi) || p.length < 2) break;
        const s = v ?? '';
        if (!/^\d+$/.test(s) || s.length < lo || s.length > hi) err(r.token, `must be ${lo} to ${hi} digits`);
        break;
      }
      case 'regex': {
        // a pattern RE2 cannot run is refused at import; one stored before fails closed
        const re = cachedRegex(p[0] ?? '');
        if (re instanceof Error) err(r.token, 'has a pattern that cannot be checked');
        else if (v === null || !re.test(v)) err(r.token, 'has an invalid format');
        break;
      }
      case 'alpha_dash':
        if (v === null || !/^[\p{L}\p{M}\p{N}_-]+$/u.test(v))
          err(r.token, 'may only contain letters, numbers, dashes and underscores');
        break;
      case 'alpha_num':
        if (v === null || !/^[\p{L}\p{M}\p{N}]+$/u.test(v))
          err(r.token, 'may only contain letters and numbers');
        break;
      case 'url':
        if (v === null || !isUrl(v)) err(r.token, 'must be a valid URL');
        break;
      case 'ends_with':
        if (v === null || !p.some((s) => v.endsWith(s)))
          err(r.token, `must end with one of: ${p.join(', ')}`);
        break;
      default:
        break;
    }
  }
  return errors;
}

export interface VariablesValidation {
  ok: boolean;
  errors: Record<string, RuleError[]>;
}

/** Validate values (env name → value) against each variable's rules; errors per env name. */
export function validateVariables(
  variables: readonly VariableRuleSpec[],
  values: Readonly<Record<string, string | undefined>>,
): VariablesValidation {
  const errors: Record<string, RuleError[]> = {};
  for (const variable of variables) {
    const value = Object.hasOwn(values, variable.envVariable) ? values[variable.envVariable] : undefined;
    const found = validateValue(variable.rules, value);
    if (found.length > 0) errors[variable.envVariable] = found;
  }
  return { ok: Object.keys(errors).length === 0, errors };
}
