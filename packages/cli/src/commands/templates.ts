/**
 * `ctrl-alt-play templates import FILE|DIR… [--check] [--json] [--replace]` and `templates list [--json]`
 *
 * Imports egg files (Pterodactyl PTDL_v1/v2, Pelican PLCN_v1/v2/v3; JSON or YAML) into the Panel's
 * database (DATA_DIR or DATABASE_URL, like `user create`); `--check` only validates and stores
 * nothing. With `--json` it prints one line per file: {file, ok, code?, message?, location?}. The
 * exit code is 1 when any file fails, 2 for a usage error. A directory is walked for *.json, *.yaml
 * and *.yml files.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { openPanelAdmin, type PanelAdmin } from '@cap/panel';
import {
  importTemplates,
  type TemplateImportReport,
  type TemplateInput,
  type TemplateStore,
} from '@cap/protocol/templates/index.ts';
import { panelConfigOrExit } from './panel.ts';

export const summary = 'templates: `templates import FILE… [--check] [--json] [--replace]`, `templates list`';

const USAGE = `usage: ctrl-alt-play templates import FILE|DIR… [--check] [--json] [--replace]
       ctrl-alt-play templates list [--json]

  --check     validate only; store nothing
  --json      one JSON line per file: {file, ok, code?, message?, location?}
  --replace   a template whose uuid is already stored is updated in place (else CONFLICT)

Without --check the templates go into the Panel's database: DATA_DIR (SQLite) or DATABASE_URL.
Exit code: 0 when every file is valid, 1 when any fails, 2 for a usage error.
`;

const MAX_FILE_BYTES = 8 * 1024 * 1024;

async function collect(path: string, out: string[], missing: TemplateImportReport[]): Promise<void> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(path);
  } catch {
    missing.push({ file: path, ok: false, code: 'FILE_NOT_FOUND', message: `cannot read ${path}` });
    return;
  }
  if (st.isDirectory()) {
    const names = (await readdir(path)).sort();
    for (const name of names) {
      const child = join(path, name);
      const cst = await stat(child).catch(() => null);
      if (cst?.isDirectory()) await collect(child, out, missing);
      else if (/\.(json|ya?ml)$/i.test(name)) out.push(child);
    }
    return;
  }
  out.push(path);
}

/** Where imports are stored: set by tests; otherwise the Panel's database is opened. */
export let store: TemplateStore | undefined;
export function setTemplateStore(s: TemplateStore | undefined): void {
  store = s;
}

async function list(json: boolean): Promise<number> {
  const config = panelConfigOrExit(process.env, USAGE);
  if (typeof config === 'number') return config;
  const admin = await openPanelAdmin(config);
  try {
    for (const t of await admin.listTemplates()) {
      if (json) process.stdout.write(`${JSON.stringify(t)}\n`);
      else
        process.stdout.write(
          `${t.id}  ${t.name}  (${t.format}${t.builtin ? ', built-in' : ''}, ${t.variables} variable(s))\n`,
        );
    }
    return 0;
  } finally {
    await admin.close();
  }
}

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (!sub || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(USAGE);
    return sub ? 0 : 2;
  }
  if (sub === 'list') {
    const bad = rest.filter((a) => a !== '--json');
    if (bad.length > 0) {
      process.stderr.write(`unknown argument: ${bad.join(' ')}\n\n${USAGE}`);
      return 2;
    }
    return list(rest.includes('--json'));
  }
  if (sub !== 'import') {
    process.stderr.write(`unknown templates command: ${sub}\n\n${USAGE}`);
    return 2;
  }
  const known = new Set(['--check', '--json', '--replace']);
  const check = rest.includes('--check');
  const json = rest.includes('--json');
  const replace = rest.includes('--replace');
  const unknown = rest.filter((a) => a.startsWith('-') && !known.has(a));
  const paths = rest.filter((a) => !a.startsWith('-'));
  if (unknown.length > 0 || paths.length === 0) {
    process.stderr.write(`${unknown.length > 0 ? `unknown option: ${unknown.join(' ')}\n\n` : ''}${USAGE}`);
    return 2;
  }
  let admin: PanelAdmin | undefined;
  let target = store;
  if (!check && !target) {
    const config = panelConfigOrExit(process.env, USAGE);
    if (typeof config === 'number') return config;
    const opened = await openPanelAdmin(config);
    admin = opened;
    target = (template) => opened.storeTemplate(template, { replace });
  }
  try {
    return await importAll(paths, { check, json, ...(target ? { store: target } : {}) });
  } finally {
    await admin?.close();
  }
}

async function importAll(
  paths: string[],
  opts: { check: boolean; json: boolean; store?: TemplateStore },
): Promise<number> {
  const { check, json } = opts;
  // one report per file, in the order given (a missing path reports where it was named)
  const reports: TemplateImportReport[] = [];
  for (const p of paths) {
    const files: string[] = [];
    await collect(p, files, reports);
    const inputs: TemplateInput[] = [];
    for (const file of files) {
      try {
        const st = await stat(file);
        if (st.size > MAX_FILE_BYTES) {
          reports.push({
            file,
            ok: false,
            code: 'FILE_TOO_LARGE',
            message: `${file} is larger than ${MAX_FILE_BYTES} bytes`,
          });
          continue;
        }
        inputs.push({ file, content: await readFile(file, 'utf8') });
      } catch {
        reports.push({ file, ok: false, code: 'FILE_NOT_FOUND', message: `cannot read ${file}` });
      }
    }
    reports.push(...(await importTemplates(inputs, { check, ...(opts.store ? { store: opts.store } : {}) })));
  }

  for (const r of reports) {
    if (json) {
      const line: Record<string, unknown> = { file: r.file, ok: r.ok };
      if (r.code !== undefined) line['code'] = r.code;
      if (r.message !== undefined) line['message'] = r.message;
      if (r.location !== undefined) line['location'] = r.location;
      process.stdout.write(`${JSON.stringify(line)}\n`);
    } else if (r.ok) {
      const warn = r.warnings && r.warnings.length > 0 ? `, ${r.warnings.length} warning(s)` : '';
      process.stdout.write(`ok    ${r.file}  (${r.name}, ${r.format}${warn})\n`);
      for (const w of r.warnings ?? [])
        process.stdout.write(`        warning at ${w.location}: ${w.message}\n`);
    } else {
      const at = r.location ? ` at ${r.location}` : '';
      process.stdout.write(`FAIL  ${r.file}  ${r.code}${at}: ${r.message}\n`);
    }
  }
  const failed = reports.filter((r) => !r.ok).length;
  if (!json) {
    const verb = check ? 'valid' : 'imported';
    process.stderr.write(`${reports.length - failed} ${verb}, ${failed} rejected\n`);
  }
  return failed > 0 ? 1 : 0;
}
