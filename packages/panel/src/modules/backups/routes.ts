/**
 * The backups REST surface (issue 10 item 4), under /api/servers/:id/backups; every route is
 * checked by requireAccess with its `backup.*` permission, and every change is an activity entry
 * `backup.*`. See service.ts for what each does on the Agent.
 */
import { BackupFormat, BackupId } from '@cap/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { principalOf } from '../../http/auth.ts';
import type { PanelServices } from '../../services.ts';
import { PanelBackup } from './repo.ts';

const IdParams = z.object({ id: z.string().min(1).max(64) });
const BackupParams = IdParams.extend({ backupId: BackupId });
const WaitQuery = z.object({ wait: z.enum(['true', 'false']).optional() });
const ListQuery = z.object({
  offset: z.coerce.number().int().min(0).max(1_000_000).default(0),
  limit: z.coerce.number().int().min(1).max(100).default(50),
});
const CreateBackup = z.object({
  name: z.string().min(1).max(191).optional(),
  format: BackupFormat.default('tar.zst'),
  /** `.pteroignore` lines, added to the server's own `.pteroignore` */
  ignore: z.array(z.string().max(4096)).max(1000).optional(),
  locked: z.boolean().default(false),
  /** after a success keep only the newest N completed unlocked backups (locked ones are kept) */
  retain: z.number().int().min(1).max(1000).optional(),
});
const BackupList = z.object({
  backups: z.array(PanelBackup),
  total: z.number().int(),
  offset: z.number().int(),
  limit: z.number().int(),
  /** the server's backup limit (locked ones count); null: none */
  backupLimit: z.number().int().nullable(),
});
const DownloadLink = z.object({
  /** GET it once, before expiresAt: the archive streamed, `x-checksum-sha256` its sha256 (direct to the Agent when the node has a transferUrl and is connected, else the relay) */
  url: z.string(),
  /** the same ticket through the Panel's relay: the fallback when `url` cannot be reached */
  relayUrl: z.string(),
  expiresAt: z.string(),
  size: z.number(),
  name: z.string(),
  sha256: z.string(),
});

function note(req: FastifyRequest, details: Record<string, string>): void {
  if (req.activity) req.activity.details = details;
}

export async function backupsRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['backups'];

  r.get(
    '/api/servers/:id/backups',
    {
      config: { auth: 'user', access: 'backup.read' },
      schema: {
        tags,
        description:
          "The server's backups, newest first, with who made them and where they are kept (read back from the Agent first while its node is online, so retention's deletions show), and the server's `backupLimit`.",
        params: IdParams,
        querystring: ListQuery,
        response: { 200: BackupList },
      },
    },
    async (req) => s.backups.list(req.params.id, req.query),
  );

  r.post(
    '/api/servers/:id/backups',
    {
      config: { auth: 'user', access: 'backup.create', activity: 'backup.create' },
      schema: {
        tags,
        description:
          "Makes a backup of the server's files on its node, as an operation (`backup`; stages commands_before, archiving, done): 202 { operationId, backupId } once the Agent accepted it; ?wait=true answers 200 with the backup once completed, or the error. The template's backup commands (e.g. save-off/save-all, save-on) are sent while the server runs. 409 BACKUP_LIMIT_REACHED at the server's backup limit (locked and pending ones count), 409 SERVER_BUSY while another backup or restore of the server runs, 409 INSUFFICIENT_RESOURCES when the node's disk is full, 503 AGENT_OFFLINE.",
        params: IdParams,
        querystring: WaitQuery,
        body: CreateBackup,
        response: {
          200: PanelBackup,
          202: z.object({ operationId: z.string(), backupId: z.string() }),
        },
      },
    },
    async (req, reply) => {
      const { operationId, backupId, done } = await s.backups.create(
        req.params.id,
        req.body,
        principalOf(req).user.id,
      );
      note(req, { backupId, operationId, format: req.body.format });
      if (req.query.wait === 'true') return reply.status(200).send(await done);
      done.catch(() => undefined);
      return reply.status(202).send({ operationId, backupId });
    },
  );

  r.post(
    '/api/servers/:id/backups/:backupId/download',
    {
      config: { auth: 'user', access: 'backup.download', activity: 'backup.download' },
      schema: {
        tags,
        description: `A short-lived (${300} s), single-use link to a completed backup's archive: GET \`url\` streams it with its sha256 in \`x-checksum-sha256\`: straight from the Agent when the node has a \`transferUrl\` and is connected, else relayed by the Panel (the Agent dials out); \`relayUrl\` is always the relay, for when \`url\` cannot be reached. A backup in S3 (storage s3): \`url\` (and \`relayUrl\`) is a presigned GET to the bucket (PANEL_S3_DOWNLOADS=presign), or the Panel streams the object (relay). 404 BACKUP_NOT_FOUND, 409 INVALID_STATE when it is not completed.`,
        params: BackupParams,
        response: { 201: DownloadLink },
      },
    },
    async (req, reply) => {
      note(req, { backupId: req.params.backupId });
      return reply.status(201).send(await s.backups.downloadLink(req.params.id, req.params.backupId));
    },
  );

  r.post(
    '/api/servers/:id/backups/:backupId/restore',
    {
      config: { auth: 'user', access: 'backup.restore', activity: 'backup.restore' },
      schema: {
        tags,
        description:
          "Restores a completed backup into the server's folder, as an operation (`restore`; stages verifying, stopping, deleting (with `truncate`), extracting, starting (when it ran), done): 202 { operationId }; ?wait=true answers 200 once done, or the error. The archive is verified before the server is stopped or a file touched (422 ARCHIVE_INVALID / ARCHIVE_UNSAFE, 413 ARCHIVE_TOO_LARGE); `truncate` deletes the current files first. 409 SERVER_BUSY, INVALID_STATE (not completed).",
        params: BackupParams,
        querystring: WaitQuery,
        body: z.object({ truncate: z.boolean().default(false) }).default({ truncate: false }),
        response: {
          200: z.object({ operationId: z.string(), backupId: z.string() }),
          202: z.object({ operationId: z.string() }),
        },
      },
    },
    async (req, reply) => {
      const { operationId, done } = await s.backups.restore(
        req.params.id,
        req.params.backupId,
        req.body.truncate,
        principalOf(req).user.id,
      );
      note(req, { backupId: req.params.backupId, operationId, truncate: String(req.body.truncate) });
      if (req.query.wait === 'true') {
        await done;
        return reply.status(200).send({ operationId, backupId: req.params.backupId });
      }
      done.catch(() => undefined);
      return reply.status(202).send({ operationId });
    },
  );

  r.post(
    '/api/servers/:id/backups/:backupId/lock',
    {
      config: { auth: 'user', access: 'backup.delete', activity: 'backup.lock' },
      schema: {
        tags,
        description:
          'Locks or unlocks a backup: a locked one is kept by retention and cannot be deleted (it still counts against the limit).',
        params: BackupParams,
        body: z.object({ locked: z.boolean() }),
        response: { 200: PanelBackup },
      },
    },
    async (req) => {
      if (req.activity) req.activity.action = req.body.locked ? 'backup.lock' : 'backup.unlock';
      note(req, { backupId: req.params.backupId });
      return s.backups.lock(req.params.id, req.params.backupId, req.body.locked);
    },
  );

  r.delete(
    '/api/servers/:id/backups/:backupId',
    {
      config: { auth: 'user', access: 'backup.delete', activity: 'backup.delete' },
      schema: {
        tags,
        description:
          'Deletes a backup on its node and from the Panel. 409 INVALID_STATE when locked (unlock it first), 409 SERVER_BUSY while it is being made, 404 BACKUP_NOT_FOUND.',
        params: BackupParams,
        response: { 204: z.null() },
      },
    },
    async (req, reply) => {
      note(req, { backupId: req.params.backupId });
      await s.backups.delete(req.params.id, req.params.backupId);
      return reply.status(204).send(null);
    },
  );
}
