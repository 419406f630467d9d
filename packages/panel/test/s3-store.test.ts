/**
 * The S3 backup store against a real S3-compatible server on loopback (s3rver): streamed
 * multipart put/get of 100 MB with Panel memory bounded, a cut source leaving nothing behind, a
 * checksum mismatch never completing, presigned GETs that work and expire, refused credentials.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { UploadPartCommand } from '@aws-sdk/client-s3';
import { isCodedError } from '@cap/protocol';
import { loadPanelConfig } from '../src/config/index.ts';
import { S3Store, storageError } from '../src/modules/backups/s3-store.ts';
import { startTestS3, type TestS3 } from './s3.ts';

const MiB = 1024 * 1024;

/** `total` bytes of a deterministic, incompressible-looking pattern, in 1 MiB chunks, made as read. */
function patterned(total: number, opts: { failAt?: number } = {}): Readable {
  let sent = 0;
  let n = 0;
  return new Readable({
    read() {
      if (opts.failAt !== undefined && sent >= opts.failAt) {
        this.destroy(new Error('the source was cut'));
        return;
      }
      if (sent >= total) {
        this.push(null);
        return;
      }
      const len = Math.min(MiB, total - sent);
      const seed = createHash('sha256').update(String(n++)).digest();
      const chunk = Buffer.alloc(len);
      for (let i = 0; i < len; i += seed.length) seed.copy(chunk, i, 0, Math.min(seed.length, len - i));
      chunk.writeUInt32BE(n, 0);
      sent += len;
      this.push(chunk);
    },
  });
}

async function sha256Of(stream: Readable): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of stream as AsyncIterable<Buffer>) {
    h.update(c);
    size += c.length;
  }
  return { sha256: h.digest('hex'), size };
}

function rejectsWith(code: string) {
  return (e: unknown) => {
    assert.ok(isCodedError(e), `a coded error, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  };
}

describe('S3 backup store (s3rver on loopback)', () => {
  let s3: TestS3;
  before(async () => {
    s3 = await startTestS3();
  });
  after(async () => {
    await s3?.stop();
  });

  test('100 MB streams in 8 MB parts and back byte-identical, with memory bounded', async () => {
    const store = new S3Store(s3.settings({ partSizeMb: 8 }));
    let parts = 0;
    store.client.middlewareStack.add(
      (next, ctx) => async (args) => {
        if (ctx.commandName === UploadPartCommand.name) parts++;
        return next(args);
      },
      { step: 'initialize', name: 'countParts' },
    );
    const total = 100 * MiB;
    const expected = await sha256Of(patterned(total));
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    }, 20);
    const key = store.keyOf('srv-1', 'b-100mb', 'tar.zst');
    const put = await store
      .put(key, patterned(total), { size: total, sha256: expected.sha256 })
      .finally(() => clearInterval(sampler));
    assert.equal(put.size, total);
    assert.equal(put.sha256, expected.sha256);
    assert.equal(parts, Math.ceil(total / (8 * MiB)), 'UploadPart requests (multipart really used)');
    assert.equal(put.parts, 13);
    // 2 parts in flight + one being filled + the SDK's copies: far under the object's 100 MB
    assert.ok(rssPeak - rssBefore < 80 * MiB, `RSS grew ${((rssPeak - rssBefore) / MiB).toFixed(0)} MiB`);
    assert.deepEqual(s3.pendingUploads(), []);

    const head = await store.head(key);
    assert.equal(head?.size, total);
    assert.equal(head?.sha256, expected.sha256);
    const got = await store.get(key);
    assert.equal(got.size, total);
    assert.deepEqual(await sha256Of(got.stream), expected);
    await store.delete(key);
    assert.equal(await store.head(key), null);
    await store.delete(key); // gone already: fine
    store.close();
  });

  test('a source cut mid-stream aborts the multipart upload: no object, no pending upload', async () => {
    const store = new S3Store(s3.settings({ partSizeMb: 5 }));
    const key = store.keyOf('srv-1', 'b-cut', 'tar.zst');
    const abortsBefore = s3.aborts;
    await assert.rejects(
      store.put(key, patterned(60 * MiB, { failAt: 23 * MiB })),
      rejectsWith('STORAGE_ERROR'),
    );
    assert.ok(s3.aborts > abortsBefore, 'AbortMultipartUpload was sent');
    assert.deepEqual(s3.pendingUploads(), []);
    assert.equal(await store.head(key), null);
    assert.ok(!s3.objects().includes(key));
    store.close();
  });

  test('a stream that is not the expected bytes never becomes an object', async () => {
    const store = new S3Store(s3.settings({ partSizeMb: 5 }));
    const key = store.keyOf('srv-1', 'b-bad-sum', 'tar.gz');
    await assert.rejects(
      store.put(key, patterned(12 * MiB), { size: 12 * MiB, sha256: 'ab'.repeat(32) }),
      rejectsWith('ARCHIVE_INVALID'),
    );
    await assert.rejects(
      store.put(key, patterned(12 * MiB), { size: 11 * MiB }),
      rejectsWith('ARCHIVE_INVALID'),
    );
    // a short one in a single PUT (under one part) too
    await assert.rejects(store.put(key, patterned(MiB), { size: 2 * MiB }), rejectsWith('ARCHIVE_INVALID'));
    assert.deepEqual(s3.pendingUploads(), []);
    assert.equal(await store.head(key), null);
    store.close();
  });

  test('a presigned GET works with plain fetch, names the file, and expires', async () => {
    const store = new S3Store(s3.settings());
    const key = store.keyOf('srv-2', 'b-small', 'tar.gz');
    const body = Buffer.from('backup bytes '.repeat(1000));
    await store.put(key, Readable.from([body]));
    const url = await store.presignGet(key, { expiresInSeconds: 2, filename: 'srv-2 backup.tar.gz' });
    assert.ok(url.startsWith(`${s3.endpoint}/${s3.bucket}/`), url);
    assert.ok(!url.includes(s3.settings().secretAccessKey + '&'), 'no secret in the URL');
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), body);
    assert.match(
      res.headers.get('content-disposition') ?? '',
      /^attachment; filename="srv-2_backup\.tar\.gz"$/,
    );
    // a tampered URL is refused
    const tampered = url.replace(/X-Amz-Signature=[0-9a-f]{4}/, 'X-Amz-Signature=0000');
    assert.equal((await fetch(tampered)).status, 403);
    // the signature's second resolution: past 2 s it has expired
    await new Promise((r) => setTimeout(r, 3100));
    const late = await fetch(url);
    assert.equal(late.status, 403);
    assert.match(await late.text(), /expired/i);
    await assert.rejects(store.presignGet(key, { expiresInSeconds: 3600 }), rejectsWith('VALIDATION_FAILED'));
    await store.delete(key);
    store.close();
  });

  test('refused credentials are STORAGE_AUTH_FAILED (never the secret in the message); an unknown bucket STORAGE_ERROR', async () => {
    const secret = 'not-the-secret-0123456789';
    const bad = new S3Store(s3.settings({ secretAccessKey: secret }));
    const key = bad.keyOf('srv-3', 'b', 'tar.zst');
    for (const attempt of [
      () => bad.probe(),
      () => bad.put(key, Readable.from([Buffer.from('x')])),
      () => bad.put(key, patterned(11 * MiB)),
      () => bad.get(key),
      () => bad.head(key),
      () => bad.delete(key),
    ]) {
      await assert.rejects(attempt(), (e: unknown) => {
        rejectsWith('STORAGE_AUTH_FAILED')(e);
        assert.ok(!(e as Error).message.includes(secret));
        return true;
      });
    }
    bad.close();
    const unknownKey = new S3Store(s3.settings({ accessKeyId: 'NOBODY' }));
    await assert.rejects(unknownKey.probe(), rejectsWith('STORAGE_AUTH_FAILED'));
    unknownKey.close();
    const noBucket = new S3Store(s3.settings({ bucket: 'no-such-bucket' }));
    await assert.rejects(noBucket.put('k', Readable.from([Buffer.from('x')])), rejectsWith('STORAGE_ERROR'));
    noBucket.close();
    const good = new S3Store(s3.settings());
    await good.probe();
    await assert.rejects(good.get('backups/none/none.tar.zst'), rejectsWith('BACKUP_NOT_FOUND'));
    good.close();
    // an unreachable store
    const down = new S3Store(s3.settings({ endpoint: 'http://127.0.0.1:9' }));
    await assert.rejects(down.probe(), rejectsWith('STORAGE_ERROR'));
    down.close();
    assert.equal(storageError(new Error('x'), 's3://b/k').code, 'STORAGE_ERROR');
  });
});

test('PANEL_BACKUP_STORAGE=s3 needs a bucket and keys; the secret never shows in JSON', () => {
  assert.equal(loadPanelConfig({}).backupStorage, 'node');
  assert.equal(loadPanelConfig({}).s3, undefined);
  assert.throws(
    () => loadPanelConfig({ PANEL_BACKUP_STORAGE: 's3', PANEL_S3_BUCKET: 'b-1' }),
    (e: unknown) =>
      isCodedError(e) &&
      e.code === 'CONFIG_INVALID' &&
      /PANEL_S3_ACCESS_KEY_ID, PANEL_S3_SECRET_ACCESS_KEY/.test(e.message),
  );
  for (const [k, v] of [
    ['PANEL_S3_PART_SIZE_MB', '4'],
    ['PANEL_S3_PART_SIZE_MB', 'NaN'],
    ['PANEL_S3_ENDPOINT', 'ftp://x'],
    ['PANEL_S3_BUCKET', 'Bad_Bucket'],
    ['PANEL_S3_DOWNLOADS', 'both'],
  ] as const)
    assert.throws(
      () =>
        loadPanelConfig({
          PANEL_BACKUP_STORAGE: 's3',
          PANEL_S3_BUCKET: 'b-1',
          PANEL_S3_ACCESS_KEY_ID: 'id',
          PANEL_S3_SECRET_ACCESS_KEY: 'top-secret-value',
          [k]: v,
        }),
      (e: unknown) => isCodedError(e) && e.code === 'CONFIG_INVALID' && e.message.includes(k),
      `${k}=${v}`,
    );
  const c = loadPanelConfig({
    PANEL_BACKUP_STORAGE: 's3',
    PANEL_S3_ENDPOINT: 'http://127.0.0.1:9000/',
    PANEL_S3_BUCKET: 'b-1',
    PANEL_S3_ACCESS_KEY_ID: 'id',
    PANEL_S3_SECRET_ACCESS_KEY: 'top-secret-value',
    PANEL_S3_FORCE_PATH_STYLE: 'true',
    PANEL_S3_PART_SIZE_MB: '8',
  });
  assert.equal(c.s3?.endpoint, 'http://127.0.0.1:9000');
  assert.equal(c.s3?.partSizeBytes, 8 * MiB);
  assert.equal(c.s3?.forcePathStyle, true);
  assert.equal(c.s3?.secretAccessKey, 'top-secret-value');
  assert.ok(!JSON.stringify(c).includes('top-secret-value'));
  assert.match(JSON.stringify(c), /"secretAccessKey":"\[redacted\]"/);
});
