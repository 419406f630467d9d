import { Alert, Stack, Text } from '@mantine/core';
import type { AgentCommands } from '../api/types.ts';
import { CopyableCode } from './copyable-code.tsx';

/** The ways to run a node's Agent, with the Panel's configured public URL (never this page's origin). */
const FORMS: { key: 'binary' | 'docker' | 'systemd'; label: string; note: string }[] = [
  {
    key: 'binary',
    label: 'Single executable',
    note: 'ctrl-alt-play-agent-linux-x64 (or -arm64), from npm run build:agent-bin',
  },
  { key: 'docker', label: 'Docker', note: 'the ctrl-alt-play-agent image, from npm run build:images' },
  { key: 'systemd', label: 'systemd', note: 'with deploy/systemd/ctrl-alt-play-agent.service installed' },
];

export function AgentCommandForms({
  commands,
  npx,
  npxTestId,
}: {
  commands: AgentCommands;
  npx: string;
  npxTestId: string;
}) {
  return (
    <Stack gap="sm" data-testid="agent-command-forms">
      {commands.panelUrlConfigured ? null : (
        <Alert color="yellow" title="PANEL_URL is not set" data-testid="panel-url-unset">
          These commands point at {commands.panelUrl}, which another machine cannot reach. Start the Panel
          with PANEL_URL set to the address Agents reach it at.
        </Alert>
      )}
      {commands.insecure ? (
        <Alert color="orange" title="Unencrypted" data-testid="panel-url-insecure">
          {commands.panelUrl} is plain HTTP, so the commands allow it with AGENT_ALLOW_INSECURE=1: the secret
          and every command cross the network in clear. Serve the Panel over HTTPS (PANEL_TLS_CERT/KEY or a
          proxy).
        </Alert>
      ) : null}
      {FORMS.map((f) => (
        <Stack gap={4} key={f.key}>
          <Text size="sm" fw={600}>
            {f.label}{' '}
            <Text span size="xs" c="dimmed">
              {f.note}
            </Text>
          </Text>
          <CopyableCode value={commands[f.key]} testId={`agent-command-${f.key}`} />
        </Stack>
      ))}
      <Stack gap={4}>
        <Text size="sm" fw={600}>
          From a clone of the repository{' '}
          <Text span size="xs" c="dimmed">
            npm install done
          </Text>
        </Text>
        <CopyableCode value={npx} testId={npxTestId} />
      </Stack>
    </Stack>
  );
}
