import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../main.ts', import.meta.url));
const EGGS = fileURLToPath(new URL('../../../../../shared/eggs/', import.meta.url));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [MAIN, 'templates', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'cap-cli-templates-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('ctrl-alt-play templates import', () => {
  it('--check --json prints one line per file and fails when any file fails', async () => {
    const good = join(EGGS, 'pelican-eggs__minecraft/java/paper/egg-paper.yaml');
    const bad = join(tmp, 'bad.json');
    await writeFile(bad, '{\n  "meta": {"version": "PTDL_v2"},\n  "name": "x",,\n}\n');
    const missing = join(tmp, 'missing.json');
    const r = cli('import', '--check', '--json', good, bad, missing);
    assert.equal(r.code, 1);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines, [
      { file: good, ok: true },
      {
        file: bad,
        ok: false,
        code: 'TEMPLATE_INVALID',
        message: lines[1]!['message'],
        location: 'line 3, column 15',
      },
      { file: missing, ok: false, code: 'FILE_NOT_FOUND', message: lines[2]!['message'] },
    ]);
  });

  it('exits 0 when every file is valid, and walks directories', () => {
    const r = cli('import', '--check', join(EGGS, 'pelican-eggs__minecraft'));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stderr, /^\d+ valid, 0 rejected\n$/);
    const all = cli('import', '--check', '--json', EGGS);
    assert.equal(all.code, 1);
    const lines = all.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { ok: boolean; code?: string });
    assert.equal(lines.length, 47);
    assert.equal(lines.filter((l) => l.ok).length, 42);
    assert.ok(lines.filter((l) => !l.ok).every((l) => l.code === 'TEMPLATE_INVALID'));
  });

  it('says storing needs the Panel, and rejects bad usage, with exit 2', () => {
    const store = cli('import', join(EGGS, 'pelican-eggs__minecraft/java/paper/egg-paper.yaml'));
    assert.equal(store.code, 2);
    assert.match(store.stderr, /--check/);
    assert.equal(cli('import', '--check').code, 2);
    assert.equal(cli('import', '--check', '--bogus', 'x.json').code, 2);
    assert.equal(cli('frobnicate').code, 2);
  });
});
