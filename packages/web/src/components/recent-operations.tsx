import { Badge, Card, Table, Text, Title } from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { useOperationProgress } from '../api/operation-progress.ts';
import { keys, useServerOperations } from '../api/queries.ts';

/** The server's last operations (power, reinstall, config update) with their outcome. */
export function RecentOperations({ serverId }: { serverId: string }) {
  const ops = useServerOperations(serverId);
  const qc = useQueryClient();
  useOperationProgress(serverId, {
    onMessage: () => void qc.invalidateQueries({ queryKey: keys.operations(serverId) }),
  });
  const rows = ops.data ?? [];
  return (
    <Card withBorder data-testid="recent-operations">
      <Title order={4} mb="xs">
        Recent operations
      </Title>
      {rows.length === 0 ? (
        <Text size="sm" c="dimmed">
          None yet.
        </Text>
      ) : (
        <Table>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Action</Table.Th>
              <Table.Th>Stage</Table.Th>
              <Table.Th>Result</Table.Th>
              <Table.Th>Requested</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {rows.map((o) => (
              <Table.Tr key={o.id}>
                <Table.Td>{o.kind}</Table.Td>
                <Table.Td>{o.stage}</Table.Td>
                <Table.Td>
                  {o.success === null ? (
                    <Badge color="gray">running</Badge>
                  ) : o.success ? (
                    <Badge color="teal">ok</Badge>
                  ) : (
                    <Badge color="red" title={o.errorMessage ?? ''}>
                      {o.errorCode ?? 'failed'}
                    </Badge>
                  )}
                </Table.Td>
                <Table.Td>{new Date(o.createdAt).toLocaleTimeString()}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Card>
  );
}
