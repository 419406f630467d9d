import {
  Alert,
  Badge,
  Button,
  Checkbox,
  Code,
  Group,
  Image,
  MultiSelect,
  NativeSelect,
  Paper,
  PasswordInput,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { useAuth } from '../api/auth.tsx';
import { api } from '../api/http.ts';
import { keys, useApiKeys, useCreateApiKey, useServers, useSessions, useTwoFactor } from '../api/queries.ts';
import type {
  ApiKeyScope,
  CreatedApiKey,
  RecoveryCodes,
  SshKey,
  TwoFactorEnrolment,
  TwoFactorStatus,
} from '../api/types.ts';
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
  const [scope, setScope] = useState<ApiKeyScope>('full');
  const [serverIds, setServerIds] = useState<string[]>([]);
  const servers = useServers();
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
        scope,
        ...(serverIds.length > 0 ? { serverIds } : {}),
      })
      .catch(() => null);
    setPassword('');
    if (res) {
      setCreated(res);
      setName('');
      setServerIds([]);
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
        role, or less: a read-only key only reads and watches, and a key limited to some servers sees no
        other. Creating one asks for your password; changing your password revokes your keys unless you keep
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
          <NativeSelect
            label="Can"
            data={[
              { value: 'full', label: 'Do what you can' },
              { value: 'read', label: 'Read only' },
            ]}
            value={scope}
            onChange={(e) => setScope(e.currentTarget.value === 'read' ? 'read' : 'full')}
            data-testid="api-key-scope"
          />
          <MultiSelect
            label="Servers"
            placeholder={serverIds.length === 0 ? 'All servers' : undefined}
            data={(servers.data ?? []).map((x) => ({ value: x.id, label: x.name }))}
            value={serverIds}
            onChange={setServerIds}
            searchable
            clearable
            style={{ minWidth: 200, maxWidth: 320 }}
            data-testid="api-key-servers"
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
              <Table.Th>Can</Table.Th>
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
                <Table.Td data-testid={`api-key-scope-${k.name}`}>
                  <Group gap={4}>
                    <Badge size="sm" variant="light" color={k.scope === 'read' ? 'gray' : 'cyan'}>
                      {k.scope === 'read' ? 'read only' : 'full'}
                    </Badge>
                    {k.serverIds ? (
                      <Badge size="sm" variant="outline">
                        {k.serverIds.length === 1 ? '1 server' : `${k.serverIds.length} servers`}
                      </Badge>
                    ) : null}
                  </Group>
                </Table.Td>
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

/**
 * TOTP 2FA: start (QR + secret), confirm with the password and a code, recovery codes shown once;
 * turning it off needs the password and a code.
 */
export function TwoFactorSection() {
  const qc = useQueryClient();
  const { refresh, twoFactor } = useAuth();
  const status = useTwoFactor();
  const [enrolment, setEnrolment] = useState<TwoFactorEnrolment | null>(null);
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [recoveryCodes, setRecoveryCodes] = useState<string[] | null>(null);
  const done = async () => {
    setPassword('');
    setCode('');
    await qc.invalidateQueries({ queryKey: keys.twoFactor });
    await refresh();
  };
  const start = useMutation({
    mutationFn: () => api<TwoFactorEnrolment>('/auth/2fa/enrol', { method: 'POST' }),
    onSuccess: (e) => setEnrolment(e),
  });
  const confirm = useMutation({
    mutationFn: () =>
      api<RecoveryCodes>('/auth/2fa/confirm', {
        method: 'POST',
        body: { currentPassword: password, code: code.replace(/\s/g, '') },
      }),
    onSuccess: async (r) => {
      // the badge says 'on' in the same render as the codes, not after the status refetch
      qc.setQueryData<TwoFactorStatus>(keys.twoFactor, (old) =>
        old ? { ...old, enabled: true, recoveryCodesLeft: r.recoveryCodes.length } : old,
      );
      setEnrolment(null);
      setRecoveryCodes(r.recoveryCodes);
      await done();
    },
  });
  const disable = useMutation({
    mutationFn: () => {
      const c = code.trim();
      return api('/auth/2fa/disable', {
        method: 'POST',
        body: { currentPassword: password, ...(/^\d{6}$/.test(c) ? { code: c } : { recoveryCode: c }) },
      });
    },
    onSuccess: done,
  });
  const enabled = status.data?.enabled ?? twoFactor.enabled;

  return (
    <Paper className="cap-glass" p="md" data-testid="two-factor">
      <Group gap="xs" mb={4}>
        <Title order={3} size="h4">
          Two-factor authentication
        </Title>
        <Badge color={enabled ? 'teal' : 'gray'} variant="light" data-testid="two-factor-state">
          {enabled ? 'on' : 'off'}
        </Badge>
      </Group>
      {twoFactor.required && !enabled ? (
        <Alert color="yellow" mb="sm" title="Required" data-testid="two-factor-required">
          This Panel requires two-factor authentication for admins. Turn it on to continue.
        </Alert>
      ) : null}
      <Text size="sm" c="dimmed" mb="sm">
        After your password, the Panel asks for a 6-digit code from an authenticator app (each code works
        once), or one of your recovery codes.
        {enabled && status.data ? ` ${status.data.recoveryCodesLeft} recovery codes left.` : ''}
      </Text>
      {recoveryCodes ? (
        <Alert color="yellow" mb="md" title="Save your recovery codes now" data-testid="recovery-codes">
          <Stack gap="xs">
            <Text size="sm">
              They are shown once. Each logs you in once when you do not have your authenticator.
            </Text>
            <Code block data-testid="recovery-codes-list">
              {recoveryCodes.join('\n')}
            </Code>
            <Group>
              <Button size="xs" variant="default" onClick={() => setRecoveryCodes(null)}>
                I have saved them
              </Button>
            </Group>
          </Stack>
        </Alert>
      ) : null}
      {!enabled && !enrolment ? (
        <Button onClick={() => start.mutate()} loading={start.isPending} data-testid="two-factor-start">
          Turn on
        </Button>
      ) : null}
      {start.isError ? <ErrorState error={start.error} title="Could not start" /> : null}
      {!enabled && enrolment ? (
        <form
          aria-label="Confirm two-factor authentication"
          onSubmit={(e) => {
            e.preventDefault();
            confirm.mutate();
          }}
        >
          <Stack gap="sm" maw={420}>
            <Text size="sm">Scan this with your authenticator app, or type the secret in:</Text>
            <Image src={enrolment.qrDataUrl} alt="QR code for your authenticator app" w={200} h={200} />
            <CopyableCode
              value={enrolment.secret}
              testId="two-factor-secret"
              copyTestId="two-factor-secret-copy"
            />
            <PasswordInput
              label="Your password"
              value={password}
              onChange={(e) => setPassword(e.currentTarget.value)}
              autoComplete="current-password"
              data-testid="two-factor-password"
            />
            <TextInput
              label="Code from the app"
              value={code}
              inputMode="numeric"
              autoComplete="one-time-code"
              onChange={(e) => setCode(e.currentTarget.value)}
              data-testid="two-factor-code"
            />
            {confirm.isError ? <ErrorState error={confirm.error} title="Not turned on" /> : null}
            <Group>
              <Button
                type="submit"
                loading={confirm.isPending}
                disabled={!password || !/^\d{6}$/.test(code.replace(/\s/g, ''))}
                data-testid="two-factor-confirm"
              >
                Confirm
              </Button>
              <Button variant="default" onClick={() => setEnrolment(null)}>
                Cancel
              </Button>
            </Group>
          </Stack>
        </form>
      ) : null}
      {enabled ? (
        <form
          aria-label="Turn off two-factor authentication"
          onSubmit={(e) => {
            e.preventDefault();
            if (window.confirm('Turn off two-factor authentication?')) disable.mutate();
          }}
        >
          <Group align="flex-end">
            <PasswordInput
              label="Your password"
              value={password}
              onChange={(e) => setPassword(e.currentTarget.value)}
              autoComplete="current-password"
              data-testid="two-factor-off-password"
            />
            <TextInput
              label="Code or recovery code"
              value={code}
              onChange={(e) => setCode(e.currentTarget.value)}
              autoComplete="one-time-code"
              data-testid="two-factor-off-code"
            />
            <Button
              type="submit"
              color="red"
              variant="light"
              loading={disable.isPending}
              disabled={!password || !code.trim()}
              data-testid="two-factor-disable"
            >
              Turn off
            </Button>
          </Group>
          {disable.isError ? <ErrorState error={disable.error} title="Still on" /> : null}
        </form>
      ) : null}
    </Paper>
  );
}

/** One's own sessions: where from, when last seen; each can be ended, or all others at once. */
function Sessions() {
  const q = useSessions();
  const qc = useQueryClient();
  const revoke = useMutation({
    mutationFn: (id: string) => api(`/auth/sessions/${encodeURIComponent(id)}`, { method: 'DELETE' }),
    onSuccess: () => qc.invalidateQueries({ queryKey: keys.sessions }),
  });
  const others = useMutation({
    mutationFn: () => api('/auth/sessions/revoke-others', { method: 'POST' }),
    onSuccess: () => qc.invalidateQueries({ queryKey: keys.sessions }),
  });
  return (
    <Paper className="cap-glass" p="md" data-testid="sessions">
      <Group justify="space-between" mb="sm">
        <Title order={3} size="h4">
          Sessions
        </Title>
        <Button
          size="xs"
          variant="light"
          color="red"
          onClick={() => others.mutate()}
          loading={others.isPending}
          disabled={(q.data ?? []).length <= 1}
          data-testid="sessions-revoke-others"
        >
          Log out other sessions
        </Button>
      </Group>
      {revoke.isError ? <ErrorState error={revoke.error} title="Could not end the session" /> : null}
      {others.isError ? <ErrorState error={others.error} title="Could not end the sessions" /> : null}
      {q.isPending ? (
        <Loading label="Loading sessions…" />
      ) : q.isError ? (
        <ErrorState error={q.error} title="Could not load your sessions" onRetry={() => q.refetch()} />
      ) : (
        <Table verticalSpacing="xs" aria-label="Sessions">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Browser</Table.Th>
              <Table.Th>Address</Table.Th>
              <Table.Th>Signed in</Table.Th>
              <Table.Th>Last seen</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {q.data.map((x) => (
              <Table.Tr key={x.id} data-testid={x.current ? 'session-current' : 'session-row'}>
                <Table.Td>
                  <Text size="sm" lineClamp={1} title={x.userAgent ?? ''} maw={360}>
                    {x.userAgent ?? 'unknown'}
                  </Text>
                </Table.Td>
                <Table.Td>{x.ip ?? '–'}</Table.Td>
                <Table.Td>{formatAgo(x.createdAt)}</Table.Td>
                <Table.Td>{x.lastSeenAt ? formatAgo(x.lastSeenAt) : '–'}</Table.Td>
                <Table.Td>
                  <Group justify="flex-end">
                    {x.current ? (
                      <Badge variant="light">this one</Badge>
                    ) : (
                      <Button
                        size="xs"
                        variant="subtle"
                        color="red"
                        onClick={() => revoke.mutate(x.id)}
                        aria-label="End this session"
                      >
                        Log out
                      </Button>
                    )}
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

/** SFTP: the login's username (`<username>.<server id>`) and the SSH public keys that may log in. */
function Sftp() {
  const { user } = useAuth();
  const qc = useQueryClient();
  const sshKeys = useQuery({ queryKey: ['ssh-keys'], queryFn: () => api<SshKey[]>('/auth/ssh-keys') });
  const [username, setUsername] = useState<string | null>(null);
  const [keyName, setKeyName] = useState('');
  const [publicKey, setPublicKey] = useState('');
  const rename = useMutation({
    mutationFn: (name: string) =>
      api<{ username: string }>('/auth/username', { method: 'PUT', body: { username: name } }),
    onSuccess: () => {
      setUsername(null);
      return qc.invalidateQueries({ queryKey: keys.me });
    },
  });
  const add = useMutation({
    mutationFn: () => api<SshKey>('/auth/ssh-keys', { method: 'POST', body: { name: keyName, publicKey } }),
    onSuccess: () => {
      setKeyName('');
      setPublicKey('');
      return qc.invalidateQueries({ queryKey: ['ssh-keys'] });
    },
  });
  const remove = useMutation({
    mutationFn: (id: string) => api(`/auth/ssh-keys/${encodeURIComponent(id)}`, { method: 'DELETE' }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['ssh-keys'] }),
  });
  const shown = username ?? rename.data?.username ?? user?.username ?? '';
  return (
    <Paper className="cap-glass" p="md" data-testid="sftp">
      <Title order={3} size="h4" mb="xs">
        SFTP
      </Title>
      <Text size="sm" c="dimmed" mb="sm">
        Log in to a server's files as{' '}
        <Code data-testid="sftp-login">{`${shown || 'username'}.<server id>`}</Code> on the node's SFTP port
        (2022 unless its admin changed it), with your password or a key below.
      </Text>
      <form
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          rename.mutate(shown);
        }}
      >
        <Group align="end">
          <TextInput
            label="Username"
            value={shown}
            onChange={(e) => setUsername(e.currentTarget.value)}
            data-testid="sftp-username"
          />
          <Button type="submit" variant="light" loading={rename.isPending} data-testid="sftp-username-save">
            Save
          </Button>
        </Group>
      </form>
      {rename.isError ? <ErrorState error={rename.error} title="The username was not changed" /> : null}
      <form
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          add.mutate();
        }}
      >
        <Stack gap="xs" mt="md">
          <TextInput
            label="Key name"
            value={keyName}
            onChange={(e) => setKeyName(e.currentTarget.value)}
            data-testid="ssh-key-name"
          />
          <TextInput
            label="Public key"
            placeholder="ssh-ed25519 AAAA… you@host"
            value={publicKey}
            onChange={(e) => setPublicKey(e.currentTarget.value)}
            data-testid="ssh-key-value"
          />
          <Group>
            <Button
              type="submit"
              variant="light"
              loading={add.isPending}
              disabled={!keyName || !publicKey}
              data-testid="ssh-key-add"
            >
              Add key
            </Button>
          </Group>
        </Stack>
      </form>
      {add.isError ? <ErrorState error={add.error} title="The key was not added" /> : null}
      {remove.isError ? <ErrorState error={remove.error} title="The key was not removed" /> : null}
      {sshKeys.isPending ? (
        <Loading label="Loading keys…" />
      ) : sshKeys.isError ? (
        <ErrorState
          error={sshKeys.error}
          title="Could not load your keys"
          onRetry={() => sshKeys.refetch()}
        />
      ) : sshKeys.data.length === 0 ? (
        <Text size="sm" c="dimmed" mt="sm">
          No SSH keys.
        </Text>
      ) : (
        <Table verticalSpacing="xs" mt="sm" aria-label="SSH keys">
          <Table.Tbody>
            {sshKeys.data.map((k) => (
              <Table.Tr key={k.id} data-testid={`ssh-key-${k.name}`}>
                <Table.Td>{k.name}</Table.Td>
                <Table.Td>
                  <Code>{k.fingerprint}</Code>
                </Table.Td>
                <Table.Td>{formatAgo(k.createdAt)}</Table.Td>
                <Table.Td>
                  <Group justify="flex-end">
                    <Button
                      size="xs"
                      variant="subtle"
                      color="red"
                      onClick={() => remove.mutate(k.id)}
                      aria-label={`Remove the key ${k.name}`}
                    >
                      Remove
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
      <TwoFactorSection />
      <ApiKeys />
      <Sessions />
      <Sftp />
      <ChangePassword />
    </Stack>
  );
}
