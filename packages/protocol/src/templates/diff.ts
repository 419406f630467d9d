import { validateVariables } from './rules.ts';
import type { Template } from './template.ts';

/**
 * What changes when a template is replaced by a newer version of its egg: one entry per field
 * that differs (variables and images by their key, config files by name), and, for a server's
 * kept values, which would fail the new rules or lose their image. Servers keep their values;
 * a variable the new version adds gets its default when the container is next made.
 */
export interface TemplateChange {
  /** `startup`, `variables.SERVER_JARFILE.defaultValue`, `images.Java 21`, `config.files.server.properties`… */
  field: string;
  kind: 'added' | 'removed' | 'changed';
  before?: string;
  after?: string;
}

const MAX_TEXT = 2000;
const show = (v: unknown): string => {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT)}… (${s.length} characters)` : s;
};
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

function compare(out: TemplateChange[], field: string, a: unknown, b: unknown): void {
  if (same(a, b)) return;
  if (a === undefined || a === null) out.push({ field, kind: 'added', after: show(b) });
  else if (b === undefined || b === null) out.push({ field, kind: 'removed', before: show(a) });
  else out.push({ field, kind: 'changed', before: show(a), after: show(b) });
}

function byKey<T>(
  out: TemplateChange[],
  prefix: string,
  a: readonly T[],
  b: readonly T[],
  key: (x: T) => string,
  fields?: readonly (keyof T)[],
): void {
  const before = new Map(a.map((x) => [key(x), x]));
  const after = new Map(b.map((x) => [key(x), x]));
  for (const [k, x] of before) {
    const y = after.get(k);
    if (y === undefined || y === null)
      out.push({ field: `${prefix}.${k}`, kind: 'removed', before: show(x) });
    else if (fields) for (const f of fields) compare(out, `${prefix}.${k}.${String(f)}`, x[f], y[f]);
    else compare(out, `${prefix}.${k}`, x, y);
  }
  for (const [k, y] of after)
    if (!before.has(k)) out.push({ field: `${prefix}.${k}`, kind: 'added', after: show(y) });
}

export function diffTemplates(a: Template, b: Template): TemplateChange[] {
  const out: TemplateChange[] = [];
  for (const f of ['name', 'author', 'description', 'startup', 'icon'] as const) compare(out, f, a[f], b[f]);
  byKey(out, 'images', a.images, b.images, (i) => i.label);
  byKey(out, 'startupCommands', a.startupCommands, b.startupCommands, (c) => c.label);
  byKey(out, 'variables', a.variables, b.variables, (v) => v.envVariable, [
    'name',
    'description',
    'defaultValue',
    'userViewable',
    'userEditable',
    'rules',
    'fieldType',
  ]);
  const files = (t: Template) => Object.entries(t.config.files).map(([name, spec]) => ({ name, spec }));
  byKey(out, 'config.files', files(a), files(b), (f) => f.name);
  compare(out, 'config.startup', a.config.startup, b.config.startup);
  compare(out, 'config.stop', a.config.stop, b.config.stop);
  compare(out, 'config.logs', a.config.logs, b.config.logs);
  compare(out, 'install.script', a.install.script, b.install.script);
  compare(out, 'install.container', a.install.container, b.install.container);
  compare(out, 'install.entrypoint', a.install.entrypoint, b.install.entrypoint);
  compare(out, 'features', a.features, b.features);
  compare(out, 'fileDenylist', a.fileDenylist, b.fileDenylist);
  compare(out, 'backup', a.backup, b.backup);
  compare(out, 'mods', a.mods, b.mods);
  return out;
}

export interface ServerImpact {
  /** ENV_NAME → the rule messages its kept value fails under the new version */
  failingValues: Record<string, string[]>;
  /** the server's image is not one of the new version's */
  imageGone: boolean;
}

/** How one server's kept values fare under the new version (defaults fill what it lacks). */
export function serverImpact(
  next: Template,
  server: { environment: Record<string, string>; image: string },
): ServerImpact {
  const values: Record<string, string> = {};
  for (const v of next.variables)
    values[v.envVariable] = Object.hasOwn(server.environment, v.envVariable)
      ? (server.environment[v.envVariable] as string)
      : v.defaultValue;
  const check = validateVariables(next.variables, values);
  const failingValues: Record<string, string[]> = {};
  if (!check.ok)
    for (const [k, errs] of Object.entries(check.errors)) failingValues[k] = errs.map((e) => e.message);
  return { failingValues, imageGone: !next.images.some((i) => i.image === server.image) };
}
