/**
 * One move mechanism for a server going to another node (issue 16): a transfer (modules/transfers,
 * archive made on the source) and a failover (modules/failover, archive from object storage) both
 *
 *   1. create the server on the target (its egg with the target allocation, no install: the
 *      files come from the archive) — `createOn`;
 *   2. put the archive there and restore it (each its own way: a transfer streams it source →
 *      target, `sendArchive`; a failover restores from S3);
 *   3. switch the server's node and allocation in one transaction, its allocations elsewhere let
 *      go, then its events are taken from the new node — `switchTo`;
 *
 * and, when anything before the switch fails, remove the copy on the target and let its
 * allocations there go — `undoOn` (false: the target was not reached; the caller keeps that to
 * do later).
 *
 * `sendArchive` streams one completed backup of the source to the target's backup_import ticket:
 * straight Agent to Agent (transfer_push) when the target node has a transferUrl its Agent serves
 * transfers on, else (and when the source Agent cannot reach that URL: UPSTREAM_ERROR) relayed by
 * the Panel; the target checks the size and sha256 on arrival either way.
 */
import { Transform } from 'node:stream';
import {
  type BackupRecord,
  CodedError,
  CreateTransferData,
  isCodedError,
  SystemInfo,
  TransferPushData,
} from '@cap/protocol';
import type { Logger } from 'pino';
import type { Db } from '../../db/index.ts';
import { nowIso } from '../../db/index.ts';
import type { AgentGateway } from '../../relay/agent-gateway.ts';
import { pullFromAgent, pushToAgent, type TransferRelay } from '../files/relay.ts';
import type { NodesRepo } from '../nodes/repo.ts';
import type { ServersService } from '../servers/service.ts';

/** How long a create or delete on an Agent may take (an image pull, a large tree). */
const AGENT_STEP_TIMEOUT_MS = 30 * 60_000;
const TICKET_TTL_SECONDS = 120;

export type ArchivePath = 'direct' | 'relay';

/** An archive's way to the target, and how it went. */
export interface SentArchive {
  path: ArchivePath;
  /** why the direct path was not taken (or why it was given up for the relay) */
  reason: string;
  ms: number;
}

/**
 * Runs an operation action on an Agent to its end (a transfer's step operations); the caller's
 * own bookkeeping (operation rows, timeouts) stays its own.
 */
export type RunStep = (
  nodeId: string,
  action: 'transfer_push',
  payload: {
    backupId: string;
    url: string;
    ticket: string;
    targetNodeId: string;
    connectTimeoutMs: number;
  },
) => Promise<{ data?: unknown }>;

export class ServerPlacement {
  readonly #db: Db;
  readonly #gateway: AgentGateway;
  readonly #servers: ServersService;
  readonly #nodes: NodesRepo;
  readonly #relay: TransferRelay;
  readonly #log: Logger;

  constructor(deps: {
    db: Db;
    gateway: AgentGateway;
    servers: ServersService;
    nodes: NodesRepo;
    relay: TransferRelay;
    log: Logger;
  }) {
    this.#db = deps.db;
    this.#gateway = deps.gateway;
    this.#servers = deps.servers;
    this.#nodes = deps.nodes;
    this.#relay = deps.relay;
    this.#log = deps.log;
  }

  /**
   * The server created on `nodeId` with that primary allocation, without its install. With
   * `resumed`, a copy an earlier attempt made (SERVER_EXISTS, and the target knows it) counts.
   */
  async createOn(
    nodeId: string,
    serverId: string,
    allocationId: string | null,
    opts: { resumed?: boolean; create?: (eggConfig: unknown) => Promise<unknown> } = {},
  ): Promise<void> {
    const eggConfig = await this.#servers.eggOn(serverId, allocationId);
    try {
      if (opts.create) await opts.create(eggConfig);
      else
        await this.#gateway.request(
          nodeId,
          'create_server',
          { serverId, eggConfig },
          { timeoutMs: AGENT_STEP_TIMEOUT_MS },
        );
    } catch (e) {
      const known =
        opts.resumed === true &&
        isCodedError(e) &&
        e.code === 'SERVER_EXISTS' &&
        (await this.#gateway
          .request(nodeId, 'get_status', {}, { serverId })
          .then(() => true)
          .catch(() => false));
      if (!known) throw e;
    }
  }

  /** The copy on `nodeId` deleted (true: gone, or never there; false: its Agent did not answer). */
  async removeFrom(nodeId: string, serverId: string): Promise<boolean> {
    return this.#gateway
      .request(nodeId, 'delete_server', {}, { serverId, timeoutMs: AGENT_STEP_TIMEOUT_MS })
      .then(
        () => true,
        (e: unknown) =>
          isCodedError(e) && (e.code === 'SERVER_NOT_FOUND' || e.code === 'CONTAINER_NOT_FOUND'),
      );
  }

  /** Before a switch: the target's copy goes and its allocations there too (false: copy not removed yet). */
  async undoOn(nodeId: string, serverId: string, opts: { created: boolean }): Promise<boolean> {
    const gone = opts.created ? await this.removeFrom(nodeId, serverId) : true;
    await this.#servers
      .releaseOn(serverId, nodeId)
      .catch((e: Error) =>
        this.#log.warn({ serverId, nodeId, err: e.message }, 'target allocations not released'),
      );
    return gone;
  }

  /**
   * The switch: node and primary allocation, its allocations on other nodes let go, and `also`
   * (e.g. its backups' node), in one transaction; then its status and events from the new node.
   */
  async switchTo(
    serverId: string,
    nodeId: string,
    allocationId: string | null,
    opts: { also?: (tx: Db) => Promise<void>; status?: Parameters<ServersService['movedTo']>[2] } = {},
  ): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      const tx = trx as unknown as Db;
      await tx
        .updateTable('servers')
        .set({ node_id: nodeId, allocation_id: allocationId, updated_at: nowIso() })
        .where('id', '=', serverId)
        .execute();
      await tx
        .deleteFrom('allocations')
        .where('server_id', '=', serverId)
        .where('node_id', '!=', nodeId)
        .where('pooled', '=', 0)
        .execute();
      await tx
        .updateTable('allocations')
        .set({ server_id: null })
        .where('server_id', '=', serverId)
        .where('node_id', '!=', nodeId)
        .execute();
      await opts.also?.(tx);
    });
    await this.#servers.movedTo(serverId, nodeId, opts.status ?? 'offline');
  }

  /**
   * Where the source Agent can push straight to the target: the target's transferUrl when set and
   * its Agent reports that its HTTP API serves transfer tickets; else null with why not.
   */
  async directUrlOf(nodeId: string): Promise<{ url: string | null; reason: string }> {
    const row = await this.#nodes.findById(nodeId);
    if (!row?.transfer_url) return { url: null, reason: 'the target node has no transferUrl' };
    let info: unknown = null;
    try {
      info = row.system_info ? JSON.parse(row.system_info) : null;
    } catch {
      info = null;
    }
    const parsed = SystemInfo.safeParse(info);
    if (!parsed.success || parsed.data.transfers !== true)
      return { url: null, reason: "the target Agent's HTTP API does not serve transfers (no AGENT_API_KEY)" };
    return { url: row.transfer_url.replace(/\/+$/, ''), reason: 'the target node has a transferUrl' };
  }

  /** The target's upload ticket for the archive (backup_import: checked there on arrival). */
  async #importTicket(target: string, serverId: string, rec: BackupRecord) {
    return CreateTransferData.parse(
      await this.#gateway.request(
        target,
        'backup_import',
        {
          backupId: rec.backupId,
          format: rec.format,
          size: rec.size ?? 0,
          sha256: rec.sha256 ?? '',
          name: rec.name,
          bytes: rec.bytes,
          entries: rec.entries,
          createdAt: rec.createdAt,
          ttlSeconds: TICKET_TTL_SECONDS,
        },
        { serverId },
      ),
    );
  }

  /**
   * One completed backup of the source on the target (as the same backup): direct when it can
   * be, relayed otherwise (see the header). `onProgress` gets the bytes relayed (the direct
   * push reports its own progress through the source's operation).
   */
  async sendArchive(
    m: { serverId: string; source: string; target: string },
    rec: BackupRecord,
    push: RunStep,
    onProgress?: (sent: number, total: number, path: ArchivePath) => void,
  ): Promise<SentArchive> {
    if (rec.state !== 'completed' || rec.size === null || rec.sha256 === null)
      throw new CodedError('INVALID_STATE', `backup ${rec.backupId} is ${rec.state}, not completed`);
    const started = Date.now();
    const direct = await this.directUrlOf(m.target);
    let reason = direct.reason;
    if (direct.url) {
      const up = await this.#importTicket(m.target, m.serverId, rec);
      onProgress?.(0, rec.size, 'direct');
      try {
        const r = await push(m.source, 'transfer_push', {
          backupId: rec.backupId,
          // the ticket is bound to the target node's configured URL: nothing else is ever sent
          url: `${direct.url}/transfers/${up.ticket}`,
          ticket: up.ticket,
          targetNodeId: m.target,
          connectTimeoutMs: 10_000,
        });
        const data = TransferPushData.safeParse(r.data);
        if (data.success && data.data.size !== rec.size)
          throw new CodedError('INTERNAL_ERROR', `the target stored ${data.data.size} of ${rec.size} bytes`);
        return { path: 'direct', reason, ms: Date.now() - started };
      } catch (e) {
        // the source could not reach the target's URL: relayed instead (a refusal by the target is final)
        if (!isCodedError(e) || e.code !== 'UPSTREAM_ERROR') throw e;
        reason = `the direct push failed (${e.message}); relayed by the Panel`;
        this.#log.warn(
          { serverId: m.serverId, target: m.target, err: e.message },
          'direct push failed; relaying',
        );
      }
    }
    await this.#relayArchive(m, rec, onProgress && ((n, total) => onProgress(n, total, 'relay')));
    return { path: 'relay', reason, ms: Date.now() - started };
  }

  /** The archive source → Panel → target (relay_transfer both ends), with backpressure. */
  async #relayArchive(
    m: { serverId: string; source: string; target: string },
    rec: BackupRecord,
    onProgress?: (sent: number, total: number) => void,
  ): Promise<void> {
    const { serverId } = m;
    const size = rec.size ?? 0;
    const up = await this.#importTicket(m.target, serverId, rec);
    const down = CreateTransferData.parse(
      await this.#gateway.request(
        m.source,
        'create_transfer',
        { direction: 'download', backupId: rec.backupId, ttlSeconds: TICKET_TTL_SECONDS },
        { serverId },
      ),
    );
    const deps = { transfers: this.#relay, gateway: this.#gateway };
    const src = await pullFromAgent(deps, { nodeId: m.source, serverId, ticket: down.ticket, size });
    let sent = 0;
    let last = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        sent += chunk.length;
        const now = Date.now();
        if (onProgress && (now - last >= 1000 || sent === size)) {
          last = now;
          onProgress(sent, size);
        }
        cb(null, chunk);
      },
    });
    src.stream.once('error', (e) => counted.destroy(e));
    src.stream.pipe(counted);
    try {
      await pushToAgent(deps, { nodeId: m.target, serverId, ticket: up.ticket, size }, counted);
      src.done();
    } catch (e) {
      src.done(e as Error);
      counted.destroy();
      throw e;
    }
  }
}
