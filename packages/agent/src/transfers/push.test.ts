/**
 * transfer_push's client (push.ts) against a real HTTP server on loopback: the URL rules (no
 * open proxy), the bytes and headers sent, the target's answers passed on as codes, and
 * UPSTREAM_ERROR when the target cannot be reached (the Panel relays then).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isCodedError } from '@cap/protocol';
import { pushArchive, pushTarget } from './push.ts';

const TICKET = 'A'.repeat(43);

describe('transfer_push: URL rules', () => {
  it('takes http(s) /transfers/<ticket> only', () => {
    assert.equal(pushTarget(`http://10.0.0.2:8080/transfers/${TICKET}`, TICKET).host, '10.0.0.2:8080');
    assert.equal(
      pushTarget(`https://n.example/agent/transfers/${TICKET}`, TICKET).pathname,
      `/agent/transfers/${TICKET}`,
    );
    const refused = (url: string, ticket = TICKET) =>
      assert.throws(
        () => pushTarget(url, ticket),
        (e: unknown) => isCodedError(e) && (e.code === 'URL_NOT_ALLOWED' || e.code === 'CONFIG_INVALID'),
        url,
      );
    refused(`file:///etc/transfers/${TICKET}`);
    refused(`gopher://x/transfers/${TICKET}`);
    refused(`http://user:pw@x/transfers/${TICKET}`);
    refused(`http://x/transfers/${TICKET}?a=1`);
    refused(`http://x/transfers/${TICKET}#f`);
    refused('http://169.254.169.254/latest/meta-data/');
    refused(`http://x/transfers/${'B'.repeat(43)}`);
    refused(`http://x/transfers/../x`, '../x');
    refused('not a url');
  });
});

describe('transfer_push: streaming to a real HTTP server', () => {
  let dir: string;
  let file: { path: string; size: number; sha256: string };
  let body: Buffer;
  let answer: (req: IncomingMessage, res: ServerResponse, got: Buffer) => void;
  let seen: { method?: string; url?: string; headers?: IncomingMessage['headers']; got?: Buffer } = {};
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const got = Buffer.concat(chunks);
      seen = { method: req.method, url: req.url, headers: req.headers, got };
      answer(req, res, got);
    });
  });
  let base = '';

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cap-push-'));
    body = randomBytes(3 * 1024 * 1024 + 17);
    const p = path.join(dir, 'a.tar.zst');
    await writeFile(p, body);
    file = { path: p, size: body.length, sha256: createHash('sha256').update(body).digest('hex') };
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });

  it('PUTs exactly the file with its length and sha256; the target result comes back', async () => {
    answer = (_req, res, got) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ path: 'backup:b1', size: got.length }));
    };
    const progress: number[] = [];
    const r = await pushArchive(
      file,
      { url: `${base}/transfers/${TICKET}`, ticket: TICKET, connectTimeoutMs: 5000 },
      (sent) => progress.push(sent),
    );
    assert.equal(seen.method, 'PUT');
    assert.equal(seen.url, `/transfers/${TICKET}`);
    assert.equal(seen.headers?.['content-length'], String(body.length));
    assert.equal(seen.headers?.['x-checksum-sha256'], file.sha256);
    assert.ok(seen.got?.equals(body), 'byte-identical');
    assert.deepEqual(
      { path: r.path, size: r.size, bytes: r.bytes },
      { path: 'backup:b1', size: body.length, bytes: body.length },
    );
    assert.equal(progress.at(-1), body.length);
  });

  it("passes on the target's error code; an answer without JSON is UPSTREAM_ERROR", async () => {
    answer = (_req, res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ code: 'ARCHIVE_INVALID', message: 'sha256 mismatch' }));
    };
    await assert.rejects(
      pushArchive(file, { url: `${base}/transfers/${TICKET}`, ticket: TICKET, connectTimeoutMs: 5000 }),
      (e: unknown) => isCodedError(e) && e.code === 'ARCHIVE_INVALID' && /sha256 mismatch/.test(e.message),
    );
    answer = (_req, res) => {
      res.writeHead(404, { 'content-type': 'text/html' });
      res.end('<h1>not here</h1>');
    };
    await assert.rejects(
      pushArchive(file, { url: `${base}/transfers/${TICKET}`, ticket: TICKET, connectTimeoutMs: 5000 }),
      (e: unknown) => isCodedError(e) && e.code === 'UPSTREAM_ERROR',
    );
  });

  it('a closed port is UPSTREAM_ERROR (the Panel relays then); a file that changed is refused first', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    await assert.rejects(
      pushArchive(file, {
        url: `http://127.0.0.1:${port}/transfers/${TICKET}`,
        ticket: TICKET,
        connectTimeoutMs: 5000,
      }),
      (e: unknown) =>
        isCodedError(e) && e.code === 'UPSTREAM_ERROR' && /could not be reached/.test(e.message),
    );
    await assert.rejects(
      pushArchive(
        { ...file, size: file.size + 1 },
        { url: `${base}/transfers/${TICKET}`, ticket: TICKET, connectTimeoutMs: 5000 },
      ),
      (e: unknown) => isCodedError(e) && e.code === 'INVALID_STATE',
    );
  });
});
