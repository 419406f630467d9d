/** The package-boundary check (`npm run check`) refuses what it is meant to refuse. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';

const script = path.join(import.meta.dirname, '..', 'scripts', 'check-boundaries.ts');

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(path.join(tmpdir(), 'cap-boundaries-'));
  const base: Record<string, string> = {
    'package.json': JSON.stringify({ name: 'x', devDependencies: { typescript: '5' } }),
  };
  for (const p of ['protocol', 'agent', 'panel', 'web', 'cli']) {
    base[`packages/${p}/package.json`] = JSON.stringify({
      name: `@cap/${p}`,
      dependencies: p === 'protocol' ? { zod: '4' } : { '@cap/protocol': '0.1.0' },
    });
  }
  for (const [rel, text] of Object.entries({ ...base, ...files })) {
    mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    writeFileSync(path.join(root, rel), text);
  }
  return root;
}

function check(root: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [script, root], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

describe('check-boundaries', () => {
  const roots: string[] = [];
  after(() => {
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  });
  const run = (files: Record<string, string>) => {
    const root = tree(files);
    roots.push(root);
    return check(root);
  };

  it('passes a tree that keeps to the rules', () => {
    const r = run({
      'packages/protocol/src/a.ts': "import { z } from 'zod';\nimport fs from 'node:fs';\n",
      'packages/agent/src/a.ts': "import { x } from '@cap/protocol';\nimport { y } from './b.ts';\n",
    });
    assert.equal(r.status, 0, r.out);
  });

  it('refuses the Panel importing the Agent, a relative escape, protocol importing ours, an undeclared package', () => {
    const r = run({
      'packages/panel/src/a.ts': "import { startAgent } from '@cap/agent';\n",
      'packages/panel/src/b.ts': "export { h } from '../../agent/src/h.ts';\n",
      'packages/protocol/src/c.ts': "import type { P } from '@cap/panel';\n",
      'packages/web/src/d.tsx': "const m = await import('left-pad');\n",
    });
    assert.equal(r.status, 1);
    assert.match(r.out, /packages\/panel\/src\/a\.ts:1: packages\/panel may not import @cap\/agent/);
    assert.match(
      r.out,
      /packages\/panel\/src\/b\.ts:1: relative import \.\.\/\.\.\/agent\/src\/h\.ts leaves packages\/panel/,
    );
    assert.match(r.out, /packages\/protocol\/src\/c\.ts:1: packages\/protocol may not import @cap\/panel/);
    assert.match(r.out, /packages\/web\/src\/d\.tsx:1: left-pad is imported but not declared/);
    assert.match(r.out, /4 problem\(s\)/);
  });

  it("lets a package's scripts/ (generators) use its devDependencies, never its src/", () => {
    const r = run({
      'packages/web/package.json': JSON.stringify({
        name: '@cap/web',
        dependencies: { '@cap/protocol': '0.1.0' },
        devDependencies: { 'openapi-typescript': '7' },
      }),
      'packages/web/scripts/gen.ts': "import openapiTS from 'openapi-typescript';\n",
      'packages/web/src/a.ts': "import openapiTS from 'openapi-typescript';\n",
    });
    assert.equal(r.status, 1);
    assert.match(r.out, /packages\/web\/src\/a\.ts:1: openapi-typescript is imported but not declared/);
    assert.doesNotMatch(r.out, /scripts\/gen\.ts/);
    assert.match(r.out, /1 problem\(s\)/);
  });
});
