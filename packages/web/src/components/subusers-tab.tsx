import {
  Badge,
  Button,
  Checkbox,
  Group,
  Paper,
  SimpleGrid,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api, errorCode, errorMessage } from '../api/http.ts';
import { keys, usePermissionCatalog, useSubusers } from '../api/queries.ts';
import type { PermissionGroup, Subuser } from '../api/types.ts';
import { ErrorState, Loading } from './states.tsx';

/**
 * Permission checkboxes grouped as Pterodactyl groups them (control, user, file, backup, …).
 * What the caller does not hold is shown disabled: the Panel refuses to grant it (403).
 */
function PermissionPicker({
  catalog,
  value,
  onChange,
  held,
  testId,
}: {
  catalog: PermissionGroup[];
  value: readonly string[];
  onChange: (next: string[]) => void;
  held: readonly string[];
  testId: string;
}) {
  const toggle = (name: string, on: boolean) =>
    onChange(on ? [...new Set([...value, name])] : value.filter((v) => v !== name));
  return (
    <SimpleGrid cols={{ base: 1, sm: 2, md: 3 }} data-testid={testId}>
      {catalog.map((g) => (
        <Paper key={g.group} withBorder p="xs">
          <Text fw={600} size="sm" tt="capitalize">
            {g.group}
          </Text>
          <Text size="xs" c="dimmed" mb={4}>
            {g.description}
          </Text>
          <Stack gap={4}>
            {g.permissions.map((p) => (
              <Checkbox
                key={p.name}
                size="xs"
                label={p.name}
                description={p.description}
                checked={value.includes(p.name)}
                disabled={!held.includes(p.name)}
                onChange={(e) => toggle(p.name, e.currentTarget.checked)}
                data-testid={`${testId}-${p.name}`}
              />
            ))}
          </Stack>
        </Paper>
      ))}
    </SimpleGrid>
  );
}

function SubuserRow({
  serverId,
  sub,
  catalog,
  held,
  canUpdate,
  canDelete,
}: {
  serverId: string;
  sub: Subuser;
  catalog: PermissionGroup[];
  held: readonly string[];
  canUpdate: boolean;
  canDelete: boolean;
}) {
  const qc = useQueryClient();
  const [editing, setEditing] = useState<string[] | null>(null);
  const base = `/servers/${encodeURIComponent(serverId)}/users/${encodeURIComponent(sub.userId)}`;
  const save = useMutation({
    mutationFn: (permissions: string[]) => api<Subuser>(base, { method: 'PATCH', body: { permissions } }),
    onSuccess: () => {
      setEditing(null);
      void qc.invalidateQueries({ queryKey: keys.subusers(serverId) });
    },
  });
  const remove = useMutation({
    mutationFn: () => api(base, { method: 'DELETE' }),
    onSuccess: () => qc.invalidateQueries({ queryKey: keys.subusers(serverId) }),
  });
  const error = save.error ?? remove.error;
  return (
    <>
      <Table.Tr data-testid={`subuser-row-${sub.email}`}>
        <Table.Td>{sub.email}</Table.Td>
        <Table.Td>
          <Group gap={4}>
            {sub.permissions.length === 0 ? (
              <Text size="xs" c="dimmed">
                none
              </Text>
            ) : (
              sub.permissions.map((p) => (
                <Badge key={p} size="xs" variant="light">
                  {p}
                </Badge>
              ))
            )}
          </Group>
        </Table.Td>
        <Table.Td>
          <Group gap="xs" justify="flex-end">
            {canUpdate ? (
              <Button
                size="xs"
                variant="light"
                onClick={() => setEditing(editing ? null : [...sub.permissions])}
                data-testid={`subuser-edit-${sub.email}`}
              >
                {editing ? 'Cancel' : 'Change'}
              </Button>
            ) : null}
            {canDelete ? (
              <Button
                size="xs"
                color="red"
                variant="light"
                loading={remove.isPending}
                onClick={() => remove.mutate()}
                data-testid={`subuser-remove-${sub.email}`}
              >
                Remove
              </Button>
            ) : null}
          </Group>
        </Table.Td>
      </Table.Tr>
      {editing ? (
        <Table.Tr>
          <Table.Td colSpan={3}>
            <Stack gap="xs">
              <PermissionPicker
                catalog={catalog}
                value={editing}
                onChange={setEditing}
                held={held}
                testId={`subuser-perms-${sub.email}`}
              />
              <Group>
                <Button
                  size="xs"
                  loading={save.isPending}
                  onClick={() => save.mutate(editing)}
                  data-testid={`subuser-save-${sub.email}`}
                >
                  Save permissions
                </Button>
              </Group>
            </Stack>
          </Table.Td>
        </Table.Tr>
      ) : null}
      {error ? (
        <Table.Tr>
          <Table.Td colSpan={3}>
            <Text size="xs" c="red.4" role="alert">
              {errorCode(error)}: {errorMessage(error)}
            </Text>
          </Table.Td>
        </Table.Tr>
      ) : null}
    </>
  );
}

/**
 * The server's subusers: add one by email with permissions, change them, remove them. Shown to
 * whoever holds user.read; the buttons follow user.create / user.update / user.delete.
 */
export function SubusersTab({ serverId, permissions }: { serverId: string; permissions: readonly string[] }) {
  const qc = useQueryClient();
  const catalog = usePermissionCatalog();
  const subs = useSubusers(serverId, permissions.includes('user.read'));
  const [email, setEmail] = useState('');
  const [chosen, setChosen] = useState<string[]>(['control.console']);
  const add = useMutation({
    mutationFn: () =>
      api<Subuser>(`/servers/${encodeURIComponent(serverId)}/users`, {
        method: 'POST',
        body: { email, permissions: chosen },
      }),
    onSuccess: () => {
      setEmail('');
      void qc.invalidateQueries({ queryKey: keys.subusers(serverId) });
    },
  });
  if (catalog.isPending || subs.isPending) return <Loading label="Loading subusers…" />;
  if (catalog.isError) return <ErrorState error={catalog.error} title="Could not load the permissions" />;
  if (subs.isError) return <ErrorState error={subs.error} title="Could not load the subusers" />;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    add.mutate();
  };
  return (
    <Stack data-testid="subusers-tab">
      {permissions.includes('user.create') ? (
        <Paper className="cap-glass" p="md" component="form" onSubmit={submit}>
          <Stack gap="xs">
            <Title order={4}>Add a subuser</Title>
            <Text size="sm" c="dimmed">
              An existing account, by its email. You can grant only permissions you hold yourself.
            </Text>
            <TextInput
              label="Email"
              type="email"
              required
              value={email}
              onChange={(e) => setEmail(e.currentTarget.value)}
              data-testid="subuser-email"
            />
            <PermissionPicker
              catalog={catalog.data}
              value={chosen}
              onChange={setChosen}
              held={permissions}
              testId="subuser-new-perms"
            />
            <Group>
              <Button type="submit" loading={add.isPending} data-testid="subuser-add">
                Add subuser
              </Button>
            </Group>
            {add.error ? (
              <Text size="sm" c="red.4" role="alert" data-testid="subuser-error">
                {errorCode(add.error)}: {errorMessage(add.error)}
              </Text>
            ) : null}
          </Stack>
        </Paper>
      ) : null}
      <Paper className="cap-glass" p="md">
        {subs.data.length === 0 ? (
          <Text size="sm" c="dimmed" data-testid="subusers-empty">
            No subusers yet.
          </Text>
        ) : (
          <Table aria-label="Subusers">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Email</Table.Th>
                <Table.Th>Permissions</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {subs.data.map((sub) => (
                <SubuserRow
                  key={sub.userId}
                  serverId={serverId}
                  sub={sub}
                  catalog={catalog.data}
                  held={permissions}
                  canUpdate={permissions.includes('user.update')}
                  canDelete={permissions.includes('user.delete')}
                />
              ))}
            </Table.Tbody>
          </Table>
        )}
      </Paper>
    </Stack>
  );
}
