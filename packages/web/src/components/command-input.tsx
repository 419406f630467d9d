import { Button, Group, Text, TextInput } from '@mantine/core';
import { type FormEvent, useRef, useState } from 'react';
import { api, errorCode, errorMessage } from '../api/http.ts';
import { CommandHistory } from '../lib/console-store.ts';
import { MONO_INPUT } from '../theme.ts';

/** Sends a console command over REST; up/down walk the history. */
export function CommandInput({
  serverId,
  disabled,
  label = 'Console command',
  testId = 'command',
}: {
  serverId: string;
  disabled?: boolean;
  label?: string;
  testId?: string;
}) {
  const [value, setValue] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const history = useRef(new CommandHistory());

  async function submit(e: FormEvent) {
    e.preventDefault();
    const cmd = value;
    if (!cmd.trim()) return;
    setBusy(true);
    setError(null);
    try {
      await api(`/servers/${encodeURIComponent(serverId)}/command`, {
        method: 'POST',
        body: { command: cmd },
      });
      history.current.push(cmd);
      setValue('');
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form onSubmit={submit} aria-label={label}>
      <Group gap="xs" wrap="nowrap" align="flex-start">
        <TextInput
          aria-label={label}
          placeholder={
            disabled ? 'The server is not running' : 'Type a command and press Enter (↑/↓ for history)'
          }
          value={value}
          onChange={(e) => setValue(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === 'ArrowUp') {
              const prev = history.current.up();
              if (prev !== undefined) setValue(prev);
              e.preventDefault();
            } else if (e.key === 'ArrowDown') {
              setValue(history.current.down());
              e.preventDefault();
            }
          }}
          styles={MONO_INPUT}
          style={{ flex: 1 }}
          disabled={disabled}
          maxLength={4096}
          autoComplete="off"
          data-testid={`${testId}-input`}
        />
        <Button type="submit" loading={busy} disabled={disabled} data-testid={`${testId}-send`}>
          Send
        </Button>
      </Group>
      {error ? (
        <Text size="sm" c="red.4" mt={4} role="alert" data-testid={`${testId}-error`}>
          {errorCode(error)}: {errorMessage(error)}
        </Text>
      ) : null}
    </form>
  );
}
