import { USER_INTERACTION_AFTER_S } from '@cap/protocol/templates/features.ts';
import { logFile } from '@cap/protocol/templates/runtime.ts';
import {
  Alert,
  Anchor,
  Badge,
  Button,
  Code,
  Grid,
  Group,
  Paper,
  SegmentedControl,
  SimpleGrid,
  Stack,
  Table,
  Tabs,
  Text,
  Title,
} from '@mantine/core';
import { useEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react';
import { Link, useParams } from 'react-router';
import { useAuth } from '../api/auth.tsx';
import { useLiveMessages, useLiveState, useServerSubscriptions } from '../api/live.tsx';
import {
  type MetricsRange,
  useMetrics,
  useNodes,
  useTelemetry,
  useTemplate,
  useTemplates,
} from '../api/queries.ts';
import type { Permission, Server, ServerStatus } from '../api/types.ts';
import { ActivityLog } from '../components/activity-log.tsx';
import { BackupsTab } from '../components/backups-tab.tsx';
import { CommandInput } from '../components/command-input.tsx';
import { ConfigModal } from '../components/config-modal.tsx';
import { ConsoleTerminal } from '../components/console-terminal.tsx';
import { DeleteServerButton } from '../components/delete-server.tsx';
import { FailoverPanel } from '../components/failover-panel.tsx';
import { FeatureDialog, type PendingFeature } from '../components/feature-dialog.tsx';
import { FilesTab } from '../components/files-tab.tsx';
import { ImageUpdate } from '../components/image-update.tsx';
import {
  EMPTY_INSTALL_LOG,
  INSTALL_LOG_MAX_LINES,
  type InstallLog,
  InstallPanel,
} from '../components/install-panel.tsx';
import { NoLimitBadges } from '../components/limit-badges.tsx';
import { MetricCard } from '../components/metric-card.tsx';
import { MetricCharts } from '../components/metric-charts.tsx';
import { ModsTab } from '../components/mods-tab.tsx';
import { PlayersPanel } from '../components/players-panel.tsx';
import { PowerButtons } from '../components/power-buttons.tsx';
import { RecentOperations } from '../components/recent-operations.tsx';
import { RemoteConsoleBadge, type RemoteConsoleInfo } from '../components/remote-console-badge.tsx';
import { SchedulesTab } from '../components/schedules-tab.tsx';
import { ErrorState, Loading } from '../components/states.tsx';
import { StatusBadge } from '../components/status-badge.tsx';
import { SubusersTab } from '../components/subusers-tab.tsx';
import { TransfersPanel } from '../components/transfer-dialog.tsx';
import { WebhooksPanel } from '../components/webhooks-panel.tsx';
import { ConsoleStore } from '../lib/console-store.ts';
import { formatBytes, formatPercent, formatUptime } from '../lib/format.ts';
import { withInstallOutput, withInstallResult } from '../lib/install-log.ts';
import { appendStats, type Point, seriesFromBuckets, stripAnsi } from '../lib/series.ts';

function ConsolePreview({ store }: { store: ConsoleStore }) {
  const version = useSyncExternalStore(
    (fn) => store.subscribe(fn),
    () => store.version,
  );
  const lines = useMemo(() => (version >= 0 ? store.lines.slice(-8).map(stripAnsi) : []), [store, version]);
  return (
    <Code block data-testid="console-preview" style={{ minHeight: 80, background: '#02070f' }}>
      {lines.length ? lines.join('\n') : 'No console output yet.'}
    </Code>
  );
}

/** the Agent's stop timeout for a server without its own (`stopTimeout: null`) */
const DEFAULT_STOP_TIMEOUT_S = 30;

function Details({
  server,
  nodeName,
  templateName,
}: {
  server: Server;
  nodeName: string;
  templateName: string | undefined;
}) {
  const rows: [string, React.ReactNode][] = [
    ['ID', <Code key="id">{server.id}</Code>],
    [
      'Node',
      <Anchor key="n" component={Link} to={`/nodes/${server.nodeId}`}>
        {nodeName}
      </Anchor>,
    ],
    ...(server.templateId
      ? ([
          [
            'Template',
            <Anchor
              key="t"
              component={Link}
              to={`/templates/${server.templateId}`}
              data-testid="server-template"
            >
              {templateName ?? server.templateId}
            </Anchor>,
          ],
        ] as [string, React.ReactNode][])
      : []),
    ['Image', <Code key="i">{server.image}</Code>],
    [
      'Startup',
      <Code key="s" style={{ whiteSpace: 'pre-wrap', wordBreak: 'break-all' }} data-testid="server-startup">
        {server.startupDisplay || server.startup || '(image default)'}
      </Code>,
    ],
    [
      'Address',
      server.address ? (
        <Code key="a" data-testid="server-address">
          {server.address}
        </Code>
      ) : server.allocation ? (
        <Text key="a" size="sm" data-testid="server-address">
          port {server.allocation.port} (set the node's public address to show where players connect)
        </Text>
      ) : (
        'no primary allocation'
      ),
    ],
    [
      'Ports',
      Object.keys(server.ports ?? {}).length
        ? Object.entries(server.ports).map(([k, v]) => (
            <Badge key={k} variant="outline" mr={4}>
              {k} → {typeof v === 'number' ? v : `${v.hostIp ? `${v.hostIp}:` : ''}${v.hostPort}`}
            </Badge>
          ))
        : 'none',
    ],
    [
      'Limits',
      `memory ${server.limits?.memory ?? 'unlimited'} · cpu ${server.limits?.cpu ?? 'unlimited'} · disk ${server.limits?.disk ?? 'unlimited'}`,
    ],
    [
      'Stop',
      <span key="stop" data-testid="server-stop">
        {server.stop ? <Code>{server.stop}</Code> : 'SIGTERM'}, killed after{' '}
        {server.stopTimeout === null ? `${DEFAULT_STOP_TIMEOUT_S} s (default)` : `${server.stopTimeout} s`}
      </span>,
    ],
    ...(server.lastUpdate
      ? ([
          [
            'Last update',
            <Text
              key="u"
              size="sm"
              span
              data-testid="server-last-update"
              c={
                server.lastUpdate.ok
                  ? undefined
                  : server.lastUpdate.stage === 'pending'
                    ? 'yellow.4'
                    : 'red.4'
              }
            >
              {server.lastUpdate.ok
                ? 'applied'
                : server.lastUpdate.stage === 'pending'
                  ? 'pending: the node went offline during the update; settled when its Agent is back'
                  : `failed (${server.lastUpdate.code ?? server.lastUpdate.stage})${server.lastUpdate.message ? `: ${server.lastUpdate.message}` : ''}`}{' '}
              {new Date(server.lastUpdate.at).toLocaleString()}
            </Text>,
          ],
        ] as [string, React.ReactNode][])
      : []),
  ];
  const env = Object.entries(server.environment ?? {});
  return (
    <Paper className="cap-glass" p="md">
      <Table verticalSpacing={4} aria-label="Server details">
        <Table.Tbody>
          {rows.map(([k, v]) => (
            <Table.Tr key={k}>
              <Table.Th w={110}>{k}</Table.Th>
              <Table.Td>{v}</Table.Td>
            </Table.Tr>
          ))}
          <Table.Tr>
            <Table.Th>Variables</Table.Th>
            <Table.Td data-testid="server-env">
              {server.variables
                ? server.variables.length === 0
                  ? 'none'
                  : server.variables.map((v) => (
                      <div key={v.envVariable} title={v.description}>
                        <Text span size="xs" c="dimmed">
                          {v.name}:{' '}
                        </Text>
                        <Code style={{ wordBreak: 'break-all' }}>
                          {v.envVariable}={v.value}
                        </Code>
                        {v.userViewable ? null : (
                          <Badge size="xs" ml={4} variant="outline" color="gray">
                            hidden from users
                          </Badge>
                        )}
                      </div>
                    ))
                : env.length === 0
                  ? 'none'
                  : env.map(([k, v]) => (
                      <div key={k}>
                        <Code>
                          {k}={v}
                        </Code>
                      </div>
                    ))}
            </Table.Td>
          </Table.Tr>
        </Table.Tbody>
      </Table>
    </Paper>
  );
}

/** Keyed by the id: another server gets a fresh console, series and modal state. */
/** The last hour is live (buckets + stats as they arrive); longer ranges come from the Panel's history. */
function ChartsWithRange({ serverId, live }: { serverId: string; live: Point[] }) {
  const [range, setRange] = useState<MetricsRange>('1h');
  const history = useMetrics(serverId, range, range !== '1h');
  const series = useMemo(
    () => (range === '1h' ? live : seriesFromBuckets(history.data ?? [])),
    [range, live, history.data],
  );
  return (
    <Stack gap="xs">
      <Group justify="flex-end">
        <SegmentedControl
          size="xs"
          aria-label="Chart range"
          value={range}
          onChange={(v) => setRange(v as MetricsRange)}
          data={[
            { value: '1h', label: 'Live · 1h' },
            { value: '24h', label: '24h' },
            { value: '7d', label: '7d' },
          ]}
          data-testid="chart-range"
        />
      </Group>
      {range !== '1h' && history.isPending ? (
        <Loading label="Loading history…" />
      ) : range !== '1h' && history.isError ? (
        <ErrorState error={history.error} title="Could not load the history" />
      ) : (
        <MetricCharts series={series} />
      )}
    </Stack>
  );
}

export function ServerDetailPage() {
  const { id = '' } = useParams();
  return <ServerDetail key={id} id={id} />;
}

function ServerDetail({ id }: { id: string }) {
  const { canWrite, seesPanel } = useAuth();
  const q = useTelemetry(id);
  const nodes = useNodes(seesPanel);
  const live = useLiveState();
  useServerSubscriptions(id ? [id] : []);
  const store = useMemo(() => new ConsoleStore(), []);
  const [series, setSeries] = useState<Point[]>([]);
  const [configOpen, setConfigOpen] = useState(false);
  const [configFocus, setConfigFocus] = useState<string | undefined>(undefined);
  // the template feature the console called for (admins only), and whether its dialog is shown
  const [feature, setFeature] = useState<PendingFeature | null>(null);
  const [featureShown, setFeatureShown] = useState(false);
  const [slowStart, setSlowStart] = useState(false);
  const [tab, setTabState] = useState<string | null>('overview');
  // unsaved edits in the Files tab's editor: leaving the tab (which unmounts it) asks first
  const filesDirty = useRef(false);
  const setTab = (next: string | null) => {
    if (tab === 'files' && next !== 'files' && filesDirty.current) {
      if (!window.confirm('Discard your unsaved changes?')) return;
      filesDirty.current = false;
    }
    setTabState(next);
  };
  const [crash, setCrash] = useState<string | null>(null);
  const [remoteConsole, setRemoteConsole] = useState<RemoteConsoleInfo | null>(null);
  const [install, setInstall] = useState<InstallLog>(EMPTY_INSTALL_LOG);
  const templates = useTemplates();

  // REST paints the page; the socket then keeps it current
  const seeded = q.data !== undefined;
  // biome-ignore lint/correctness/useExhaustiveDependencies: seed once per server from the first telemetry
  useEffect(() => {
    if (!q.data) return;
    setSeries(seriesFromBuckets(q.data.metrics));
    if (store.lines.length === 0) store.reset(q.data.console);
    if (q.data.feature) {
      setFeature(q.data.feature);
      setFeatureShown(true);
    }
  }, [seeded, id]);

  useLiveMessages((m) => {
    if (!('serverId' in m) || m.serverId !== id) return;
    if (m.type === 'subscribed') {
      store.reset(m.history, { epoch: m.historyEpoch, seq: m.historySeq });
      if (m.remoteConsole) setRemoteConsole(m.remoteConsole);
      if (m.stats) setSeries((s) => appendStats(s, m.stats!));
      // the install on create ran before this page subscribed: the Panel kept its output
      const inst = m.install;
      if (inst)
        setInstall((s) => ({
          ...s,
          lines: inst.lines.map(stripAnsi).slice(-INSTALL_LOG_MAX_LINES),
          result:
            inst.success === undefined
              ? null
              : {
                  success: inst.success,
                  ...(inst.exitCode === undefined ? {} : { exitCode: inst.exitCode }),
                },
        }));
    } else if (m.type === 'console') store.append(m.lines, m);
    else if (m.type === 'remote_console')
      setRemoteConsole({
        transport: m.transport,
        state: m.state,
        ...(m.message === undefined ? {} : { message: m.message }),
      });
    else if (m.type === 'install_output') {
      store.append(m.lines.map((l) => `\u001b[36m[install]\u001b[0m ${l}`));
      setInstall((s) => withInstallOutput(s, m.lines));
    } else if (m.type === 'install_completed') {
      setInstall((s) => withInstallResult(s, m.success, m.exitCode));
      store.append([
        m.success
          ? '\u001b[36m[install]\u001b[0m finished'
          : `\u001b[31m[install] failed${m.exitCode === undefined ? '' : ` with exit code ${m.exitCode}`}\u001b[0m`,
      ]);
    } else if (m.type === 'error' && m.requestType === 'reinstall')
      setInstall((s) => ({ ...s, error: { code: m.code, message: m.message } }));
    else if (m.type === 'console_dropped')
      store.append([
        `\u001b[33m[${m.count} ${m.count === 1 ? 'line' : 'lines'} dropped: ${m.reason}]\u001b[0m`,
      ]);
    else if (m.type === 'stats') setSeries((s) => appendStats(s, m.stats));
    else if (m.type === 'feature') {
      // a line already answered or dismissed comes back after each crash: show it, do not re-open it
      setFeature((f) => {
        if (!f || f.feature !== m.feature) setFeatureShown(true);
        return { feature: m.feature, line: m.line };
      });
    } else if (m.type === 'crashed')
      setCrash(`Exited with code ${m.exitCode}${m.restarting ? '; the Agent is restarting it' : ''}.`);
    else if (m.type === 'status' && m.status === 'running') {
      setCrash(null);
      setFeature(null); // it runs: whatever the console asked for is settled
    }
  });

  const liveStatus: ServerStatus | undefined = q.data ? (q.data.status ?? q.data.server.status) : undefined;
  const startedFor = q.data?.stats?.uptime ?? 0;
  // the egg's userInteraction text, once a start has waited long for its done line
  // biome-ignore lint/correctness/useExhaustiveDependencies: the uptime only places the first timer
  useEffect(() => {
    setSlowStart(false);
    if (liveStatus !== 'starting') return;
    const t = setTimeout(() => setSlowStart(true), Math.max(0, USER_INTERACTION_AFTER_S - startedFor) * 1000);
    return () => clearTimeout(t);
  }, [liveStatus]);
  const template = useTemplate(q.data?.server.templateId ?? null).data?.template;

  if (q.isPending) return <Loading label="Loading server…" />;
  if (q.isError)
    return <ErrorState error={q.error} title="Could not load the server" onRetry={() => q.refetch()} />;
  const { server } = q.data;
  const status: ServerStatus = q.data.status ?? server.status;
  const stats = q.data.stats ?? server.stats;
  const nodeName = nodes.data?.find((n) => n.id === server.nodeId)?.name ?? server.nodeId;
  const templateName = templates.data?.find((t) => t.id === server.templateId)?.name;
  // what the caller holds on this server decides which controls are shown (the Panel checks it too)
  const can = (p: Permission) => server.permissions.includes(p);
  const canInstall = can('settings.reinstall') && Boolean(server.templateId);
  const canCommand = can('control.command');
  const canConfig = canWrite || can('startup.update');
  const canFeature = can('file.update') && can('control.restart');
  const running = status === 'running' || status === 'starting';

  return (
    <Stack gap="md" data-testid="page-server-detail">
      <Group justify="space-between" align="flex-start">
        <Stack gap={4}>
          <Group gap="sm">
            <Title order={2} data-testid="server-name">
              {server.name}
            </Title>
            <StatusBadge status={status} nodeOnline={server.nodeOnline} />
            <NoLimitBadges limits={server.limits} />
            {live !== 'open' ? (
              <Badge color="orange" variant="light">
                live data paused
              </Badge>
            ) : null}
          </Group>
          <Text size="sm" c="dimmed">
            on {nodeName} · uptime{' '}
            <span data-testid="server-uptime">{running ? formatUptime(stats?.uptime) : '—'}</span>
          </Text>
        </Stack>
        <Group gap="xs" align="flex-start">
          <PowerButtons serverId={server.id} status={status} permissions={server.permissions} />
          {can('startup.read') ? (
            <ImageUpdate serverId={server.id} canUpdate={can('settings.image-update')} />
          ) : null}
          {canWrite ? <DeleteServerButton server={server} /> : null}
        </Group>
      </Group>
      {crash ? (
        <Text c="red.4" size="sm" role="alert">
          Crashed: {crash}
        </Text>
      ) : null}
      <RecentOperations serverId={server.id} />
      {feature && !featureShown ? (
        <Group gap="xs" data-testid="feature-pending">
          <Text size="sm" c="yellow.4">
            The console asks for attention ({feature.feature.replace(/_/g, ' ')}).
          </Text>
          <Anchor component="button" type="button" size="sm" onClick={() => setFeatureShown(true)}>
            Show
          </Anchor>
        </Group>
      ) : null}
      {slowStart && status === 'starting' && template?.config.startup.userInteraction?.length ? (
        <Alert color="yellow" title="The server is waiting" data-testid="user-interaction">
          <Text size="sm">It has not reported ready yet. Its template says:</Text>
          {template.config.startup.userInteraction.map((t) => (
            <Code key={t} block mt={4}>
              {t}
            </Code>
          ))}
        </Alert>
      ) : null}
      <Tabs value={tab} onChange={setTab} keepMounted={false}>
        <Tabs.List>
          <Tabs.Tab value="overview" data-testid="tab-overview">
            Overview
          </Tabs.Tab>
          {can('control.console') ? (
            <Tabs.Tab value="console" data-testid="tab-console">
              Console
            </Tabs.Tab>
          ) : null}
          {can('file.read') ? (
            <Tabs.Tab value="files" data-testid="tab-files">
              Files
            </Tabs.Tab>
          ) : null}
          {can('backup.read') ? (
            <Tabs.Tab value="backups" data-testid="tab-backups">
              Backups
            </Tabs.Tab>
          ) : null}
          {can('schedule.read') ? (
            <Tabs.Tab value="schedules" data-testid="tab-schedules">
              Schedules
            </Tabs.Tab>
          ) : null}
          {can('webhook.read') ? (
            <Tabs.Tab value="webhooks" data-testid="tab-webhooks">
              Webhooks
            </Tabs.Tab>
          ) : null}
          {can('file.read') && (template?.mods?.length ?? 0) > 0 ? (
            <Tabs.Tab value="mods" data-testid="tab-mods">
              Mods
            </Tabs.Tab>
          ) : null}
          {can('activity.read') ? (
            <Tabs.Tab value="activity" data-testid="tab-activity">
              Activity
            </Tabs.Tab>
          ) : null}
          {can('user.read') ? (
            <Tabs.Tab value="users" data-testid="tab-users">
              Users
            </Tabs.Tab>
          ) : null}
          {canInstall ? (
            <Tabs.Tab value="install" data-testid="tab-install">
              Install
            </Tabs.Tab>
          ) : null}
        </Tabs.List>
        <Tabs.Panel value="overview" pt="md">
          <Stack>
            <SimpleGrid cols={{ base: 2, md: 4 }}>
              <MetricCard
                label="CPU"
                value={formatPercent(running ? stats?.cpu : null)}
                testId="metric-cpu"
              />
              <MetricCard
                label="Memory"
                value={running ? formatBytes(stats?.memory.usedBytes) : '—'}
                hint={
                  server.limits?.memory && stats?.memory.limitBytes
                    ? `of ${formatBytes(stats.memory.limitBytes)}`
                    : 'no memory limit'
                }
                testId="metric-memory"
              />
              <MetricCard
                label="Network"
                value={running && stats ? `↓${formatBytes(stats.network.rx)}` : '—'}
                hint={running && stats ? `↑${formatBytes(stats.network.tx)} since start` : 'not running'}
              />
              <MetricCard label="Disk" value={formatBytes(stats?.disk.usedBytes)} testId="metric-disk" />
            </SimpleGrid>
            <ChartsWithRange serverId={server.id} live={series} />
            <PlayersPanel serverId={server.id} permissions={server.permissions} />
            <Grid>
              <Grid.Col span={{ base: 12, md: 7 }}>
                <Paper className="cap-glass" p="md">
                  <Stack gap="xs">
                    <Group justify="space-between">
                      <Text className="cap-metric-label" c="dimmed">
                        Quick command
                      </Text>
                      <Anchor component="button" type="button" size="sm" onClick={() => setTab('console')}>
                        Open console
                      </Anchor>
                    </Group>
                    <ConsolePreview store={store} />
                    {canCommand ? (
                      <CommandInput
                        serverId={server.id}
                        disabled={status !== 'running' && status !== 'starting'}
                        label="Quick command"
                        testId="quick-command"
                      />
                    ) : null}
                  </Stack>
                </Paper>
              </Grid.Col>
              <Grid.Col span={{ base: 12, md: 5 }}>
                <Stack gap="xs">
                  {canConfig ? (
                    <Button
                      variant="gradient"
                      gradient={{ from: 'cyan.7', to: 'indigo.6', deg: 90 }}
                      onClick={() => setConfigOpen(true)}
                      data-testid="open-config"
                    >
                      UPDATE INSTANCE CONFIG
                    </Button>
                  ) : null}
                  <Details server={server} nodeName={nodeName} templateName={templateName} />
                  <FailoverPanel
                    key={`${server.failover.enabled}-${server.failover.afterSeconds}`}
                    server={server}
                    canEdit={canWrite}
                    canSee={can('activity.read')}
                  />
                  {/* transfers are an admin's (the routes' access) */}
                  {canWrite ? <TransfersPanel server={server} nodeOnline={server.nodeOnline} /> : null}
                </Stack>
              </Grid.Col>
            </Grid>
          </Stack>
        </Tabs.Panel>
        <Tabs.Panel value="console" pt="md">
          <Stack gap="xs">
            <RemoteConsoleBadge info={remoteConsole} />
            <ConsoleTerminal store={store} />
            {canCommand ? (
              <CommandInput
                serverId={server.id}
                disabled={status !== 'running' && status !== 'starting'}
                onResponse={(command, response) =>
                  store.append([
                    `\u001b[36m> ${command}\u001b[0m`,
                    ...response.replace(/\n$/, '').split('\n'),
                  ])
                }
              />
            ) : null}
          </Stack>
        </Tabs.Panel>
        <Tabs.Panel value="files" pt="md">
          <FilesTab
            serverId={server.id}
            logFile={template ? logFile(template) : null}
            permissions={server.permissions}
            onDirty={(d) => {
              filesDirty.current = d;
            }}
          />
        </Tabs.Panel>
        <Tabs.Panel value="backups" pt="md">
          <BackupsTab serverId={server.id} permissions={server.permissions} />
        </Tabs.Panel>
        <Tabs.Panel value="schedules" pt="md">
          <SchedulesTab serverId={server.id} permissions={server.permissions} />
        </Tabs.Panel>
        {can('webhook.read') ? (
          <Tabs.Panel value="webhooks" pt="md">
            <WebhooksPanel
              serverId={server.id}
              can={{
                create: can('webhook.create'),
                update: can('webhook.update'),
                delete: can('webhook.delete'),
              }}
            />
          </Tabs.Panel>
        ) : null}
        <Tabs.Panel value="mods" pt="md">
          <ModsTab serverId={server.id} permissions={server.permissions} environment={server.environment} />
        </Tabs.Panel>
        <Tabs.Panel value="activity" pt="md">
          <ActivityLog serverId={server.id} />
        </Tabs.Panel>
        {can('user.read') ? (
          <Tabs.Panel value="users" pt="md">
            <SubusersTab serverId={server.id} permissions={server.permissions} />
          </Tabs.Panel>
        ) : null}
        {canInstall ? (
          <Tabs.Panel value="install" pt="md">
            <InstallPanel
              serverId={server.id}
              status={status}
              log={install}
              onStart={() => setInstall(EMPTY_INSTALL_LOG)}
            />
          </Tabs.Panel>
        ) : null}
      </Tabs>
      {configOpen ? (
        <ConfigModal
          server={server}
          canEditLimits={canWrite}
          opened={configOpen}
          focus={configFocus}
          onClose={() => {
            setConfigOpen(false);
            setConfigFocus(undefined);
          }}
        />
      ) : null}
      {feature && featureShown && canFeature ? (
        <FeatureDialog
          server={server}
          status={status}
          template={template}
          pending={feature}
          onClose={() => setFeatureShown(false)}
          onOpenConfig={(focus) => {
            setConfigFocus(focus);
            setConfigOpen(true);
          }}
        />
      ) : null}
    </Stack>
  );
}
