import { CodedError } from '@cap/protocol';
import { Document, isCollection, isScalar, parseDocument } from 'yaml';
import { type ConfigContext, decide } from './placeholders.ts';

/**
 * `json` and `yaml`/`yml` rewriters. Keys are dotted paths with indexes (`listeners[0].host`) and
 * wildcards (`servers.*.address`). Missing maps on the way are created; a wildcard only visits
 * what exists. YAML is edited as a document, so comments and styles of other keys survive.
 */

export type Segment = string | number;

/** `a.b[0].c` → ['a','b',0,'c']; `*` stays a wildcard segment. */
export function parseKeyPath(match: string): Segment[] {
  const out: Segment[] = [];
  for (const part of match.split('.')) {
    const m = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    if (!m) {
      out.push(part);
      continue;
    }
    if (m[1] !== '') out.push(m[1]!);
    for (const idx of m[2]!.matchAll(/\[(\d+)\]/g)) out.push(Number(idx[1]));
  }
  return out;
}

function childKeys(v: unknown): Segment[] {
  if (Array.isArray(v)) return v.map((_x, i) => i);
  if (v !== null && typeof v === 'object') return Object.keys(v);
  return [];
}

/** Own properties only: a key like `__proto__` or `constructor` must never reach a prototype. */
function child(v: unknown, k: Segment): unknown {
  if (v === null || typeof v !== 'object' || !Object.hasOwn(v, k)) return undefined;
  return (v as Record<string | number, unknown>)[k];
}

function define(on: object, k: Segment, value: unknown): void {
  Object.defineProperty(on, k, { value, enumerable: true, writable: true, configurable: true });
}

/** Concrete paths for a pattern against the current data (wildcards expanded over existing keys). */
export function expandPaths(data: unknown, pattern: Segment[]): Segment[][] {
  const results: Segment[][] = [];
  const walk = (node: unknown, i: number, prefix: Segment[]) => {
    if (i === pattern.length) {
      results.push(prefix);
      return;
    }
    const seg = pattern[i]!;
    if (seg === '*') {
      for (const k of childKeys(node)) walk(child(node, k), i + 1, [...prefix, k]);
      return;
    }
    walk(child(node, seg), i + 1, [...prefix, seg]);
  };
  walk(data, 0, []);
  return results;
}

/**
 * A string result that reads as a boolean or an integer becomes one, as Wings does, unless the
 * key already holds a string (then its type is kept).
 */
function typed(value: string | number | boolean, current: unknown): unknown {
  if (typeof value !== 'string' || typeof current === 'string') return value;
  if (value === 'true') return true;
  if (value === 'false') return false;
  if (/^-?(0|[1-9]\d{0,14})$/.test(value)) return Number(value);
  return value;
}

function currentString(v: unknown): string | undefined {
  if (v === undefined) return undefined;
  if (v === null) return '';
  if (typeof v === 'object') return undefined;
  return String(v);
}

// ---------------------------------------------------------------------------------------------

function setIn(root: unknown, path: Segment[], value: unknown): boolean {
  let node = root as Record<string | number, unknown>;
  for (let i = 0; i < path.length - 1; i++) {
    const k = path[i]!;
    let next = child(node, k);
    if (next === undefined || next === null) {
      next = typeof path[i + 1] === 'number' ? [] : {};
      define(node, k, next);
    }
    if (typeof next !== 'object') return false; // never replace a value by a map
    node = next as Record<string | number, unknown>;
  }
  const last = path[path.length - 1]!;
  if (Array.isArray(node) && typeof last !== 'number') return false;
  define(node, last, value);
  return true;
}

/** What one `find` entry sets: each concrete path it matches whose placeholder decides to write. */
function plannedEdits(
  data: unknown,
  match: string,
  spec: unknown,
  ctx: ConfigContext,
): { path: Segment[]; value: unknown }[] {
  const edits: { path: Segment[]; value: unknown }[] = [];
  for (const path of expandPaths(data, parseKeyPath(match))) {
    if (path.length === 0) continue;
    const current = path.reduce<unknown>((node, k) => child(node, k), data);
    const d = decide(spec, currentString(current), ctx);
    if (d.set) edits.push({ path, value: typed(d.value, current) });
  }
  return edits;
}

export function rewriteJson(content: string, find: Record<string, unknown>, ctx: ConfigContext): string {
  let data: unknown = {};
  if (content.trim() !== '') {
    try {
      data = JSON.parse(content);
    } catch (e) {
      throw new CodedError('CONFIG_INVALID', `not valid JSON: ${(e as Error).message}`);
    }
  }
  if (data === null || typeof data !== 'object')
    throw new CodedError('CONFIG_INVALID', 'the JSON file is not an object or a list');
  for (const [match, spec] of Object.entries(find)) {
    for (const e of plannedEdits(data, match, spec, ctx)) setIn(data, e.path, e.value);
  }
  const indent = /\n([ \t]+)\S/.exec(content)?.[1] ?? '  ';
  return `${JSON.stringify(data, null, indent)}${content === '' || content.endsWith('\n') ? '\n' : ''}`;
}

export function rewriteYaml(content: string, find: Record<string, unknown>, ctx: ConfigContext): string {
  let doc = content.trim() === '' ? new Document({}) : parseDocument(content);
  if (doc.errors.length > 0)
    throw new CodedError('CONFIG_INVALID', `not valid YAML: ${doc.errors[0]!.message}`);
  // a file of only comments has no contents; start a map after them
  if (doc.contents === null) doc = parseDocument(`${content.replace(/\s*$/, '\n')}{}\n`);
  if (!isCollection(doc.contents))
    throw new CodedError('CONFIG_INVALID', 'the YAML file is not a map or a list');
  for (const [match, spec] of Object.entries(find)) {
    for (const { path, value } of plannedEdits(doc.toJS() as unknown, match, spec, ctx)) {
      // never replace a scalar on the way by a map
      let blocked = false;
      for (let i = 1; i < path.length; i++) {
        const on = doc.getIn(path.slice(0, i), true);
        if (on !== undefined && !isCollection(on)) blocked = true;
      }
      if (blocked) continue;
      const node = doc.getIn(path, true);
      if (isScalar(node)) node.value = value;
      else doc.setIn(path, value);
    }
  }
  return doc.toString({ lineWidth: 0 });
}
