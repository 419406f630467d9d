import type { PowerAction } from '@cap/protocol/states.ts';
import { Button, Group, Text } from '@mantine/core';
import { useEffect, useState } from 'react';
import { api, errorCode, errorMessage } from '../api/http.ts';
import type { ServerStatus } from '../api/types.ts';

// the status each action ends in; the button stays pending until the server gets there
const settles: Record<PowerAction, readonly ServerStatus[]> = {
  start: ['running', 'crashed', 'offline'],
  restart: ['running', 'crashed'],
  stop: ['offline', 'crashed'],
  kill: ['offline', 'crashed'],
};
const PENDING_TIMEOUT_MS = 120_000;

export function PowerButtons({
  serverId,
  status,
  canWrite,
}: {
  serverId: string;
  status: ServerStatus;
  canWrite: boolean;
}) {
  const [pending, setPending] = useState<{ action: PowerAction; from: ServerStatus; at: number } | null>(
    null,
  );
  const [error, setError] = useState<unknown>(null);

  // settle when the live status reaches where the action leads (and has moved at all)
  useEffect(() => {
    if (!pending) return;
    const moved = status !== pending.from || pending.action === 'kill';
    if (moved && settles[pending.action].includes(status) && status !== 'starting' && status !== 'stopping')
      setPending(null);
  }, [status, pending]);
  useEffect(() => {
    if (!pending) return;
    const t = setTimeout(() => setPending(null), PENDING_TIMEOUT_MS);
    return () => clearTimeout(t);
  }, [pending]);

  async function run(action: PowerAction) {
    setError(null);
    setPending({ action, from: status, at: Date.now() });
    try {
      await api(`/servers/${encodeURIComponent(serverId)}/power`, { method: 'POST', body: { action } });
    } catch (e) {
      setError(e);
      setPending(null);
    }
  }

  const busy = pending !== null || status === 'starting' || status === 'stopping' || status === 'installing';
  const up = status === 'running' || status === 'starting';
  const buttons: { action: PowerAction; label: string; color: string; disabled: boolean }[] = [
    { action: 'start', label: 'Start', color: 'teal', disabled: busy || up },
    { action: 'restart', label: 'Restart', color: 'cyan', disabled: busy || !up },
    { action: 'stop', label: 'Stop', color: 'orange', disabled: busy || !up },
    // kill is always offered while anything runs: it is the way out of a stuck stop
    { action: 'kill', label: 'Kill', color: 'red', disabled: status === 'offline' || status === 'crashed' },
  ];
  if (!canWrite) return null;
  return (
    <div>
      <Group gap="xs" role="group" aria-label="Power">
        {buttons.map((b) => (
          <Button
            key={b.action}
            color={b.color}
            variant={b.action === 'kill' ? 'outline' : 'light'}
            size="sm"
            loading={pending?.action === b.action}
            disabled={b.disabled && pending?.action !== b.action}
            onClick={() => run(b.action)}
            data-testid={`power-${b.action}`}
          >
            {b.label}
          </Button>
        ))}
      </Group>
      {error ? (
        <Text size="sm" c="red.4" mt={4} role="alert" data-testid="power-error">
          {errorCode(error)}: {errorMessage(error)}
        </Text>
      ) : null}
    </div>
  );
}
