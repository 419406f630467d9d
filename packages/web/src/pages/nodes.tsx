import { Alert, Button, Group, Modal, Paper, SimpleGrid, Stack, Text, TextInput, Title } from '@mantine/core';
import { type FormEvent, useState } from 'react';
import { useAuth } from '../api/auth.tsx';
import { useCreateNode, useNodes } from '../api/queries.ts';
import type { CreatedNode } from '../api/types.ts';
import { AgentCommandForms } from '../components/agent-commands.tsx';
import { CopyableCode } from '../components/copyable-code.tsx';
import { Empty, ErrorState, Loading } from '../components/states.tsx';
import { agentCommandWithDataDir, DEFAULT_AGENT_DATA_DIR } from '../lib/variables.ts';
import { NodeCard } from './dashboard.tsx';

function AddNodeModal({ opened, onClose }: { opened: boolean; onClose: () => void }) {
  const create = useCreateNode();
  const [name, setName] = useState('');
  const [created, setCreated] = useState<CreatedNode | null>(null);
  const nameError = name.length > 191 ? 'At most 191 characters' : null;
  const command = created ? agentCommandWithDataDir(created.command, DEFAULT_AGENT_DATA_DIR) : '';

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!name.trim() || nameError) return;
    const res = await create.mutateAsync(name.trim()).catch(() => null);
    if (res) setCreated(res);
  }
  function close() {
    onClose();
    setName('');
    setCreated(null);
    create.reset();
  }

  return (
    <Modal
      opened={opened}
      onClose={close}
      title="Add a node"
      size="lg"
      closeButtonProps={{ 'aria-label': 'Close' }}
    >
      {created ? (
        <Stack data-testid="node-created">
          <Alert color="yellow" title="Copy the secret now">
            The Agent secret is shown once. The Panel keeps only its hash; if you lose it, delete the node and
            add it again.
          </Alert>
          <Stack gap={4}>
            <Text size="sm" fw={600}>
              AGENT_SECRET
            </Text>
            <CopyableCode value={created.agentSecret} testId="agent-secret" />
          </Stack>
          <Stack gap={4}>
            <Text size="sm" fw={600}>
              Start the Agent on the node with one of
            </Text>
            <AgentCommandForms commands={created.commands} npx={command} npxTestId="agent-command" />
            <Text size="xs" c="dimmed">
              AGENT_DATA_DIR holds the servers' files and the Agent's state; keep it the same across restarts.
              The node shows as online here once its Agent has connected.
            </Text>
          </Stack>
          <Group justify="flex-end">
            <Button onClick={close}>Done</Button>
          </Group>
        </Stack>
      ) : (
        <form onSubmit={submit} aria-label="Add a node">
          <Stack>
            <TextInput
              label="Node name"
              description="How the node is shown in the Panel, e.g. the host name"
              required
              value={name}
              error={nameError}
              onChange={(e) => setName(e.currentTarget.value)}
              data-testid="node-name"
              data-autofocus
            />
            {create.isError ? <ErrorState error={create.error} title="Could not add the node" /> : null}
            <Group justify="flex-end">
              <Button variant="default" onClick={close}>
                Cancel
              </Button>
              <Button type="submit" loading={create.isPending} data-testid="node-submit">
                Add node
              </Button>
            </Group>
          </Stack>
        </form>
      )}
    </Modal>
  );
}

export function NodesPage() {
  const { canWrite } = useAuth();
  const q = useNodes();
  const [adding, setAdding] = useState(false);
  return (
    <Stack gap="lg" data-testid="page-nodes">
      <Group justify="space-between">
        <Title order={2}>Nodes</Title>
        {canWrite ? (
          <Button onClick={() => setAdding(true)} data-testid="add-node">
            Add node
          </Button>
        ) : null}
      </Group>
      {q.isPending ? (
        <Loading label="Loading nodes…" />
      ) : q.isError ? (
        <ErrorState error={q.error} title="Could not load nodes" onRetry={() => q.refetch()} />
      ) : q.data.length === 0 ? (
        <Paper className="cap-glass" p="md">
          <Empty title="No nodes yet">
            A node is a machine with Docker where an Agent runs your servers.
          </Empty>
        </Paper>
      ) : (
        <SimpleGrid cols={{ base: 1, sm: 2, lg: 3 }}>
          {q.data.map((n) => (
            <NodeCard key={n.id} node={n} />
          ))}
        </SimpleGrid>
      )}
      <AddNodeModal opened={adding} onClose={() => setAdding(false)} />
    </Stack>
  );
}
