import type { RemoteConsoleState, RemoteConsoleTransport } from '@cap/protocol/messages.ts';
import { Badge, Tooltip } from '@mantine/core';

/** How commands reach the game (issue 12): the template's transport and its connection state. */
export interface RemoteConsoleInfo {
  transport: RemoteConsoleTransport;
  state: RemoteConsoleState;
  message?: string;
}

export const TRANSPORT_LABEL: Readonly<Record<RemoteConsoleTransport, string>> = {
  stdin: 'stdin',
  'source-rcon': 'Source RCON',
  'quake3-rcon': 'Quake 3 rcon',
  'teeworlds-econ': 'Teeworlds econ',
  'openttd-admin': 'OpenTTD admin port',
};

const STATE: Readonly<Record<RemoteConsoleState, { label: string; color: string }>> = {
  idle: { label: 'idle', color: 'gray' },
  connecting: { label: 'connecting', color: 'yellow' },
  authenticated: { label: 'connected', color: 'teal' },
  wrong_password: { label: 'wrong password', color: 'red' },
  unreachable: { label: 'unreachable', color: 'orange' },
};

/** The console header's badge: "Quake 3 rcon · connected" (the reason as its tooltip). */
export function RemoteConsoleBadge({ info }: { info: RemoteConsoleInfo | null }) {
  if (!info) return null;
  const s = STATE[info.state];
  const label =
    info.transport === 'stdin'
      ? `Console: stdin · ${s.label}`
      : `${TRANSPORT_LABEL[info.transport]} · ${s.label}`;
  const badge = (
    <Badge
      color={s.color}
      variant="light"
      data-testid="remote-console-state"
      data-state={info.state}
      data-transport={info.transport}
    >
      {label}
    </Badge>
  );
  return info.message ? (
    <Tooltip label={info.message} multiline w={320}>
      {badge}
    </Tooltip>
  ) : (
    badge
  );
}
