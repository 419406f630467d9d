/**
 * Prometheus /metrics on the Panel and the Agent, scraped from the real endpoints of a real
 * Panel + Agent + Docker after a busybox server was created, started and stopped; the text is
 * parsed as the exposition format (every sample line `name{labels} value`, HELP/TYPE before
 * each family) and the figures checked against what was done. Who may scrape is checked too.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ADMIN_PASSWORD, freePort, type Json, type Session } from '../packages/panel/test/helpers.ts';
import { IMAGE, type Stack, startStack } from './harness.ts';

const PANEL_TOKEN = 'panel-metrics-token-0123456789';
const AGENT_TOKEN = 'agent-metrics-token-0123456789';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The text exposition format, strictly: a line that is none of its forms fails the test. */
export function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const helped = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') {
        assert.match(meta[3] ?? '', /^(counter|gauge|histogram|summary|untyped)$/, line);
        types.set(meta[2] ?? '', meta[3] ?? '');
      } else helped.add(meta[2] ?? '');
      continue;
    }
    // values as Prometheus parses them (Go's ParseFloat: NaN and Inf in any case; prom-client writes
    // "Nan" for an event-loop lag with no sample yet)
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.eE+-]+|[Nn][Aa][Nn]|[+-][Ii]nf)$/.exec(line);
    assert.ok(m, `not an exposition line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1] ?? ''] = l[2] ?? '';
    const name = m[1] ?? '';
    const family = name.replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(name) || types.has(family), `${name} has no TYPE`);
    assert.ok(helped.has(name) || helped.has(family), `${name} has no HELP`);
    samples.push({ name, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

/** Every query of the Grafana dashboard in deploy/grafana. */
function dashboardQueries(): string[] {
  const dash = JSON.parse(
    readFileSync(new URL('../deploy/grafana/ctrl-alt-play.json', import.meta.url), 'utf8'),
  ) as { panels: { targets?: { expr: string }[] }[] };
  return dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    ?.value;
}

describe('Prometheus /metrics on the Panel and the Agent', () => {
  let stack: Stack;
  let adminKey = '';
  let spectatorKey = '';
  let agentPort = 0;

  const mint = async (session: Session, password: string) => {
    const r = await stack.panel.api(session, 'POST', '/api/api-keys', {
      name: 'scrape',
      currentPassword: password,
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.key as string;
  };
  const scrapePanel = (auth?: string) =>
    fetch(`${stack.panel.url}/metrics`, auth ? { headers: { authorization: `Bearer ${auth}` } } : {});

  before(async () => {
    stack = await startStack('metrics', {
      panelEnv: { PANEL_METRICS_TOKEN: PANEL_TOKEN },
      agentEnv: { AGENT_METRICS_TOKEN: AGENT_TOKEN },
    });
    agentPort = stack.agent.httpPort;
    adminKey = await mint(stack.owner, ADMIN_PASSWORD);
    const spectator = await stack.panel.userWithRole('spectator');
    spectatorKey = await mint(spectator, `spectator-password-${spectator.email.match(/\d+/)?.[0]}`);
    // a server created, started (console up), stopped
    const created = await stack.panel.api(stack.owner, 'POST', '/api/servers?wait=true', {
      name: 'metrics busybox',
      nodeId: stack.nodeId,
      image: IMAGE,
      startup: 'echo up; while read l; do echo "$l"; done',
      limits: { memory: '32m', cpu: '0.2' },
      stop: '^C',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    const status = async () => (await stack.panel.api(stack.owner, 'GET', `/api/servers/${id}`)).body.status;
    const waitFor = async (want: string) => {
      const t0 = Date.now();
      while ((await status()) !== want) {
        if (Date.now() - t0 > 20_000) throw new Error(`never ${want}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    assert.equal(
      (await stack.panel.api(stack.owner, 'POST', `/api/servers/${id}/power`, { action: 'start' })).status,
      202,
    );
    await waitFor('running');
    assert.equal(
      (await stack.panel.api(stack.owner, 'POST', `/api/servers/${id}/power`, { action: 'stop' })).status,
      202,
    );
    await waitFor('offline');
    // the operation's end reaches the Panel's bus after the status
    await new Promise((r) => setTimeout(r, 500));
  });

  after(() => stack?.stop());

  test('the Panel: only PANEL_METRICS_TOKEN or an admin API key may scrape', async () => {
    const none = await scrapePanel();
    assert.equal(none.status, 401);
    assert.equal(((await none.json()) as { code: string }).code, 'UNAUTHENTICATED');
    const wrong = await scrapePanel('not-the-token-at-all');
    assert.equal(wrong.status, 401);
    assert.equal(((await wrong.json()) as { code: string }).code, 'AUTH_FAILED');
    const spectator = await scrapePanel(spectatorKey);
    assert.equal(spectator.status, 403);
    assert.equal(((await spectator.json()) as { code: string }).code, 'FORBIDDEN');
    // a session cookie is not enough either
    const cookie = await fetch(`${stack.panel.url}/metrics`, { headers: stack.owner.headers });
    assert.equal(cookie.status, 401);
    assert.equal((await scrapePanel(adminKey)).status, 200);
  });

  test('the Panel: servers by state, nodes, operations, Agent events and lag, HTTP latency', async () => {
    const res = await scrapePanel(PANEL_TOKEN);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const { samples, types } = parseExposition(await res.text());
    assert.equal(value(samples, 'cap_servers', { state: 'offline' }), 1);
    assert.equal(value(samples, 'cap_servers', { state: 'running' }), 0);
    assert.equal(value(samples, 'cap_nodes', { state: 'online' }), 1);
    assert.equal(value(samples, 'cap_nodes', { state: 'offline' }), 0);
    assert.equal(value(samples, 'cap_agent_link_changes_total', { state: 'online' }), 1);
    assert.equal(types.get('cap_operations_total'), 'counter');
    assert.equal(value(samples, 'cap_operations_total', { kind: 'start', result: 'ok' }), 1);
    assert.equal(value(samples, 'cap_operations_total', { kind: 'stop', result: 'ok' }), 1);
    // the create is an operation too
    assert.equal(value(samples, 'cap_operations_total', { kind: 'create', result: 'ok' }), 1);
    assert.ok((value(samples, 'cap_agent_events_total', { event: 'server_status_changed' }) ?? 0) >= 2);
    assert.equal(types.get('cap_agent_event_lag_seconds'), 'histogram');
    assert.ok((value(samples, 'cap_agent_event_lag_seconds_count') ?? 0) > 0);
    assert.equal(types.get('cap_console_lines_dropped_total'), 'counter');
    assert.equal(types.get('cap_http_request_duration_seconds'), 'histogram');
    assert.equal(
      value(samples, 'cap_http_request_duration_seconds_count', {
        method: 'POST',
        route: '/api/servers/:id/power',
        status_code: '202',
      }),
      2,
    );
    assert.ok(value(samples, 'cap_panel_nodejs_eventloop_lag_seconds') !== undefined);
  });

  test('the Agent: servers, link, operations, Docker errors, dropped lines, event-loop delay', async () => {
    const url = `http://127.0.0.1:${agentPort}/metrics`;
    assert.equal((await fetch(url)).status, 401);
    assert.equal(
      (await fetch(url, { headers: { authorization: 'Bearer wrong-token-wrong-token' } })).status,
      401,
    );
    const res = await fetch(url, { headers: { authorization: `Bearer ${AGENT_TOKEN}` } });
    assert.equal(res.status, 200);
    const { samples, types } = parseExposition(await res.text());
    assert.equal(value(samples, 'cap_agent_servers', { state: 'offline' }), 1);
    assert.equal(value(samples, 'cap_agent_panel_link_up'), 1);
    assert.equal(value(samples, 'cap_agent_panel_link_connections_total'), 1);
    assert.equal(value(samples, 'cap_agent_operations_total', { kind: 'start_server', result: 'ok' }), 1);
    assert.equal(value(samples, 'cap_agent_operations_total', { kind: 'stop_server', result: 'ok' }), 1);
    assert.equal(types.get('cap_agent_docker_errors_total'), 'counter');
    assert.equal(types.get('cap_agent_console_lines_dropped_total'), 'counter');
    assert.ok((value(samples, 'cap_agent_event_loop_delay_seconds', { quantile: '0.99' }) ?? -1) >= 0);
  });

  test('the Grafana dashboard (deploy/grafana) queries only metrics and labels the Panel and the Agent export', async () => {
    const panelText = await (await scrapePanel(PANEL_TOKEN)).text();
    const agentText = await (
      await fetch(`http://127.0.0.1:${agentPort}/metrics`, {
        headers: { authorization: `Bearer ${AGENT_TOKEN}` },
      })
    ).text();
    const scraped = [parseExposition(panelText), parseExposition(agentText)];
    const family = (name: string) => name.replace(/_(bucket|sum|count)$/, '');
    const exported = (name: string) => scraped.some((x) => x.types.has(name) || x.types.has(family(name)));
    const samplesOf = (name: string) => scraped.flatMap((x) => x.samples.filter((s) => s.name === name));
    // added by Prometheus (job, instance) or part of a histogram's buckets / a summary's quantiles
    const notInText = new Set(['job', 'instance', 'le']);
    const exprs = dashboardQueries();
    assert.ok(exprs.length >= 15, `${exprs.length} queries`);
    const used = new Set<string>();
    for (const expr of exprs) {
      const names = [...expr.matchAll(/\b(cap_[a-z0-9_]+)\b/g)].map((m) => m[1] ?? '');
      assert.ok(names.length > 0, `no Ctrl-Alt-Play metric in ${expr}`);
      const labels = new Set(
        [
          ...[...expr.matchAll(/\b(?:by|without) \(([^)]*)\)/g)].flatMap((m) => (m[1] ?? '').split(',')),
          ...[...expr.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"/g)].map((m) => m[1] ?? ''),
        ]
          .map((l) => l.trim())
          .filter((l) => l !== '' && !notInText.has(l)),
      );
      for (const name of names) {
        assert.ok(exported(name), `${name} (in ${expr}) is exported by neither the Panel nor the Agent`);
        used.add(family(name));
        // a labelled counter nobody incremented yet has no samples: its labels cannot be seen
        const samples = samplesOf(name);
        for (const l of labels)
          if (samples.length > 0)
            assert.ok(
              samples.some((s) => Object.hasOwn(s.labels, l)),
              `${name} has no label ${l} (in ${expr})`,
            );
      }
    }
    // what issue 14 asks the dashboard to show
    for (const want of [
      'cap_servers',
      'cap_agent_servers',
      'cap_operations_total',
      'cap_agent_operations_total',
      'cap_nodes',
      'cap_agent_panel_link_up',
      'cap_agent_event_lag_seconds',
      'cap_console_lines_dropped_total',
      'cap_agent_console_lines_dropped_total',
      'cap_agent_docker_errors_total',
      'cap_http_request_duration_seconds',
    ])
      assert.ok(used.has(want), `the dashboard shows no ${want}`);
  });

  test("a real Prometheus (Debian's package) scrapes both, with their tokens", {
    skip:
      !existsSync('/usr/bin/prometheus') && !process.env['CAP_REQUIRE_REAL'] && process.env.CI !== 'true'
        ? 'prometheus not installed'
        : false,
  }, async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cap-prometheus-'));
    const port = await freePort();
    const panelTarget = new URL(stack.panel.url).host;
    writeFileSync(
      path.join(dir, 'prometheus.yml'),
      [
        'global: { scrape_interval: 1s, scrape_timeout: 1s }',
        'scrape_configs:',
        '  - job_name: panel',
        `    authorization: { credentials: "${PANEL_TOKEN}" }`,
        `    static_configs: [{ targets: ["${panelTarget}"] }]`,
        '  - job_name: agent',
        `    authorization: { credentials: "${AGENT_TOKEN}" }`,
        `    static_configs: [{ targets: ["127.0.0.1:${agentPort}"] }]`,
        '  - job_name: panel-no-token',
        `    static_configs: [{ targets: ["${panelTarget}"] }]`,
        '',
      ].join('\n'),
    );
    const prom: ChildProcess = spawn(
      'prometheus',
      [
        `--config.file=${path.join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: 'ignore' },
    );
    t.after(async () => {
      const exited = new Promise((r) => prom.once('exit', r));
      prom.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    });
    const api = async (q: string) => {
      const r = await fetch(`http://127.0.0.1:${port}/api/v1/${q}`).catch(() => null);
      return r?.ok ? ((await r.json()) as { data: Json }).data : null;
    };
    const t0 = Date.now();
    let targets: { labels: { job: string }; health: string; lastError: string }[] = [];
    for (;;) {
      targets = (await api('targets'))?.activeTargets ?? [];
      if (targets.length === 3 && targets.every((x) => x.health !== 'unknown')) break;
      if (Date.now() - t0 > 30_000) assert.fail(`targets: ${JSON.stringify(targets)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const health = Object.fromEntries(targets.map((x) => [x.labels.job, x]));
    assert.equal(health['panel']?.health, 'up', health['panel']?.lastError);
    assert.equal(health['agent']?.health, 'up', health['agent']?.lastError);
    assert.equal(health['panel-no-token']?.health, 'down');
    assert.match(health['panel-no-token']?.lastError ?? '', /401/);
    const query = async (expr: string) =>
      (await api(`query?query=${encodeURIComponent(expr)}`))?.result ?? [];
    const [offline] = await query('cap_servers{state="offline"}');
    assert.equal(offline?.value?.[1], '1');
    const [link] = await query('cap_agent_panel_link_up');
    assert.equal(link?.value?.[1], '1');
    // create, start and stop
    const [ops] = await query('sum(cap_operations_total{result="ok"})');
    assert.equal(ops?.value?.[1], '3');
    // the Grafana dashboard's queries, its variables filled in as Grafana does, are PromQL this
    // Prometheus accepts; its gauges answer
    const filled = (e: string) =>
      e
        .replaceAll('$__rate_interval', '1m')
        .replaceAll('$panel_job', 'panel')
        .replaceAll('$agent_job', 'agent');
    for (const expr of dashboardQueries()) {
      const r = await fetch(
        `http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(filled(expr))}`,
      );
      assert.equal(r.status, 200, `${filled(expr)}: ${await r.text()}`);
    }
    assert.ok((await query(filled('sum by (state) (cap_servers{job=~"$panel_job"})'))).length > 0);
    assert.ok((await query(filled('cap_agent_panel_link_up{job=~"$agent_job"}'))).length > 0);
  });
});
