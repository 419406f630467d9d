import {
  Alert,
  Anchor,
  Badge,
  Button,
  Code,
  Group,
  Paper,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { Link } from 'react-router';
import { api, errorCode, errorMessage } from '../api/http.ts';
import { keys, useAllocations, useServers } from '../api/queries.ts';
import type { Allocation } from '../api/types.ts';
import { isIpAddress, parsePortSpecs } from '../lib/variables.ts';
import { MONO_INPUT } from '../theme.ts';
import { ErrorState, Loading } from './states.tsx';

/** The code first, and PORT_CONFLICT said plainly: it is the one an admin can act on. */
function AllocationError({ error }: { error: unknown }) {
  const code = errorCode(error);
  return (
    <Alert
      color="red"
      variant="light"
      title={code === 'PORT_CONFLICT' ? 'Port already allocated' : 'Refused'}
      role="alert"
      data-testid="allocation-error"
    >
      <Text size="sm">
        <Code data-testid="error-code">{code}</Code>{' '}
        {code === 'PORT_CONFLICT'
          ? `${errorMessage(error)}. Nothing was added; pick ports that are not in the list below.`
          : errorMessage(error)}
      </Text>
    </Alert>
  );
}

/** Port allocations of one node: the pool servers take their primary port from. */
export function AllocationsPanel({ nodeId, canWrite }: { nodeId: string; canWrite: boolean }) {
  const q = useAllocations(nodeId);
  const servers = useServers();
  const qc = useQueryClient();
  const [ip, setIp] = useState('0.0.0.0');
  const [ports, setPorts] = useState('');
  const [touched, setTouched] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [added, setAdded] = useState<number | null>(null);

  const parsed = parsePortSpecs(ports);
  const portsError = 'error' in parsed ? parsed.error : null;
  const ipError = isIpAddress(ip) ? null : 'An IPv4 or IPv6 address (0.0.0.0 = every address)';
  const serverName = (id: string) => servers.data?.find((s) => s.id === id)?.name ?? id;

  async function add(e: FormEvent) {
    e.preventDefault();
    setTouched(true);
    setAdded(null);
    if (portsError || ipError || 'error' in parsed) return;
    setBusy(true);
    setError(null);
    try {
      const res = await api<Allocation[]>(`/nodes/${encodeURIComponent(nodeId)}/allocations`, {
        method: 'POST',
        body: { ip: ip.trim(), ports: parsed.specs },
      });
      setAdded(res.length);
      setPorts('');
      setTouched(false);
      await qc.invalidateQueries({ queryKey: keys.allocations(nodeId) });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  async function remove(a: Allocation) {
    setError(null);
    setAdded(null);
    try {
      await api(`/nodes/${encodeURIComponent(nodeId)}/allocations/${encodeURIComponent(a.id)}`, {
        method: 'DELETE',
      });
      await qc.invalidateQueries({ queryKey: keys.allocations(nodeId) });
    } catch (err) {
      setError(err);
    }
  }

  const list = q.data ?? [];
  const free = list.filter((a) => a.serverId === null).length;
  return (
    <Paper className="cap-glass" p="md" data-testid="allocations">
      <Group justify="space-between" mb="xs">
        <Title order={3} size="h5">
          Port allocations
        </Title>
        {q.data ? (
          <Text size="xs" c="dimmed" data-testid="allocations-count">
            {list.length} allocated · {free} free
          </Text>
        ) : null}
      </Group>
      <Text size="sm" c="dimmed" mb="sm">
        Servers made from a template take the first free one as their primary port (SERVER_PORT), or the one
        chosen when creating them.
      </Text>
      {canWrite ? (
        <form onSubmit={add} aria-label="Add port allocations" noValidate>
          <Group align="flex-start" mb="sm">
            <TextInput
              label="IP"
              value={ip}
              error={touched ? ipError : undefined}
              onChange={(e) => setIp(e.currentTarget.value)}
              styles={MONO_INPUT}
              w={170}
              data-testid="allocation-ip"
            />
            <TextInput
              label="Ports"
              description="25565, or a range 27000-27010"
              value={ports}
              error={touched ? portsError : undefined}
              onChange={(e) => setPorts(e.currentTarget.value)}
              styles={MONO_INPUT}
              style={{ flex: 1, minWidth: 200 }}
              data-testid="allocation-ports"
            />
            <Button type="submit" mt={25} loading={busy} data-testid="allocation-add">
              Add
            </Button>
          </Group>
        </form>
      ) : null}
      {error ? <AllocationError error={error} /> : null}
      {added !== null ? (
        <Text size="sm" c="teal.4" role="status" mb="xs">
          Added {added} port(s).
        </Text>
      ) : null}
      {q.isPending ? (
        <Loading label="Loading allocations…" />
      ) : q.isError ? (
        <ErrorState error={q.error} title="Could not load allocations" onRetry={() => q.refetch()} />
      ) : list.length === 0 ? (
        <Text size="sm" c="dimmed" data-testid="allocations-empty">
          No allocations yet. Without a pool, template servers start without a published port.
        </Text>
      ) : (
        <Table.ScrollContainer minWidth={360} mah={360}>
          <Table verticalSpacing={4} aria-label="Port allocations" stickyHeader>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Address</Table.Th>
                <Table.Th>Used by</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {list.map((a) => (
                <Table.Tr key={a.id} data-testid={`allocation-${a.ip}:${a.port}`}>
                  <Table.Td>
                    <Code>
                      {a.ip}:{a.port}
                    </Code>
                    {a.pooled ? null : (
                      <Badge size="xs" ml={6} variant="outline" color="gray">
                        server binding
                      </Badge>
                    )}
                  </Table.Td>
                  <Table.Td>
                    {a.serverId ? (
                      <Anchor component={Link} to={`/servers/${a.serverId}`} size="sm">
                        {serverName(a.serverId)}
                      </Anchor>
                    ) : (
                      <Text size="sm" c="dimmed">
                        free
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td>
                    {canWrite && a.serverId === null ? (
                      <Group justify="flex-end">
                        <Button
                          size="compact-xs"
                          variant="subtle"
                          color="red"
                          onClick={() => void remove(a)}
                          aria-label={`Delete allocation ${a.ip}:${a.port}`}
                        >
                          Delete
                        </Button>
                      </Group>
                    ) : null}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
    </Paper>
  );
}
