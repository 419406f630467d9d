import { Button, Code, Group, Text, TextInput } from '@mantine/core';
import { type FormEvent, useRef, useState } from 'react';
import { api, errorCode, errorMessage } from '../api/http.ts';
import { CommandHistory } from '../lib/console-store.ts';
import { MONO_INPUT } from '../theme.ts';

/** What `POST /servers/:id/command` answers: a response when the template's remote console gave one. */
interface CommandAnswer {
  accepted: true;
  transport?: string;
  response?: string;
}

/**
 * Sends a console command over REST; up/down walk the history. A remote console's response is
 * shown under the command (and handed to `onResponse`, which puts it in the console).
 */
export function CommandInput({
  serverId,
  disabled,
  label = 'Console command',
  testId = 'command',
  onResponse,
}: {
  serverId: string;
  disabled?: boolean;
  label?: string;
  testId?: string;
  onResponse?: (command: string, response: string) => void;
}) {
  const [value, setValue] = useState('');
  const [last, setLast] = useState<{ command: string; response: string } | null>(null);
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
      const answer = await api<CommandAnswer | undefined>(
        `/servers/${encodeURIComponent(serverId)}/command`,
        {
          method: 'POST',
          body: { command: cmd },
        },
      );
      if (typeof answer?.response === 'string') {
        setLast({ command: cmd, response: answer.response });
        onResponse?.(cmd, answer.response);
      } else setLast(null);
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
      {last ? (
        <Code block mt={4} data-testid={`${testId}-response`} style={{ maxHeight: 240, overflow: 'auto' }}>
          {`> ${last.command}\n${last.response || '(no output)'}`}
        </Code>
      ) : null}
      {error ? (
        <Text size="sm" c="red.4" mt={4} role="alert" data-testid={`${testId}-error`}>
          {errorCode(error)}: {errorMessage(error)}
        </Text>
      ) : null}
    </form>
  );
}
