import { Badge, Button, Card, Group, Table, Text, TextInput, Title } from '@mantine/core';
import { useState } from 'react';
import { useActivity } from '../api/queries.ts';
import { ErrorState, Loading } from './states.tsx';

const PAGE = 50;

/**
 * The activity log, newest first: Panel-wide (serverId null, admins) or one server's, with
 * filters on the action (name or dotted prefix), the result and (Panel-wide) the server, and pages.
 */
export function ActivityLog({ serverId }: { serverId: string | null }) {
  const [action, setAction] = useState('');
  const [result, setResult] = useState('');
  const [server, setServer] = useState('');
  const [offset, setOffset] = useState(0);
  const params = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
  if (action.trim()) params.set('action', action.trim());
  if (result.trim()) params.set('result', result.trim());
  if (!serverId && server.trim()) params.set('serverId', server.trim());
  const q = useActivity(serverId, params.toString());
  const filter = (set: (v: string) => void) => (e: React.ChangeEvent<HTMLInputElement>) => {
    set(e.currentTarget.value);
    setOffset(0);
  };
  return (
    <Card withBorder data-testid="activity-log">
      <Title order={4} mb="xs">
        Activity
      </Title>
      <Group mb="sm" align="end">
        <TextInput
          label="Action"
          placeholder="e.g. server.power"
          value={action}
          onChange={filter(setAction)}
          data-testid="activity-filter-action"
        />
        <TextInput
          label="Result"
          placeholder="ok or an error code"
          value={result}
          onChange={filter(setResult)}
          data-testid="activity-filter-result"
        />
        {serverId ? null : (
          <TextInput
            label="Server id"
            value={server}
            onChange={filter(setServer)}
            data-testid="activity-filter-server"
          />
        )}
      </Group>
      {q.isPending ? (
        <Loading />
      ) : q.isError ? (
        <ErrorState error={q.error} />
      ) : q.data.entries.length === 0 ? (
        <Text size="sm" c="dimmed">
          Nothing logged{offset > 0 ? ' on this page' : ''}.
        </Text>
      ) : (
        <Table data-testid="activity-table">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Time</Table.Th>
              <Table.Th>Action</Table.Th>
              <Table.Th>Who</Table.Th>
              <Table.Th>Address</Table.Th>
              {serverId ? null : <Table.Th>Server</Table.Th>}
              <Table.Th>Result</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {q.data.entries.map((e) => (
              <Table.Tr key={e.id} data-testid="activity-row">
                <Table.Td>{new Date(e.at).toLocaleString()}</Table.Td>
                <Table.Td>
                  {e.action}
                  {e.details?.kind ? ` (${e.details.kind})` : ''}
                  {e.details?.email ? ` → ${e.details.email}` : ''}
                  {e.details?.permissions !== undefined ? ` [${e.details.permissions}]` : ''}
                </Table.Td>
                <Table.Td>{e.actorEmail ?? e.actorUserId ?? '—'}</Table.Td>
                <Table.Td>{e.ip ?? '—'}</Table.Td>
                {serverId ? null : <Table.Td>{e.serverId ?? '—'}</Table.Td>}
                <Table.Td>
                  <Badge color={e.result === 'ok' ? 'teal' : 'red'}>{e.result}</Badge>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      <Group mt="sm" justify="flex-end">
        <Button
          variant="default"
          disabled={offset === 0}
          onClick={() => setOffset(Math.max(0, offset - PAGE))}
        >
          Newer
        </Button>
        <Button
          variant="default"
          disabled={q.data?.nextOffset == null}
          onClick={() => q.data?.nextOffset != null && setOffset(q.data.nextOffset)}
        >
          Older
        </Button>
      </Group>
    </Card>
  );
}
