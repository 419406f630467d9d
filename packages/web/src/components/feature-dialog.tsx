import { gslTokenVariable } from '@cap/protocol/templates/features.ts';
import { Alert, Anchor, Button, Code, Group, Modal, NumberInput, Select, Stack, Text } from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { api, errorCode, errorMessage } from '../api/http.ts';
import { keys } from '../api/queries.ts';
import type { FeatureName, PendingFeature, Server, ServerStatus, Template } from '../api/types.ts';

export type { PendingFeature };

const TITLES: Record<FeatureName, string> = {
  eula: 'Accept the Minecraft EULA?',
  java_version: 'This server needs another Java version',
  pid_limit: 'Process limit reached',
  steam_disk_space: 'Out of disk space',
  gsl_token: 'Invalid or expired GSL token',
};

/** Pterodactyl's default when a server has none of its own (Wings' container_pid_limit). */
const DEFAULT_PIDS = 512;
const MAX_PIDS = 65536;

/**
 * One dialog per egg feature the Panel saw called for on the console (`feature` messages, see
 * `@cap/protocol/templates/features.ts`). Each explains the console line and offers the fix; nothing
 * changes before the user says yes.
 */
export function FeatureDialog({
  server,
  status,
  template,
  pending,
  onClose,
  onOpenConfig,
}: {
  server: Server;
  /** the live status: a change that recreates the container waits until the server has stopped */
  status: ServerStatus;
  template: Template | undefined;
  pending: PendingFeature;
  onClose: () => void;
  /** open the config dialog with this field focused (a variable's env name, or `disk`) */
  onOpenConfig: (focus: string | undefined) => void;
}) {
  const qc = useQueryClient();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const otherImages = (template?.images ?? []).filter((i) => i.image !== server.image);
  const [image, setImage] = useState<string | null>(otherImages[0]?.image ?? null);
  const currentPids = server.limits?.pids ?? DEFAULT_PIDS;
  const [pids, setPids] = useState<number>(Math.min(MAX_PIDS, currentPids * 2));
  const id = encodeURIComponent(server.id);
  const gsl = template ? gslTokenVariable(template.variables) : null;
  // the Agent restarts a crashed server once on its own: recreating it meanwhile would race that start
  const settled = status === 'offline' || status === 'crashed';
  const waitHint = settled ? null : (
    <Text size="xs" c="dimmed" data-testid="feature-wait">
      The server is {status}; this is offered once it has stopped.
    </Text>
  );

  async function act(fn: () => Promise<void>) {
    setBusy(true);
    setError(null);
    try {
      await fn();
      void qc.invalidateQueries({ queryKey: keys.telemetry(server.id) });
      onClose();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }
  const restart = () => api(`/servers/${id}/power`, { method: 'POST', body: { action: 'restart' } });

  const line = (
    <Code block style={{ whiteSpace: 'pre-wrap', overflowWrap: 'anywhere' }} data-testid="feature-line">
      {pending.line}
    </Code>
  );
  let body: React.ReactNode;
  let actions: React.ReactNode;
  switch (pending.feature) {
    case 'eula':
      body = (
        <Text size="sm">
          The server does not start until its operator agrees to the{' '}
          <Anchor href="https://aka.ms/MinecraftEULA" target="_blank" rel="noreferrer noopener">
            Minecraft End User License Agreement
          </Anchor>
          . <b>I accept</b> writes <Code>eula=true</Code> into <Code>eula.txt</Code> in the server's folder
          and starts it again.
        </Text>
      );
      actions = (
        <Button
          loading={busy}
          data-testid="feature-eula-accept"
          onClick={() =>
            act(() => api(`/servers/${id}/features/eula`, { method: 'POST', body: { accept: true } }))
          }
        >
          I accept
        </Button>
      );
      break;
    case 'java_version':
      body = (
        <Stack gap="xs">
          <Text size="sm">
            The server cannot start with the Java of its image <Code>{server.image}</Code>. Choose another of
            the template's images: the container is recreated with it and the server restarted.
          </Text>
          {otherImages.length ? (
            <Select
              label="Image"
              data={otherImages.map((i) => ({ value: i.image, label: `${i.label} (${i.image})` }))}
              value={image}
              onChange={setImage}
              allowDeselect={false}
              data-testid="feature-java-image"
            />
          ) : (
            <Text size="sm" c="dimmed">
              The template has no other image.
            </Text>
          )}
          {waitHint}
        </Stack>
      );
      actions = otherImages.length ? (
        <Button
          loading={busy}
          disabled={!image || !settled}
          data-testid="feature-java-apply"
          onClick={() =>
            act(async () => {
              // an image change recreates the container as an operation: wait for its end, then restart
              await api(`/servers/${id}?wait=true`, { method: 'PATCH', body: { image } });
              await restart();
            })
          }
        >
          Change image and restart
        </Button>
      ) : null;
      break;
    case 'pid_limit':
      body = (
        <Stack gap="xs">
          <Text size="sm">
            The server could not create a thread: it reached its process limit (now {currentPids}
            {server.limits?.pids === undefined ? ', the default' : ''}) or ran out of memory. Raise the limit
            and restart it?
          </Text>
          <NumberInput
            label="Process (PIDs) limit"
            min={16}
            max={MAX_PIDS}
            value={pids}
            onChange={(v) => setPids(typeof v === 'number' ? v : Number(v))}
            data-testid="feature-pids"
          />
          {waitHint}
        </Stack>
      );
      actions = (
        <Button
          loading={busy}
          disabled={!settled || !Number.isInteger(pids) || pids < 16 || pids > MAX_PIDS}
          data-testid="feature-pids-apply"
          onClick={() =>
            act(async () => {
              await api(`/servers/${id}/config?wait=true`, {
                method: 'PUT',
                body: { limits: { ...server.limits, pids } },
              });
              await restart();
            })
          }
        >
          Raise and restart
        </Button>
      );
      break;
    case 'steam_disk_space':
      body = (
        <Text size="sm">
          SteamCMD could not install or update the game: there is not enough free disk space. Free space on
          the node (<Code>df -h</Code> on that machine) or raise the server's disk limit (now{' '}
          {server.limits?.disk ?? 'unlimited'}), then start it again.
        </Text>
      );
      actions = (
        <Button
          data-testid="feature-open-config"
          onClick={() => {
            onClose();
            onOpenConfig('disk');
          }}
        >
          Open the disk limit
        </Button>
      );
      break;
    case 'gsl_token':
      body = (
        <Text size="sm">
          Steam refused the server's Game Server Login Token: it is invalid or has expired. Make a new one at{' '}
          <Anchor
            href="https://steamcommunity.com/dev/managegameservers"
            target="_blank"
            rel="noreferrer noopener"
          >
            steamcommunity.com/dev/managegameservers
          </Anchor>{' '}
          and put it into {gsl ? <Code>{gsl}</Code> : "the template's token variable"} (empty removes it).
        </Text>
      );
      actions = (
        <Button
          data-testid="feature-open-config"
          onClick={() => {
            onClose();
            onOpenConfig(gsl ?? undefined);
          }}
        >
          Set the token
        </Button>
      );
      break;
  }

  return (
    <Modal
      opened
      onClose={busy ? () => undefined : onClose}
      closeOnClickOutside={false}
      title={<Text fw={700}>{TITLES[pending.feature]}</Text>}
      data-testid={`feature-${pending.feature}`}
      closeButtonProps={{ 'aria-label': 'Close' }}
    >
      <Stack>
        <Text size="xs" c="dimmed">
          The console said:
        </Text>
        {line}
        {body}
        {error ? (
          <Alert color="red" title={errorCode(error)} data-testid="feature-error">
            {errorMessage(error)}
          </Alert>
        ) : null}
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose} disabled={busy} data-testid="feature-dismiss">
            {pending.feature === 'eula' ? 'Decline' : 'Not now'}
          </Button>
          {actions}
        </Group>
      </Stack>
    </Modal>
  );
}
