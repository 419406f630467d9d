/**
 * File bodies through the Panel's relay (issue 10), with the real Panel, a real Agent and the real
 * Docker Engine: a 200 MB upload and its download byte-identical, streamed (the Agent dials out to
 * the Panel; nothing goes over the link as base64); a ticket works once and not after it expired.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import type { Session, TestPanel } from '../packages/panel/test/helpers.ts';
import { createTestServer, type Stack, startStack } from './harness.ts';

const SIZE = 200 * 1024 * 1024;

async function sha256File(p: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(p)) h.update(c as Buffer);
  return h.digest('hex');
}

/** PUT a file's bytes, streamed, with its Content-Length. */
function put(url: string, file: string | null, length: number): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(length) },
    });
    req.once('error', reject);
    req.once('response', async (res) => {
      let text = '';
      for await (const c of res) text += c;
      resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null });
    });
    if (file) pipeline(createReadStream(file), req).catch(reject);
    else req.end(Buffer.alloc(length));
  });
}

describe('Panel + Agent: file transfers through the relay', () => {
  let stack: Stack | undefined;
  let panel: TestPanel;
  let owner: Session;
  let serverId = '';
  let dir = '';
  let work = '';
  let source = '';
  let sourceHash = '';

  before(async () => {
    stack = await startStack('transfer');
    ({ panel, owner } = stack);
    ({ serverId, dir } = await createTestServer(stack, 'transfer'));
    work = await mkdtemp(path.join(tmpdir(), 'cap-transfer-'));
    source = path.join(work, 'source.bin');
    let left = SIZE;
    await pipeline(
      Readable.from(
        (function* () {
          while (left > 0) {
            const n = Math.min(left, 1024 * 1024);
            left -= n;
            yield randomBytes(n);
          }
        })(),
      ),
      createWriteStream(source),
    );
    sourceHash = await sha256File(source);
  });

  after(async () => {
    await stack?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const grant = (body: Record<string, unknown>) =>
    panel.api(owner, 'POST', `/api/servers/${serverId}/files/transfers`, body);

  it('a 200 MB upload and its download are byte-identical; each ticket works once', async () => {
    const up = await grant({ direction: 'upload', path: 'big/upload.bin', size: SIZE });
    assert.equal(up.status, 201, JSON.stringify(up.body));
    const url = `${panel.url}${up.body.url as string}`;
    const done = await put(url, source, SIZE);
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.deepEqual(done.body, { path: '/big/upload.bin', size: SIZE });
    assert.equal(await sha256File(path.join(dir, 'big', 'upload.bin')), sourceHash);
    // no temporary file is left beside it
    assert.deepEqual(await readdir(path.join(dir, 'big')), ['upload.bin']);
    const replay = await put(url, null, SIZE);
    assert.equal(replay.status, 404);
    assert.equal((replay.body as { code: string }).code, 'NOT_FOUND');

    const down = await grant({ direction: 'download', path: 'big/upload.bin' });
    assert.equal(down.status, 201, JSON.stringify(down.body));
    assert.equal(down.body.size, SIZE);
    const res = await fetch(`${panel.url}${down.body.url as string}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), String(SIZE));
    assert.match(res.headers.get('content-disposition') ?? '', /upload\.bin/);
    const h = createHash('sha256');
    let n = 0;
    for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) {
      n += c.length;
      h.update(c);
    }
    assert.equal(n, SIZE);
    assert.equal(h.digest('hex'), sourceHash);
    const again = await fetch(`${panel.url}${down.body.url as string}`);
    assert.equal(again.status, 404);
    assert.equal(((await again.json()) as { code: string }).code, 'NOT_FOUND');
  });

  it('an expired ticket, a wrong length and a path outside the root are refused; nothing is written', async () => {
    const up = await grant({ direction: 'upload', path: 'late.bin', size: 10, ttlSeconds: 5 });
    assert.equal(up.status, 201, JSON.stringify(up.body));
    await writeFile(path.join(dir, 'small.txt'), 'small\n');
    const down = await grant({ direction: 'download', path: 'small.txt', ttlSeconds: 5 });
    assert.equal(down.status, 201, JSON.stringify(down.body));
    await new Promise((r) => setTimeout(r, 5500));
    const late = await put(`${panel.url}${up.body.url as string}`, null, 10);
    assert.equal(late.status, 404, JSON.stringify(late.body));
    assert.equal((await fetch(`${panel.url}${down.body.url as string}`)).status, 404);
    await assert.rejects(stat(path.join(dir, 'late.bin')), { code: 'ENOENT' });

    const short = await grant({ direction: 'upload', path: 'short.bin', size: 100 });
    const wrong = await put(`${panel.url}${short.body.url as string}`, null, 50);
    assert.equal(wrong.status, 400, JSON.stringify(wrong.body));
    await assert.rejects(stat(path.join(dir, 'short.bin')), { code: 'ENOENT' });

    const outside = await grant({ direction: 'upload', path: '../escape.bin', size: 1 });
    assert.equal(outside.status, 400);
    assert.equal(outside.body.code, 'PATH_OUTSIDE_ROOT');
    const missing = await grant({ direction: 'download', path: 'nope.bin' });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.code, 'FILE_NOT_FOUND');
  });

  it('the REST file operations reach the Agent, with codes, and are logged as activity', async () => {
    await writeFile(path.join(dir, 'server.properties'), 'motd=one\n');
    const api = (method: string, url: string, body?: unknown) =>
      panel.api(owner, method, `/api/servers/${serverId}${url}`, body);
    const read = await api('GET', '/files/content?path=server.properties');
    assert.equal(read.status, 200);
    const stale = await api('PUT', '/files/content', {
      path: 'server.properties',
      content: 'motd=two\n',
      expectedSha256: '0'.repeat(64),
    });
    assert.equal(stale.status, 409);
    assert.equal(stale.body.code, 'FILE_CHANGED');
    const saved = await api('PUT', '/files/content', {
      path: 'server.properties',
      content: 'motd=two\n',
      expectedSha256: read.body.sha256,
    });
    assert.equal(saved.status, 200, JSON.stringify(saved.body));
    assert.equal((await api('POST', '/files/directories', { path: 'conf/a' })).status, 200);
    assert.equal(
      (await api('POST', '/files/copy', { from: 'server.properties', to: 'conf/a/p' })).status,
      200,
    );
    assert.equal((await api('POST', '/files/rename', { from: 'conf/a/p', to: 'conf/p2' })).status, 200);
    const ch = await api('POST', '/files/chmod', { path: 'conf/p2', mode: '600' });
    assert.equal(ch.body.mode, '0600');
    const found = await api('GET', '/files/search?query=p2');
    assert.deepEqual(
      found.body.matches.map((m: { path: string }) => m.path),
      ['/conf/p2'],
    );
    const st = await api('GET', '/files/stat?path=conf');
    assert.equal(st.body.type, 'directory');
    const sorted = await api('GET', '/files?path=/&sort=size&order=desc');
    assert.equal(sorted.status, 200);
    const out = await api('POST', '/files/rename', { from: 'conf/p2', to: '../x' });
    assert.equal(out.status, 400);
    assert.equal(out.body.code, 'PATH_OUTSIDE_ROOT');
    const del = await api('POST', '/files/delete', { root: '/', names: ['conf'] });
    assert.deepEqual(del.body, { paths: ['/conf'] });
    await assert.rejects(stat(path.join(dir, 'conf')), { code: 'ENOENT' });
    const log = await panel.api(owner, 'GET', `/api/servers/${serverId}/activity`);
    const actions = new Set((log.body.entries as { action: string }[]).map((e) => e.action));
    for (const a of ['file.write', 'file.create', 'file.copy', 'file.rename', 'file.chmod', 'file.delete'])
      assert.ok(actions.has(a), `${a} in ${[...actions].join(', ')}`);
  });
});
