/**
 * The file manager's REST surface (issue 10), starting with transfers: file bodies never cross
 * the Agent link. `POST /api/servers/:id/files/transfers` gets a single-use ticket from the Agent;
 * the browser then streams the body straight to the Agent (`<node transferUrl>/transfers/<ticket>`,
 * when set and the Agent is connected) or through `/api/transfers/<ticket>` (GET downloads, PUT
 * uploads), and the Agent dials out to `/api/agent/transfers/<ticket>` with its link credentials,
 * so a node behind NAT works (transfer-links.ts chooses). Every server route checks its `file.*` permission (requireAccess).
 */
import type { IncomingMessage } from 'node:http';
import {
  type Action,
  type ActionPayload,
  AGENT_ID_HEADER,
  ArchiveWriteFormat,
  ChmodFilePayload,
  CodedError,
  CreateDirectoryPayload,
  CreateTransferData,
  DeleteFilesPayload,
  ErrorCode,
  FileChangeData,
  FileCompressData,
  FileCompressPayload,
  FileDecompressData,
  FileDecompressPayload,
  FilePath,
  MoveFilePayload,
  SEARCH_FILES_MAX_RESULTS,
  SearchFilesData,
  StatFileData,
  TRANSFER_MAX_BYTES,
  TransferTicket,
  VolumeArchiveFormat,
  VolumeName,
  WriteFileCheckedPayload,
  WriteFileData,
} from '@cap/protocol';
import { reclaimWhileStreaming } from '@cap/protocol/runtime/reclaim.ts';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { accessBy, bearerOf, principalOf } from '../../http/auth.ts';
import type { PanelServices } from '../../services.ts';
import type { Permission } from '../access/permissions.ts';
import type { OperationResult } from '../operations/service.ts';
import { viewerOf } from '../servers/routes.ts';
import { AGENT_DIAL_TIMEOUT_MS } from './relay.ts';

const IdParams = z.object({ id: z.string().min(1).max(64) });
const TicketParams = z.object({ ticket: TransferTicket });
const CreateTransfer = z.object({
  direction: z.enum(['upload', 'download']),
  path: FilePath,
  /** an upload's exact size in bytes */
  size: z.number().int().min(0).max(TRANSFER_MAX_BYTES).optional(),
  /** how long the ticket stays valid (default and most: 300 s) */
  ttlSeconds: z.number().int().min(5).max(300).default(300),
  /** a folder's download: streamed as this archive, made on the fly (size null, chunked) */
  archive: ArchiveWriteFormat.optional(),
});
const WaitQuery = z.object({ wait: z.enum(['true', 'false']).optional() });
const TransferGrant = z.object({
  ticket: TransferTicket,
  /** where the browser sends (PUT) or fetches (GET) the body: single use, until expiresAt; straight to the Agent when the node has a transferUrl and is connected, else the relay */
  url: z.string(),
  /** the same ticket through the Panel's relay (`/api/transfers/<ticket>`): the fallback when `url` cannot be reached */
  relayUrl: z.string(),
  expiresAt: z.string(),
  /** null: a folder archived while it streams (no Content-Length; chunked) */
  size: z.number().nullable(),
  name: z.string(),
});
const UploadResult = z.union([
  z.object({ ok: z.literal(true), path: z.string(), size: z.number() }),
  z.object({ ok: z.literal(false), code: ErrorCode, message: z.string().max(4096) }),
]);
/** what an Agent's result post may weigh */
const MAX_RESULT_BYTES = 64 * 1024;

async function agentNode(req: FastifyRequest, s: PanelServices): Promise<string> {
  const token = bearerOf(req);
  const agentId = req.headers[AGENT_ID_HEADER];
  if (!token || typeof agentId !== 'string')
    throw new CodedError('AUTH_FAILED', 'send Authorization: Bearer <token> and X-Agent-ID');
  const sub = await s.agents.verify(token);
  if (sub !== agentId || !(await s.nodes.exists(sub)))
    throw new CodedError('AUTH_FAILED', 'token does not belong to this agent');
  return sub;
}

async function smallBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > MAX_RESULT_BYTES) throw new CodedError('PAYLOAD_TOO_LARGE', 'result too large');
    chunks.push(c as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new CodedError('VALIDATION_FAILED', 'result is not JSON');
  }
}

export async function filesRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const relay = s.transferRelay;
  // the Agent's credentials are checked before anything else (params included)
  const agentNodes = new WeakMap<FastifyRequest, string>();
  const checkAgent = async (req: FastifyRequest) => {
    agentNodes.set(req, await agentNode(req, s));
  };
  const agentOf = (req: FastifyRequest) => {
    const n = agentNodes.get(req);
    if (!n) throw new CodedError('AUTH_FAILED', 'not an Agent');
    return n;
  };
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['files'];

  const agentFile = async <A extends Action>(id: string, action: A, payload: ActionPayload<A>) =>
    s.gateway.request(await s.servers.nodeIdOf(id), action, payload, { serverId: id });

  r.get(
    '/api/servers/:id/files/stat',
    {
      config: { auth: 'user', access: 'file.read' },
      schema: {
        tags,
        description: 'One entry (a link is described, not followed).',
        params: IdParams,
        querystring: z.object({ path: FilePath }),
        response: { 200: StatFileData },
      },
    },
    async (req) => StatFileData.parse(await agentFile(req.params.id, 'stat_file', { path: req.query.path })),
  );
  r.get(
    '/api/servers/:id/files/search',
    {
      config: { auth: 'user', access: 'file.read' },
      schema: {
        tags,
        description: `Entries whose name contains \`query\` (case-insensitive) under \`path\`: at most \`limit\` (≤ ${SEARCH_FILES_MAX_RESULTS}) and 100k entries visited (\`truncated\`); links are not descended.`,
        params: IdParams,
        querystring: z.object({
          path: z.string().max(4096).default('/'),
          query: z.string().min(1).max(255),
          limit: z.coerce.number().int().min(1).max(SEARCH_FILES_MAX_RESULTS).default(100),
        }),
        response: { 200: SearchFilesData },
      },
    },
    async (req) => SearchFilesData.parse(await agentFile(req.params.id, 'search_files', req.query)),
  );
  r.put(
    '/api/servers/:id/files/content',
    {
      config: {
        auth: 'user',
        activity: 'file.write',
        access: accessBy('file.update; createOnly file.create', (req) =>
          (req.body as { createOnly?: boolean }).createOnly === true ? 'file.create' : 'file.update',
        ),
      },
      schema: {
        tags,
        description:
          'Writes a text file (≤ 1 MiB utf8). With `expectedSha256` (from GET …/files/content) or `expectedModifiedAt`, a file that changed meanwhile is not overwritten: 409 FILE_CHANGED. `createOnly`: 409 FILE_EXISTS when it exists. 403 FILE_DENIED (file_denylist; or a file holding hidden variable values, for a caller who gets them redacted), 409 INSUFFICIENT_RESOURCES (disk quota).',
        params: IdParams,
        body: WriteFileCheckedPayload,
        response: { 200: WriteFileData },
      },
    },
    async (req) => {
      await s.servers.assertWriteKeepsHidden(req.params.id, req.body.path, viewerOf(req));
      return WriteFileData.parse(await agentFile(req.params.id, 'write_file', req.body));
    },
  );
  const change = <B extends z.ZodType>(
    url: string,
    activity: string,
    access: Permission,
    action: 'create_directory' | 'rename_file' | 'copy_file' | 'delete_files' | 'chmod_file',
    body: B,
    description: string,
    response: z.ZodType = FileChangeData,
  ) =>
    r.post(
      url,
      {
        config: { auth: 'user', activity, access },
        schema: { tags, description, params: IdParams, body, response: { 200: response } },
      },
      async (req) =>
        response.parse(
          await agentFile(req.params.id, action, req.body as ActionPayload<typeof action>),
        ) as never,
    );
  change(
    '/api/servers/:id/files/directories',
    'file.create',
    'file.create',
    'create_directory',
    CreateDirectoryPayload,
    'Creates a folder and its missing parents. 409 FILE_EXISTS.',
  );
  change(
    '/api/servers/:id/files/rename',
    'file.rename',
    'file.update',
    'rename_file',
    MoveFilePayload,
    'Renames or moves one entry; `to` must not exist (409 FILE_EXISTS).',
  );
  change(
    '/api/servers/:id/files/copy',
    'file.copy',
    'file.create',
    'copy_file',
    MoveFilePayload,
    'Copies a file or a folder tree (links as links); `to` must not exist. 409 INSUFFICIENT_RESOURCES over the disk quota.',
  );
  change(
    '/api/servers/:id/files/delete',
    'file.delete',
    'file.delete',
    'delete_files',
    DeleteFilesPayload,
    'Deletes up to 1000 entries of one folder (folders with their contents); every name is checked first (404 FILE_NOT_FOUND, nothing removed).',
  );
  change(
    '/api/servers/:id/files/chmod',
    'file.chmod',
    'file.update',
    'chmod_file',
    ChmodFilePayload,
    'Sets permission bits (no setuid/setgid); never through a link (400 PATH_OUTSIDE_ROOT).',
    StatFileData,
  );

  const archiveOperation = <A extends 'file_compress' | 'file_decompress'>(
    url: string,
    kind: 'compress' | 'decompress',
    action: A,
    body: z.ZodType,
    data: typeof FileCompressData | typeof FileDecompressData,
    description: string,
  ) =>
    r.post(
      url,
      {
        config: { auth: 'user', activity: `file.${kind}`, access: 'file.archive' },
        schema: {
          tags,
          description,
          params: IdParams,
          querystring: WaitQuery,
          body,
          response: { 200: data, 202: z.object({ operationId: z.string() }) },
        },
      },
      async (req, reply) => {
        let end: Promise<OperationResult> | undefined;
        const operationId = await s.servers.fileOperation(
          req.params.id,
          kind,
          action,
          req.body as never,
          principalOf(req).user.id,
          req.query.wait === 'true'
            ? {
                awaitEnd: (e: Promise<OperationResult>) => {
                  end = e;
                },
              }
            : {},
        );
        if (!end) return reply.status(202).send({ operationId });
        const result = await end;
        if (!result.success) {
          const code = ErrorCode.safeParse(result.code);
          throw new CodedError(
            code.success ? code.data : 'INTERNAL_ERROR',
            result.message ?? `the ${kind} failed`,
          );
        }
        return reply.status(200).send(data.parse(result.data) as never);
      },
    );
  archiveOperation(
    '/api/servers/:id/files/compress',
    'compress',
    'file_compress',
    FileCompressPayload,
    FileCompressData,
    'Packs up to 1000 entries of the folder `root` into one archive (`tar.gz` or `zip`) written in that folder (default name `archive-<UTC yyyy-mm-dd-hhmmss>.<ext>`), as an operation: 202 `{ operationId }`, progress (`compressing`: MB and entries, at most 1/s) and the end as operation events; `?wait=true` answers 200 `{ path, size, entries, bytes }` when it ended. A named entry on the denylist is 403 FILE_DENIED, denied entries under a named folder are left out; past the disk quota 409 INSUFFICIENT_RESOURCES and nothing is left; 409 FILE_EXISTS when `name` exists; 409 SERVER_BUSY while another compress/decompress runs on the server.',
  );
  archiveOperation(
    '/api/servers/:id/files/decompress',
    'decompress',
    'file_decompress',
    FileDecompressPayload,
    FileDecompressData,
    "Unpacks an archive (tar.gz/tgz, tar.zst, tar or zip, told by its magic bytes) into `destination` (default: the archive's folder; made when missing), as an operation (202 `{ operationId }`; `?wait=true` → 200 `{ destination, bytes, entries }`). The archive is read whole first (stages `verifying`, `extracting`): 422 ARCHIVE_INVALID (corrupt, truncated, not an archive), 422 ARCHIVE_UNSAFE (`..`, absolute paths, links leading out, a link in the way), 413 ARCHIVE_TOO_LARGE (past the remaining disk quota or 200 000 entries), 403 FILE_DENIED (an entry on the denylist) before anything is written. Existing files are replaced (never written through a link).",
  );

  r.post(
    '/api/servers/:id/files/transfers',
    {
      config: {
        auth: 'user',
        activity: 'file.transfer',
        access: accessBy('by direction: download file.read-content, upload file.create', (req) =>
          (req.body as { direction: string }).direction === 'upload' ? 'file.create' : 'file.read-content',
        ),
      },
      schema: {
        tags,
        description:
          "A single-use transfer ticket for one file's body (valid `ttlSeconds`, at most and by default 300): `download` of a file, or `upload` of exactly `size` bytes to `path` (missing folders are created; the disk quota is checked now and enforced while it streams). The body then goes to `url` (`GET` to download, `PUT` with the bytes to upload), never over the Agent link: straight to the node's Agent when the node has a `transferUrl` and its Agent is connected, else through the Panel's relay; `relayUrl` is always the relay, the fallback when `url` cannot be reached (a network error, not an HTTP error answer). 404 FILE_NOT_FOUND, 400 PATH_OUTSIDE_ROOT / NAME_INVALID, 403 FILE_DENIED (the template's file_denylist; also a download for a caller who gets the server's hidden values redacted), 409 INSUFFICIENT_RESOURCES (over the disk quota).",
        params: IdParams,
        body: CreateTransfer,
        response: { 201: TransferGrant },
      },
    },
    async (req, reply) => {
      const nodeId = await s.servers.nodeIdOf(req.params.id);
      const { direction, path, size, ttlSeconds, archive } = req.body;
      // a download is the raw bytes: not for who gets hidden values redacted from file contents
      if (direction === 'download') await s.servers.assertSeesRawFiles(req.params.id, viewerOf(req));
      const data = CreateTransferData.parse(
        await s.gateway.request(
          nodeId,
          'create_transfer',
          {
            direction,
            path,
            ttlSeconds,
            ...(size === undefined ? {} : { size }),
            ...(archive === undefined ? {} : { archive }),
          },
          { serverId: req.params.id },
        ),
      );
      const urls = await s.transferLinks.issue(data.ticket, {
        nodeId,
        serverId: req.params.id,
        direction,
        size: data.size,
        name: data.name,
        expiresAt: Date.parse(data.expiresAt),
      });
      if (req.activity) req.activity.action = `file.${direction}`;
      return reply.status(201).send({ ...data, ...urls });
    },
  );

  // Docker volumes (issue 10 item 5): admins only; the bytes go through the same relay
  const VolumeParams = z.object({ id: z.string().min(1).max(64), name: VolumeName });
  const volumeGrant = async (
    req: FastifyRequest,
    nodeId: string,
    volume: string,
    action: 'volume_backup' | 'volume_restore',
    payload: Record<string, unknown>,
  ) => {
    if (!(await s.nodes.exists(nodeId))) throw new CodedError('NOT_FOUND', 'no such node');
    const data = CreateTransferData.parse(
      await s.gateway.request(nodeId, action, { volume, ...payload } as never),
    );
    const direction = action === 'volume_restore' ? 'upload' : 'download';
    const urls = await s.transferLinks.issue(data.ticket, {
      nodeId,
      serverId: '',
      direction,
      size: data.size,
      name: data.name,
      expiresAt: Date.parse(data.expiresAt),
    });
    req.log.info({ nodeId, volume, action }, 'volume transfer granted');
    return { ...data, ...urls };
  };
  r.post(
    '/api/nodes/:id/volumes/:name/archive',
    {
      config: { auth: 'admin', activity: 'node.volume.backup' },
      schema: {
        tags: ['nodes'],
        description:
          "A single-use link (valid `ttlSeconds`, at most and by default 300) that downloads the Docker volume `name` on the node as an archive made while it streams (no Content-Length, chunked): `GET url`. The volume's Mountpoint comes from the node's Docker Engine (local driver only); an Agent in a container needs /var/lib/docker/volumes mounted at the same path. 404 NOT_FOUND (no node or volume), 400 CONFIG_INVALID.",
        params: VolumeParams,
        body: z
          .object({
            format: VolumeArchiveFormat.default('tar.gz'),
            ttlSeconds: z.number().int().min(5).max(300).default(300),
          })
          .default({ format: 'tar.gz', ttlSeconds: 300 }),
        response: { 201: TransferGrant },
      },
    },
    async (req, reply) =>
      reply
        .status(201)
        .send(await volumeGrant(req, req.params.id, req.params.name, 'volume_backup', req.body ?? {})),
  );
  r.post(
    '/api/nodes/:id/volumes/:name/restore',
    {
      config: { auth: 'admin', activity: 'node.volume.restore' },
      schema: {
        tags: ['nodes'],
        description:
          'A single-use link to `PUT` an archive of exactly `size` bytes (tar.gz, tar.zst, tar or zip) that is restored into the Docker volume `name`: spooled on the node, verified whole (422 ARCHIVE_INVALID / ARCHIVE_UNSAFE, 413 ARCHIVE_TOO_LARGE, nothing written), then unpacked (`truncate`: the current contents removed first). A volume a running container uses is 409 INVALID_STATE unless `force`. The PUT answers 200 `{ path: "volume:<name>", size }`.',
        params: VolumeParams,
        body: z.object({
          size: z.number().int().min(1).max(TRANSFER_MAX_BYTES),
          force: z.boolean().default(false),
          truncate: z.boolean().default(false),
          ttlSeconds: z.number().int().min(5).max(300).default(300),
        }),
        response: { 201: TransferGrant },
      },
    },
    async (req, reply) =>
      reply
        .status(201)
        .send(await volumeGrant(req, req.params.id, req.params.name, 'volume_restore', req.body)),
  );

  r.get(
    '/api/transfers/:ticket',
    {
      config: { auth: 'public' },
      schema: {
        tags,
        description:
          'Downloads the file of a download ticket (the ticket is the credential; it works once). The bytes stream from the Agent, which dials out to the Panel. 404 NOT_FOUND for an unknown, used or expired ticket; 504 TIMEOUT when the Agent does not dial in.',
        params: TicketParams,
      },
    },
    async (req, reply) => {
      const t = relay.take(req.params.ticket);
      if (t.direction !== 'download') throw new CodedError('NOT_FOUND', 'not a download ticket');
      const headers = {
        'content-type': 'application/octet-stream',
        'content-disposition': `attachment; filename*=UTF-8''${encodeURIComponent(t.name)}`,
        'cache-control': 'no-store',
        ...(t.sha256 ? { 'x-checksum-sha256': t.sha256 } : {}),
      };
      if (t.s3Key !== undefined) {
        // a backup in object storage (PANEL_S3_DOWNLOADS=relay): streamed from S3 by the Panel
        if (!s.s3) throw new CodedError('STORAGE_ERROR', 'PANEL_BACKUP_STORAGE is not s3');
        const obj = await s.s3.get(t.s3Key);
        reply.raw.once('close', () => obj.stream.destroy());
        return reply.headers(headers).header('content-length', String(obj.size)).send(obj.stream);
      }
      let release: () => void = () => undefined;
      const sent = new Promise<void>((resolve) => {
        release = resolve;
      });
      const agentReq = await new Promise<IncomingMessage>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new CodedError('TIMEOUT', 'the Agent did not send the file')),
          AGENT_DIAL_TIMEOUT_MS,
        );
        relay.wait(req.params.ticket, {
          nodeId: t.nodeId,
          direction: 'download',
          size: t.size,
          onBody: (body) => {
            clearTimeout(timer);
            resolve(body);
            return sent;
          },
        });
        s.gateway
          .request(
            t.nodeId,
            'relay_transfer',
            { ticket: req.params.ticket },
            t.serverId ? { serverId: t.serverId } : {},
          )
          .catch((e) => {
            clearTimeout(timer);
            reject(e);
          });
      }).catch((e) => {
        relay.finish(req.params.ticket);
        throw e;
      });
      reply.raw.once('close', () => {
        release();
        if (!agentReq.complete) agentReq.destroy();
      });
      // its chunks are reclaimed as they go (RSS flat: reclaim.ts)
      reclaimWhileStreaming(agentReq);
      const length = agentReq.headers['content-length'];
      if (t.sha256) reply.header('x-checksum-sha256', t.sha256);
      // a folder archived on the fly has no length: chunked, as the Agent sent it
      if (typeof length === 'string') reply.header('content-length', length);
      else if (t.size !== null) reply.header('content-length', String(t.size));
      return reply
        .header('content-type', 'application/octet-stream')
        .header('content-disposition', `attachment; filename*=UTF-8''${encodeURIComponent(t.name)}`)
        .header('cache-control', 'no-store')
        .send(agentReq);
    },
  );

  // raw bodies (file bytes, streamed): no parser, no body limit beyond the ticket's own size
  await app.register(async (raw) => {
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser('*', (_req, _payload, done) => done(null));
    const rr = raw.withTypeProvider<ZodTypeProvider>();

    rr.put(
      '/api/transfers/:ticket',
      {
        config: { auth: 'public' },
        schema: {
          tags,
          description:
            "Uploads the body (exactly the ticket's size, Content-Length required) to the path of an upload ticket; it works once. Streamed to the Agent, which dials out to the Panel; the file appears only when every byte arrived. 200 { path, size }; 404 NOT_FOUND for an unknown, used or expired ticket; 400 VALIDATION_FAILED for a wrong length.",
          params: TicketParams,
          response: { 200: z.object({ path: z.string(), size: z.number() }) },
        },
      },
      async (req) => {
        const t = relay.take(req.params.ticket);
        if (t.direction !== 'upload') throw new CodedError('NOT_FOUND', 'not an upload ticket');
        const length = Number(req.headers['content-length']);
        if (!Number.isSafeInteger(length) || length !== t.size) {
          req.raw.resume();
          throw new CodedError('VALIDATION_FAILED', `send exactly ${t.size} bytes with Content-Length`);
        }
        const result = await new Promise<unknown>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new CodedError('TIMEOUT', 'the Agent did not take the upload')),
            AGENT_DIAL_TIMEOUT_MS,
          );
          req.raw.once('close', () => {
            if (!req.raw.complete) reject(new CodedError('VALIDATION_FAILED', 'the upload was cut off'));
          });
          relay.wait(req.params.ticket, {
            nodeId: t.nodeId,
            direction: 'upload',
            size: t.size,
            body: req.raw,
            onDial: () => clearTimeout(timer),
            onResult: resolve,
          });
          s.gateway
            .request(
              t.nodeId,
              'relay_transfer',
              { ticket: req.params.ticket },
              t.serverId ? { serverId: t.serverId } : {},
            )
            .catch((e) => {
              clearTimeout(timer);
              reject(e);
            });
        }).finally(() => relay.finish(req.params.ticket));
        const parsed = UploadResult.safeParse(result);
        if (!parsed.success) throw new CodedError('INTERNAL_ERROR', 'the Agent sent no result');
        if (!parsed.data.ok) throw new CodedError(parsed.data.code, parsed.data.message);
        return { path: parsed.data.path, size: parsed.data.size };
      },
    );

    rr.get(
      '/api/agent/transfers/:ticket',
      {
        config: { auth: 'agent' },
        preValidation: checkAgent,
        schema: {
          tags: ['agents'],
          description:
            "The Agent reads a relayed upload's body (its link token and X-Agent-ID; only for a transfer of its node that is waiting).",
          params: TicketParams,
        },
      },
      async (req, reply) => {
        const nodeId = agentOf(req);
        const w = relay.arrive(req.params.ticket, nodeId);
        if (w.direction !== 'upload' || !w.body) throw new CodedError('NOT_FOUND', 'not an upload');
        w.onDial?.();
        reclaimWhileStreaming(w.body);
        return reply
          .header('content-type', 'application/octet-stream')
          .header('content-length', String(w.size))
          .send(relay.counted(w.body));
      },
    );

    rr.post(
      '/api/agent/transfers/:ticket',
      {
        config: { auth: 'agent' },
        preValidation: checkAgent,
        schema: {
          tags: ['agents'],
          description: "The Agent sends a relayed download's bytes; answered once the browser has them.",
          params: TicketParams,
        },
      },
      async (req, reply) => {
        const nodeId = agentOf(req);
        const w = relay.arrive(req.params.ticket, nodeId);
        if (w.direction !== 'download' || !w.onBody) throw new CodedError('NOT_FOUND', 'not a download');
        relay.finish(req.params.ticket);
        await w.onBody(req.raw);
        return reply.status(204).send();
      },
    );

    rr.post(
      '/api/agent/transfers/:ticket/result',
      {
        config: { auth: 'agent' },
        preValidation: checkAgent,
        schema: {
          tags: ['agents'],
          description: "The Agent reports how a relayed upload ended (written, or the error's code).",
          params: TicketParams,
        },
      },
      async (req, reply) => {
        const nodeId = agentOf(req);
        const w = relay.arrive(req.params.ticket, nodeId);
        if (w.direction !== 'upload' || !w.onResult) throw new CodedError('NOT_FOUND', 'not an upload');
        w.onResult(await smallBody(req.raw));
        relay.finish(req.params.ticket);
        return reply.status(204).send();
      },
    );
  });
}
