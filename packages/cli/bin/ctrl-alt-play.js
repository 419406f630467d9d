#!/usr/bin/env node
// The project runs on Node 24 (the `node` devDependency). When started by an older system
// node (npx from a shell whose PATH lacks node_modules/.bin), re-run under the project's own.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
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
  await import('../src/main.ts');
}
