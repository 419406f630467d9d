import {
  Button,
  Group,
  Paper,
  PasswordInput,
  Select,
  SimpleGrid,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { useAuth } from '../api/auth.tsx';
import { api, errorCode, errorMessage } from '../api/http.ts';
import { keys, useUsers } from '../api/queries.ts';
import type { Role, User } from '../api/types.ts';
import { Empty, ErrorState, Loading } from '../components/states.tsx';

const ROLES: { value: Role; label: string }[] = [
  { value: 'owner', label: 'Owner — everything' },
  { value: 'admin', label: 'Admin — everything but owners' },
  { value: 'spectator', label: 'Spectator — read-only' },
  { value: 'user', label: 'User — only servers they own or are a subuser of' },
];

export function UsersPage() {
  const { user: me } = useAuth();
  const q = useUsers();
  const qc = useQueryClient();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState<Role>('spectator');
  const [rowError, setRowError] = useState<{ id: string; error: unknown } | null>(null);
  const create = useMutation({
    mutationFn: () => api<User>('/users', { method: 'POST', body: { email, password, role } }),
    onSuccess: () => {
      setEmail('');
      setPassword('');
      void qc.invalidateQueries({ queryKey: keys.users });
    },
  });
  const roleOptions = me?.role === 'owner' ? ROLES : ROLES.filter((r) => r.value !== 'owner');

  async function setUserRole(u: User, next: Role) {
    setRowError(null);
    try {
      await api(`/users/${encodeURIComponent(u.id)}`, { method: 'PATCH', body: { role: next } });
      await qc.invalidateQueries({ queryKey: keys.users });
    } catch (e) {
      setRowError({ id: u.id, error: e });
    }
  }
  async function remove(u: User) {
    if (!window.confirm(`Delete ${u.email}?`)) return;
    setRowError(null);
    try {
      await api(`/users/${encodeURIComponent(u.id)}`, { method: 'DELETE' });
      await qc.invalidateQueries({ queryKey: keys.users });
    } catch (e) {
      setRowError({ id: u.id, error: e });
    }
  }
  function submit(e: FormEvent) {
    e.preventDefault();
    if (password.length < 8) return;
    create.mutate();
  }

  return (
    <Stack gap="lg" data-testid="page-users">
      <Title order={2}>Users</Title>
      <Paper className="cap-glass" p="md">
        <form onSubmit={submit} aria-label="Create user">
          <Stack gap="sm">
            <Title order={3} size="h5">
              Create a user
            </Title>
            <SimpleGrid cols={{ base: 1, sm: 3 }}>
              <TextInput
                label="Email"
                type="email"
                required
                value={email}
                onChange={(e) => setEmail(e.currentTarget.value)}
                data-testid="user-email"
              />
              <PasswordInput
                label="Password"
                required
                description="At least 8 characters"
                value={password}
                error={password.length > 0 && password.length < 8 ? 'At least 8 characters' : undefined}
                onChange={(e) => setPassword(e.currentTarget.value)}
                data-testid="user-password"
              />
              <Select
                label="Role"
                data={roleOptions}
                value={role}
                onChange={(v) => v && setRole(v as Role)}
                allowDeselect={false}
                data-testid="user-role"
              />
            </SimpleGrid>
            {create.isError ? <ErrorState error={create.error} title="Could not create the user" /> : null}
            <Group justify="flex-end">
              <Button type="submit" loading={create.isPending} data-testid="user-submit">
                Create user
              </Button>
            </Group>
          </Stack>
        </form>
      </Paper>
      <Paper className="cap-glass" p="sm">
        {q.isPending ? (
          <Loading label="Loading users…" />
        ) : q.isError ? (
          <ErrorState error={q.error} title="Could not load users" onRetry={() => q.refetch()} />
        ) : q.data.length === 0 ? (
          <Empty title="No users" />
        ) : (
          <Table.ScrollContainer minWidth={520}>
            <Table verticalSpacing="xs" aria-label="Users">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Email</Table.Th>
                  <Table.Th>Role</Table.Th>
                  <Table.Th />
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {q.data.map((u) => {
                  const locked = u.id === me?.id || (u.role === 'owner' && me?.role !== 'owner');
                  return (
                    <Table.Tr key={u.id} data-testid={`user-row-${u.email}`}>
                      <Table.Td>
                        <Text size="sm">{u.email}</Text>
                        {rowError?.id === u.id ? (
                          <Text size="xs" c="red.4" role="alert">
                            {errorCode(rowError.error)}: {errorMessage(rowError.error)}
                          </Text>
                        ) : null}
                      </Table.Td>
                      <Table.Td w={260}>
                        <Select
                          aria-label={`Role of ${u.email}`}
                          data={locked ? ROLES : roleOptions}
                          value={u.role}
                          disabled={locked}
                          allowDeselect={false}
                          onChange={(v) => v && v !== u.role && setUserRole(u, v as Role)}
                          size="xs"
                        />
                      </Table.Td>
                      <Table.Td w={90}>
                        {locked ? null : (
                          <Button size="xs" color="red" variant="subtle" onClick={() => remove(u)}>
                            Delete
                          </Button>
                        )}
                      </Table.Td>
                    </Table.Tr>
                  );
                })}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        )}
      </Paper>
    </Stack>
  );
}
