import {
  Alert,
  Badge,
  Button,
  Checkbox,
  Code,
  Group,
  NativeSelect,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api, errorMessage } from '../api/http.ts';
import type { CreatedWebhook, Webhook, WebhookDelivery, WebhookInput } from '../api/types.ts';
import { ActionError, HistoryTable, useRowAction } from './actions.tsx';
import { ErrorState, Loading } from './states.tsx';

type EventKind = Webhook['events'][number];

/** What each kind of hook can carry, with a label (UI-only). */
const DISCORD_EVENTS: { value: EventKind; label: string }[] = [
  { value: 'server.crashed', label: 'Crashes (exit code, last console lines)' },
  { value: 'server.status', label: 'Status changes' },
  { value: 'operation', label: 'Backups completed or failed' },
  { value: 'server.players', label: 'Players joining or leaving' },
];
const JSON_EVENTS: EventKind[] = [
  'server.status',
  'server.crashed',
  'server.players',
  'operation',
  'server.install',
  'server.update',
  'server.feature',
  'server.deleted',
  'server.console',
  'server.console_dropped',
  'server.stats',
  'node.online',
  'node.offline',
  'user_action',
];

const when = (iso: string | null) => (iso ? new Date(iso).toLocaleString() : '—');
const color = (s: string) => (s === 'delivered' ? 'teal' : s === 'failed' ? 'red' : 'blue');

/**
 * Webhooks of the Panel (`serverId` null: admins) or of one server (`webhook.*`): list, create
 * (Discord or signed JSON, with its event filter; a JSON hook's secret is shown once), send
 * test, enable/disable, delete, and each hook's delivery log with the answers' status codes.
 */
export function WebhooksPanel({
  serverId,
  can,
}: {
  serverId: string | null;
  can: { create: boolean; update: boolean; delete: boolean };
}) {
  const base = serverId === null ? '/webhooks' : `/servers/${encodeURIComponent(serverId)}/webhooks`;
  const key = ['webhooks', serverId ?? '*'] as const;
  const qc = useQueryClient();
  const list = useQuery({
    queryKey: key,
    queryFn: () => api<{ webhooks: Webhook[] }>(base).then((r) => r.webhooks),
  });
  const [creating, setCreating] = useState(false);
  const [secret, setSecret] = useState<{ name: string; secret: string } | null>(null);
  const [log, setLog] = useState<string | null>(null);
  const [tested, setTested] = useState<WebhookDelivery | null>(null);
  const refresh = () => qc.invalidateQueries({ queryKey: key });
  const { error, clearError, run: act } = useRowAction(refresh);

  if (list.isLoading) return <Loading />;
  if (list.error) return <ErrorState error={list.error} />;
  const hooks = list.data ?? [];
  return (
    <Stack data-testid="webhooks-panel">
      <Group justify="space-between">
        <Title order={4}>Webhooks</Title>
        {can.create ? (
          <Button onClick={() => setCreating((x) => !x)} data-testid="webhook-new">
            New webhook
          </Button>
        ) : null}
      </Group>
      <ActionError error={error} onClose={clearError} testId="webhook-error" />
      {secret ? (
        <Alert
          color="yellow"
          title={`Signing secret of “${secret.name}”`}
          withCloseButton
          onClose={() => setSecret(null)}
        >
          <Text size="sm">
            Shown this once: receivers check X-Signature-256 (HMAC-SHA256 of the raw body) with it.
          </Text>
          <Code data-testid="webhook-secret">{secret.secret}</Code>
        </Alert>
      ) : null}
      {creating ? (
        <CreateForm
          base={base}
          onCreated={(c) => {
            setCreating(false);
            if (c.secret) setSecret({ name: c.name, secret: c.secret });
            void refresh();
          }}
        />
      ) : null}
      {tested ? (
        <Alert
          color={color(tested.state)}
          data-testid="webhook-test-result"
          data-state={tested.state}
          withCloseButton
          onClose={() => setTested(null)}
        >
          Test: {tested.state}
          {tested.lastStatus !== null ? ` (HTTP ${tested.lastStatus})` : ''}
          {tested.lastError ? ` — ${tested.lastError}` : ''}
        </Alert>
      ) : null}
      {hooks.length === 0 ? (
        <Text c="dimmed" data-testid="webhooks-empty">
          No webhooks yet.
        </Text>
      ) : (
        <Table.ScrollContainer minWidth={900}>
          <Table data-testid="webhooks-table">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Kind</Table.Th>
                <Table.Th>URL</Table.Th>
                <Table.Th>Events</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {hooks.map((h) => (
                <Table.Tr key={h.id} data-testid={`webhook-row-${h.id}`} data-name={h.name}>
                  <Table.Td>
                    <Group gap="xs">
                      <Text size="sm">{h.name}</Text>
                      {h.enabled ? null : (
                        <Badge size="xs" color="gray" data-testid="webhook-disabled">
                          disabled
                        </Badge>
                      )}
                    </Group>
                  </Table.Td>
                  <Table.Td>
                    <Badge variant="light">{h.kind === 'discord' ? 'Discord' : 'JSON (signed)'}</Badge>
                  </Table.Td>
                  <Table.Td>
                    <Code data-testid="webhook-url">{h.url}</Code>
                  </Table.Td>
                  <Table.Td>
                    <Text size="xs" data-testid="webhook-events">
                      {h.events.join(', ')}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    <Group gap="xs" justify="flex-end" wrap="nowrap">
                      {can.update ? (
                        <>
                          <Button
                            size="xs"
                            data-testid="webhook-test"
                            onClick={() =>
                              void act(async () => {
                                setTested(
                                  await api<WebhookDelivery>(`${base}/${encodeURIComponent(h.id)}/test`, {
                                    method: 'POST',
                                  }),
                                );
                                setLog(h.id);
                                void qc.invalidateQueries({ queryKey: ['webhook-log', h.id] });
                              })
                            }
                          >
                            Send test
                          </Button>
                          <Button
                            size="xs"
                            variant="default"
                            data-testid="webhook-toggle"
                            onClick={() =>
                              void act(() =>
                                api(`${base}/${encodeURIComponent(h.id)}`, {
                                  method: 'PATCH',
                                  body: { enabled: !h.enabled },
                                }),
                              )
                            }
                          >
                            {h.enabled ? 'Disable' : 'Enable'}
                          </Button>
                        </>
                      ) : null}
                      <Button
                        size="xs"
                        variant={log === h.id ? 'filled' : 'light'}
                        data-testid="webhook-log"
                        onClick={() => setLog(log === h.id ? null : h.id)}
                      >
                        Deliveries
                      </Button>
                      {can.delete ? (
                        <Button
                          size="xs"
                          color="red"
                          variant="light"
                          data-testid="webhook-delete"
                          onClick={() =>
                            void act(async () => {
                              await api(`${base}/${encodeURIComponent(h.id)}`, { method: 'DELETE' });
                              if (log === h.id) setLog(null);
                            })
                          }
                        >
                          Delete
                        </Button>
                      ) : null}
                    </Group>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      {log && hooks.some((h) => h.id === log) ? <DeliveryLog base={base} hookId={log} /> : null}
    </Stack>
  );
}

function DeliveryLog({ base, hookId }: { base: string; hookId: string }) {
  const q = useQuery({
    queryKey: ['webhook-log', hookId],
    queryFn: () =>
      api<{ deliveries: WebhookDelivery[] }>(`${base}/${encodeURIComponent(hookId)}/deliveries`).then(
        (r) => r.deliveries,
      ),
    refetchInterval: (x) => (x.state.data?.some((d) => d.state === 'pending') ? 1000 : 10_000),
  });
  if (q.isLoading) return <Loading />;
  if (q.error) return <ErrorState error={q.error} />;
  return (
    <HistoryTable
      title="Delivery log"
      testId="webhook-deliveries"
      rows={q.data ?? []}
      empty={{ text: 'Nothing sent yet.' }}
      rowKey={(d) => d.id}
      rowProps={(d) => ({
        'data-testid': 'webhook-delivery',
        'data-state': d.state,
        'data-status': String(d.lastStatus ?? ''),
      })}
      columns={[
        { header: 'When', cell: (d) => when(d.createdAt) },
        { header: 'Event', cell: (d) => d.event },
        { header: 'State', cell: (d) => <Badge color={color(d.state)}>{d.state}</Badge> },
        { header: 'Attempts', cell: (d) => d.attempts },
        { header: 'HTTP', cell: (d) => d.log.map((a) => a.status ?? '—').join(' → ') || '—' },
        { header: 'Error', cell: (d) => <Text size="xs">{d.lastError ?? ''}</Text> },
      ]}
    />
  );
}

function CreateForm({ base, onCreated }: { base: string; onCreated: (c: CreatedWebhook) => void }) {
  const [name, setName] = useState('');
  const [kind, setKind] = useState<'discord' | 'json'>('discord');
  const [url, setUrl] = useState('');
  const [events, setEvents] = useState<EventKind[]>(['server.crashed']);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const options: { value: EventKind; label: string }[] =
    kind === 'discord' ? DISCORD_EVENTS : JSON_EVENTS.map((e) => ({ value: e, label: e }));
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const body: WebhookInput = { name, kind, url: url.trim(), events };
    try {
      onCreated(await api<CreatedWebhook>(base, { method: 'POST', body }));
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form onSubmit={submit} data-testid="webhook-form">
      <Stack gap="sm">
        {error ? (
          <Alert color="red" data-testid="webhook-form-error">
            {error}
          </Alert>
        ) : null}
        <Group grow align="flex-start">
          <TextInput
            label="Name"
            required
            value={name}
            onChange={(e) => setName(e.currentTarget.value)}
            data-testid="webhook-form-name"
          />
          <NativeSelect
            label="Kind"
            data={[
              { value: 'discord', label: 'Discord' },
              { value: 'json', label: 'JSON, signed (HMAC-SHA256)' },
            ]}
            value={kind}
            onChange={(e) => {
              const k = e.currentTarget.value === 'json' ? 'json' : 'discord';
              setKind(k);
              if (k === 'discord')
                setEvents((x) => x.filter((v) => DISCORD_EVENTS.some((d) => d.value === v)));
            }}
            data-testid="webhook-form-kind"
          />
        </Group>
        <TextInput
          label="URL"
          description="Loopback and private addresses are refused unless the Panel allows them"
          required
          value={url}
          onChange={(e) => setUrl(e.currentTarget.value)}
          data-testid="webhook-form-url"
        />
        <Checkbox.Group label="Events" value={events} onChange={(v) => setEvents(v as EventKind[])}>
          <Group gap="md" mt={4}>
            {options.map((o) => (
              <Checkbox
                key={o.value}
                value={o.value}
                label={o.label}
                data-testid={`webhook-event-${o.value}`}
              />
            ))}
          </Group>
        </Checkbox.Group>
        <Group justify="flex-end">
          <Button type="submit" loading={busy} disabled={events.length === 0} data-testid="webhook-form-save">
            Create
          </Button>
        </Group>
      </Stack>
    </form>
  );
}
