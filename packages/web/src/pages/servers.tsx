import { Anchor, Badge, Button, Group, Paper, Stack, Table, Text, Title } from '@mantine/core';
import { Link } from 'react-router';
import { useAuth } from '../api/auth.tsx';
import { useNodes, useServers, useTemplates } from '../api/queries.ts';
import { NoLimitBadges } from '../components/limit-badges.tsx';
import { Empty, ErrorState, Loading } from '../components/states.tsx';
import { StatusBadge } from '../components/status-badge.tsx';
import { formatBytes, formatPercent, formatUptime } from '../lib/format.ts';
import { live } from './dashboard.tsx';

export function ServersPage() {
  const { canWrite, seesPanel } = useAuth();
  const q = useServers();
  const nodes = useNodes(seesPanel);
  const templates = useTemplates();
  const nodeName = (id: string) => nodes.data?.find((n) => n.id === id)?.name ?? id;
  const templateName = (id: string) => templates.data?.find((t) => t.id === id)?.name ?? id;
  return (
    <Stack gap="lg" data-testid="page-servers">
      <Group justify="space-between">
        <Title order={2}>Servers</Title>
        {canWrite ? (
          <Button component={Link} to="/servers/new" data-testid="new-server">
            Create server
          </Button>
        ) : null}
      </Group>
      {q.isPending ? (
        <Loading label="Loading servers…" />
      ) : q.isError ? (
        <ErrorState error={q.error} title="Could not load servers" onRetry={() => q.refetch()} />
      ) : q.data.length === 0 ? (
        <Paper className="cap-glass" p="md">
          <Empty title="No servers yet">
            {canWrite ? 'Create one with the button above.' : 'An admin has not created any servers yet.'}
          </Empty>
        </Paper>
      ) : (
        <Paper className="cap-glass" p="sm">
          <Table.ScrollContainer minWidth={720}>
            <Table highlightOnHover verticalSpacing="sm" aria-label="Servers">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Name</Table.Th>
                  <Table.Th>Status</Table.Th>
                  <Table.Th>Node</Table.Th>
                  <Table.Th>Template / image</Table.Th>
                  <Table.Th>CPU</Table.Th>
                  <Table.Th>Memory</Table.Th>
                  <Table.Th>Uptime</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {q.data.map((s) => (
                  <Table.Tr key={s.id} data-testid={`server-row-${s.name}`}>
                    <Table.Td>
                      <Anchor component={Link} to={`/servers/${s.id}`} fw={600}>
                        {s.name}
                      </Anchor>
                    </Table.Td>
                    <Table.Td>
                      <Group gap={4} wrap="nowrap">
                        <StatusBadge status={s.status} nodeOnline={s.nodeOnline} />
                        <NoLimitBadges limits={s.limits} size="xs" />
                        {s.updateAvailable ? (
                          <Badge
                            size="xs"
                            color="grape"
                            variant="light"
                            data-testid="server-update-available"
                          >
                            update available
                          </Badge>
                        ) : null}
                      </Group>
                    </Table.Td>
                    <Table.Td>{nodeName(s.nodeId)}</Table.Td>
                    <Table.Td>
                      {s.templateId ? (
                        <Anchor component={Link} to={`/templates/${s.templateId}`} size="sm">
                          {templateName(s.templateId)}
                        </Anchor>
                      ) : null}
                      <Text size="sm" ff="monospace" c={s.templateId ? 'dimmed' : undefined}>
                        {s.image}
                      </Text>
                    </Table.Td>
                    <Table.Td>{live(s) ? formatPercent(s.stats?.cpu) : '—'}</Table.Td>
                    <Table.Td>{live(s) ? formatBytes(s.stats?.memory.usedBytes) : '—'}</Table.Td>
                    <Table.Td>{live(s) ? formatUptime(s.stats?.uptime) : '—'}</Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        </Paper>
      )}
    </Stack>
  );
}
