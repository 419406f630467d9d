import { Alert, Button, Code, Group, Paper, SimpleGrid, Stack, Table, Text, Title } from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useNavigate, useParams } from 'react-router';
import { useAuth } from '../api/auth.tsx';
import { api, errorCode, errorMessage } from '../api/http.ts';
import { keys, useAgentCommands, useNode, useServers } from '../api/queries.ts';
import { AgentCommandForms } from '../components/agent-commands.tsx';
import { AllocationsPanel } from '../components/allocations-panel.tsx';
import { DefaultLimitsPanel } from '../components/default-limits.tsx';
import { NodeFencesPanel } from '../components/failover-panel.tsx';
import { UsageBar } from '../components/metric-card.tsx';
import { NodeCapacityPanel, NodeHealthPanel } from '../components/node-capacity.tsx';
import { PublicAddressPanel } from '../components/public-address.tsx';
import { ErrorState, Loading } from '../components/states.tsx';
import { NodeBadge, StatusBadge } from '../components/status-badge.tsx';
import { TransferUrlPanel } from '../components/transfer-url.tsx';
import { formatAgo, formatBytes } from '../lib/format.ts';
import { agentCommandFor, DEFAULT_AGENT_DATA_DIR } from '../lib/variables.ts';

function AgentCommand({ nodeId }: { nodeId: string }) {
  const { canWrite } = useAuth();
  // the Panel's configured URL (PANEL_URL), not this page's origin: the Agent runs elsewhere
  const q = useAgentCommands(nodeId, canWrite);
  if (!canWrite) return null;
  if (q.isPending) return <Loading label="Loading the Agent commands…" />;
  if (q.isError) return <ErrorState error={q.error} title="Could not load the Agent commands" />;
  const npx = agentCommandFor(q.data.panelUrl, nodeId, DEFAULT_AGENT_DATA_DIR);
  return (
    <Paper className="cap-glass" p="md">
      <Title order={3} size="h5" mb="xs">
        Agent command
      </Title>
      <AgentCommandForms commands={q.data} npx={npx} npxTestId="node-agent-command" />
      <Text size="xs" c="dimmed" mt={6}>
        The secret was shown once, when the node was added; the Panel keeps only its hash. AGENT_DATA_DIR
        holds the servers' files and the Agent's state: keep it the same across restarts.
      </Text>
    </Paper>
  );
}

export function NodeDetailPage() {
  const { id = '' } = useParams();
  const { canWrite } = useAuth();
  const q = useNode(id);
  const servers = useServers();
  const navigate = useNavigate();
  const qc = useQueryClient();
  const [delError, setDelError] = useState<unknown>(null);
  if (q.isPending) return <Loading label="Loading node…" />;
  if (q.isError)
    return <ErrorState error={q.error} title="Could not load the node" onRetry={() => q.refetch()} />;
  const n = q.data;
  const si = n.systemInfo;
  const here = (servers.data ?? []).filter((s) => s.nodeId === n.id);
  const info: [string, string][] = si
    ? [
        ['Hostname', si.hostname],
        ['OS', si.os.prettyName],
        ['Kernel', si.kernel],
        ['Architecture', si.arch],
        ['Docker', si.dockerVersion],
        ['CPUs', String(si.cpus)],
        ['Memory', `${formatBytes(si.memory.total)} (${formatBytes(si.memory.free)} free)`],
        ['Disk', `${formatBytes(si.disk.total)} at ${si.disk.path} (${formatBytes(si.disk.free)} free)`],
        ['Agent', `${si.agentVersion} · protocol ${si.protocolVersion}`],
      ]
    : [];

  async function remove() {
    if (!window.confirm(`Delete node ${n.name}? Its Agent will no longer be accepted.`)) return;
    try {
      await api(`/nodes/${encodeURIComponent(n.id)}`, { method: 'DELETE' });
      await qc.invalidateQueries({ queryKey: keys.nodes });
      navigate('/nodes');
    } catch (e) {
      setDelError(e);
    }
  }

  return (
    <Stack gap="lg" data-testid="page-node-detail">
      <Group justify="space-between">
        <Group gap="sm">
          <Title order={2}>{n.name}</Title>
          <NodeBadge online={n.online} />
        </Group>
        {canWrite ? (
          <Button color="red" variant="outline" onClick={remove}>
            Delete node
          </Button>
        ) : null}
      </Group>
      {delError ? (
        <Text c="red.4" role="alert">
          {errorCode(delError)}: {errorMessage(delError)}
        </Text>
      ) : null}
      {n.agentRefusal ? (
        <Alert color="red" title="The Agent was refused" data-testid="node-agent-refusal">
          {n.agentRefusal.code}: {n.agentRefusal.message} ({formatAgo(n.agentRefusal.at)}). Run an Agent of
          this Panel's release.
        </Alert>
      ) : null}
      <Text size="sm" c="dimmed">
        Last heartbeat {formatAgo(n.lastHeartbeatAt)} · ID <Code>{n.id}</Code>
      </Text>
      <SimpleGrid cols={{ base: 1, md: 2 }}>
        <Paper className="cap-glass" p="md">
          <Title order={3} size="h5" mb="xs">
            System
          </Title>
          {si ? (
            <Table verticalSpacing={4} aria-label="System information" data-testid="node-system-info">
              <Table.Tbody>
                {info.map(([k, v]) => (
                  <Table.Tr key={k}>
                    <Table.Th w={130}>{k}</Table.Th>
                    <Table.Td>{v}</Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          ) : (
            <Text c="dimmed" size="sm">
              The Agent has not reported system info yet. Start it with the command shown when the node was
              added.
            </Text>
          )}
        </Paper>
        <Paper className="cap-glass" p="md">
          <Title order={3} size="h5" mb="xs">
            Load
          </Title>
          <Stack gap="sm">
            <UsageBar label="CPU load" percent={n.online ? (n.load?.cpu ?? null) : null} />
            <UsageBar label="RAM" percent={n.online ? (n.load?.memory ?? null) : null} />
            <UsageBar label="Disk" percent={n.online ? (n.load?.disk ?? null) : null} />
          </Stack>
          <Title order={3} size="h5" mt="md" mb="xs">
            Servers ({here.length})
          </Title>
          {here.length === 0 ? (
            <Text size="sm" c="dimmed">
              No servers on this node.
            </Text>
          ) : (
            <Stack gap={4}>
              {here.map((s) => (
                <Group key={s.id} justify="space-between">
                  <Text size="sm">{s.name}</Text>
                  <StatusBadge status={s.status} nodeOnline={s.nodeOnline} />
                </Group>
              ))}
            </Stack>
          )}
        </Paper>
      </SimpleGrid>
      <SimpleGrid cols={{ base: 1, md: 2 }}>
        <NodeCapacityPanel key={JSON.stringify(n.capacity)} node={n} canWrite={canWrite} />
        <NodeHealthPanel node={n} />
      </SimpleGrid>
      <PublicAddressPanel key={n.publicAddress ?? ''} node={n} canWrite={canWrite} />
      <DefaultLimitsPanel key={JSON.stringify(n.defaultLimits ?? null)} node={n} canWrite={canWrite} />
      <TransferUrlPanel key={n.transferUrl ?? ''} node={n} canWrite={canWrite} />
      <AllocationsPanel nodeId={n.id} canWrite={canWrite} />
      {canWrite ? <NodeFencesPanel nodeId={n.id} /> : null}
      {canWrite ? <AgentCommand nodeId={n.id} /> : null}
    </Stack>
  );
}
