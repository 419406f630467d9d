/**
 * A real S3-compatible server on loopback for tests: s3rver (a Koa app over a folder), with one
 * bucket. The npm package is `@20minutes/s3rver`, the maintained fork of `s3rver` (whose last
 * release, 3.7.1 of 2021, does not check Signature V4 at all: a wrong secret or a tampered
 * presigned URL would pass). It implements multipart uploads but not
 * AbortMultipartUpload (nor ListMultipartUploads); this helper adds the abort over s3rver's own
 * store (an upload in progress is the folder `<bucket>/._S3rver_uploads/<uploadId>` that holds its
 * parts) and lists those folders as the pending uploads, so a test sees what a real store keeps. Everything else (signatures,
 * presigned URLs and their expiry, part handling) is s3rver's own.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { S3Settings } from '../src/config/index.ts';

interface KoaCtx {
  method: string;
  path: string;
  query: Record<string, string | undefined>;
  status: number;
  body: unknown;
  type: string;
}
type Middleware = (ctx: KoaCtx, next: () => Promise<void>) => Promise<void> | void;
interface S3rverApp {
  middleware: Middleware[];
  store: { getResourcePath(bucket: string, key: string | undefined, resource: string): string };
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
type S3rverCtor = new (opts: Record<string, unknown>) => S3rverApp;

const S3rver = createRequire(import.meta.url)('@20minutes/s3rver') as S3rverCtor;

/** s3rver's fixed account */
export const S3RVER_KEY = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface TestS3 {
  endpoint: string;
  bucket: string;
  dir: string;
  /** Panel settings for this server (part size in MiB, at least 5) */
  settings(over?: Partial<S3Settings> & { partSizeMb?: number }): S3Settings;
  /** the environment that makes a Panel offload backups here */
  env(over?: Record<string, string>): Record<string, string>;
  /** multipart uploads started and neither completed nor aborted */
  pendingUploads(): string[];
  /** object keys in the bucket */
  objects(): string[];
  /** AbortMultipartUpload requests seen */
  aborts: number;
  /** while true, every write (PUT, POST) is answered 503 ServiceUnavailable: an outage of the store */
  failWrites: boolean;
  /** writes refused so far by failWrites */
  refusedWrites: number;
  stop(): Promise<void>;
}

export async function startTestS3(bucket = 'cap-backups'): Promise<TestS3> {
  const dir = mkdtempSync(path.join(tmpdir(), 'cap-s3-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dir,
    configureBuckets: [{ name: bucket }],
  });
  const uploadsDir = (b: string) => server.store.getResourcePath(b, undefined, 'uploads');
  const t: TestS3 = {
    endpoint: '',
    bucket,
    dir,
    aborts: 0,
    failWrites: false,
    refusedWrites: 0,
    settings: (over = {}) => {
      const { partSizeMb, ...rest } = over;
      return {
        endpoint: t.endpoint,
        bucket,
        region: 'us-east-1',
        ...S3RVER_KEY,
        forcePathStyle: true,
        partSizeBytes: (partSizeMb ?? 8) * 1024 * 1024,
        queueSize: 2,
        prefix: '',
        downloads: 'presign',
        upload: { attempts: 5, retryMs: 5000 },
        ...rest,
      };
    },
    env: (over = {}) => ({
      PANEL_BACKUP_STORAGE: 's3',
      PANEL_S3_ENDPOINT: t.endpoint,
      PANEL_S3_BUCKET: bucket,
      PANEL_S3_ACCESS_KEY_ID: S3RVER_KEY.accessKeyId,
      PANEL_S3_SECRET_ACCESS_KEY: S3RVER_KEY.secretAccessKey,
      PANEL_S3_FORCE_PATH_STYLE: 'true',
      PANEL_S3_PART_SIZE_MB: '8',
      ...over,
    }),
    pendingUploads: () => {
      try {
        return readdirSync(uploadsDir(bucket));
      } catch {
        return [];
      }
    },
    objects: () => {
      const out: string[] = [];
      const walk = (d: string, rel: string) => {
        for (const e of readdirSync(d, { withFileTypes: true })) {
          // s3rver keeps an object as the file `<name>._S3rver_object` beside its metadata
          const m = /^(.*)\._S3rver_object$/.exec(e.name);
          if (m && e.isFile()) out.push(`${rel}${m[1]}`);
          else if (e.isDirectory() && !e.name.endsWith('._S3rver_uploads'))
            walk(path.join(d, e.name), `${rel}${e.name}/`);
        }
      };
      walk(path.join(dir, bucket), '');
      return out;
    },
    stop: async () => {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  // AbortMultipartUpload (DELETE ?uploadId) and ListMultipartUploads (GET ?uploads), placed
  // before s3rver's router (the last middleware)
  const shim: Middleware = async (ctx, next) => {
    if (t.failWrites && (ctx.method === 'PUT' || ctx.method === 'POST')) {
      t.refusedWrites++;
      ctx.status = 503;
      ctx.type = 'application/xml';
      ctx.body =
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code><Message>made to fail by the test</Message></Error>';
      return;
    }
    const [, b, ...keyParts] = ctx.path.split('/');
    if (ctx.method === 'DELETE' && b && keyParts.length > 0 && ctx.query.uploadId !== undefined) {
      const id = ctx.query.uploadId;
      if (!/^[0-9a-f]{32}$/.test(id)) {
        ctx.status = 404;
        return;
      }
      t.aborts++;
      await rm(path.join(uploadsDir(b), id), { recursive: true, force: true });
      ctx.status = 204;
      ctx.body = '';
      return;
    }
    await next();
  };
  server.middleware.splice(server.middleware.length - 1, 0, shim);
  const addr = await server.run();
  t.endpoint = `http://127.0.0.1:${addr.port}`;
  return t;
}
