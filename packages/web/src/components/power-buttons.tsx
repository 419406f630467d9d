import type { PowerAction } from '@cap/protocol/states.ts';
import { Button, Group, Text } from '@mantine/core';
import { useEffect, useState } from 'react';
import { api, errorCode, errorMessage } from '../api/http.ts';
import { useLiveMessages } from '../api/live.tsx';
import type { ServerStatus } from '../api/types.ts';

// the status each action ends in; the button stays pending until the server gets there
const settles: Record<PowerAction, readonly ServerStatus[]> = {
  start: ['running', 'crashed', 'offline'],
  restart: ['running', 'crashed'],
  stop: ['offline', 'crashed'],
  kill: ['offline', 'crashed'],
};
const PENDING_TIMEOUT_MS = 120_000;

const running: Record<PowerAction, string> = {
  start: 'Starting…',
  restart: 'Restarting…',
  stop: 'Stopping…',
  kill: 'Killing…',
};
const finished: Record<PowerAction, string> = {
  start: 'Started',
  restart: 'Restarted',
  stop: 'Stopped',
  kill: 'Killed',
};

/** What the operation of the last click is doing, from the Panel's `operation` messages. */
interface OpView {
  id: string;
  action: PowerAction;
  text: string;
  /** null while it runs */
  success: boolean | null;
}

/** The permission each button needs (kill is a stop), as the Panel checks it. */
const NEEDS: Record<PowerAction, string> = {
  start: 'control.start',
  restart: 'control.restart',
  stop: 'control.stop',
  kill: 'control.stop',
};

/** The power buttons the caller's permissions on the server allow (none: nothing is shown). */
export function PowerButtons({
  serverId,
  status,
  permissions,
}: {
  serverId: string;
  status: ServerStatus;
  permissions: readonly string[];
}) {
  const [pending, setPending] = useState<{ action: PowerAction; from: ServerStatus; at: number } | null>(
    null,
  );
  const [error, setError] = useState<unknown>(null);
  const [op, setOp] = useState<OpView | null>(null);

  useLiveMessages((m) => {
    if (m.type !== 'operation' || m.serverId !== serverId) return;
    setOp((o) => {
      if (!o || o.id !== m.operationId) return o;
      if (m.success === undefined) {
        // e.g. "Stopping… (stop sent; kill after 45 s)", "Stopping… (killing)"
        const detail = m.stage === 'killing' ? (m.message ?? 'killing') : m.message;
        return { ...o, text: `${running[o.action]}${detail ? ` (${detail})` : ''}` };
      }
      return {
        ...o,
        success: m.success,
        text: m.success
          ? finished[o.action]
          : `${o.action} failed: ${m.errorCode ?? 'error'}${m.message ? ` — ${m.message}` : ''}`,
      };
    });
  });
  useEffect(() => {
    if (op?.success === null || !op) return;
    setPending(null);
    const t = setTimeout(() => setOp((o) => (o?.id === op.id ? null : o)), 10_000);
    return () => clearTimeout(t);
  }, [op]);

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
      const r = await api<{ operationId: string }>(`/servers/${encodeURIComponent(serverId)}/power`, {
        method: 'POST',
        body: { action },
      });
      setOp({ id: r.operationId, action, text: running[action], success: null });
    } catch (e) {
      setError(e);
      setPending(null);
    }
  }

  const busy = pending !== null || status === 'starting' || status === 'stopping' || status === 'installing';
  const up = status === 'running' || status === 'starting';
  const all: { action: PowerAction; label: string; color: string; disabled: boolean }[] = [
    { action: 'start', label: 'Start', color: 'teal', disabled: busy || up },
    { action: 'restart', label: 'Restart', color: 'cyan', disabled: busy || !up },
    { action: 'stop', label: 'Stop', color: 'orange', disabled: busy || !up },
    // kill is always offered while anything runs: it is the way out of a stuck stop
    { action: 'kill', label: 'Kill', color: 'red', disabled: status === 'offline' || status === 'crashed' },
  ];
  const buttons = all.filter((b) => permissions.includes(NEEDS[b.action]));
  if (buttons.length === 0) return null;
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
      {op ? (
        <Text
          size="sm"
          mt={4}
          c={op.success === false ? 'red.4' : op.success ? 'teal.4' : 'dimmed'}
          role="status"
          data-testid="power-operation"
        >
          {op.text}
        </Text>
      ) : null}
      {error ? (
        <Text size="sm" c="red.4" mt={4} role="alert" data-testid="power-error">
          {errorCode(error)}: {errorMessage(error)}
        </Text>
      ) : null}
    </div>
  );
}
