import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { build, loadPanelConfig } from '@cap/panel';
import { pino } from 'pino';

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

  it('stores into the Panel database (DATA_DIR), lists, refuses a stored uuid unless --replace', async () => {
    const dataDir = join(tmp, 'data');
    const env = { ...process.env, DATA_DIR: dataDir, LOG_LEVEL: 'silent' };
    const run = (...args: string[]) => {
      const r = spawnSync(process.execPath, [MAIN, 'templates', ...args], { encoding: 'utf8', env });
      return { code: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    const paper = join(EGGS, 'pelican-eggs__minecraft/java/paper/egg-paper.yaml');
    const bad = join(tmp, 'bad2.json');
    await writeFile(bad, '{"meta": {"version": "PTDL_v2"}, "name": }');
    const first = run('import', '--json', paper, bad);
    assert.equal(first.code, 1, first.stderr);
    const lines = first.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { ok: boolean; code?: string });
    assert.deepEqual(
      lines.map((l) => [l.ok, l.code]),
      [
        [true, undefined],
        [false, 'TEMPLATE_INVALID'],
      ],
    );
    const again = run('import', '--json', paper);
    assert.equal(again.code, 1);
    assert.equal((JSON.parse(again.stdout.trim()) as { code: string }).code, 'CONFLICT');
    assert.equal(run('import', '--replace', paper).code, 0);
    const listed = run('list', '--json');
    assert.equal(listed.code, 0, listed.stderr);
    const templates = listed.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { name: string; builtin: boolean });
    // only the good file was stored, once (built-ins arrive when the Panel itself starts)
    assert.deepEqual(
      templates.map((t) => t.name),
      ['Paper'],
    );
    // --check stores nothing
    assert.equal(
      run('import', '--check', join(EGGS, 'pterodactyl__panel/database/Seeders/eggs/rust/egg-rust.json'))
        .code,
      0,
    );
    assert.equal(run('list', '--json').stdout.trim().split('\n').length, 1);
    // the Panel sees what the CLI stored
    const app = await build(loadPanelConfig({ DATA_DIR: dataDir }), { logger: pino({ level: 'silent' }) });
    try {
      const names = (await app.panel.templates.list()).map((t) => t.name);
      assert.ok(names.includes('Paper'));
    } finally {
      await app.close();
    }
  });

  it('rejects bad usage with exit 2', () => {
    assert.equal(cli('import', '--check').code, 2);
    assert.equal(cli('import', '--check', '--bogus', 'x.json').code, 2);
    assert.equal(cli('list', 'extra').code, 2);
    assert.equal(cli('frobnicate').code, 2);
  });
});
