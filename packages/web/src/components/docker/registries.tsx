import {
  Alert,
  Badge,
  Button,
  Group,
  Modal,
  Paper,
  PasswordInput,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { useAuth } from '../../api/auth.tsx';
import { api, errorMessage } from '../../api/http.ts';
import type { Registry, RegistryPatch } from '../../api/types.ts';
import { Empty, ErrorState, Loading } from '../states.tsx';

export const REGISTRIES_KEY = ['registries'] as const;

/** The registries with stored credentials (admins and owners; others get an empty list). */
export function useRegistries(enabled = true) {
  return useQuery({
    queryKey: REGISTRIES_KEY,
    queryFn: () => api<{ registries: Registry[] }>('/registries').then((r) => r.registries),
    enabled,
  });
}

/** Add (registry null) or edit one; the password field is write-only (blank keeps the stored one). */
function RegistryForm({
  registry,
  opened,
  onClose,
}: {
  registry: Registry | null;
  opened: boolean;
  onClose: () => void;
}) {
  const qc = useQueryClient();
  const [name, setName] = useState(registry?.name ?? '');
  const [host, setHost] = useState(registry?.host ?? '');
  const [username, setUsername] = useState(registry?.username ?? '');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [pending, setPending] = useState(false);
  async function submit(e: FormEvent) {
    e.preventDefault();
    setError(null);
    setPending(true);
    try {
      if (registry) {
        const patch: RegistryPatch = { name, host, username, ...(password ? { password } : {}) };
        await api(`/registries/${encodeURIComponent(registry.id)}`, { method: 'PATCH', body: patch });
      } else {
        await api('/registries', {
          method: 'POST',
          body: { name, host, username, ...(password ? { password } : {}) },
        });
      }
      setPassword('');
      await qc.invalidateQueries({ queryKey: REGISTRIES_KEY });
      onClose();
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setPending(false);
    }
  }
  return (
    <Modal opened={opened} onClose={onClose} title={registry ? `Edit ${registry.name}` : 'Add a registry'}>
      <form onSubmit={submit}>
        <Stack>
          <TextInput
            label="Name"
            required
            value={name}
            onChange={(e) => setName(e.currentTarget.value)}
            data-testid="registry-name"
            data-autofocus
          />
          <TextInput
            label="Host"
            description="host[:port] as image references name it: ghcr.io, 127.0.0.1:5000, docker.io"
            required
            value={host}
            onChange={(e) => setHost(e.currentTarget.value)}
            data-testid="registry-host"
          />
          <TextInput
            label="Username"
            value={username}
            onChange={(e) => setUsername(e.currentTarget.value)}
            data-testid="registry-username"
            autoComplete="off"
          />
          <PasswordInput
            label="Password or token"
            description={
              registry?.hasPassword
                ? 'Stored, never shown again; leave blank to keep it.'
                : 'Stored encrypted, never shown again.'
            }
            value={password}
            onChange={(e) => setPassword(e.currentTarget.value)}
            data-testid="registry-password"
            autoComplete="new-password"
          />
          {error ? (
            <Alert color="red" data-testid="registry-form-error">
              {error}
            </Alert>
          ) : null}
          <Group justify="flex-end">
            <Button type="submit" loading={pending} data-testid="registry-save">
              Save
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

/**
 * Registries (Docker section, Panel-wide): list, add, edit, remove, and a test login from a node's
 * Engine. Their credentials go with pulls and pushes through the relay that name their host.
 */
export function RegistriesTab({ nodeId }: { nodeId: string | null }) {
  const { canWrite } = useAuth();
  const qc = useQueryClient();
  const list = useRegistries(canWrite);
  const [editing, setEditing] = useState<Registry | 'new' | null>(null);
  const [result, setResult] = useState<{ id: string; ok: boolean; text: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  if (!canWrite) return <Empty title="Admins only">Registry credentials are managed by admins.</Empty>;
  if (list.isPending) return <Loading label="Loading registries…" />;
  if (list.isError) return <ErrorState error={list.error} title="Could not load registries" />;
  async function remove(r: Registry) {
    if (!window.confirm(`Remove ${r.name} (${r.host}) and its credentials?`)) return;
    setError(null);
    try {
      await api(`/registries/${encodeURIComponent(r.id)}`, { method: 'DELETE' });
      await qc.invalidateQueries({ queryKey: REGISTRIES_KEY });
    } catch (e) {
      setError(errorMessage(e));
    }
  }
  async function test(r: Registry) {
    if (!nodeId) return;
    setResult(null);
    try {
      const res = await api<{ status: string }>(`/registries/${encodeURIComponent(r.id)}/test`, {
        method: 'POST',
        body: { nodeId },
      });
      setResult({ id: r.id, ok: true, text: res.status });
    } catch (e) {
      setResult({ id: r.id, ok: false, text: errorMessage(e) });
    }
  }
  return (
    <Stack gap="md" data-testid="registries-tab">
      <Paper className="cap-glass" p="sm">
        <Group justify="space-between" mb="xs">
          <Title order={5}>Registries</Title>
          <Button size="xs" onClick={() => setEditing('new')} data-testid="registry-add">
            Add registry
          </Button>
        </Group>
        <Text size="sm" c="dimmed" mb="xs">
          Pulls and pushes through the Panel that name one of these hosts, and game servers on their images,
          use the stored credentials when the client sends none.
        </Text>
        {error ? (
          <Alert color="red" mb="xs">
            {error}
          </Alert>
        ) : null}
        {list.data.length === 0 ? (
          <Text size="sm" data-testid="registries-empty">
            No registries yet.
          </Text>
        ) : (
          <Table aria-label="Registries">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Host</Table.Th>
                <Table.Th>Username</Table.Th>
                <Table.Th>Password</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {list.data.map((r) => (
                <Table.Tr key={r.id} data-testid="registry-row" data-host={r.host}>
                  <Table.Td>{r.name}</Table.Td>
                  <Table.Td ff="monospace">{r.host}</Table.Td>
                  <Table.Td>{r.username || '—'}</Table.Td>
                  <Table.Td>
                    <Badge size="sm" variant="light" color={r.hasPassword ? 'teal' : 'gray'}>
                      {r.hasPassword ? 'stored' : 'none'}
                    </Badge>
                  </Table.Td>
                  <Table.Td>
                    <Group gap={4} justify="flex-end">
                      <Button
                        size="xs"
                        variant="light"
                        disabled={!nodeId}
                        title={nodeId ? 'Log in from this node’s Engine' : 'Pick a node first'}
                        onClick={() => void test(r)}
                        data-testid="registry-test"
                      >
                        Test login
                      </Button>
                      <Button
                        size="xs"
                        variant="subtle"
                        onClick={() => setEditing(r)}
                        data-testid="registry-edit"
                      >
                        Edit
                      </Button>
                      <Button
                        size="xs"
                        variant="subtle"
                        color="red"
                        onClick={() => void remove(r)}
                        data-testid="registry-remove"
                      >
                        Remove
                      </Button>
                    </Group>
                    {result?.id === r.id ? (
                      <Text
                        size="xs"
                        c={result.ok ? 'teal' : 'red'}
                        data-testid="registry-test-result"
                        data-ok={result.ok}
                      >
                        {result.text}
                      </Text>
                    ) : null}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </Paper>
      {editing !== null ? (
        <RegistryForm
          key={editing === 'new' ? 'new' : editing.id}
          registry={editing === 'new' ? null : editing}
          opened
          onClose={() => setEditing(null)}
        />
      ) : null}
    </Stack>
  );
}
