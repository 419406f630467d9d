import {
  Anchor,
  Badge,
  Button,
  Code,
  Group,
  Paper,
  ScrollArea,
  Stack,
  Tabs,
  Text,
  Title,
} from '@mantine/core';
import { lazy, Suspense, useState } from 'react';
import { Link, useNavigate } from 'react-router';
import { saveBlob, useInspect } from '../../api/docker.ts';
import { actionsFor, managedServerId, shortId } from '../../lib/docker.ts';
import { ErrorState, Loading } from '../states.tsx';
import { ActionError, StateBadge, useCanWrite, useDockerAction } from './common.tsx';
import { ContainerLogs } from './container-logs.tsx';

// the charts and xterm are large: the stats and exec tabs load them
const ContainerStats = lazy(() =>
  import('./container-stats.tsx').then((m) => ({ default: m.ContainerStats })),
);
const ExecTerminal = lazy(() => import('./exec-terminal.tsx').then((m) => ({ default: m.ExecTerminal })));

interface Inspect {
  Id: string;
  Name: string;
  Created: string;
  State: { Status: string; Running: boolean; ExitCode: number; StartedAt: string };
  Config: {
    Image: string;
    Tty: boolean;
    Labels: Record<string, string> | null;
    Cmd: string[] | null;
    Env: string[] | null;
  };
  HostConfig: { RestartPolicy?: { Name: string } };
}

const ACTIONS = [
  ['start', 'Start'],
  ['stop', 'Stop'],
  ['restart', 'Restart'],
  ['pause', 'Pause'],
  ['unpause', 'Unpause'],
  ['kill', 'Kill'],
] as const;

export function ContainerDetail({ nodeId, id, nodeName }: { nodeId: string; id: string; nodeName: string }) {
  const q = useInspect<Inspect>(nodeId, `/containers/${id}/json`);
  const action = useDockerAction(nodeId);
  const canWrite = useCanWrite(nodeId);
  const navigate = useNavigate();
  const [tab, setTab] = useState<string | null>('logs');
  if (q.isPending) return <Loading label="Inspecting the container…" />;
  if (q.isError)
    return <ErrorState error={q.error} title="Could not inspect the container" onRetry={() => q.refetch()} />;
  const c = q.data;
  const name = c.Name.replace(/^\//, '');
  const server = managedServerId({ Labels: c.Config.Labels });
  const allowed = actionsFor(c.State.Status);
  const act = async (a: string) => {
    if (a === 'kill' && !window.confirm(`Kill ${name}?`)) return;
    // a game server's container: its power actions go through the server (its state stays right)
    if (server && (a === 'start' || a === 'stop' || a === 'restart' || a === 'kill'))
      await action.power(server, a);
    else await action.run(a, `/containers/${id}/${a}`);
    void q.refetch();
  };
  return (
    <Stack gap="md" data-testid="container-detail" data-name={name}>
      <Group justify="space-between" align="flex-start">
        <Stack gap={2}>
          <Group gap="sm">
            <Title order={3}>{name}</Title>
            <StateBadge state={c.State.Status} />
            {server ? (
              <Badge
                component={Link}
                to={`/servers/${encodeURIComponent(server)}`}
                variant="outline"
                color="cyan"
                data-testid="managed-badge"
              >
                managed — open the server
              </Badge>
            ) : null}
          </Group>
          <Text size="sm" c="dimmed">
            <Code>{shortId(c.Id)}</Code> · {c.Config.Image} · on{' '}
            <Anchor component={Link} to={`/docker/${encodeURIComponent(nodeId)}/containers`}>
              {nodeName}
            </Anchor>
            {c.State.Running
              ? ` · up since ${c.State.StartedAt.slice(0, 19).replace('T', ' ')}`
              : ` · exit code ${c.State.ExitCode}`}
          </Text>
        </Stack>
        <Group gap="xs">
          {ACTIONS.filter(
            ([a]) => canWrite && allowed.has(a) && !(server && (a === 'pause' || a === 'unpause')),
          ).map(([a, label]) => (
            <Button
              key={a}
              size="xs"
              variant="light"
              color={a === 'kill' ? 'red' : undefined}
              loading={action.pending === a}
              onClick={() => void act(a)}
              data-testid={`detail-${a}`}
            >
              {label}
            </Button>
          ))}
          {server || !canWrite ? null : (
            <Button
              size="xs"
              variant="light"
              color="red"
              loading={action.pending === 'remove'}
              data-testid="detail-remove"
              onClick={async () => {
                if (!window.confirm(`Remove ${name}?`)) return;
                if (await action.run('remove', `/containers/${id}?force=1`, { method: 'DELETE' }))
                  navigate(`/docker/${encodeURIComponent(nodeId)}/containers`);
              }}
            >
              Remove
            </Button>
          )}
        </Group>
      </Group>
      <ActionError error={action.error} onClose={action.clear} />
      <Tabs value={tab} onChange={setTab} keepMounted={false}>
        <Tabs.List>
          <Tabs.Tab value="logs" data-testid="ctab-logs">
            Logs
          </Tabs.Tab>
          <Tabs.Tab value="stats" data-testid="ctab-stats">
            Stats
          </Tabs.Tab>
          {canWrite ? (
            <Tabs.Tab value="exec" data-testid="ctab-exec">
              Exec
            </Tabs.Tab>
          ) : null}
          <Tabs.Tab value="inspect" data-testid="ctab-inspect">
            Inspect
          </Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="logs" pt="md">
          <ContainerLogs nodeId={nodeId} id={id} name={name} tty={c.Config.Tty} />
        </Tabs.Panel>
        <Tabs.Panel value="stats" pt="md">
          <Suspense fallback={<Loading label="Loading the charts…" />}>
            <ContainerStats nodeId={nodeId} id={id} running={c.State.Running} />
          </Suspense>
        </Tabs.Panel>
        <Tabs.Panel value="exec" pt="md">
          {c.State.Running ? (
            <Suspense fallback={<Loading label="Loading the terminal…" />}>
              <ExecTerminal nodeId={nodeId} id={id} />
            </Suspense>
          ) : (
            <Text c="dimmed" size="sm">
              Start the container to open a shell in it.
            </Text>
          )}
        </Tabs.Panel>
        <Tabs.Panel value="inspect" pt="md">
          <JsonView value={c} filename={`${name}.json`} />
        </Tabs.Panel>
      </Tabs>
    </Stack>
  );
}

/** Pretty JSON as text (never HTML), with a download. */
export function JsonView({ value, filename }: { value: unknown; filename: string }) {
  const text = JSON.stringify(value, null, 2);
  return (
    <Paper className="cap-glass" p="sm">
      <Group justify="flex-end" mb={4}>
        <Button
          size="xs"
          variant="subtle"
          onClick={() => saveBlob(new Blob([text], { type: 'application/json' }), filename)}
        >
          Download JSON
        </Button>
      </Group>
      <ScrollArea h={480}>
        <Code block data-testid="inspect-json" style={{ whiteSpace: 'pre' }}>
          {text}
        </Code>
      </ScrollArea>
    </Paper>
  );
}
