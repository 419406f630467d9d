/**
 * Server transfers (issue 16 item 2) on the server page, for admins (the routes' access): the
 * Transfers panel with the server's history and the one running now, followed live by stage
 * (`operation` messages of kind `transfer`, the history polled besides); its dialog picks the
 * target node (each node's free capacity and link state; a node that is offline, the server's own
 * or too small for its limits is disabled with the reason, as the Panel would refuse it) and an
 * allocation on it (or a free one taken automatically), then starts the transfer.
 */
import { type Size, sizeToBytes } from '@cap/protocol/messages.ts';
import {
  Alert,
  Badge,
  Button,
  Code,
  Group,
  Modal,
  Paper,
  Radio,
  Select,
  Stack,
  Table,
  Text,
  Title,
} from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type ReactNode, useState } from 'react';
import { api, errorCode, errorMessage } from '../api/http.ts';
import { useOperationProgress } from '../api/operation-progress.ts';
import { keys, useNodes } from '../api/queries.ts';
import type { ApiResponse, PanelNode, Server } from '../api/types.ts';
import { formatBytes } from '../lib/format.ts';

type Transfers = ApiResponse<'/api/servers/{id}/transfers', 'get'>;
type Transfer = Transfers['transfers'][number];
type Allocations = ApiResponse<'/api/nodes/{id}/allocations', 'get'>;

type TransferStep = Transfer['step'];

/** Each step's label, in the steps' order (the API's enum: a step missing or unknown fails tsc). */
const STEP_LABEL: Record<TransferStep, string> = {
  stopping: 'Stopping on the source',
  archiving: 'Archiving its files',
  creating: 'Creating on the target',
  streaming: 'Streaming the archive',
  restoring: 'Restoring on the target',
  starting: 'Starting on the target',
  switching: 'Switching node and allocation',
  cleaning: 'Cleaning up the source',
};
/** The transfer's steps in order. */
export const TRANSFER_STEPS = Object.keys(STEP_LABEL) as TransferStep[];

/** What the server's limits take of a node (an absent or 0 limit takes nothing), as the Panel counts it. */
function needs(server: Server): { memory: number; disk: number; cpu: number } {
  const size = (v: unknown) => {
    if (v === undefined || v === null) return 0;
    try {
      const b = sizeToBytes(v as Size);
      return Number.isFinite(b) && b > 0 ? b : 0;
    } catch {
      return 0;
    }
  };
  const cpu = Number(server.limits?.cpu ?? 0);
  return {
    memory: size(server.limits?.memory),
    disk: size(server.limits?.disk),
    cpu: Number.isFinite(cpu) ? cpu : 0,
  };
}

const RESOURCES = ['memory', 'disk', 'cpu'] as const;
const amount = (r: (typeof RESOURCES)[number], v: number) =>
  r === 'cpu' ? `${Math.round(v * 100) / 100} cores` : formatBytes(v);

/** Why the server cannot go to this node (null: it can), as the Panel would refuse it. */
export function refusal(server: Server, node: PanelNode): string | null {
  if (node.id === server.nodeId) return 'the server is on it';
  if (!node.online) return 'offline';
  const need = needs(server);
  const short: string[] = [];
  for (const r of RESOURCES) {
    const free = node.capacity[r].free;
    if (free === null || need[r] <= 0) continue;
    if (need[r] > free + 1e-9)
      short.push(`${r}: needs ${amount(r, need[r])}, ${amount(r, Math.max(0, free))} free`);
  }
  return short.length ? `too small (${short.join('; ')})` : null;
}

/** Each resource's free share on the node: "memory 1.5 GiB free · disk not checked · …". */
function headroom(node: PanelNode): string {
  return RESOURCES.map((r) => {
    const c = node.capacity[r];
    return c.free === null ? `${r} not checked` : `${r} ${amount(r, Math.max(0, c.free))} free`;
  }).join(' · ');
}

function StepList({ step, failed, done }: { step: string; failed: boolean; done: boolean }) {
  const at = TRANSFER_STEPS.indexOf(step as TransferStep);
  return (
    <Stack gap={2} data-testid="transfer-steps">
      {TRANSFER_STEPS.map((s, i) => {
        const state =
          done || i < at ? 'done' : i === at ? (failed ? 'failed' : 'current') : ('pending' as const);
        return (
          <Group key={s} gap="xs" data-testid={`transfer-step-${s}`} data-state={state}>
            <Badge
              size="xs"
              variant={state === 'pending' ? 'outline' : 'filled'}
              color={
                state === 'failed' ? 'red' : state === 'current' ? 'blue' : state === 'done' ? 'teal' : 'gray'
              }
              w={70}
            >
              {state}
            </Badge>
            <Text size="sm" c={state === 'pending' ? 'dimmed' : undefined}>
              {STEP_LABEL[s]}
            </Text>
          </Group>
        );
      })}
    </Stack>
  );
}

/** The one transfer followed live: the socket's stage (and the streaming message), or the polled row. */
function TransferProgress({
  transfer,
  live,
  nodeName,
  testId,
}: {
  testId: string;
  transfer: Transfer;
  live:
    | {
        stage: string;
        message?: string | undefined;
        success?: boolean | undefined;
        errorCode?: string | undefined;
      }
    | undefined;
  nodeName: (id: string) => string;
}) {
  // the socket is ahead of the poll while it runs; the row has the final word once it ended
  const ended = transfer.state !== 'running';
  const step = ended
    ? transfer.step
    : live && (TRANSFER_STEPS as readonly string[]).includes(live.stage)
      ? live.stage
      : transfer.step;
  const failed = transfer.state === 'failed' || live?.success === false;
  const done = transfer.state === 'completed' || live?.success === true;
  return (
    <Stack gap="xs" data-testid={testId} data-state={done ? 'completed' : failed ? 'failed' : 'running'}>
      <Text size="sm">
        {nodeName(transfer.sourceNodeId)} → {nodeName(transfer.targetNodeId)}
      </Text>
      <StepList step={step} failed={failed} done={done} />
      {!ended && live?.message && step === 'streaming' ? (
        <Text size="sm" c="dimmed" data-testid="transfer-message">
          {live.message}
        </Text>
      ) : null}
      {done ? (
        <Alert color="teal" title="Transferred" data-testid="transfer-done">
          The server is now on node <b data-testid="transfer-new-node">{nodeName(transfer.targetNodeId)}</b>.
        </Alert>
      ) : null}
      {transfer.state === 'failed' ? (
        <Alert color="red" title={`Failed while ${transfer.step}`} role="alert" data-testid="transfer-failed">
          <Code>{transfer.errorCode ?? 'INTERNAL_ERROR'}</Code> {transfer.errorMessage}
          <Text size="sm" mt={4}>
            The server stays on {nodeName(transfer.sourceNodeId)}, as it was; what the target got is removed.
          </Text>
        </Alert>
      ) : null}
    </Stack>
  );
}

function TransferDialog({
  server,
  nodes,
  opened,
  onClose,
  onStarted,
  progress,
}: {
  server: Server;
  nodes: PanelNode[];
  opened: boolean;
  onClose: () => void;
  onStarted: (t: Transfer) => void;
  /** once started: its live progress, shown instead of the form */
  progress: ReactNode;
}) {
  const qc = useQueryClient();
  const [nodeId, setNodeId] = useState<string | null>(null);
  const [allocationId, setAllocationId] = useState<string | null>(null);
  const allocs = useQuery({
    queryKey: ['nodes', nodeId, 'allocations'],
    enabled: nodeId !== null,
    queryFn: () => api<Allocations>(`/nodes/${encodeURIComponent(nodeId ?? '')}/allocations`),
  });
  const free = (allocs.data ?? []).filter((a) => a.serverId === null);
  const start = useMutation({
    mutationFn: () =>
      api<ApiResponse<'/api/servers/{id}/transfer', 'post'>>(
        `/servers/${encodeURIComponent(server.id)}/transfer`,
        { method: 'POST', body: { nodeId, ...(allocationId ? { allocationId } : {}) } },
      ),
    onSuccess: (r) => {
      void qc.invalidateQueries({ queryKey: ['servers', server.id, 'transfers'] });
      onStarted(r.transfer);
    },
  });
  const others = nodes.filter((n) => n.id !== server.nodeId);
  const code = start.error ? errorCode(start.error) : null;
  return (
    <Modal opened={opened} onClose={onClose} title={`Transfer ${server.name}`} size="lg">
      {progress ? (
        <Stack data-testid="transfer-dialog-progress">
          {progress}
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose} data-testid="transfer-close">
              Close
            </Button>
          </Group>
        </Stack>
      ) : (
        <Stack data-testid="transfer-dialog">
          <Text size="sm" c="dimmed">
            The server moves to another node as one operation: stopped (when running), archived, streamed to
            the target, restored and started there, then switched over; its files and local backups go with
            it. A failure at any step leaves it whole on this node.
          </Text>
          {others.length === 0 ? (
            <Text size="sm" data-testid="transfer-no-nodes">
              There is no other node.
            </Text>
          ) : (
            <Radio.Group
              label="Target node"
              value={nodeId}
              onChange={(v) => {
                setNodeId(v);
                setAllocationId(null);
              }}
            >
              <Stack gap="xs" mt={4}>
                {others.map((n) => {
                  const why = refusal(server, n);
                  return (
                    <Paper key={n.id} withBorder p="xs" data-testid={`transfer-node-${n.id}`}>
                      <Radio
                        value={n.id}
                        disabled={why !== null}
                        data-testid={`transfer-node-radio-${n.id}`}
                        label={
                          <Group gap="xs">
                            <Text size="sm" fw={600}>
                              {n.name}
                            </Text>
                            <Badge size="xs" color={n.online ? 'teal' : 'red'}>
                              {n.online ? 'online' : 'offline'}
                            </Badge>
                          </Group>
                        }
                        description={
                          <>
                            <span data-testid={`transfer-node-headroom-${n.id}`}>{headroom(n)}</span>
                            {why ? (
                              <Text size="xs" c="red.4" data-testid={`transfer-node-reason-${n.id}`}>
                                Cannot hold it: {why}
                              </Text>
                            ) : null}
                          </>
                        }
                      />
                    </Paper>
                  );
                })}
              </Stack>
            </Radio.Group>
          )}
          {nodeId ? (
            <Select
              label="Allocation on the target"
              description="Where players connect after the move; automatic takes a free one of the node's pool."
              data={[
                { value: '', label: 'Automatic (a free one)' },
                ...free.map((a) => ({
                  value: a.id,
                  label: `${a.ip}:${a.port}`,
                })),
              ]}
              value={allocationId ?? ''}
              onChange={(v) => setAllocationId(v ? v : null)}
              allowDeselect={false}
              data-testid="transfer-allocation"
            />
          ) : null}
          {start.error ? (
            <Alert color="red" title="Not started" role="alert" data-testid="transfer-error">
              <Code data-testid="transfer-error-code">{code}</Code> {errorMessage(start.error)}
              {code === 'SERVER_TRANSFERRING' ? (
                <Text size="sm" mt={4}>
                  A transfer of this server runs already; wait for it to end.
                </Text>
              ) : code === 'AGENT_OFFLINE' ? (
                <Text size="sm" mt={4}>
                  Both nodes' Agents must be connected.
                </Text>
              ) : code === 'INSUFFICIENT_RESOURCES' ? (
                <Text size="sm" mt={4}>
                  The target cannot hold the server's limits; free some capacity there or pick another node.
                </Text>
              ) : code === 'PORT_CONFLICT' ? (
                <Text size="sm" mt={4}>
                  The target has no free allocation; add one to its pool.
                </Text>
              ) : null}
            </Alert>
          ) : null}
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button
              disabled={nodeId === null}
              loading={start.isPending}
              onClick={() => start.mutate()}
              data-testid="transfer-confirm"
            >
              Transfer
            </Button>
          </Group>
        </Stack>
      )}
    </Modal>
  );
}

const STATE_COLOR: Record<string, string> = { running: 'blue.4', completed: 'teal.4', failed: 'red.4' };

/** The server page's Transfers panel (admins only): start one, follow it, the history. */
export function TransfersPanel({ server, nodeOnline }: { server: Server; nodeOnline: boolean }) {
  const qc = useQueryClient();
  const nodes = useNodes();
  const [open, setOpen] = useState(false);
  const [followed, setFollowed] = useState<string | null>(null);
  const list = useQuery({
    queryKey: ['servers', server.id, 'transfers'],
    queryFn: () => api<Transfers>(`/servers/${encodeURIComponent(server.id)}/transfers`),
    refetchInterval: (q) => (q.state.data?.transfers.some((t) => t.state === 'running') ? 2000 : 15_000),
  });
  const progress = useOperationProgress(server.id, {
    kinds: ['transfer'],
    onMessage: (m) => {
      if (m.success === undefined) return;
      // it ended: the row, the server (its node), the nodes' capacity
      void qc.invalidateQueries({ queryKey: ['servers', server.id, 'transfers'] });
      void qc.invalidateQueries({ queryKey: keys.servers });
      void qc.invalidateQueries({ queryKey: keys.nodes });
    },
  });
  const transfers = list.data?.transfers ?? [];
  const running = transfers.find((t) => t.state === 'running');
  const shown = running ?? transfers.find((t) => t.id === followed);
  const nodeName = (id: string) => nodes.data?.find((n) => n.id === id)?.name ?? id;
  const followedRow = transfers.find((t) => t.id === followed);
  const view = (t: Transfer, where: string) => (
    <TransferProgress transfer={t} live={progress[t.operationId]} nodeName={nodeName} testId={where} />
  );
  return (
    <Paper className="cap-glass" p="md" data-testid="transfers-panel">
      <Stack gap="xs">
        <Group justify="space-between">
          <Title order={5}>Transfer</Title>
          <Button
            size="xs"
            variant="light"
            onClick={() => {
              setFollowed(null);
              setOpen(true);
            }}
            disabled={running !== undefined || !nodeOnline}
            title={running ? 'a transfer runs' : !nodeOnline ? "the server's node is offline" : undefined}
            data-testid="transfer-open"
          >
            Transfer to another node
          </Button>
        </Group>
        {shown && !open ? view(shown, 'transfer-progress') : null}
        {transfers.length > 0 ? (
          <Table verticalSpacing={2} aria-label="Transfers" data-testid="transfer-history">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>When</Table.Th>
                <Table.Th>From → to</Table.Th>
                <Table.Th>Result</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {transfers.map((t) => (
                <Table.Tr key={t.id} data-testid={`transfer-row-${t.id}`}>
                  <Table.Td>{new Date(t.createdAt).toLocaleString()}</Table.Td>
                  <Table.Td>
                    {nodeName(t.sourceNodeId)} → {nodeName(t.targetNodeId)}
                  </Table.Td>
                  <Table.Td>
                    <Text size="xs" fw={700} c={STATE_COLOR[t.state] ?? 'gray'} title={t.errorMessage ?? ''}>
                      {t.state === 'failed'
                        ? `failed at ${t.step}`
                        : t.state === 'running'
                          ? t.step
                          : t.state}
                    </Text>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        ) : (
          <Text size="sm" c="dimmed">
            Not transferred yet.
          </Text>
        )}
      </Stack>
      {open ? (
        <TransferDialog
          server={server}
          nodes={nodes.data ?? []}
          opened={open}
          onClose={() => setOpen(false)}
          progress={followedRow ? view(followedRow, 'transfer-dialog-steps') : null}
          onStarted={(t) => {
            setFollowed(t.id);
            qc.setQueryData<Transfers>(['servers', server.id, 'transfers'], (prev) => ({
              transfers: [t, ...(prev?.transfers ?? []).filter((x) => x.id !== t.id)],
            }));
          }}
        />
      ) : null}
    </Paper>
  );
}
