import { Badge } from '@mantine/core';
import type { ServerStatus } from '../api/types.ts';

const colors: Record<ServerStatus, string> = {
  running: 'teal',
  starting: 'yellow',
  stopping: 'orange',
  offline: 'gray',
  crashed: 'red',
  installing: 'blue',
  install_failed: 'red',
};

export function StatusBadge({ status }: { status: ServerStatus | string }) {
  const color = colors[status as ServerStatus] ?? 'gray';
  return (
    <Badge color={color} variant="dot" data-testid="server-status" data-status={status}>
      {status.replace('_', ' ')}
    </Badge>
  );
}

export function NodeBadge({ online }: { online: boolean }) {
  return (
    <Badge
      color={online ? 'teal' : 'red'}
      variant="dot"
      data-testid="node-status"
      data-online={String(online)}
    >
      {online ? 'online' : 'offline'}
    </Badge>
  );
}
