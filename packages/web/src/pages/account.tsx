import {
  Alert,
  Button,
  Checkbox,
  Code,
  Group,
  NativeSelect,
  Paper,
  PasswordInput,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { useAuth } from '../api/auth.tsx';
import { api } from '../api/http.ts';
import { keys, useApiKeys, useCreateApiKey } from '../api/queries.ts';
import type { CreatedApiKey } from '../api/types.ts';
import { CopyableCode } from '../components/copyable-code.tsx';
import { Empty, ErrorState, Loading } from '../components/states.tsx';
import { formatAgo } from '../lib/format.ts';

/** How long a new key lives: '' = never. */
const EXPIRY_CHOICES = [
  { value: '30', label: '30 days' },
  { value: '7', label: '7 days' },
  { value: '90', label: '90 days' },
  { value: '365', label: '1 year' },
  { value: '', label: 'Never' },
];

function expiryText(expiresAt: string | null, now = Date.now()): string {
  if (expiresAt === null) return 'never';
  const t = Date.parse(expiresAt);
  if (t <= now) return 'expired';
  return new Date(t).toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
}

function ApiKeys() {
  const q = useApiKeys();
  const qc = useQueryClient();
  const create = useCreateApiKey();
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [expiry, setExpiry] = useState('30');
  const [created, setCreated] = useState<CreatedApiKey | null>(null);
  const [delError, setDelError] = useState<unknown>(null);
  const nameError = name.length > 100 ? 'At most 100 characters' : null;

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!name.trim() || nameError || !password) return;
    const res = await create
      .mutateAsync({
        name: name.trim(),
        currentPassword: password,
        ...(expiry === '' ? {} : { expiresInDays: Number(expiry) }),
      })
      .catch(() => null);
    setPassword('');
    if (res) {
      setCreated(res);
      setName('');
    }
  }
  async function remove(id: string, keyName: string) {
    if (!window.confirm(`Delete the API key ${keyName}? Scripts using it stop working.`)) return;
    setDelError(null);
    try {
      await api(`/api-keys/${encodeURIComponent(id)}`, { method: 'DELETE' });
      if (created?.id === id) setCreated(null);
      await qc.invalidateQueries({ queryKey: keys.apiKeys });
    } catch (e) {
      setDelError(e);
    }
  }

  return (
    <Paper className="cap-glass" p="md" data-testid="api-keys">
      <Title order={3} size="h4" mb={4}>
        API keys
      </Title>
      <Text size="sm" c="dimmed" mb="sm">
        For scripts and the CLI: send <Code>Authorization: Bearer cap_…</Code>. A key acts as you, with your
        role. Creating one asks for your password; changing your password revokes your keys unless you keep
        them.
      </Text>
      <form onSubmit={submit} aria-label="Create an API key">
        <Group align="flex-end">
          <TextInput
            label="Key name"
            placeholder="e.g. backup script"
            value={name}
            error={nameError}
            onChange={(e) => setName(e.currentTarget.value)}
            style={{ flex: 1, maxWidth: 360 }}
            data-testid="api-key-name"
          />
          <PasswordInput
            label="Your password"
            value={password}
            onChange={(e) => setPassword(e.currentTarget.value)}
            autoComplete="current-password"
            style={{ maxWidth: 220 }}
            data-testid="api-key-password"
          />
          <NativeSelect
            label="Expires after"
            data={EXPIRY_CHOICES}
            value={expiry}
            onChange={(e) => setExpiry(e.currentTarget.value)}
            data-testid="api-key-expiry"
          />
          <Button
            type="submit"
            loading={create.isPending}
            disabled={!name.trim() || !password}
            data-testid="api-key-submit"
          >
            Create key
          </Button>
        </Group>
      </form>
      {create.isError ? <ErrorState error={create.error} title="Could not create the key" /> : null}
      {created ? (
        <Alert color="yellow" mt="md" title={`Copy "${created.name}" now`} data-testid="api-key-created">
          <Stack gap="xs">
            <Text size="sm">The key is shown once. The Panel keeps only its hash.</Text>
            <CopyableCode value={created.key} testId="api-key-value" copyTestId="api-key-copy" />
            <Group>
              <Button size="xs" variant="default" onClick={() => setCreated(null)}>
                I have copied it
              </Button>
            </Group>
          </Stack>
        </Alert>
      ) : null}
      {delError ? <ErrorState error={delError} title="Could not delete the key" /> : null}
      {q.isPending ? (
        <Loading label="Loading keys…" />
      ) : q.isError ? (
        <ErrorState error={q.error} title="Could not load your keys" onRetry={() => q.refetch()} />
      ) : q.data.length === 0 ? (
        <Empty title="No API keys">Create one above.</Empty>
      ) : (
        <Table mt="md" verticalSpacing="xs" aria-label="API keys">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Created</Table.Th>
              <Table.Th>Last used</Table.Th>
              <Table.Th>Expires</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {q.data.map((k) => (
              <Table.Tr key={k.id} data-testid={`api-key-row-${k.name}`}>
                <Table.Td>{k.name}</Table.Td>
                <Table.Td>{formatAgo(k.createdAt)}</Table.Td>
                <Table.Td>{k.lastUsedAt ? formatAgo(k.lastUsedAt) : 'never'}</Table.Td>
                <Table.Td data-testid={`api-key-expires-${k.name}`}>{expiryText(k.expiresAt)}</Table.Td>
                <Table.Td>
                  <Group justify="flex-end">
                    <Button
                      size="xs"
                      variant="subtle"
                      color="red"
                      onClick={() => void remove(k.id, k.name)}
                      aria-label={`Delete API key ${k.name}`}
                    >
                      Delete
                    </Button>
                  </Group>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Paper>
  );
}

/** Every role changes its own password (`POST /api/auth/password`); the current one is required. */
function ChangePassword() {
  const qc = useQueryClient();
  const [current, setCurrent] = useState('');
  const [password, setPassword] = useState('');
  const [confirm, setConfirm] = useState('');
  const [keepKeys, setKeepKeys] = useState(false);
  const [touched, setTouched] = useState(false);
  const save = useMutation({
    mutationFn: () =>
      api('/auth/password', {
        method: 'POST',
        body: { currentPassword: current, newPassword: password, keepApiKeys: keepKeys },
      }),
    onSuccess: () => {
      setCurrent('');
      setPassword('');
      setConfirm('');
      setKeepKeys(false);
      setTouched(false);
      // unless kept, the keys are gone now
      void qc.invalidateQueries({ queryKey: keys.apiKeys });
    },
  });
  const currentError = current.length === 0 ? 'Your current password' : null;
  const pwError =
    password.length < 8 ? 'At least 8 characters' : password.length > 256 ? 'At most 256 characters' : null;
  const confirmError = confirm !== password ? 'The passwords differ' : null;

  function submit(e: FormEvent) {
    e.preventDefault();
    setTouched(true);
    if (currentError || pwError || confirmError) return;
    save.mutate();
  }

  return (
    <Paper className="cap-glass" p="md" data-testid="change-password">
      <Title order={3} size="h4" mb={4}>
        Password
      </Title>
      <Text size="sm" c="dimmed" mb="sm">
        Changing it signs you out everywhere else and revokes your API keys, unless you keep them.
      </Text>
      <form onSubmit={submit} aria-label="Change your password" noValidate>
        <Stack gap="sm" maw={360}>
          <PasswordInput
            label="Current password"
            value={current}
            error={touched ? currentError : undefined}
            onChange={(e) => setCurrent(e.currentTarget.value)}
            autoComplete="current-password"
            data-testid="password-current"
          />
          <PasswordInput
            label="New password"
            value={password}
            error={touched ? pwError : undefined}
            onChange={(e) => setPassword(e.currentTarget.value)}
            autoComplete="new-password"
            data-testid="password-new"
          />
          <PasswordInput
            label="Repeat it"
            value={confirm}
            error={touched ? confirmError : undefined}
            onChange={(e) => setConfirm(e.currentTarget.value)}
            autoComplete="new-password"
            data-testid="password-confirm"
          />
          <Checkbox
            label="Keep my API keys working"
            checked={keepKeys}
            onChange={(e) => setKeepKeys(e.currentTarget.checked)}
            data-testid="password-keep-keys"
          />
          {save.isError ? <ErrorState error={save.error} title="The password was not changed" /> : null}
          {save.isSuccess ? (
            <Text c="teal.4" size="sm" role="status" data-testid="password-changed">
              Password changed.
            </Text>
          ) : null}
          <Group>
            <Button type="submit" loading={save.isPending} data-testid="password-submit">
              Change password
            </Button>
          </Group>
        </Stack>
      </form>
    </Paper>
  );
}

export function AccountPage() {
  const { user } = useAuth();
  return (
    <Stack gap="lg" data-testid="page-account">
      <Stack gap={2}>
        <Title order={2}>Account</Title>
        <Text size="sm" c="dimmed">
          Signed in as {user?.email} ({user?.role})
        </Text>
      </Stack>
      <ApiKeys />
      <ChangePassword />
    </Stack>
  );
}
