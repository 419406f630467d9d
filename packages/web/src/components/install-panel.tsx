import { Alert, Badge, Button, Code, Group, Paper, Stack, Text, Title } from '@mantine/core';
import { useEffect, useRef, useState } from 'react';
import { api, errorCode, errorMessage } from '../api/http.ts';
import type { ServerStatus } from '../api/types.ts';
import type { InstallLog } from '../lib/install-log.ts';

export { EMPTY_INSTALL_LOG, INSTALL_LOG_MAX_LINES, type InstallLog } from '../lib/install-log.ts';

/** Reinstall: runs the template's install script again; its output streams in live. */
export function InstallPanel({
  serverId,
  status,
  log,
  onStart,
}: {
  serverId: string;
  status: ServerStatus;
  log: InstallLog;
  onStart: () => void;
}) {
  const [error, setError] = useState<unknown>(null);
  const [sending, setSending] = useState(false);
  const box = useRef<HTMLPreElement>(null);
  const lineCount = log.lines.length;

  // follow the output as it arrives
  // biome-ignore lint/correctness/useExhaustiveDependencies: scroll when lines are added
  useEffect(() => {
    const el = box.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [lineCount]);

  async function reinstall() {
    const ok = window.confirm(
      'Reinstall runs the install script again: the server is stopped first and the script may overwrite its files. Continue?',
    );
    if (!ok) return;
    setError(null);
    setSending(true);
    onStart();
    try {
      await api(`/servers/${encodeURIComponent(serverId)}/reinstall`, { method: 'POST' });
    } catch (e) {
      setError(e);
    } finally {
      setSending(false);
    }
  }

  const installing = status === 'installing';
  return (
    <Paper className="cap-glass" p="md" data-testid="install-panel">
      <Group justify="space-between" mb="xs">
        <Group gap="sm">
          <Title order={3} size="h5">
            Install
          </Title>
          {installing ? (
            <Badge color="blue" variant="dot" data-testid="install-state" data-state="running">
              installing
            </Badge>
          ) : log.result ? (
            <Badge
              color={log.result.success ? 'teal' : 'red'}
              variant="dot"
              data-testid="install-state"
              data-state={log.result.success ? 'ok' : 'failed'}
            >
              {log.result.success
                ? 'installed'
                : `failed${log.result.exitCode === undefined ? '' : ` (exit ${log.result.exitCode})`}`}
            </Badge>
          ) : status === 'install_failed' ? (
            <Badge color="red" variant="dot" data-testid="install-state" data-state="failed">
              last install failed
            </Badge>
          ) : null}
        </Group>
        <Button
          color="orange"
          variant="light"
          onClick={reinstall}
          loading={sending}
          disabled={installing}
          data-testid="reinstall"
        >
          Reinstall
        </Button>
      </Group>
      <Stack gap="xs">
        {error ? (
          <Alert color="red" variant="light" role="alert" data-testid="reinstall-error">
            <Text size="sm">
              <Code data-testid="error-code">{errorCode(error)}</Code> {errorMessage(error)}
            </Text>
          </Alert>
        ) : null}
        {log.error ? (
          <Alert color="red" variant="light" role="alert" data-testid="reinstall-error">
            <Text size="sm">
              <Code data-testid="error-code">{log.error.code}</Code> {log.error.message}
            </Text>
          </Alert>
        ) : null}
        <Code
          block
          ref={box}
          data-testid="install-output"
          style={{
            maxHeight: 360,
            minHeight: 120,
            overflow: 'auto',
            background: '#02070f',
            whiteSpace: 'pre-wrap',
          }}
        >
          {log.lines.length
            ? log.lines.join('\n')
            : 'No install output since the Panel started. Reinstall stops the server and runs the install script again; its output streams here. Start the server again when it has finished.'}
        </Code>
      </Stack>
    </Paper>
  );
}
