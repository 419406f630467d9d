/**
 * Attack class: path escape (Wings GHSA-494h-9924-xww9, the old SafeJoin escape). A Panel — or a
 * stolen Panel token on the HTTP API — names paths with `..`, absolute paths, NUL, a sibling
 * directory that shares the server id as a prefix; config-file names from an egg do the same.
 * Nothing outside `<data dir>/servers/<id>/` may be read or written.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { applyConfigFile } from '../../src/config-files/index.ts';
import { egg, type Fixture, fixture, uid } from '../helpers.ts';

const SECRET = `host-secret-${uid()}`;

describe('path escape', () => {
  let f: Fixture;
  const id = uid('pesc-');
  let root: string;

  before(async () => {
    f = await fixture({ env: { AGENT_API_KEY: 'k_path_escape_test' } });
    await f.panel.waitConnected();
    const res = await f.panel.command('create_server', { serverId: id, eggConfig: egg('sleep 1000') });
    assert.equal(res.success, true, JSON.stringify(res.error));
    root = path.join(f.dataDir, 'servers', id);
    await writeFile(path.join(root, 'inside.txt'), 'inside\n');
    // a sibling whose name starts with the server id: a prefix check without a separator lets it in
    await mkdir(path.join(f.dataDir, 'servers', `${id}-evil`), { recursive: true });
    await writeFile(path.join(f.dataDir, 'servers', `${id}-evil`, 'secret.txt'), SECRET);
    await writeFile(path.join(f.dataDir, 'secret.txt'), SECRET);
  });
  after(() => f.cleanup());

  const getFile = (p: string) => f.panel.command('get_file', { path: p }, { serverId: id });
  const listFiles = (p: string) => f.panel.command('list_files', { path: p }, { serverId: id });

  it('`..` in any position is refused with PATH_OUTSIDE_ROOT, for reads and listings', async () => {
    const escapes = [
      '..',
      '../',
      '../..',
      '../secret.txt',
      '../../secret.txt',
      '../../credentials.json',
      'a/../../secret.txt',
      './../../secret.txt',
      '/../../secret.txt',
      '//../../secret.txt',
      `../${id}-evil/secret.txt`,
      `../${id}-evil`,
    ];
    for (const p of escapes) {
      const res = p.endsWith('.txt') || p.endsWith('.json') ? await getFile(p) : await listFiles(p);
      assert.equal(res.success, false, p);
      assert.equal(res.error?.code, 'PATH_OUTSIDE_ROOT', p);
      assert.equal(res.data, undefined, p);
    }
  });

  it('absolute paths and odd spellings stay inside the root (a missing file, never the host one)', async () => {
    for (const p of ['/etc/passwd', '/proc/self/environ', '..\\..\\secret.txt', '%2e%2e/%2e%2e/secret.txt']) {
      const res = await getFile(p);
      assert.equal(res.error?.code, 'FILE_NOT_FOUND', p);
    }
    const nul = await getFile('inside.txt\0/../../secret.txt');
    assert.equal(nul.success, false);
    assert.ok(['PATH_OUTSIDE_ROOT', 'CONFIG_INVALID'].includes(nul.error?.code ?? ''), nul.error?.code);
    // and the legitimate read still works, under both spellings
    for (const p of ['inside.txt', '/inside.txt', './x/../inside.txt']) {
      const ok = await getFile(p);
      assert.equal((ok.data as { content: string } | undefined)?.content, 'inside\n', p);
    }
    const listing = await listFiles('/');
    assert.equal((listing.data as { path: string }).path, '/');
  });

  it('write_file: `..`, a sibling, NUL and oversized content are refused; nothing is written outside', async () => {
    const write = (p: string, content = 'eula=true\n') =>
      f.panel.command('write_file', { path: p, content }, { serverId: id });
    const name = `cap-pesc-${uid()}.txt`;
    for (const p of [
      `../${name}`,
      `../../${name}`,
      `a/../../${name}`,
      `../${id}-evil/${name}`,
      '..',
      '../',
    ]) {
      const res = await write(p);
      assert.equal(res.error?.code, 'PATH_OUTSIDE_ROOT', p);
    }
    await assert.rejects(stat(path.join(f.dataDir, 'servers', name)), { code: 'ENOENT' });
    await assert.rejects(stat(path.join(f.dataDir, name)), { code: 'ENOENT' });
    await assert.rejects(stat(path.join(f.dataDir, 'servers', `${id}-evil`, name)), { code: 'ENOENT' });
    const nul = await write('eula.txt\0/../../x');
    assert.equal(nul.error?.code, 'PATH_OUTSIDE_ROOT');
    // the root itself, a directory, and a missing parent are not files to write
    for (const [p, code] of [
      ['/', 'CONFIG_INVALID'],
      ['.', 'CONFIG_INVALID'],
      ['no/such/dir/eula.txt', 'FILE_NOT_FOUND'],
    ] as const) {
      const res = await write(p);
      assert.equal(res.error?.code, code, p);
    }
    await mkdir(path.join(root, 'adir'), { recursive: true });
    assert.equal((await write('adir')).error?.code, 'CONFIG_INVALID');
    // content is capped at 1 MiB in UTF-8 bytes (a 2-byte character counts twice)
    const big = await write('big.txt', 'é'.repeat(512 * 1024 + 1));
    assert.equal(big.error?.code, 'CONFIG_INVALID');
    await assert.rejects(stat(path.join(root, 'big.txt')), { code: 'ENOENT' });
    // an absolute path is inside the root, as for reads; an existing file is replaced
    await writeFile(path.join(root, 'eula.txt'), 'eula=false\n# a longer line than the new content\n');
    const ok = await write('/eula.txt');
    assert.equal(ok.success, true, JSON.stringify(ok.error));
    assert.equal(await readFile(path.join(root, 'eula.txt'), 'utf8'), 'eula=true\n');
  });

  it('the HTTP API refuses the same escapes (short forms files/file)', async () => {
    const base = `http://127.0.0.1:${f.agent.httpPort}/api/servers/${id}`;
    const headers = { 'x-api-key': 'k_path_escape_test', 'content-type': 'application/json' };
    for (const [route, p] of [
      ['file', '../../secret.txt'],
      ['files', '..'],
      ['get_file', `../${id}-evil/secret.txt`],
    ] as const) {
      const res = await fetch(`${base}/${route}`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ path: p }),
      });
      assert.equal(res.status, 400, route);
      const body = (await res.json()) as { error?: { code: string }; data?: unknown };
      assert.equal(body.error?.code, 'PATH_OUTSIDE_ROOT', route);
      assert.equal(JSON.stringify(body).includes(SECRET), false);
    }
  });

  it('config files: `..` is refused, an absolute name is written inside the root, the host is untouched', async () => {
    const ctx = { environment: {} };
    const name = `cap-pesc-${uid()}.properties`;
    const file = { parser: 'properties' as const, find: { a: 'b' } };
    for (const bad of [`../${name}`, `../../${name}`, `x/../../${name}`, `../${id}-evil/${name}`]) {
      await assert.rejects(applyConfigFile(root, bad, file, ctx), (e: { code?: string }) => {
        assert.equal(e.code, 'PATH_OUTSIDE_ROOT', bad);
        return true;
      });
    }
    await assert.rejects(stat(path.join(f.dataDir, 'servers', name)), { code: 'ENOENT' });
    await assert.rejects(stat(path.join(f.dataDir, name)), { code: 'ENOENT' });
    await assert.rejects(stat(path.join(f.dataDir, 'servers', `${id}-evil`, name)), { code: 'ENOENT' });
    // `/tmp/<name>` is the root's tmp/<name>, as in Wings; /tmp on the host gets nothing
    assert.equal(await applyConfigFile(root, `/tmp/${name}`, file, ctx), true);
    assert.equal(await readFile(path.join(root, 'tmp', name), 'utf8'), 'a=b\n');
    await assert.rejects(stat(path.join('/tmp', name)), { code: 'ENOENT' });
    await rm(path.join(root, 'tmp'), { recursive: true });
  });
});
