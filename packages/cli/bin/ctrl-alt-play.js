#!/usr/bin/env node
// The project runs on Node 24 (the `node` devDependency). When started by an older system
// node (npx from a shell whose PATH lacks node_modules/.bin), re-run under the project's own.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  let dir = here;
  let node24;
  while (dir !== dirname(dir)) {
    const candidate = resolve(dir, 'node_modules/.bin/node');
    if (existsSync(candidate)) {
      node24 = candidate;
      break;
    }
    dir = dirname(dir);
  }
  if (!node24) {
    console.error('ctrl-alt-play needs Node 24: run `npm install` in the repository first.');
    process.exit(1);
  }
  const r = spawnSync(node24, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
} else {
  // `ctrl-alt-play agent` runs with the V8 flags the Agent's executable has built in (its memory:
  // docs/deploy.md, Memory); they must be given at start, so the process execs itself with them
  // (the same pid, stdio and environment: a supervisor's signals still reach it)
  if (process.argv[2] === 'agent' && typeof process.execve === 'function') {
    const flags = JSON.parse(
      readFileSync(new URL('../src/entry/agent-exec-argv.json', import.meta.url), 'utf8'),
    );
    const missing = flags.filter((f) => !process.execArgv.includes(f));
    if (missing.length > 0)
      process.execve(process.execPath, [
        process.execPath,
        ...process.execArgv,
        ...missing,
        fileURLToPath(import.meta.url),
        ...process.argv.slice(2),
      ]);
  }
  await import('../src/main.ts');
}
