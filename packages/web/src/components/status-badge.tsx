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

/** `nodeOnline: false`: the node went away and `status` is the last one it reported. */
export function StatusBadge({
  status,
  nodeOnline = true,
}: {
  status: ServerStatus | string;
  nodeOnline?: boolean;
}) {
  const color = nodeOnline ? (colors[status as ServerStatus] ?? 'gray') : 'gray';
  return (
    <Badge
      color={color}
      variant={nodeOnline ? 'dot' : 'outline'}
      data-testid="server-status"
      data-status={status}
      data-node-online={String(nodeOnline)}
      title={nodeOnline ? undefined : 'The node is offline: this is the last status it reported.'}
    >
      {status.replace('_', ' ')}
      {nodeOnline ? null : ' · node offline'}
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
