/**
 * Moving node backups to and from S3 (issue 10 item 4) through the Panel, so the credentials stay
 * here and a node behind NAT works (the Agent dials out for every byte, as for file transfers):
 *
 * - `offloadBackup`: a completed backup on the node streams (create_transfer with `backupId`, relayed)
 *   straight into a multipart upload, checked against the record's sha256 and size while it
 *   streams; only once the object is complete is the node's copy deleted.
 * - `importBackup`: the object streams back to the node (backup_import, relayed), where
 *   the Agent verifies sha256 and size and registers it as a completed backup; then the normal
 *   `backup_restore` runs on it (`restoreFromS3` does both, and removes the node copy after).
 *
 * Memory: the object store holds at most part × (queue + 1) bytes; the relay holds the sockets'
 * buffers. Neither depends on the backup's size.
 */
import { pipeline, Transform } from 'node:stream';
import { BackupRecord, CodedError, CreateTransferData } from '@cap/protocol';
import type { AgentGateway } from '../../relay/agent-gateway.ts';
import { pullFromAgent, pushToAgent, type TransferRelay } from '../files/relay.ts';
import type { PutResult, S3Store } from './s3-store.ts';

export interface OffloadDeps {
  gateway: AgentGateway;
  transfers: TransferRelay;
  store: S3Store;
}

export interface Where {
  nodeId: string;
  serverId: string;
}

/** How long a ticket for the Panel's own transfer lives (it is used at once). */
const TICKET_TTL_SECONDS = 60;

function completed(rec: BackupRecord): BackupRecord & { size: number; sha256: string } {
  if (rec.state !== 'completed' || rec.size === null || rec.sha256 === null)
    throw new CodedError('INVALID_STATE', `backup ${rec.backupId} is ${rec.state}, not completed`);
  return rec as BackupRecord & { size: number; sha256: string };
}

/** Streams a node backup into the bucket, then deletes the node copy. Resolves with the object. */
export async function offloadBackup(
  d: OffloadDeps,
  w: Where,
  record: BackupRecord,
  opts: { keepNodeCopy?: boolean; signal?: AbortSignal } = {},
): Promise<PutResult> {
  const rec = completed(record);
  const grant = CreateTransferData.parse(
    await d.gateway.request(
      w.nodeId,
      'create_transfer',
      { direction: 'download', backupId: rec.backupId, ttlSeconds: TICKET_TTL_SECONDS },
      { serverId: w.serverId },
    ),
  );
  if (grant.size !== rec.size)
    throw new CodedError(
      'ARCHIVE_INVALID',
      `the node's file of backup ${rec.backupId} has ${grant.size} bytes, the record ${rec.size}`,
    );
  const src = await pullFromAgent(d, { ...w, ticket: grant.ticket, size: grant.size });
  let put: PutResult;
  try {
    put = await d.store.put(d.store.keyOf(w.serverId, rec.backupId, rec.format), src.stream, {
      size: rec.size,
      sha256: rec.sha256,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    src.done();
  } catch (e) {
    src.done(e as Error);
    throw e;
  }
  if (!opts.keepNodeCopy) await deleteNodeCopy(d.gateway, w, rec);
  return put;
}

/** Removes a backup's file and record from its node (a locked one is unlocked first). */
export async function deleteNodeCopy(gateway: AgentGateway, w: Where, rec: BackupRecord): Promise<void> {
  if (rec.locked)
    await gateway.request(
      w.nodeId,
      'backup_lock',
      { backupId: rec.backupId, locked: false },
      { serverId: w.serverId },
    );
  await gateway.request(w.nodeId, 'backup_delete', { backupId: rec.backupId }, { serverId: w.serverId });
}

/** Streams the object back to the node as the completed backup `record.backupId`. */
export async function importBackup(
  d: OffloadDeps,
  w: Where,
  record: BackupRecord,
  /** bytes sent so far of the object's total, at most once a second and once at the end */
  onProgress?: (sent: number, total: number) => void,
): Promise<BackupRecord> {
  const rec = completed(record);
  const key = d.store.keyOf(w.serverId, rec.backupId, rec.format);
  const head = await d.store.head(key);
  if (!head) throw new CodedError('BACKUP_NOT_FOUND', `backup ${rec.backupId} is not in the object store`);
  if (head.size !== rec.size)
    throw new CodedError(
      'ARCHIVE_INVALID',
      `the stored object of backup ${rec.backupId} has ${head.size} bytes, the record ${rec.size}`,
    );
  const grant = CreateTransferData.parse(
    await d.gateway.request(
      w.nodeId,
      'backup_import',
      {
        backupId: rec.backupId,
        format: rec.format,
        size: rec.size,
        sha256: rec.sha256,
        name: rec.name,
        bytes: rec.bytes,
        entries: rec.entries,
        createdAt: rec.createdAt,
        ttlSeconds: TICKET_TTL_SECONDS,
      },
      { serverId: w.serverId },
    ),
  );
  const obj = await d.store.get(key);
  let sent = 0;
  let last = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      sent += chunk.length;
      const now = Date.now();
      if (onProgress && (now - last >= 1000 || sent === rec.size)) {
        last = now;
        onProgress(sent, rec.size);
      }
      cb(null, chunk);
    },
  });
  const body = pipeline(obj.stream, counted, () => undefined);
  try {
    await pushToAgent(d, { ...w, ticket: grant.ticket, size: rec.size }, body);
  } finally {
    obj.stream.destroy();
    body.destroy();
  }
  const page = (await d.gateway.request(
    w.nodeId,
    'backup_list',
    { offset: 0, limit: 100 },
    { serverId: w.serverId },
  )) as {
    backups: unknown[];
  };
  const found = page.backups.map((b) => BackupRecord.parse(b)).find((b) => b.backupId === rec.backupId);
  if (found?.state !== 'completed')
    throw new CodedError('INTERNAL_ERROR', `backup ${rec.backupId} was sent but the node does not list it`);
  return found;
}

/**
 * Restore from the bucket: import the object to the node, run backup_restore on it (the node's
 * verify → stop → delete? → extract → start), and remove the node copy afterwards either way.
 */
export async function restoreFromS3(
  d: OffloadDeps,
  w: Where,
  record: BackupRecord,
  opts: { truncate?: boolean; timeoutMs?: number } = {},
): Promise<{ backupId: string; bytes: number; entries: number }> {
  const imported = await importBackup(d, w, record);
  try {
    return (await d.gateway.request(
      w.nodeId,
      'backup_restore',
      { backupId: record.backupId, truncate: opts.truncate ?? false },
      { serverId: w.serverId, timeoutMs: opts.timeoutMs ?? 30 * 60_000 },
    )) as { backupId: string; bytes: number; entries: number };
  } finally {
    await deleteNodeCopy(d.gateway, w, imported).catch(() => undefined);
  }
}
