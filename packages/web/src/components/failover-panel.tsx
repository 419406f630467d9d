/**
 * Failover (issue 16 item 3): on the server page, its latest failover and the nodes whose copy
 * of it is fenced (activity.read), and for admins the opt-in switch with its wait; on the node
 * page, the servers failed over off the node (fenced there).
 */
import { Alert, Badge, Button, Group, NumberInput, Paper, Stack, Switch, Text, Title } from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { api, errorMessage } from '../api/http.ts';
import { keys } from '../api/queries.ts';
import type { ApiResponse, Server } from '../api/types.ts';

type Failovers = ApiResponse<'/api/servers/{id}/failovers', 'get'>;
type NodeFences = ApiResponse<'/api/nodes/{id}/fences', 'get'>;

const COLOR: Record<string, string> = {
  pending: 'yellow',
  restoring: 'blue',
  started: 'green',
  failed: 'red',
};

export function FailoverPanel({
  server,
  canEdit,
  canSee,
}: {
  server: Server;
  canEdit: boolean;
  canSee: boolean;
}) {
  const qc = useQueryClient();
  const [enabled, setEnabled] = useState(server.failover.enabled);
  const [after, setAfter] = useState<number | string>(server.failover.afterSeconds);
  const q = useQuery({
    queryKey: ['servers', server.id, 'failovers'],
    enabled: canSee,
    queryFn: () => api<Failovers>(`/servers/${encodeURIComponent(server.id)}/failovers`),
    refetchInterval: 5000,
  });
  const save = useMutation({
    mutationFn: () =>
      api(`/servers/${encodeURIComponent(server.id)}`, {
        method: 'PATCH',
        body: { failover: { enabled, afterSeconds: Number(after) } },
      }),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: keys.servers });
    },
  });
  if (!canEdit && !canSee) return null;
  const last = q.data?.failovers[0];
  const fences = q.data?.fences ?? [];
  return (
    <Paper className="cap-glass" p="md" data-testid="failover-panel">
      <Stack gap="xs">
        <Group justify="space-between">
          <Title order={5}>Failover</Title>
          <Badge color={server.failover.enabled ? 'green' : 'gray'} data-testid="failover-enabled">
            {server.failover.enabled ? `on, after ${server.failover.afterSeconds} s offline` : 'off'}
          </Badge>
        </Group>
        <Text size="sm" c="dimmed">
          When this server's node stays offline, the server is restored on another node from its latest backup
          the Panel can reach and started there; the old node's copy is fenced (never started again, its files
          kept aside). Failover needs off-node backups (S3): a backup kept only on the dead node cannot be
          reached.
        </Text>
        {canEdit ? (
          <Group align="flex-end">
            <Switch
              label="Fail over"
              checked={enabled}
              onChange={(e) => setEnabled(e.currentTarget.checked)}
              data-testid="failover-switch"
            />
            <NumberInput
              label="After seconds offline"
              min={1}
              max={86_400}
              value={after}
              onChange={setAfter}
              w={180}
              data-testid="failover-after"
            />
            <Button onClick={() => save.mutate()} loading={save.isPending} data-testid="failover-save">
              Save
            </Button>
          </Group>
        ) : null}
        {save.error ? (
          <Text c="red.4" size="sm" role="alert">
            {errorMessage(save.error)}
          </Text>
        ) : null}
        {last ? (
          <Alert
            color={COLOR[last.state] ?? 'gray'}
            title={`Last failover: ${last.state}`}
            data-testid="failover-last"
          >
            <Text size="sm">
              From node {last.fromNodeId}
              {last.toNodeId ? ` to node ${last.toNodeId}` : ''} · {new Date(last.createdAt).toLocaleString()}
            </Text>
            {last.error ? (
              <Text size="sm">
                {last.error.code}: {last.error.message}
              </Text>
            ) : null}
          </Alert>
        ) : null}
        {fences.length > 0 ? (
          <Text size="sm" data-testid="failover-fences">
            Fenced on node{fences.length > 1 ? 's' : ''} {fences.map((f) => f.nodeId).join(', ')}: never
            started there again.
          </Text>
        ) : null}
      </Stack>
    </Paper>
  );
}

export function NodeFencesPanel({ nodeId }: { nodeId: string }) {
  const q = useQuery({
    queryKey: ['nodes', nodeId, 'fences'],
    queryFn: () => api<NodeFences>(`/nodes/${encodeURIComponent(nodeId)}/fences`),
    refetchInterval: 10_000,
  });
  const fences = q.data?.fences ?? [];
  if (fences.length === 0) return null;
  return (
    <Paper className="cap-glass" p="md" data-testid="node-fences">
      <Stack gap="xs">
        <Title order={5}>Fenced servers</Title>
        <Text size="sm" c="dimmed">
          These servers were failed over to another node while this one was offline. Its Agent is told not to
          start them; their files are kept aside in its data directory (fenced/).
        </Text>
        {fences.map((f) => (
          <Text key={f.serverId} size="sm">
            {f.serverId} · {new Date(f.fencedAt).toLocaleString()} · {f.reason}
          </Text>
        ))}
      </Stack>
    </Paper>
  );
}
