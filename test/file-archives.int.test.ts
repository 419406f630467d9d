/**
 * Compress, decompress and folder downloads through the Panel (issue 10 items 1 and 2), with the
 * real Panel, a real Agent and the real Docker Engine: operations over REST (`?wait=true`, and
 * 202 with progress on `/ws/client`), activity entries, hostile archives refused with their codes,
 * and a folder downloaded through the Panel's relay as an archive made on the fly, unpacked with
 * `tar` / `unzip` and compared to the source tree entry by entry.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { Header } from 'tar';
import { treeDigest } from '../packages/agent/test/tree-digest.ts';
import type { Session, TestPanel } from '../packages/panel/test/helpers.ts';
import { createTestServer, type Stack, startStack } from './harness.ts';

const run = promisify(execFile);

async function fillTree(dir: string): Promise<void> {
  await mkdir(path.join(dir, 'world', 'region'), { recursive: true });
  await writeFile(path.join(dir, 'world', 'level.dat'), randomBytes(200_000));
  // large enough for more than a second of work on a busy machine: progress shows
  // async (the thread pool): this process also runs the Panel and the Agent, whose link must keep beating
  await writeFile(
    path.join(dir, 'world', 'region', 'r.0.0.mca'),
    await promisify(randomBytes)(24 * 1024 * 1024),
  );
  await writeFile(path.join(dir, 'world', 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
  await symlink('level.dat', path.join(dir, 'world', 'latest'));
  await writeFile(path.join(dir, 'server.properties'), 'motd=hi\n');
}

function tarOf(entries: { path: string; body: string }[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body);
    const h = new Header({ path: e.path, type: 'File', size: body.length, mode: 0o644, mtime: new Date() });
    h.encode();
    blocks.push(h.block as Buffer, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

describe('Panel + Agent: compress, decompress, folder downloads', () => {
  let stack: Stack | undefined;
  let panel: TestPanel;
  let owner: Session;
  let serverId = '';
  let dir = '';
  let work = '';
  const world = () => treeDigest(dir, { skip: (p) => !(p === 'world' || p.startsWith('world/')) });

  before(async () => {
    stack = await startStack('archives');
    ({ panel, owner } = stack);
    ({ serverId, dir } = await createTestServer(stack, 'archives'));
    await fillTree(dir);
    work = await mkdtemp(path.join(tmpdir(), 'cap-archives-'));
  });
  after(async () => {
    await stack?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('compress and decompress with ?wait=true answer the result; activity records them', async () => {
    const c = await panel.api(owner, 'POST', `/api/servers/${serverId}/files/compress?wait=true`, {
      root: '/',
      names: ['world', 'server.properties'],
      format: 'zip',
      name: 'all.zip',
    });
    assert.equal(c.status, 200, JSON.stringify(c.body));
    assert.equal(c.body.path, '/all.zip');
    assert.equal(c.body.entries, 7);
    assert.ok(c.body.size > 24 * 1024 * 1024);
    const d = await panel.api(owner, 'POST', `/api/servers/${serverId}/files/decompress?wait=true`, {
      path: '/all.zip',
      destination: '/restored',
    });
    assert.equal(d.status, 200, JSON.stringify(d.body));
    assert.deepEqual(d.body, { destination: '/restored', bytes: c.body.bytes, entries: 7 });
    assert.deepEqual(
      await treeDigest(path.join(dir, 'restored'), { skip: (p) => p === 'server.properties' }),
      await world(),
    );
    const ops = await panel.api(owner, 'GET', `/api/servers/${serverId}/operations`);
    const kinds = (ops.body as { kind: string; success: boolean }[]).map((o) => `${o.kind}:${o.success}`);
    assert.ok(kinds.includes('compress:true') && kinds.includes('decompress:true'), kinds.join());
    const act = await panel.api(owner, 'GET', `/api/servers/${serverId}/activity`);
    const actions = JSON.stringify(act.body);
    assert.match(actions, /file\.compress/);
    assert.match(actions, /file\.decompress/);
  });

  it('a compress answers 202 at once and its progress and end arrive on /ws/client', async () => {
    const ws = await panel.clientSocket(owner);
    try {
      ws.send({ type: 'subscribe', serverId });
      await ws.next((m) => m.type === 'subscribed' && m.serverId === serverId);
      const r = await panel.api(owner, 'POST', `/api/servers/${serverId}/files/compress`, {
        names: ['world'],
        format: 'tar.gz',
        name: 'w.tar.gz',
      });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      const operationId = r.body.operationId as string;
      const progress = await ws.next(
        (m) =>
          m.type === 'operation' &&
          m.operationId === operationId &&
          m.stage === 'compressing' &&
          /MB, \d+ entries/.test(String(m.message ?? '')),
        30_000,
      );
      assert.equal(progress.kind, 'compress');
      const end = await ws.next(
        (m) => m.type === 'operation' && m.operationId === operationId && m.success !== undefined,
        60_000,
      );
      assert.equal(end.success, true, JSON.stringify(end));
      const op = await panel.api(owner, 'GET', `/api/operations/${operationId}`);
      assert.equal(op.body.stage, 'completed');
    } finally {
      ws.close();
    }
  });

  it('hostile archives over REST: ARCHIVE_UNSAFE, ARCHIVE_INVALID, and nothing written', async () => {
    await writeFile(
      path.join(dir, 'evil.tar.gz'),
      zlib.gzipSync(
        tarOf([
          { path: 'first.txt', body: 'x' },
          { path: '../../escape.txt', body: 'pwned' },
        ]),
      ),
    );
    const u = await panel.api(owner, 'POST', `/api/servers/${serverId}/files/decompress?wait=true`, {
      path: 'evil.tar.gz',
      destination: 'evil',
    });
    assert.equal(u.status, 422, JSON.stringify(u.body));
    assert.equal(u.body.code, 'ARCHIVE_UNSAFE');
    await assert.rejects(
      import('node:fs/promises').then((fs) => fs.lstat(path.join(dir, 'evil', 'first.txt'))),
    );
    await writeFile(path.join(dir, 'junk.zip'), 'not a zip');
    const j = await panel.api(owner, 'POST', `/api/servers/${serverId}/files/decompress?wait=true`, {
      path: 'junk.zip',
    });
    assert.equal(j.status, 422, JSON.stringify(j.body));
    assert.equal(j.body.code, 'ARCHIVE_INVALID');
    const bad = await panel.api(owner, 'POST', `/api/servers/${serverId}/files/compress?wait=true`, {
      names: ['../x'],
    });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
  });

  for (const format of ['tar.gz', 'zip'] as const) {
    it(`a folder downloads through the Panel's relay as ${format}, the same tree`, async () => {
      const g = await panel.api(owner, 'POST', `/api/servers/${serverId}/files/transfers`, {
        direction: 'download',
        path: '/world',
        archive: format,
      });
      assert.equal(g.status, 201, JSON.stringify(g.body));
      assert.equal(g.body.size, null);
      assert.equal(g.body.name, `world.${format}`);
      const res = await fetch(`${panel.url}${g.body.url}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-length'), null);
      const file = path.join(work, `world.${format}`);
      await writeFile(file, Buffer.from(await res.arrayBuffer()));
      const out = path.join(work, `out-${format}`);
      await mkdir(out);
      if (format === 'zip') await run('unzip', ['-q', file, '-d', out]);
      else await run('tar', ['-C', out, '-xzf', file]);
      assert.deepEqual(await treeDigest(out), await world());
    });
  }
});
