/**
 * The Agent-event projection: what an Agent reports (hello, status, console, stats, crashes,
 * install, update steps, players, operation steps and ends) becomes database state and domain
 * events, published once on the bus (the live relay, metrics and the activity log subscribe).
 * Events of one node are handled in arrival order.
 */
import { type EventMessage, MAX_OPERATION_ACKS, type ServerStatus, type UpdateStage } from '@cap/protocol';
import { type FeatureName, featureOfLine, knownFeatures } from '@cap/protocol/templates/index.ts';
import type { Logger } from 'pino';
import type { DomainEvent, EventBus } from '../../bus/index.ts';
import { nowIso } from '../../db/index.ts';
import type { ConsoleMarks } from '../../relay/console-marks.ts';
import { LineNumbers } from '../../relay/line-numbers.ts';
import type { LiveStore } from '../../relay/live-store.ts';
import type { OperationsService } from '../operations/service.ts';
import type { TemplatesService } from '../templates/service.ts';
import type { ServersRepo } from './repo.ts';

const FEATURES_CACHE_MS = 60_000;
/** operation ends of one node waiting for the next ping's ack (a few pings' worth) */
const MAX_PENDING_OPERATION_ACKS = 10 * MAX_OPERATION_ACKS;

/**
 * Events whose handling goes on while an earlier console message of the node still waits for
 * its mark's write: what they publish queues behind it (#emit). Any other event first waits for
 * what the node has queued, so its effects (a status, an operation's end) follow those lines as
 * they followed them before.
 */
const PIPELINED = new Set<string>(['server_log', 'server_log_dropped', 'resource_update']);

/** a server's console line number (LinkSeq) */
interface ConsoleMark {
  serverId: string;
  epoch: string;
  seq: number;
}

export interface PendingFeature {
  feature: FeatureName;
  line: string;
}

/**
 * How far past a line the console intent is stored (lines, per server): one write per this many
 * numbered lines of a server, not one per message.
 */
export const INTENT_AHEAD = 1_000;

/** A server's intent stored ahead (`upTo`); `writing` until its write ended. */
interface Ahead {
  epoch: string;
  upTo: number;
  writing: Promise<void> | undefined;
}

export class AgentEventProjection {
  readonly #repo: ServersRepo;
  readonly #templates: TemplatesService;
  readonly #live: LiveStore;
  readonly #bus: EventBus;
  readonly #log: Logger;
  readonly #operations: OperationsService;
  /** serverId → nodeId, so an Agent can only report on its own servers */
  readonly #nodeOf = new Map<string, string>();
  /** nodeId → its servers (the reverse of #nodeOf) */
  readonly #serversOf = new Map<string, Set<string>>();
  /** nodeId → the tail of its event chain */
  readonly #eventQueues = new Map<string, Promise<void>>();
  /**
   * serverId → its template's id (null: a raw image), learned from the row once: a server's
   * template never changes, so console lines of a stopped server cost no row lookup each minute
   */
  readonly #templateOf = new Map<string, string | null>();
  /** templateId → its features (loaded on a console line, kept a minute: a re-import may change them) */
  readonly #featuresOf = new Map<string, { features: FeatureName[]; at: number }>();
  /** serverId → the feature its console last called for, until it runs or the user acted */
  readonly #pendingFeature = new Map<string, PendingFeature>();
  /** the console lines' numbering on the link: lines had twice skipped, lines lost counted */
  readonly #lineNumbers = new LineNumbers();
  /**
   * the shared marks (ConsoleMarks): the intent written before lines are published, `shown` after
   * they were; read when a server's numbering is not known here (this process's first line of it,
   * or after a hello: the Agent may have been linked to another replica meanwhile). Absent: this
   * process's numbers only.
   */
  readonly #marks: ConsoleMarks | undefined;
  /**
   * servers whose stored mark said lines shown < seq <= upTo were perhaps published (an intent
   * stored by a process that may have died before it published them): sent again, they are
   * published again flagged `resent` instead of skipped. `shown` moves up as this process takes
   * lines; the entry goes once it reaches upTo.
   */
  readonly #unsure = new Map<string, { epoch: string; shown: number; upTo: number }>();
  /**
   * per server: the intent stored ahead of its lines (up to `upTo`, INTENT_AHEAD past the line
   * that wrote it), so the lines up to it are published without a write first; `writing` until
   * that write ended (its lines wait for it); gone when it was not stored (the next line writes).
   */
  readonly #ahead = new Map<string, Ahead>();
  /** servers whose stored mark was read since their Agent's last hello here */
  readonly #marksRead = new Set<string>();
  /** servers whose stored mark is being read (with the first of their node's that asked) */
  readonly #markReads = new Map<string, Promise<void>>();
  /**
   * per node: the latest line per server stored (its intent) and published since the last ping
   * took them (the link's ack): the Agent forgets a line only once both hold
   */
  readonly #acks = new Map<string, Map<string, { epoch: string; seq: number }>>();
  /**
   * per node: the operations whose end (`operation_completed`) is stored since the last ping took
   * them (or was stored before: a repeat), acked with it so the Agent forgets them; at most
   * MAX_PENDING_OPERATION_ACKS (past it an end is not acked and comes again after a reconnect)
   */
  readonly #operationAcks = new Map<string, Set<string>>();
  /**
   * per node: the last of its publishes still queued (behind a console mark's write). The node's
   * next events are handled meanwhile (their lines' marks go in the same write), and what they
   * publish follows in order: the node's 20 servers' lines of one tick cost one write's round
   * trip, not 20 in a row.
   */
  readonly #queued = new Map<string, Promise<void>>();

  constructor(deps: {
    repo: ServersRepo;
    templates: TemplatesService;
    live: LiveStore;
    bus: EventBus;
    log: Logger;
    operations: OperationsService;
    marks?: ConsoleMarks;
  }) {
    this.#marks = deps.marks;
    this.#repo = deps.repo;
    this.#templates = deps.templates;
    this.#live = deps.live;
    this.#bus = deps.bus;
    this.#log = deps.log;
    this.#operations = deps.operations;
  }

  /** The server is the node's: its Agent may report on it (`templateId` from its row, when at hand). */
  track(serverId: string, nodeId: string, templateId?: string | null): void {
    const was = this.#nodeOf.get(serverId);
    if (was !== undefined && was !== nodeId) this.#serversOf.get(was)?.delete(serverId);
    this.#nodeOf.set(serverId, nodeId);
    let servers = this.#serversOf.get(nodeId);
    if (!servers) {
      servers = new Set();
      this.#serversOf.set(nodeId, servers);
    }
    servers.add(serverId);
    if (templateId !== undefined) this.#templateOf.set(serverId, templateId);
  }

  /** The server is gone: nothing more is accepted or kept for it. */
  forget(serverId: string): void {
    const node = this.#nodeOf.get(serverId);
    if (node !== undefined) this.#serversOf.get(node)?.delete(serverId);
    this.#markReads.delete(serverId);
    this.#ahead.delete(serverId);
    this.#nodeOf.delete(serverId);
    this.#lineNumbers.forget(serverId);
    this.#marksRead.delete(serverId);
    this.#unsure.delete(serverId);
    this.#templateOf.delete(serverId);
    this.#pendingFeature.delete(serverId);
  }

  /** True when the server exists and belongs to the reporting node. */
  owns(nodeId: string, serverId: string): boolean {
    return this.#nodeOf.get(serverId) === nodeId;
  }

  pendingFeature(serverId: string): PendingFeature | undefined {
    return this.#pendingFeature.get(serverId);
  }

  /** The user acted on the feature's dialog. */
  clearFeature(serverId: string): void {
    this.#pendingFeature.delete(serverId);
  }

  /**
   * Publishes the node's event in the order the node's events came: at once when nothing of the
   * node is queued and it need not wait (`after`: its console mark's write), else behind both.
   * `shown`: the numbered lines it carries, once published (not when publishing threw): stored as
   * shown (riding along with the next mark's write) and acked to the Agent with the next ping.
   */
  #emit(nodeId: string, event: DomainEvent, after?: Promise<void>, shown?: ConsoleMark): void {
    const queued = this.#queued.get(nodeId);
    if (!queued && !after) {
      this.#bus.publish(event);
      if (shown) this.#shown(nodeId, shown);
      return;
    }
    const wait = queued && after ? Promise.all([queued, after]) : ((queued ?? after) as Promise<unknown>);
    const p = wait.then(() => {
      try {
        this.#bus.publish(event);
      } catch (err) {
        this.#log.error({ nodeId, kind: event.kind, err: (err as Error).message }, 'publish failed');
        return;
      }
      if (shown) this.#shown(nodeId, shown);
    });
    this.#queued.set(nodeId, p);
    void p.then(() => {
      if (this.#queued.get(nodeId) === p) this.#queued.delete(nodeId);
    });
  }

  /** The lines up to `m.seq` were published (after their intent was stored): shown, and acked. */
  #shown(nodeId: string, m: ConsoleMark): void {
    this.#marks?.shown(m.serverId, m);
    let acks = this.#acks.get(nodeId);
    if (!acks) {
      acks = new Map();
      this.#acks.set(nodeId, acks);
    }
    // forward only (publishes go in order, but a hello between may have reset the epoch)
    const had = acks.get(m.serverId);
    if (!had || had.epoch !== m.epoch || had.seq < m.seq) acks.set(m.serverId, m);
  }

  async #setStatus(
    nodeId: string,
    serverId: string,
    status: ServerStatus,
    previous?: ServerStatus,
  ): Promise<void> {
    // a server that runs needs no feature dialog any more
    if (status === 'running') this.#pendingFeature.delete(serverId);
    const prev = this.#live.setStatus(serverId, status);
    if (prev === status) return;
    this.#emit(nodeId, {
      kind: 'server.status',
      serverId,
      status,
      ...((previous ?? prev) ? { previousStatus: previous ?? prev } : {}),
    });
    await this.#repo.update(serverId, { status });
  }

  /** On (re)connect the Agent lists what runs; servers it does not know are offline. */
  async reconcile(nodeId: string, reported: { serverId: string; status: ServerStatus }[]): Promise<void> {
    const byId = new Map(reported.map((r) => [r.serverId, r.status]));
    for (const s of await this.#repo.listByNode(nodeId)) {
      await this.#setStatus(nodeId, s.id, byId.get(s.id) ?? 'offline');
    }
    for (const r of reported) {
      if (!this.owns(nodeId, r.serverId)) {
        this.#log.warn({ nodeId, serverId: r.serverId }, 'agent reports a server the Panel does not know');
      }
    }
  }

  /** Console lines of a server that is not running, checked against its template's features. */
  async #detectFeatures(nodeId: string, serverId: string, lines: readonly string[]): Promise<void> {
    if (this.#live.status(serverId) === 'running') return;
    let templateId = this.#templateOf.get(serverId);
    if (templateId === undefined) {
      const row = await this.#repo.findById(serverId);
      if (!row) return;
      templateId = row.template_id;
      // (unless it was forgotten meanwhile)
      if (this.#nodeOf.has(serverId)) this.#templateOf.set(serverId, templateId);
    }
    if (templateId === null) return;
    const cached = this.#featuresOf.get(templateId);
    let features = cached && Date.now() - cached.at < FEATURES_CACHE_MS ? cached.features : undefined;
    if (!features) {
      const template = await this.#templates.template(templateId).catch(() => undefined);
      features = template ? knownFeatures(template.features) : [];
      this.#featuresOf.set(templateId, { features, at: Date.now() });
    }
    if (features.length === 0) return;
    for (const line of lines) {
      const feature = featureOfLine(line, features);
      if (!feature) continue;
      const shown = line.slice(0, 1024);
      const last = this.#pendingFeature.get(serverId);
      this.#pendingFeature.set(serverId, { feature, line: shown });
      if (last?.feature !== feature || last.line !== shown)
        this.#log.info({ serverId, feature }, 'console calls for a template feature');
      this.#emit(nodeId, { kind: 'server.feature', serverId, feature, line: shown });
      return;
    }
  }

  /**
   * A numbered console message (`seq` its last line's number, `epoch` the Agent's run): how many
   * of its `count` lines were had already (sent again after a reconnect: `skip`), how many after
   * those were perhaps published by a process that died (`resent`: published again, flagged),
   * and the lines before it that never came (written into a socket that died before the Panel
   * read them), published as `lost_in_transit`: counted, never silent.
   */
  async #numbered(
    nodeId: string,
    serverId: string,
    d: { seq?: number; epoch?: string },
    count: number,
  ): Promise<{
    skip: number;
    resent: number;
    numbered: { epoch: string } | undefined;
    stored: Promise<void> | undefined;
    mark: ConsoleMark | undefined;
  }> {
    const numbered =
      typeof d.seq === 'number' && typeof d.epoch === 'string' ? { epoch: d.epoch } : undefined;
    if (numbered && this.#marks && !this.#marksRead.has(serverId))
      await this.#readMark(this.#marks, nodeId, serverId);
    let { skip, gap } = this.#lineNumbers.take(serverId, d.epoch, d.seq, count);
    let resent = 0;
    const unsure = numbered && this.#unsure.size > 0 ? this.#unsure.get(serverId) : undefined;
    // (numbers that LineNumbers refuses, not safe integers or fewer than the lines, change nothing)
    if (unsure && unsure.epoch === d.epoch && Number.isSafeInteger(d.seq) && count <= (d.seq as number)) {
      // the skipped lines above `shown` (the tail of the skipped, at most the stored intent)
      const seq = d.seq as number;
      const lastSkipped = seq - count + skip;
      const from = Math.max(seq - count + 1, unsure.shown + 1);
      if (skip > 0 && lastSkipped <= unsure.upTo && from <= lastSkipped) {
        resent = lastSkipped - from + 1;
        skip -= resent;
      }
      // taken here: published by this process (or it dies, and the stored marks tell the next)
      if (seq > unsure.shown) unsure.shown = seq;
      if (unsure.shown >= unsure.upTo) this.#unsure.delete(serverId);
    }
    let stored: Promise<void> | undefined;
    let mark: ConsoleMark | undefined;
    if (numbered && skip < count && this.#marks) {
      // the intent, stored before anything is published (what waits for `stored`): a replica
      // that gets these lines again publishes them flagged (or skips them once `shown` says they
      // were). Not awaited here: the node's next messages are handled meanwhile, their marks
      // join the same write, their publishes queue behind (#emit), and this one's `shown` rides
      // along with a later write.
      const seq = d.seq as number;
      mark = { serverId, epoch: numbered.epoch, seq };
      const ahead = this.#ahead.get(serverId);
      if (ahead && ahead.epoch === numbered.epoch && seq <= ahead.upTo) stored = ahead.writing;
      else stored = this.#writeAhead(this.#marks, serverId, numbered.epoch, seq);
    }
    if (gap > 0 && numbered)
      this.#emit(
        nodeId,
        {
          kind: 'server.console_dropped',
          serverId,
          count: gap,
          reason: 'lost_in_transit',
          seq: (d.seq as number) - count,
          ...numbered,
        },
        stored,
      );
    return { skip, resent, numbered, stored, mark };
  }

  /**
   * Stores the server's intent INTENT_AHEAD lines past `seq`: the lines up to there are published
   * without a write of their own first (at 20,000 servers a write per console message was half
   * the Panel's CPU and a second of event latency). A process that dies leaves lines it never
   * had in the range between its last `shown` and that intent: sent later, they are published
   * flagged `resent`, which a consumer drops only when it showed their number already, so
   * nothing is lost or shown twice for it.
   */
  #writeAhead(marks: ConsoleMarks, serverId: string, epoch: string, seq: number): Promise<void> {
    const upTo = seq + INTENT_AHEAD;
    const entry: Ahead = { epoch, upTo, writing: undefined };
    const writing = marks.write(serverId, { epoch, seq: upTo }).then((ok) => {
      if (this.#ahead.get(serverId) !== entry) return;
      // not stored (the database failed or is slow): the lines went on, the next one writes again
      if (ok) entry.writing = undefined;
      else this.#ahead.delete(serverId);
    });
    entry.writing = writing;
    this.#ahead.set(serverId, entry);
    return writing;
  }

  /**
   * Reads the server's stored mark, and with it those of the node's other servers not read since
   * its hello: their first lines follow in this tick, and one query serves them all (a node's
   * servers one after the other were 20 reads in a row after every Panel start or hello).
   */
  #readMark(marks: ConsoleMarks, nodeId: string, serverId: string): Promise<void> {
    const reading = this.#markReads.get(serverId);
    if (reading) return reading;
    const ids = [serverId];
    for (const id of this.#serversOf.get(nodeId) ?? [])
      if (id !== serverId && !this.#marksRead.has(id) && !this.#markReads.has(id)) ids.push(id);
    let mine: Promise<void> = Promise.resolve();
    for (const id of ids) {
      const p: Promise<void> = marks.load(id).then((mark) => {
        if (this.#markReads.get(id) !== p) return; // a hello (or forget) meanwhile: read again
        this.#markReads.delete(id);
        const own = this.#ahead.get(id);
        // the stored intent is this process's own (ahead of its lines, or older): nobody else
        // published since (another would have stored its own past it), what is known here holds
        const ours =
          mark !== undefined && own !== undefined && own.epoch === mark.epoch && mark.seq <= own.upTo;
        if (mark && !ours && this.#lineNumbers.seed(id, mark)) {
          this.#ahead.delete(id);
          // a process (this one before a restart, or another replica) stored an intent beyond
          // what it stored as shown: those lines, sent again, are published again (flagged)
          if (mark.shown < mark.seq)
            this.#unsure.set(id, { epoch: mark.epoch, shown: mark.shown, upTo: mark.seq });
          else this.#unsure.delete(id);
        }
        this.#marksRead.add(id);
      });
      this.#markReads.set(id, p);
      if (id === serverId) mine = p;
    }
    return mine;
  }

  /**
   * The lines of the node's servers stored (their intent) and published since the last call (the
   * link's ack, sent with the next heartbeat: the Agent may forget those lines), at most `max`.
   */
  takeAcks(nodeId: string, max = 1000): { serverId: string; epoch: string; seq: number }[] {
    const acks = this.#acks.get(nodeId);
    if (!acks) return [];
    const out: { serverId: string; epoch: string; seq: number }[] = [];
    for (const [serverId, m] of acks) {
      if (out.length >= max) break;
      out.push({ serverId, epoch: m.epoch, seq: m.seq });
      acks.delete(serverId);
    }
    if (acks.size === 0) this.#acks.delete(nodeId);
    return out;
  }

  #endStored(nodeId: string, data: unknown): void {
    const id = (data as { operationId?: unknown } | null)?.operationId;
    if (typeof id !== 'string' || id.length === 0 || id.length > 128) return;
    let acks = this.#operationAcks.get(nodeId);
    if (!acks) {
      acks = new Set();
      this.#operationAcks.set(nodeId, acks);
    }
    if (acks.size < MAX_PENDING_OPERATION_ACKS) acks.add(id);
  }

  /**
   * The operations of the node whose end was stored since the last call (the link's ack, sent
   * with the next heartbeat: the Agent may forget those ends), at most `max`.
   */
  takeOperationAcks(nodeId: string, max = MAX_OPERATION_ACKS): string[] {
    const acks = this.#operationAcks.get(nodeId);
    if (!acks) return [];
    const out: string[] = [];
    for (const id of acks) {
      if (out.length >= max) break;
      out.push(id);
      acks.delete(id);
    }
    if (acks.size === 0) this.#operationAcks.delete(nodeId);
    return out;
  }

  /**
   * Events of one node are handled in arrival order: a status write (or the hello's reconcile)
   * awaits the database, and a newer event must not be overtaken by an older one.
   */
  handleEvent(nodeId: string, msg: EventMessage): Promise<void> {
    const prev = this.#eventQueues.get(nodeId) ?? Promise.resolve();
    const next = prev.then(() => this.#handleEvent(nodeId, msg));
    const settled = next.catch(() => undefined);
    this.#eventQueues.set(nodeId, settled);
    settled.then(() => {
      if (this.#eventQueues.get(nodeId) === settled) this.#eventQueues.delete(nodeId);
    });
    // resolves once what it publishes is published (the queue above moves on before that)
    return next.then(() => this.#queued.get(nodeId));
  }

  async #handleEvent(nodeId: string, msg: EventMessage): Promise<void> {
    // its effects follow the node's console lines still queued behind their mark (PIPELINED)
    if (!PIPELINED.has(msg.event)) await this.#queued.get(nodeId);
    if (msg.event === 'agent_hello') {
      const d = msg.data as EventMessage<'agent_hello'>['data'];
      // the Agent may have been linked to another replica since: its marks are read again
      for (const serverId of this.#serversOf.get(nodeId) ?? []) {
        this.#marksRead.delete(serverId);
        this.#markReads.delete(serverId);
      }
      this.#acks.delete(nodeId);
      this.#operationAcks.delete(nodeId);
      await this.reconcile(nodeId, d.servers);
      await this.#operations.reconcile(
        nodeId,
        new Set((d.operations ?? []).map((o) => o.operationId)),
        nowIso(),
      );
      return;
    }
    const serverId = (msg.data as { serverId: string }).serverId;
    // an operation's steps and end from another node (a transfer's target): the operation's own
    // row names the node it runs on, and only that node's reports are taken (operations service)
    const operationEvent = msg.event === 'operation_progress' || msg.event === 'operation_completed';
    // several replicas: a server made (or moved) through another replica is in the shared
    // database before this one's map has it
    if (!this.owns(nodeId, serverId) && typeof serverId === 'string') {
      const row = await this.#repo.findById(serverId);
      if (row?.node_id === nodeId) this.track(serverId, nodeId, row.template_id);
    }
    if (!this.owns(nodeId, serverId) && !(operationEvent && this.#nodeOf.has(serverId))) {
      this.#log.warn({ nodeId, serverId, event: msg.event }, 'event for a server not on this node; ignored');
      // sent again it would be ignored again: the Agent may forget it
      if (msg.event === 'operation_completed') this.#endStored(nodeId, msg.data);
      return;
    }
    switch (msg.event) {
      case 'server_status_changed': {
        const d = msg.data as EventMessage<'server_status_changed'>['data'];
        await this.#setStatus(nodeId, serverId, d.currentStatus, d.previousStatus);
        break;
      }
      case 'server_log': {
        const d = msg.data as EventMessage<'server_log'>['data'];
        // one message may carry the lines of one Agent tick, newline-separated; an empty line is
        // a line too (dropping it here would lose it unreported)
        let lines = d.message.split(/\r?\n/);
        const { skip, resent, numbered, stored, mark } = await this.#numbered(
          nodeId,
          serverId,
          d,
          lines.length,
        );
        if (skip >= lines.length) break; // had already (sent again after a reconnect)
        if (skip > 0) lines = lines.slice(skip);
        this.#emit(
          nodeId,
          {
            kind: 'server.console',
            serverId,
            lines,
            ...(d.stream ? { stream: d.stream } : {}),
            ...(numbered ? { seq: d.seq as number, ...numbered } : {}),
            ...(resent > 0 ? { resent } : {}),
          },
          stored,
          mark,
        );
        if (d.stream !== 'daemon') await this.#detectFeatures(nodeId, serverId, lines);
        break;
      }
      case 'server_log_dropped': {
        const d = msg.data as EventMessage<'server_log_dropped'>['data'];
        const { skip, resent, numbered, stored, mark } = await this.#numbered(nodeId, serverId, d, d.count);
        if (d.count - skip > 0)
          this.#emit(
            nodeId,
            {
              kind: 'server.console_dropped',
              serverId,
              count: d.count - skip,
              reason: d.reason,
              ...(numbered ? { seq: d.seq as number, ...numbered } : {}),
              ...(resent > 0 ? { resent } : {}),
            },
            stored,
            mark,
          );
        break;
      }
      case 'resource_update': {
        const d = msg.data as EventMessage<'resource_update'>['data'];
        this.#emit(nodeId, { kind: 'server.stats', serverId, stats: d });
        break;
      }
      case 'server_crashed': {
        const d = msg.data as EventMessage<'server_crashed'>['data'];
        this.#bus.publish({
          kind: 'server.crashed',
          serverId,
          exitCode: d.exitCode,
          restarting: d.restarting,
        });
        break;
      }
      case 'server_update_progress': {
        const d = msg.data as EventMessage<'server_update_progress'>['data'];
        this.#bus.publish({
          kind: 'server.update',
          serverId,
          stage: d.stage as UpdateStage,
          ...(d.message ? { message: d.message } : {}),
        });
        break;
      }
      case 'players_update': {
        const d = msg.data as EventMessage<'players_update'>['data'];
        this.#bus.publish({ kind: 'server.players', serverId, online: d.online, max: d.max, list: d.list });
        break;
      }
      case 'remote_console_state': {
        const d = msg.data as EventMessage<'remote_console_state'>['data'];
        this.#bus.publish({
          kind: 'server.remote_console',
          serverId,
          transport: d.transport,
          state: d.state,
          ...(d.message ? { message: d.message } : {}),
        });
        break;
      }
      case 'install_output': {
        const d = msg.data as EventMessage<'install_output'>['data'];
        this.#bus.publish({ kind: 'server.install', serverId, lines: d.message.split(/\r?\n/) });
        break;
      }
      case 'image_pull_progress': {
        const d = msg.data as EventMessage<'image_pull_progress'>['data'];
        this.#bus.publish({
          kind: 'server.image_pull',
          serverId,
          operationId: d.operationId,
          layers: d.layers,
          done: d.done,
        });
        break;
      }
      case 'operation_progress': {
        const d = msg.data as EventMessage<'operation_progress'>['data'];
        await this.#operations.progress(nodeId, serverId, d.operationId, d.stage, d.message);
        break;
      }
      case 'operation_completed': {
        const d = msg.data as EventMessage<'operation_completed'>['data'];
        const known = await this.#operations.completed(nodeId, serverId, d.operationId, {
          success: d.success,
          ...(d.error ? { code: d.error.code, message: d.error.message } : {}),
          ...(d.data !== undefined ? { data: d.data } : {}),
        });
        if (!known)
          this.#log.warn(
            { nodeId, serverId, operationId: d.operationId },
            'end of an unknown operation; ignored',
          );
        // stored (or had before, or never to be taken): acked with the next ping. A failure to
        // store it threw above: not acked, the Agent sends it again after its next reconnect
        this.#endStored(nodeId, d);
        break;
      }
      case 'install_completed': {
        const d = msg.data as EventMessage<'install_completed'>['data'];
        this.#log.info(
          { serverId, action: 'install', success: d.success, exitCode: d.exitCode },
          'install completed',
        );
        this.#bus.publish({
          kind: 'server.install',
          serverId,
          success: d.success,
          ...(d.exitCode === undefined ? {} : { exitCode: d.exitCode }),
        });
        break;
      }
    }
  }
}
