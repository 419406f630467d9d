import { Anchor, Grid, Group, Paper, SimpleGrid, Stack, Table, Text, Title } from '@mantine/core';
import { Link } from 'react-router';
import { useServerSubscriptions } from '../api/live.tsx';
import { useDashboard } from '../api/queries.ts';
import type { PanelNode, Server } from '../api/types.ts';
import { MetricCard, UsageBar } from '../components/metric-card.tsx';
import { PlayersDonut } from '../components/players-donut.tsx';
import { Empty, ErrorState, Loading } from '../components/states.tsx';
import { NodeBadge, StatusBadge } from '../components/status-badge.tsx';
import { formatBytes, formatPercent } from '../lib/format.ts';

/** Stats of a stopped server are its last sample: show them only while it runs. */
export const live = (s: Server) => s.stats !== null && (s.status === 'running' || s.status === 'starting');

// a dashboard with hundreds of servers polls instead of subscribing to each one
const LIVE_SUBSCRIPTION_CAP = 25;

export function NodeCard({ node }: { node: PanelNode }) {
  const si = node.systemInfo;
  return (
    <Paper className="cap-glass" p="md" data-testid={`node-card-${node.name}`}>
      <Stack gap="xs">
        <Group justify="space-between" wrap="nowrap">
          <Anchor component={Link} to={`/nodes/${node.id}`} fw={600}>
            {node.name}
          </Anchor>
          <NodeBadge online={node.online} />
        </Group>
        <Text size="xs" c="dimmed">
          {si
            ? `${si.os.prettyName} · kernel ${si.kernel} · Docker ${si.dockerVersion}`
            : 'No system info reported yet'}
        </Text>
        <UsageBar label="CPU load" percent={node.online ? (node.load?.cpu ?? null) : null} />
        <UsageBar
          label="RAM"
          percent={node.online ? (node.load?.memory ?? null) : null}
          {...(si ? { detail: `${formatBytes(si.memory.total)} total` } : {})}
        />
        <UsageBar
          label="Disk"
          percent={node.online ? (node.load?.disk ?? null) : null}
          {...(si ? { detail: `${formatBytes(si.disk.total)} total` } : {})}
        />
        <Text size="xs" c="dimmed">
          {node.serverCount} server{node.serverCount === 1 ? '' : 's'}
        </Text>
      </Stack>
    </Paper>
  );
}

export function DashboardPage() {
  const q = useDashboard();
  useServerSubscriptions((q.data?.servers ?? []).slice(0, LIVE_SUBSCRIPTION_CAP).map((s) => s.id));
  if (q.isPending) return <Loading label="Loading dashboard…" />;
  if (q.isError)
    return <ErrorState error={q.error} title="Could not load the dashboard" onRetry={() => q.refetch()} />;
  const d = q.data;
  return (
    <Stack gap="lg" data-testid="page-dashboard">
      <Title order={2}>Dashboard</Title>
      <SimpleGrid cols={{ base: 2, md: 4 }}>
        <MetricCard
          label="Servers running"
          value={`${d.totals.running} / ${d.totals.servers}`}
          testId="total-servers"
        />
        <MetricCard
          label="Nodes online"
          value={`${d.totals.online} / ${d.totals.nodes}`}
          testId="total-nodes"
        />
        <MetricCard label="CPU (all servers)" value={formatPercent(d.totals.cpu)} hint="100 % = one core" />
        <MetricCard label="Memory (all servers)" value={formatBytes(d.totals.memoryBytes)} />
      </SimpleGrid>
      <Grid>
        <Grid.Col span={{ base: 12, md: 8 }}>
          <Stack gap="sm">
            <Title order={3} size="h4">
              Nodes
            </Title>
            {d.nodes.length === 0 ? (
              <Paper className="cap-glass" p="md">
                <Empty title="No nodes yet">
                  <Anchor component={Link} to="/nodes">
                    Add a node
                  </Anchor>{' '}
                  and start its Agent to run servers.
                </Empty>
              </Paper>
            ) : (
              <SimpleGrid cols={{ base: 1, sm: 2 }}>
                {d.nodes.map((n) => (
                  <NodeCard key={n.id} node={n} />
                ))}
              </SimpleGrid>
            )}
          </Stack>
        </Grid.Col>
        <Grid.Col span={{ base: 12, md: 4 }}>
          <PlayersDonut players={d.players} servers={d.servers} />
        </Grid.Col>
      </Grid>
      <Stack gap="sm">
        <Title order={3} size="h4">
          Servers
        </Title>
        <Paper className="cap-glass" p="sm">
          {d.servers.length === 0 ? (
            <Empty title="No servers yet">
              <Anchor component={Link} to="/servers/new">
                Create a server
              </Anchor>{' '}
              on one of your nodes.
            </Empty>
          ) : (
            <Table.ScrollContainer minWidth={560}>
              <Table highlightOnHover verticalSpacing="xs" aria-label="Servers">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Name</Table.Th>
                    <Table.Th>Status</Table.Th>
                    <Table.Th>Node</Table.Th>
                    <Table.Th>CPU</Table.Th>
                    <Table.Th>Memory</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {d.servers.map((s) => (
                    <Table.Tr key={s.id} data-testid={`dash-server-${s.name}`}>
                      <Table.Td>
                        <Anchor component={Link} to={`/servers/${s.id}`}>
                          {s.name}
                        </Anchor>
                      </Table.Td>
                      <Table.Td>
                        <StatusBadge status={s.status} nodeOnline={s.nodeOnline} />
                      </Table.Td>
                      <Table.Td>{d.nodes.find((n) => n.id === s.nodeId)?.name ?? s.nodeId}</Table.Td>
                      <Table.Td>{live(s) ? formatPercent(s.stats?.cpu) : '—'}</Table.Td>
                      <Table.Td>{live(s) ? formatBytes(s.stats?.memory.usedBytes) : '—'}</Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
          )}
        </Paper>
      </Stack>
    </Stack>
  );
}
