/**
 * The Panel's Prometheus metrics (prom-client, one registry per Panel): servers by state, nodes
 * by link state, operations by kind and result, Agent events and their lag, dropped console
 * lines, HTTP latency by route, and Node's own (event-loop lag, heap, GC). Fed by the event bus
 * and the Agent hub's event stream (wired in services.ts); the server code is not touched.
 * Served at GET /metrics (routes.ts) for an admin API key or PANEL_METRICS_TOKEN.
 */
import { type EventMessage, ServerStatus } from '@cap/protocol';
import type { FastifyInstance } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { EventBus } from '../../bus/index.ts';
import type { Db } from '../../db/index.ts';
import { RESOURCES } from '../nodes/capacity.ts';
import type { Node } from '../nodes/service.ts';

export interface MetricsSources {
  db: Db;
  /** whether a node's Agent is linked now */
  isOnline: (nodeId: string) => boolean;
  /** every node with its capacity and link health (issue 16 item 4) */
  nodes?: () => Promise<Node[]>;
}

export class PanelMetrics {
  readonly registry = new Registry();
  readonly #operations: Counter<'kind' | 'result'>;
  readonly #agentEvents: Counter<'event'>;
  /** agent events counted since the last scrape, by event (cap_agent_events_total's collect adds them) */
  readonly #eventCounts = new Map<string, number>();
  #lastStamp = '';
  #lastSent = Number.NaN;
  readonly #eventLag: Histogram;
  readonly #dropped: Counter<'reason'>;
  readonly #linkChanges: Counter<'state'>;
  readonly #http: Histogram<'method' | 'route' | 'status_code'>;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'cap_panel_' });
    new Gauge({
      name: 'cap_servers',
      help: 'Servers by state (as the Panel last heard from their Agents)',
      labelNames: ['state'],
      registers,
      async collect() {
        const rows = await sources.db
          .selectFrom('servers')
          .select(['status', sources.db.fn.countAll<number>().as('n')])
          .groupBy('status')
          .execute();
        this.reset();
        for (const s of ServerStatus.options) this.set({ state: s }, 0);
        for (const r of rows) this.set({ state: r.status }, Number(r.n));
      },
    });
    new Gauge({
      name: 'cap_nodes',
      help: "Nodes by the state of their Agent's link (online: linked now)",
      labelNames: ['state'],
      registers,
      async collect() {
        const nodes = await sources.db.selectFrom('nodes').select('id').execute();
        const online = nodes.filter((n) => sources.isOnline(n.id)).length;
        this.set({ state: 'online' }, online);
        this.set({ state: 'offline' }, nodes.length - online);
      },
    });
    this.#nodeGauges(sources, registers);
    this.#linkChanges = new Counter({
      name: 'cap_agent_link_changes_total',
      help: 'Agent links made (online) and lost (offline)',
      labelNames: ['state'],
      registers,
    });
    this.#operations = new Counter({
      name: 'cap_operations_total',
      help: 'Operations ended, by kind and result (ok, or the error code)',
      labelNames: ['kind', 'result'],
      registers,
    });
    this.#agentEvents = new Counter({
      name: 'cap_agent_events_total',
      help: 'Events received from Agents, by event',
      labelNames: ['event'],
      registers,
      collect: () => {
        for (const [event, n] of this.#eventCounts) this.#agentEvents.inc({ event }, n);
        this.#eventCounts.clear();
      },
    });
    this.#eventLag = new Histogram({
      name: 'cap_agent_event_lag_seconds',
      help: "From an Agent event's timestamp (the Agent's clock) to its handling by the Panel",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.#dropped = new Counter({
      name: 'cap_console_lines_dropped_total',
      help: 'Console lines not delivered: throttled or disconnected (by the Agent), overloaded (by the Panel)',
      labelNames: ['reason'],
      registers,
    });
    this.#http = new Histogram({
      name: 'cap_http_request_duration_seconds',
      help: 'HTTP requests by method, route (its pattern) and status',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers,
    });
  }

  /**
   * Per node (labels node = id, name): capacity and what its servers take, and its link and
   * Docker health as this Panel saw them. One read of the nodes per scrape feeds them all.
   */
  #nodeGauges(sources: MetricsSources, registers: Registry[]): void {
    const read = sources.nodes;
    if (!read) return;
    let pending: Promise<Node[]> | undefined;
    // the gauges are collected one after another in one scrape: they share one read
    const nodes = () => {
      pending ??= read().finally(() => {
        setTimeout(() => {
          pending = undefined;
        }, 0);
      });
      return pending;
    };
    const perNode = (name: string, help: string, value: (n: Node) => number | null | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['node', 'name'],
        registers,
        async collect() {
          this.reset();
          for (const n of await nodes()) {
            const v = value(n);
            if (v !== null && v !== undefined && Number.isFinite(v))
              this.set({ node: n.id, name: n.name }, v);
          }
        },
      });
    const perResource = (
      name: string,
      help: string,
      value: (c: Node['capacity']['memory']) => number | null,
    ) =>
      new Gauge({
        name,
        help,
        labelNames: ['node', 'name', 'resource'],
        registers,
        async collect() {
          this.reset();
          for (const n of await nodes())
            for (const r of RESOURCES) {
              const v = value(n.capacity[r]);
              if (v !== null && Number.isFinite(v)) this.set({ node: n.id, name: n.name, resource: r }, v);
            }
        },
      });
    perResource(
      'cap_node_capacity',
      "A node's capacity (bytes; cpu: cores), unset when unknown",
      (c) => c.total,
    );
    perResource(
      'cap_node_capacity_limit',
      'What a node may hold with its over-allocation (bytes; cpu: cores); unset when not checked',
      (c) => c.limit,
    );
    perResource(
      'cap_node_allocated',
      "The sum of a node's servers' limits (bytes; cpu: cores)",
      (c) => c.allocated,
    );
    const sec = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : ms / 1000);
    perNode('cap_node_heartbeat_gap_seconds', 'Time between the last two heartbeats of a node', (n) =>
      sec(n.health?.lastGapMs),
    );
    perNode(
      'cap_node_heartbeat_gap_max_seconds',
      'The largest heartbeat gap of a node since the Panel started',
      (n) => sec(n.health?.maxGapMs),
    );
    perNode('cap_node_rtt_seconds', "The last ping's round trip to a node's Agent", (n) =>
      sec(n.health?.rttMs),
    );
    perNode('cap_node_clock_skew_seconds', "A node's Agent clock minus the Panel's (positive: ahead)", (n) =>
      sec(n.health?.clockSkewMs),
    );
    perNode('cap_node_reconnects', "A node's Agent links made since the Panel started, less one", (n) =>
      n.health ? n.health.reconnects : null,
    );
    perNode('cap_node_missed_pongs', "Heartbeats a node's Agent has not answered on its current link", (n) =>
      n.health ? n.health.missedPongs : null,
    );
    perNode('cap_node_docker_up', "1 when a node's Agent last reported its Docker Engine reachable", (n) =>
      n.health?.docker ? (n.health.docker.reachable ? 1 : 0) : null,
    );
    perNode(
      'cap_node_docker_errors',
      "DOCKER_ERROR answers of a node's Agent since it started",
      (n) => n.health?.docker?.errors ?? null,
    );
  }

  /** Operations' ends and link changes, from the bus. */
  attach(bus: EventBus): void {
    bus.subscribe('operation', (e) => {
      if (e.success === undefined) return;
      this.#operations.inc({ kind: e.operationKind, result: e.success ? 'ok' : (e.errorCode ?? 'failed') });
    });
    bus.subscribe('node.online', () => this.#linkChanges.inc({ state: 'online' }));
    bus.subscribe('node.offline', () => this.#linkChanges.inc({ state: 'offline' }));
  }

  /** Every event an Agent sends (and the Panel's own `overloaded` drops), as the hub hands it on. */
  agentEvent(msg: EventMessage): void {
    // 40,000 a second at scale: counted in a plain map, added to the counter when it is read
    // (no label hash per event); an Agent's tick stamps its messages alike (one parse per stamp)
    this.#eventCounts.set(msg.event, (this.#eventCounts.get(msg.event) ?? 0) + 1);
    if (msg.timestamp !== this.#lastStamp) {
      this.#lastStamp = msg.timestamp;
      this.#lastSent = Date.parse(msg.timestamp);
    }
    const sent = this.#lastSent;
    if (Number.isFinite(sent)) this.#eventLag.observe(Math.max(0, Date.now() - sent) / 1000);
    if (msg.event === 'server_log_dropped') {
      const d = msg.data as EventMessage<'server_log_dropped'>['data'];
      this.#dropped.inc({ reason: d.reason }, d.count);
    }
  }

  /** HTTP latency by route pattern (an unmatched URL counts as `unmatched`: no label per URL). */
  instrument(app: FastifyInstance): void {
    app.addHook('onResponse', async (req, reply) => {
      const route = req.routeOptions.url ?? 'unmatched';
      this.#http.observe(
        { method: req.method, route, status_code: String(reply.statusCode) },
        reply.elapsedTime / 1000,
      );
    });
  }
}
