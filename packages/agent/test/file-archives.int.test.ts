/**
 * Compress and decompress as operations, and folders downloaded as archives made on the fly
 * (issue 10 items 1 and 2): a real Agent over its link (the fake Panel), a real server (container),
 * real files; the trees compared entry by entry (path, type, mode, size, sha256, link target).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createArchive } from '../src/archive/archive.ts';
import { egg, type Fixture, fixture, uid } from './helpers.ts';
import { treeDigest } from './tree-digest.ts';

const run = promisify(execFile);
type Res = { success: boolean; data?: unknown; error?: { code: string; message: string } };

async function fillTree(dir: string): Promise<void> {
  await mkdir(path.join(dir, 'world', 'region', 'deep'), { recursive: true });
  await writeFile(path.join(dir, 'world', 'level.dat'), randomBytes(300_000));
  await writeFile(path.join(dir, 'world', 'region', 'r.0.0.mca'), randomBytes(2 * 1024 * 1024));
  await writeFile(path.join(dir, 'world', 'region', 'deep', 'empty'), '');
  await writeFile(path.join(dir, 'world', 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  await symlink('region/r.0.0.mca', path.join(dir, 'world', 'latest'));
  await writeFile(path.join(dir, 'server.properties'), 'motd=hello\n'.repeat(50));
}

describe('compress and decompress as operations; folders downloaded as archives', () => {
  let f: Fixture;
  const id = uid('farch-');
  let root: string;
  let scratch: string;
  const cmd = (action: string, payload: unknown, operationId?: string) =>
    f.panel.command(action as 'get_file', payload as { path: string }, {
      serverId: id,
      ...(operationId ? { operationId } : {}),
    }) as Promise<Res>;

  before(async () => {
    f = await fixture({ env: { AGENT_API_KEY: `k_${uid()}${uid()}${uid()}`, AGENT_COMMAND_RATE: '100000' } });
    await f.panel.waitConnected();
    const res = await f.panel.command('create_server', { serverId: id, eggConfig: egg('sleep 1000') });
    assert.equal(res.success, true, JSON.stringify(res.error));
    root = path.join(f.dataDir, 'servers', id);
    await fillTree(root);
    scratch = await mkdtemp(path.join(tmpdir(), 'cap-farch-'));
  });
  after(async () => {
    await f.cleanup();
    await rm(scratch, { recursive: true, force: true });
  });

  for (const format of ['tar.gz', 'zip'] as const) {
    it(`compress (${format}) is an operation with progress; decompress gives back the same tree`, async () => {
      const operationId = uid('op-');
      const since = f.panel.received.length;
      const ack = await cmd(
        'file_compress',
        { root: '/', names: ['world', 'server.properties'], format, name: `both.${format}` },
        operationId,
      );
      assert.equal(ack.success, true, JSON.stringify(ack.error));
      assert.equal((ack.data as { status: string }).status, 'accepted');
      const end = await f.panel.waitEvent('operation_completed', (d) => d.operationId === operationId, {
        since,
      });
      assert.equal(end.data.success, true, JSON.stringify(end.data.error));
      assert.equal(end.data.action, 'file_compress');
      const data = end.data.data as { path: string; size: number; entries: number; bytes: number };
      assert.equal(data.path, `/both.${format}`);
      assert.equal(data.size, (await stat(path.join(root, `both.${format}`))).size);
      // world, region, deep, 5 entries in them, server.properties
      assert.equal(data.entries, 9);
      const stages = f.panel
        .events('operation_progress')
        .filter((e) => e.data.operationId === operationId)
        .map((e) => e.data);
      assert.ok(
        stages.some((s) => s.stage === 'compressing' && /MB, \d+ entries/.test(s.message ?? '')),
        JSON.stringify(stages),
      );
      assert.deepEqual(stages.at(-1)?.stage, 'done');
      // the temporary file is gone
      assert.deepEqual(
        (await readdir(root)).filter((n) => n.startsWith('.cap-')),
        [],
      );

      const dest = `out-${format}`;
      const un = await cmd('file_decompress', { path: `both.${format}`, destination: dest });
      assert.equal(un.success, true, JSON.stringify(un.error));
      assert.deepEqual(un.data, { destination: `/${dest}`, bytes: data.bytes, entries: data.entries });
      assert.deepEqual(
        await treeDigest(path.join(root, dest)),
        await treeDigest(root, {
          skip: (r) => !(r === 'world' || r.startsWith('world/') || r === 'server.properties'),
        }),
      );
    });
  }

  it('decompress tells tar.gz, tgz, tar.zst, tar and zip by their bytes, whatever the name', async () => {
    const src = path.join(scratch, 'src');
    await mkdir(src);
    await fillTree(src);
    const expected = await treeDigest(src);
    const zst = createArchive(src, { format: 'tar.zst' });
    const chunks: Buffer[] = [];
    for await (const c of zst.stream as AsyncIterable<Buffer>) chunks.push(c);
    await zst.done;
    await writeFile(path.join(root, 'a.tar.zst'), Buffer.concat(chunks));
    await run('tar', ['-C', src, '-cf', path.join(root, 'gnu.tar'), 'world', 'server.properties']);
    await run('tar', ['-C', src, '-czf', path.join(root, 'gnu.tgz'), 'world', 'server.properties']);
    await run('tar', ['-C', src, '-czf', path.join(root, 'misnamed.zip'), 'world', 'server.properties']);
    for (const name of ['a.tar.zst', 'gnu.tar', 'gnu.tgz', 'misnamed.zip']) {
      const dest = `x-${name}`;
      const r = await cmd('file_decompress', { path: name, destination: dest });
      assert.equal(r.success, true, `${name}: ${JSON.stringify(r.error)}`);
      assert.deepEqual(await treeDigest(path.join(root, dest)), expected, name);
    }
    // the default destination is the archive's folder
    await mkdir(path.join(root, 'sub'));
    await run('tar', ['-C', src, '-czf', path.join(root, 'sub', 'p.tar.gz'), 'server.properties']);
    const r = await cmd('file_decompress', { path: 'sub/p.tar.gz' });
    assert.deepEqual(r.data, { destination: '/sub', bytes: 550, entries: 1 });
    assert.equal((await stat(path.join(root, 'sub', 'server.properties'))).size, 550);
  });

  it('a second compress while one runs on the server is SERVER_BUSY; a default name is archive-<UTC time>', async () => {
    const a = uid('op-');
    const since = f.panel.received.length;
    const first = await cmd('file_compress', { names: ['world'] }, a);
    assert.equal(first.success, true);
    const second = await cmd('file_compress', { names: ['world'] }, uid('op-'));
    assert.equal(second.error?.code, 'SERVER_BUSY');
    const end = await f.panel.waitEvent('operation_completed', (d) => d.operationId === a, { since });
    assert.match((end.data.data as { path: string }).path, /^\/archive-\d{4}-\d\d-\d\d-\d{6}\.tar\.gz$/);
    // an existing name is FILE_EXISTS, never overwritten
    const again = await cmd('file_compress', {
      names: ['world'],
      name: (end.data.data as { path: string }).path.slice(1),
    });
    assert.equal(again.error?.code, 'FILE_EXISTS');
  });

  for (const format of ['tar.gz', 'zip'] as const) {
    it(`a folder downloads as a ${format} made while it streams (chunked, no size), the same tree`, async () => {
      const r = await cmd('create_transfer', { direction: 'download', path: 'world', archive: format });
      assert.equal(r.success, true, JSON.stringify(r.error));
      const grant = r.data as { ticket: string; size: number | null; name: string };
      assert.equal(grant.size, null);
      assert.equal(grant.name, `world.${format}`);
      const res = await fetch(`http://127.0.0.1:${f.agent.httpPort}/transfers/${grant.ticket}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-length'), null);
      assert.equal(res.headers.get('transfer-encoding'), 'chunked');
      const file = path.join(scratch, `dl.${format}`);
      await writeFile(file, Buffer.from(await res.arrayBuffer()));
      const out = path.join(scratch, `dl-${format}`);
      await mkdir(out);
      if (format === 'zip') await run('unzip', ['-q', file, '-d', out]);
      else await run('tar', ['-C', out, '-xzf', file]);
      assert.deepEqual(
        await treeDigest(out),
        await treeDigest(root, { skip: (p) => !(p === 'world' || p.startsWith('world/')) }),
      );
      // a folder without `archive` is still refused; a file with `archive` too
      const plain = await cmd('create_transfer', { direction: 'download', path: 'world' });
      assert.equal(plain.error?.code, 'CONFIG_INVALID');
      const fileArchive = await cmd('create_transfer', {
        direction: 'download',
        path: 'server.properties',
        archive: format,
      });
      assert.equal(fileArchive.error?.code, 'CONFIG_INVALID');
    });
  }
});
