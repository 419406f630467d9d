import {
  Alert,
  Anchor,
  Badge,
  Button,
  Checkbox,
  Code,
  Group,
  Modal,
  Paper,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { lazy, Suspense, useState } from 'react';
import { Link } from 'react-router';
import { invalidateDocker } from '../../api/docker.ts';
import { api } from '../../api/http.ts';
import { ErrorState, Loading } from '../states.tsx';
import { ActionError, StateBadge } from './common.tsx';

const CodeEditor = lazy(() => import('../files/code-editor.tsx'));

interface StackContainer {
  service: string;
  id: string;
  name: string;
  image: string;
  state: string;
  status: string;
}
interface StackView {
  name: string;
  managed: boolean;
  status: string;
  lastError: string | null;
  updatedAt: string | null;
  containers: StackContainer[] | null;
}
interface StackDetail extends StackView {
  compose: string | null;
}
interface DeployResult {
  services: { service: string; action: string }[];
}

const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const EXAMPLE = `services:
  db:
    image: ctrl-alt-play/busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    volumes: ["data:/data"]
    networks: [back]
  web:
    image: ctrl-alt-play/busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    depends_on: [db]
    networks: [back]
networks:
  back: {}
volumes:
  data: {}
`;

const STATUS_COLOURS: Record<string, string> = {
  running: 'teal',
  stopped: 'gray',
  deploying: 'blue',
  failed: 'red',
};

const stacksKey = (nodeId: string) => ['docker', nodeId, 'stacks'] as const;

/** How stacks are run, for the editor (docs/contracts.md "Compose stacks"). */
function SubsetHelp() {
  return (
    <Text size="xs" c="dimmed" data-testid="stack-help">
      Stacks run through the Docker Engine API by the Agent (no docker-compose needed on the node), for a
      stated subset of the compose-spec: image, command, entrypoint, environment, labels, ports, volumes
      (named ones declared at the top level, absolute binds), networks, network_mode, restart, depends_on
      (order), healthcheck, deploy.resources.limits, privileged, cap_add/cap_drop, user, working_dir,
      hostname, tty, stdin_open, stop_signal; top-level networks and volumes. Any other key is refused with{' '}
      <Code>STACK_UNSUPPORTED</Code> naming it, never ignored. The node's Docker policy applies as to every
      container. Containers carry Compose's labels, so <Code>docker-compose -p NAME ps</Code> sees them; an
      update recreates only the services whose configuration changed.
    </Text>
  );
}

function ComposeEditor({
  open,
  title,
  initialName,
  initialCompose,
  nameEditable,
  onClose,
  onSubmit,
}: {
  open: boolean;
  title: string;
  initialName: string;
  initialCompose: string;
  nameEditable: boolean;
  onClose: () => void;
  onSubmit: (name: string, compose: string) => Promise<boolean>;
}) {
  const [name, setName] = useState(initialName);
  const [compose, setCompose] = useState(initialCompose);
  const [busy, setBusy] = useState(false);
  const nameOk = NAME_RE.test(name);
  const submit = async () => {
    if (!nameOk || busy) return;
    setBusy(true);
    try {
      if (await onSubmit(name, compose)) onClose();
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal opened={open} onClose={onClose} title={title} size="xl" data-testid="stack-editor">
      <Stack gap="sm">
        <TextInput
          label="Stack name"
          description="Compose's project name: lower case letters, digits, _ and -"
          value={name}
          disabled={!nameEditable}
          onChange={(e) => setName(e.currentTarget.value)}
          error={name && !nameOk ? 'a-z, 0-9, _ and -, starting with a letter or digit' : undefined}
          data-testid="stack-name"
        />
        <Text size="sm" fw={500}>
          docker-compose.yml
        </Text>
        <Paper withBorder data-testid="stack-compose" style={{ minHeight: 320 }}>
          <Suspense fallback={<Loading label="Loading the editor…" />}>
            <CodeEditor
              initial={initialCompose}
              language="yaml"
              readOnly={false}
              onChange={setCompose}
              onSave={() => void submit()}
            />
          </Suspense>
        </Paper>
        <SubsetHelp />
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose}>
            Cancel
          </Button>
          <Button onClick={() => void submit()} loading={busy} disabled={!nameOk} data-testid="stack-submit">
            {nameEditable ? 'Deploy' : 'Update'}
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}

/** The Stacks tab: a node's compose stacks, with deploy, update, stop, start and remove. */
export function StacksTab({ nodeId }: { nodeId: string }) {
  const qc = useQueryClient();
  const base = `/nodes/${encodeURIComponent(nodeId)}/stacks`;
  const list = useQuery({
    queryKey: stacksKey(nodeId),
    queryFn: ({ signal }) => api<StackView[]>(base, { signal }),
    refetchInterval: 5000,
  });
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [pending, setPending] = useState<string | null>(null);
  const [editor, setEditor] = useState<{ name: string; compose: string; create: boolean } | null>(null);
  const [removing, setRemoving] = useState<string | null>(null);
  const [withVolumes, setWithVolumes] = useState(false);

  const refresh = () => {
    void qc.invalidateQueries({ queryKey: stacksKey(nodeId) });
    void invalidateDocker(qc, nodeId);
  };
  const run = async (label: string, fn: () => Promise<unknown>): Promise<boolean> => {
    setPending(label);
    setError(null);
    setNotice(null);
    try {
      const r = await fn();
      const res = (r as { result?: DeployResult } | undefined)?.result;
      if (res) setNotice(res.services.map((s) => `${s.service}: ${s.action}`).join(', '));
      return true;
    } catch (e) {
      setError(e);
      return false;
    } finally {
      setPending(null);
      refresh();
    }
  };
  const edit = async (name: string) => {
    setError(null);
    try {
      const d = await api<StackDetail>(`${base}/${encodeURIComponent(name)}`);
      setEditor({ name, compose: d.compose ?? '', create: false });
    } catch (e) {
      setError(e);
    }
  };

  if (list.isPending) return <Loading label="Loading stacks…" />;
  if (list.isError)
    return <ErrorState error={list.error} title="Could not load stacks" onRetry={() => list.refetch()} />;

  return (
    <Stack gap="md" data-testid="stacks-tab">
      <Group justify="space-between">
        <Title order={4}>Compose stacks</Title>
        <Button
          onClick={() => setEditor({ name: '', compose: EXAMPLE, create: true })}
          data-testid="stack-new"
        >
          Deploy a stack
        </Button>
      </Group>
      <ActionError error={error} onClose={() => setError(null)} />
      {notice ? (
        <Alert
          color="teal"
          variant="light"
          data-testid="stack-notice"
          withCloseButton
          onClose={() => setNotice(null)}
        >
          <Text size="sm">{notice}</Text>
        </Alert>
      ) : null}
      {list.data.length === 0 ? (
        <Text c="dimmed" data-testid="stacks-empty">
          No stacks on this node yet.
        </Text>
      ) : (
        <Table striped highlightOnHover data-testid="stacks-table">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Status</Table.Th>
              <Table.Th>Services</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {list.data.map((s) => (
              <Table.Tr key={s.name} data-testid="stack-row" data-name={s.name}>
                <Table.Td>
                  <Text fw={500}>{s.name}</Text>
                  {s.managed ? null : (
                    <Badge size="xs" variant="outline" color="gray">
                      not deployed by the Panel
                    </Badge>
                  )}
                </Table.Td>
                <Table.Td>
                  <Badge
                    variant="light"
                    color={Object.hasOwn(STATUS_COLOURS, s.status) ? STATUS_COLOURS[s.status] : 'gray'}
                    data-testid="stack-status"
                  >
                    {s.status}
                  </Badge>
                  {s.lastError ? (
                    <Text size="xs" c="red" lineClamp={2} title={s.lastError}>
                      {s.lastError}
                    </Text>
                  ) : null}
                </Table.Td>
                <Table.Td>
                  <Stack gap={2}>
                    {(s.containers ?? []).map((c) => (
                      <Group key={c.id} gap="xs" data-testid="stack-service" data-service={c.service}>
                        <Anchor
                          component={Link}
                          to={`/docker/${encodeURIComponent(nodeId)}/containers/${c.id}`}
                          size="sm"
                        >
                          {c.service}
                        </Anchor>
                        <StateBadge state={c.state} />
                        <Text size="xs" c="dimmed">
                          {c.status}
                        </Text>
                      </Group>
                    ))}
                  </Stack>
                </Table.Td>
                <Table.Td>
                  <Group gap="xs" justify="flex-end">
                    {s.managed ? (
                      <Button
                        size="xs"
                        variant="default"
                        onClick={() => void edit(s.name)}
                        data-testid="stack-edit"
                      >
                        Edit
                      </Button>
                    ) : null}
                    {s.managed ? (
                      <Button
                        size="xs"
                        variant="default"
                        loading={pending === `stop ${s.name}`}
                        onClick={() =>
                          void run(`stop ${s.name}`, () =>
                            api(`${base}/${encodeURIComponent(s.name)}/stop`, { method: 'POST' }),
                          )
                        }
                        data-testid="stack-stop"
                      >
                        Stop
                      </Button>
                    ) : null}
                    {s.managed ? (
                      <Button
                        size="xs"
                        variant="default"
                        loading={pending === `start ${s.name}`}
                        onClick={() =>
                          void run(`start ${s.name}`, () =>
                            api(`${base}/${encodeURIComponent(s.name)}/start`, { method: 'POST' }),
                          )
                        }
                        data-testid="stack-start"
                      >
                        Start
                      </Button>
                    ) : null}
                    <Button
                      size="xs"
                      color="red"
                      variant="light"
                      onClick={() => {
                        setWithVolumes(false);
                        setRemoving(s.name);
                      }}
                      data-testid="stack-remove"
                    >
                      Remove
                    </Button>
                  </Group>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {editor ? (
        <ComposeEditor
          open
          title={editor.create ? 'Deploy a stack' : `Update ${editor.name}`}
          initialName={editor.name}
          initialCompose={editor.compose}
          nameEditable={editor.create}
          onClose={() => setEditor(null)}
          onSubmit={(name, compose) =>
            editor.create
              ? run(`deploy ${name}`, () => api(base, { method: 'POST', body: { name, compose } }))
              : run(`update ${name}`, () =>
                  api(`${base}/${encodeURIComponent(name)}`, { method: 'PUT', body: { compose } }),
                )
          }
        />
      ) : null}
      <Modal
        opened={removing !== null}
        onClose={() => setRemoving(null)}
        title={`Remove the stack ${removing ?? ''}?`}
        data-testid="stack-remove-confirm"
      >
        <Stack gap="sm">
          <Text size="sm">Its containers and networks are removed.</Text>
          <Checkbox
            label="Remove its volumes too (their data is lost)"
            checked={withVolumes}
            onChange={(e) => setWithVolumes(e.currentTarget.checked)}
            data-testid="stack-remove-volumes"
          />
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setRemoving(null)}>
              Cancel
            </Button>
            <Button
              color="red"
              loading={pending === `remove ${removing}`}
              data-testid="stack-remove-yes"
              onClick={async () => {
                const name = removing;
                if (!name) return;
                await run(`remove ${name}`, () =>
                  api(`${base}/${encodeURIComponent(name)}${withVolumes ? '?volumes=true' : ''}`, {
                    method: 'DELETE',
                  }),
                );
                setRemoving(null);
              }}
            >
              Remove
            </Button>
          </Group>
        </Stack>
      </Modal>
    </Stack>
  );
}
