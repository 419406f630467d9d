/**
 * The Agent's Prometheus metrics: counted here in plain Maps as things happen (no prom-client
 * loaded until the first scrape, so an Agent nobody scrapes pays nothing for it), rendered by
 * prom-client at GET /metrics: servers by state, the Panel link (up, connections made),
 * operations ended by kind and result, Docker errors by action, console lines dropped by
 * reason, and the event loop's delay (the lag every event the Agent handles or sends waits).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { EventData, EventName, ResponseMessage } from '@cap/protocol';

export interface MetricsView {
  servers: () => readonly { status: string }[];
  linkUp: () => boolean;
  linkConnections: () => number;
  /** operation ends forgotten before the Panel acked them (PanelLink.endsEvicted) */
  linkEndsEvicted?: () => number;
}

const bump = (m: Map<string, number>, key: string, by = 1) => m.set(key, (m.get(key) ?? 0) + by);

export class AgentMetrics {
  readonly #operations = new Map<string, number>();
  readonly #dockerErrors = new Map<string, number>();
  readonly #dropped = new Map<string, number>();
  readonly #loop = monitorEventLoopDelay({ resolution: 20 });

  constructor() {
    this.#loop.enable();
  }

  /** every event the Agent sends up */
  event<E extends EventName>(name: E, data: EventData<E>): void {
    if (name === 'operation_completed') {
      const d = data as EventData<'operation_completed'>;
      const result = d.success ? 'ok' : (d.error?.code ?? 'failed');
      bump(this.#operations, `${d.action}\n${result}`);
      if (result === 'DOCKER_ERROR') bump(this.#dockerErrors, d.action);
    } else if (name === 'server_log_dropped') {
      const d = data as EventData<'server_log_dropped'>;
      bump(this.#dropped, d.reason, d.count);
    }
  }

  /** every answer to a command (Panel link or HTTP API) */
  response(raw: unknown, res: ResponseMessage): void {
    if (res.success || res.error?.code !== 'DOCKER_ERROR') return;
    const action = (raw as { action?: unknown } | null)?.action;
    bump(this.#dockerErrors, typeof action === 'string' && action.length <= 64 ? action : 'unknown');
  }

  stop(): void {
    this.#loop.disable();
  }

  /** The exposition text (prom-client, loaded on the first scrape). */
  /** Answers that failed with DOCKER_ERROR since the start (all actions). */
  dockerErrorsTotal(): number {
    let n = 0;
    for (const v of this.#dockerErrors.values()) n += v;
    return n;
  }

  async render(view: MetricsView): Promise<{ contentType: string; body: string }> {
    const { Counter, Gauge, Registry } = await import('prom-client');
    const registry = new Registry();
    const registers = [registry];
    const servers = new Gauge({
      name: 'cap_agent_servers',
      help: 'Servers by state',
      labelNames: ['state'],
      registers,
    });
    const byState = new Map<string, number>();
    for (const s of view.servers()) bump(byState, s.status);
    for (const [state, n] of byState) servers.set({ state }, n);
    new Gauge({ name: 'cap_agent_panel_link_up', help: '1 while the Panel link is up', registers }).set(
      view.linkUp() ? 1 : 0,
    );
    new Counter({
      name: 'cap_agent_panel_link_connections_total',
      help: 'Panel links made (a climbing count is a flapping link)',
      registers,
    }).inc(view.linkConnections());
    new Counter({
      name: 'cap_agent_operation_ends_unacked_dropped_total',
      help: 'Operation ends given way before the Panel acked them (a reconnect does not send them again; with an older Panel expected past the latest 100)',
      registers,
    }).inc(view.linkEndsEvicted?.() ?? 0);
    const ops = new Counter({
      name: 'cap_agent_operations_total',
      help: 'Operations ended, by kind and result (ok, or the error code)',
      labelNames: ['kind', 'result'],
      registers,
    });
    for (const [key, n] of this.#operations) {
      const [kind = '', result = ''] = key.split('\n');
      ops.inc({ kind, result }, n);
    }
    const docker = new Counter({
      name: 'cap_agent_docker_errors_total',
      help: 'Commands and operations that failed with DOCKER_ERROR, by action',
      labelNames: ['action'],
      registers,
    });
    for (const [action, n] of this.#dockerErrors) docker.inc({ action }, n);
    const dropped = new Counter({
      name: 'cap_agent_console_lines_dropped_total',
      help: 'Console lines not sent to the Panel, by reason',
      labelNames: ['reason'],
      registers,
    });
    for (const [reason, n] of this.#dropped) dropped.inc({ reason }, n);
    const lag = new Gauge({
      name: 'cap_agent_event_loop_delay_seconds',
      help: "The event loop's delay since start (what every event and command waits)",
      labelNames: ['quantile'],
      registers,
    });
    for (const q of [50, 90, 99]) lag.set({ quantile: String(q / 100) }, this.#loop.percentile(q) / 1e9);
    lag.set({ quantile: '1' }, this.#loop.max / 1e9);
    new Gauge({ name: 'cap_agent_resident_memory_bytes', help: 'Resident set size', registers }).set(
      process.memoryUsage.rss(),
    );
    return { contentType: registry.contentType, body: await registry.metrics() };
  }
}
