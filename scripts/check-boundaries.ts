/**
 * Package boundaries, checked by `npm run check`:
 * - `protocol` imports nothing of ours; `agent`, `panel` and `web` import `protocol` and never each
 *   other; only the CLI brings them together;
 * - no relative import leaves its package (`../../agent/src/…` from the Panel);
 * - every bare import is declared by the importing package (dependencies, or devDependencies for
 *   tests and build files: e2e/, test/, a package's scripts/ (generators), vite.config.ts), so each
 *   package says what it needs.
 * Prints each violation as `file:line: message` and exits 1 when there is any.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import ts from 'typescript';

/** the repository (or a tree shaped like it, for the test): first argument, default this one */
const root = path.resolve(process.argv[2] ?? path.join(import.meta.dirname, '..'));

/** Which of our packages each package may import. */
const allowedOurs: Record<string, readonly string[]> = {
  protocol: [],
  agent: ['@cap/protocol'],
  panel: ['@cap/protocol'],
  web: ['@cap/protocol'],
  cli: ['@cap/protocol', '@cap/agent', '@cap/panel'],
};

const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
const SOURCE = /\.(ts|tsx|mts)$/;

function walk(dir: string, out: string[] = []): string[] {
  let entries: import('node:fs').Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    if (e.name === 'node_modules' || e.name === 'dist' || e.name.startsWith('.')) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (SOURCE.test(e.name)) out.push(p);
  }
  return out;
}

/** `@scope/name/sub` → `@scope/name`; `name/sub` → `name`. */
function packageOf(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? spec);
}

const isTestFile = (rel: string) =>
  /(^|\/)(test|e2e)\//.test(rel) ||
  /^scripts\//.test(rel) ||
  /\.(test|int\.test|fixture)\.tsx?$/.test(rel) ||
  /vite\.config\.ts$/.test(rel);

interface Manifest {
  name: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

const problems: string[] = [];
const rootManifest = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as Manifest;
const rootDev = new Set(Object.keys(rootManifest.devDependencies ?? {}));

for (const dirName of Object.keys(allowedOurs)) {
  const pkgDir = path.join(root, 'packages', dirName);
  const manifest = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as Manifest;
  const deps = new Set([
    ...Object.keys(manifest.dependencies ?? {}),
    ...Object.keys(manifest.peerDependencies ?? {}),
  ]);
  const devDeps = new Set(Object.keys(manifest.devDependencies ?? {}));
  const ours = new Set(allowedOurs[dirName]);
  for (const file of walk(pkgDir)) {
    const rel = path.relative(pkgDir, file);
    const text = readFileSync(file, 'utf8');
    const test = isTestFile(rel);
    // the compiler's own scanner: static, dynamic and type imports, re-exports; comments ignored
    for (const ref of ts.preProcessFile(text, true, true).importedFiles) {
      const spec = ref.fileName;
      const line = text.slice(0, ref.pos).split('\n').length;
      const where = `${path.relative(root, file)}:${line}`;
      if (spec.startsWith('.')) {
        const target = path.resolve(path.dirname(file), spec);
        if (!target.startsWith(pkgDir + path.sep))
          problems.push(`${where}: relative import ${spec} leaves packages/${dirName}`);
        continue;
      }
      if (builtins.has(spec) || builtins.has(packageOf(spec)) || spec.startsWith('node:')) continue;
      const name = packageOf(spec);
      if (name === manifest.name) continue;
      if (name.startsWith('@cap/')) {
        // system tests (a browser test starting a real Panel and Agent) may bring packages together
        if (test && devDeps.has(name)) continue;
        if (!ours.has(name)) problems.push(`${where}: packages/${dirName} may not import ${name}`);
        else if (!deps.has(name))
          problems.push(`${where}: ${name} is not in packages/${dirName}/package.json`);
        continue;
      }
      if (deps.has(name)) continue;
      if (test && (devDeps.has(name) || rootDev.has(name))) continue;
      problems.push(
        `${where}: ${name} is imported but not declared in packages/${dirName}/package.json${test ? ' (dependencies or devDependencies)' : ' dependencies'}`,
      );
    }
  }
}

if (problems.length > 0) {
  for (const p of problems) console.error(p);
  console.error(`check-boundaries: ${problems.length} problem(s)`);
  process.exit(1);
}
console.log('check-boundaries: packages import only what they may and declare it');
