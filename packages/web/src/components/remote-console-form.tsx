import type { RemoteConsoleTransport } from '@cap/protocol/messages.ts';
import { Button, Group, NumberInput, Select, Stack, Text, Title } from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { api, errorCode, errorMessage } from '../api/http.ts';
import { keys } from '../api/queries.ts';
import type { Template } from '../api/types.ts';
import { TRANSPORT_LABEL } from './remote-console-badge.tsx';

const TRANSPORTS = Object.keys(TRANSPORT_LABEL) as RemoteConsoleTransport[];
/** the port select's choice for a fixed number instead of a variable */
const FIXED = '__fixed__';

/**
 * The template's remote console (issue 12): which transport carries console commands and which
 * variables hold its port and password. Admins change it (PUT /templates/:id/remote-console);
 * others see it.
 */
export function RemoteConsoleForm({
  templateId,
  template,
  canEdit,
}: {
  templateId: string;
  template: Template;
  canEdit: boolean;
}) {
  const rc = template.remoteConsole;
  const qc = useQueryClient();
  const [transport, setTransport] = useState<RemoteConsoleTransport>(rc?.transport ?? 'stdin');
  const [portVariable, setPortVariable] = useState<string>(
    rc?.port !== undefined ? FIXED : (rc?.portVariable ?? 'SERVER_PORT'),
  );
  const [port, setPort] = useState<number | string>(rc?.port ?? '');
  const [passwordVariable, setPasswordVariable] = useState<string | null>(rc?.passwordVariable ?? null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  const vars = template.variables.map((v) => ({
    value: v.envVariable,
    label: `${v.name} (${v.envVariable})`,
  }));

  async function save() {
    setBusy(true);
    setError(null);
    setSaved(false);
    try {
      const remoteConsole =
        transport === 'stdin'
          ? null
          : {
              transport,
              ...(portVariable === FIXED ? { port: Number(port) } : { portVariable }),
              ...(passwordVariable ? { passwordVariable } : {}),
            };
      await api(`/templates/${encodeURIComponent(templateId)}/remote-console`, {
        method: 'PUT',
        body: { remoteConsole },
      });
      await qc.invalidateQueries({ queryKey: keys.templates });
      setSaved(true);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  return (
    <Stack gap="xs" data-testid="template-remote-console">
      <Title order={3} size="h5">
        Console transport
      </Title>
      <Text size="xs" c="dimmed">
        How console commands reach the game. A remote console answers each command; its password variable
        should be hidden from users.
      </Text>
      <Group gap="sm" align="flex-end" wrap="wrap">
        <Select
          label="Transport"
          data={TRANSPORTS.map((t) => ({ value: t, label: TRANSPORT_LABEL[t] }))}
          value={transport}
          onChange={(v) => v && setTransport(v as RemoteConsoleTransport)}
          disabled={!canEdit}
          allowDeselect={false}
          data-testid="remote-console-transport"
          w={200}
        />
        {transport !== 'stdin' ? (
          <>
            <Select
              label="Port"
              data={[
                { value: 'SERVER_PORT', label: 'The primary port (SERVER_PORT)' },
                ...vars,
                { value: FIXED, label: 'A fixed port…' },
              ]}
              value={portVariable}
              onChange={(v) => v && setPortVariable(v)}
              disabled={!canEdit}
              allowDeselect={false}
              data-testid="remote-console-port-variable"
              w={240}
            />
            {portVariable === FIXED ? (
              <NumberInput
                label="Port number"
                min={1}
                max={65535}
                value={port}
                onChange={setPort}
                disabled={!canEdit}
                w={120}
              />
            ) : null}
            <Select
              label="Password"
              data={vars}
              value={passwordVariable}
              onChange={setPasswordVariable}
              clearable
              placeholder="none"
              disabled={!canEdit}
              data-testid="remote-console-password-variable"
              w={240}
            />
          </>
        ) : null}
        {canEdit ? (
          <Button onClick={save} loading={busy} data-testid="remote-console-save">
            Save
          </Button>
        ) : null}
      </Group>
      {saved ? (
        <Text size="sm" c="teal.4" data-testid="remote-console-saved">
          Saved. Servers take it with their next configuration update.
        </Text>
      ) : null}
      {error ? (
        <Text size="sm" c="red.4" role="alert">
          {errorCode(error)}: {errorMessage(error)}
        </Text>
      ) : null}
    </Stack>
  );
}
