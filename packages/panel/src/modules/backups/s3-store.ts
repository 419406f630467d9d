/**
 * Backups in S3-compatible object storage (issue 10 item 4), with the AWS SDK v3. The Panel alone
 * holds the credentials: a node's backup streams from its Agent through the Panel into a multipart
 * upload, and back the same way for a restore; browsers download through a short-lived presigned
 * GET (or the Panel relays when the endpoint is not theirs to reach).
 *
 * - `put` streams: at most `queueSize` parts of `partSizeBytes` are in memory (lib-storage's
 *   Upload), whatever the object's size. The sha256 and size are computed on the way; when the
 *   caller names the expected ones, a mismatch fails the upload before it is completed. Any failure
 *   (the source cut, a refused part, a mismatch) aborts the multipart upload: no object and no
 *   pending upload are left.
 * - Errors are coded: refused credentials STORAGE_AUTH_FAILED, a missing object BACKUP_NOT_FOUND,
 *   anything else of the store STORAGE_ERROR (the message names the bucket and key, never a secret).
 */
import { createHash } from 'node:crypto';
import { type Readable, Transform } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { CodedError, isCodedError } from '@cap/protocol';
import type { S3Settings } from '../../config/index.ts';

export type { S3Settings };

/** How long a presigned GET lives, at most (and by default): short, it is a bearer credential. */
export const PRESIGN_MAX_SECONDS = 900;

export interface PutResult {
  key: string;
  size: number;
  sha256: string;
  /** the parts the upload took (1: a single PUT) */
  parts: number;
  etag: string | undefined;
}

export interface ObjectInfo {
  size: number;
  etag: string | undefined;
  /** the sha256 recorded with the object (metadata `sha256`), when it was given */
  sha256: string | undefined;
}

const AUTH_ERRORS = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'InvalidToken',
  'ExpiredToken',
  'AuthorizationHeaderMalformed',
]);

function statusOf(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

/** The store's failure as a coded error; `what` names the bucket and key, never a credential. */
export function storageError(e: unknown, what: string): CodedError {
  if (isCodedError(e)) return e;
  const name = (e as { name?: string })?.name ?? '';
  const status = statusOf(e);
  if (AUTH_ERRORS.has(name) || status === 401 || status === 403)
    return new CodedError(
      'STORAGE_AUTH_FAILED',
      `the object store refused the Panel's credentials for ${what} (${name || status}); check PANEL_S3_ACCESS_KEY_ID and PANEL_S3_SECRET_ACCESS_KEY`,
    );
  if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) {
    if (name === 'NoSuchBucket')
      return new CodedError('STORAGE_ERROR', `the bucket of ${what} does not exist (PANEL_S3_BUCKET)`);
    return new CodedError('BACKUP_NOT_FOUND', `${what} is not in the object store`);
  }
  if (name === 'NoSuchBucket')
    return new CodedError('STORAGE_ERROR', `the bucket of ${what} does not exist (PANEL_S3_BUCKET)`);
  if (name === 'AbortError')
    return new CodedError('STORAGE_ERROR', `the transfer of ${what} was aborted`, { cause: e });
  const detail =
    e instanceof S3ServiceException
      ? `${name}${status ? ` (HTTP ${status})` : ''}`
      : ((e as NodeJS.ErrnoException)?.code ?? name) || 'unknown error';
  return new CodedError('STORAGE_ERROR', `the object store failed for ${what}: ${detail}`, { cause: e });
}

/** Counts and hashes the bytes through; with expectations, a different stream fails at its end. */
// (not `size`: lib-storage reads a body's `size` as its length)
function tap(expect: { size?: number; sha256?: string }): Transform & { seen: number; digest: string } {
  const hash = createHash('sha256');
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      t.seen += chunk.length;
      if (expect.size !== undefined && t.seen > expect.size)
        cb(new CodedError('ARCHIVE_INVALID', `the stream is longer than the ${expect.size} bytes expected`));
      else cb(null, chunk);
    },
    flush(cb) {
      t.digest = hash.digest('hex');
      if (expect.size !== undefined && t.seen !== expect.size)
        cb(
          new CodedError('ARCHIVE_INVALID', `the stream had ${t.seen} of the ${expect.size} bytes expected`),
        );
      else if (expect.sha256 !== undefined && t.digest !== expect.sha256)
        cb(
          new CodedError(
            'ARCHIVE_INVALID',
            `the stream's sha256 ${t.digest} is not the expected ${expect.sha256}`,
          ),
        );
      else cb();
    },
  }) as Transform & { seen: number; digest: string };
  t.seen = 0;
  t.digest = '';
  return t;
}

export class S3Store {
  readonly client: S3Client;
  readonly bucket: string;
  readonly #s: S3Settings;

  constructor(settings: S3Settings) {
    this.#s = settings;
    this.bucket = settings.bucket;
    this.client = new S3Client({
      region: settings.region,
      ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
      forcePathStyle: settings.forcePathStyle,
      credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
      // S3-compatible servers (and older ones) often take no flexible-checksum trailers
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
    });
  }

  /** The key of a server's backup (under PANEL_S3_PREFIX). */
  keyOf(serverId: string, backupId: string, format: string): string {
    return `${this.#s.prefix}backups/${serverId}/${backupId}.${format}`;
  }

  #what(key: string): string {
    return `s3://${this.bucket}/${key}`;
  }

  /**
   * The bucket takes these credentials for what backups need: an empty object written and removed
   * (`<prefix>.cap-probe`). Bucket-level calls are avoided: a key may hold no s3:ListBucket.
   */
  async probe(): Promise<void> {
    const key = `${this.#s.prefix}.cap-probe`;
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: new Uint8Array(0), ContentLength: 0 }),
      );
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (e) {
      throw storageError(e, `s3://${this.bucket}`);
    }
  }

  /**
   * Streams `body` into `key` (multipart when it is over one part). Resolves once the object is
   * complete; rejects (coded) with nothing left in the store otherwise.
   */
  async put(
    key: string,
    body: Readable,
    opts: { size?: number; sha256?: string; signal?: AbortSignal; contentType?: string } = {},
  ): Promise<PutResult> {
    const counter = tap({
      ...(opts.size === undefined ? {} : { size: opts.size }),
      ...(opts.sha256 === undefined ? {} : { sha256: opts.sha256 }),
    });
    let sourceError: unknown;
    body.once('error', (e) => {
      sourceError = e;
      counter.destroy(e);
    });
    body.pipe(counter);
    const ac = new AbortController();
    const onAbort = () => {
      ac.abort();
      body.destroy(opts.signal?.reason);
    };
    if (opts.signal?.aborted) onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.bucket,
        Key: key,
        Body: counter,
        ContentType: opts.contentType ?? 'application/octet-stream',
        ...(opts.sha256 ? { Metadata: { sha256: opts.sha256 } } : {}),
      },
      partSize: this.#s.partSizeBytes,
      queueSize: this.#s.queueSize,
      leavePartsOnError: false,
      abortController: ac,
    });
    let parts = 0;
    upload.on('httpUploadProgress', (p) => {
      if (p.part !== undefined && p.part > parts) parts = p.part;
    });
    try {
      const out = await upload.done();
      if (sourceError !== undefined) throw sourceError;
      return {
        key,
        size: counter.seen,
        sha256: counter.digest,
        parts: Math.max(parts, 1),
        etag: out.ETag,
      };
    } catch (e) {
      body.destroy();
      counter.destroy();
      // lib-storage aborted a started multipart upload; a completed single PUT cannot have happened
      // before the stream ended, so nothing is left. The source's own error wins over the SDK's.
      const cause = sourceError ?? e;
      if (isCodedError(cause)) throw cause;
      if (sourceError !== undefined)
        throw new CodedError(
          'STORAGE_ERROR',
          `the source of ${this.#what(key)} failed: ${String((cause as Error)?.message ?? cause)}`,
          {
            cause,
          },
        );
      throw storageError(e, this.#what(key));
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** The object as a stream (with its size). */
  async get(
    key: string,
    signal?: AbortSignal,
  ): Promise<{ stream: Readable; size: number; etag: string | undefined }> {
    try {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key }),
        signal ? { abortSignal: signal } : {},
      );
      if (!out.Body) throw new CodedError('STORAGE_ERROR', `${this.#what(key)} came with no body`);
      return { stream: out.Body as Readable, size: Number(out.ContentLength ?? 0), etag: out.ETag };
    } catch (e) {
      throw storageError(e, this.#what(key));
    }
  }

  /** Size, ETag and recorded sha256 of an object; null when it is not there. */
  async head(key: string): Promise<ObjectInfo | null> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: Number(out.ContentLength ?? 0), etag: out.ETag, sha256: out.Metadata?.sha256 };
    } catch (e) {
      const coded = storageError(e, this.#what(key));
      if (coded.code === 'BACKUP_NOT_FOUND') return null;
      throw coded;
    }
  }

  /** Removes the object (one that is not there is fine). */
  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (e) {
      const coded = storageError(e, this.#what(key));
      if (coded.code !== 'BACKUP_NOT_FOUND') throw coded;
    }
  }

  /**
   * A presigned GET for the object, valid `expiresInSeconds` (1..PRESIGN_MAX_SECONDS); the
   * browser saves it as `filename`. The URL is the credential: hand it only to who may download.
   */
  async presignGet(
    key: string,
    opts: { expiresInSeconds?: number; filename?: string } = {},
  ): Promise<string> {
    const ttl = opts.expiresInSeconds ?? PRESIGN_MAX_SECONDS;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > PRESIGN_MAX_SECONDS)
      throw new CodedError('VALIDATION_FAILED', `a presigned URL lives 1 to ${PRESIGN_MAX_SECONDS} s`);
    // the name is kept to [A-Za-z0-9._-]: some S3-compatible servers encode other characters of a
    // signed query value differently from the SDK and refuse the signature
    const safe = opts.filename?.replace(/[^A-Za-z0-9._-]/g, '_');
    const cmd = new GetObjectCommand({
      Bucket: this.bucket,
      Key: key,
      ...(safe ? { ResponseContentDisposition: `attachment; filename="${safe}"` } : {}),
    });
    try {
      return await getSignedUrl(this.client, cmd, { expiresIn: ttl });
    } catch (e) {
      throw storageError(e, this.#what(key));
    }
  }

  close(): void {
    this.client.destroy();
  }
}
