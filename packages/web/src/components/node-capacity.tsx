/**
 * A node's capacity (what its servers' limits take against what it may hold, per resource) with
 * the admin's overrides and over-allocation, and its health (the Agent link and Docker Engine).
 */
import {
  Badge,
  Button,
  Group,
  NumberInput,
  Paper,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api, errorCode, errorMessage } from '../api/http.ts';
import { keys } from '../api/queries.ts';
import type { PanelNode } from '../api/types.ts';
import { formatAgo, formatBytes } from '../lib/format.ts';
import { UsageBar } from './metric-card.tsx';

type Resource = 'memory' | 'disk' | 'cpu';
const RESOURCES: Resource[] = ['memory', 'disk', 'cpu'];
const LABEL: Record<Resource, string> = { memory: 'Memory', disk: 'Disk', cpu: 'CPU' };
const SIZE = /^\s*\d+(\.\d+)?\s*([kmgt]i?b?|b)?\s*$/i;

function amount(r: Resource, v: number): string {
  return r === 'cpu' ? `${Math.round(v * 100) / 100} cores` : formatBytes(v);
}

export function NodeCapacityPanel({ node, canWrite }: { node: PanelNode; canWrite: boolean }) {
  const qc = useQueryClient();
  const cap = node.capacity;
  const [over, setOver] = useState<Record<Resource, number | string>>({
    memory: cap.memory.overallocate,
    disk: cap.disk.overallocate,
    cpu: cap.cpu.overallocate,
  });
  const [memory, setMemory] = useState(
    cap.memory.source === 'override' ? String(cap.memory.total ?? '') : '',
  );
  const [disk, setDisk] = useState(cap.disk.source === 'override' ? String(cap.disk.total ?? '') : '');
  const [cpu, setCpu] = useState(cap.cpu.source === 'override' ? String(cap.cpu.total ?? '') : '');
  const save = useMutation({
    mutationFn: (body: unknown) => api(`/nodes/${encodeURIComponent(node.id)}`, { method: 'PATCH', body }),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: keys.node(node.id) });
      void qc.invalidateQueries({ queryKey: keys.nodes });
    },
  });
  // an override in bytes (as stored) or a size like 16g
  const sizeOf = (v: string) => (v.trim() === '' ? null : /^\d+$/.test(v.trim()) ? `${v.trim()}b` : v.trim());
  const memoryError = memory.trim() && !SIZE.test(memory) ? 'A size like 16g' : null;
  const diskError = disk.trim() && !SIZE.test(disk) ? 'A size like 500g' : null;
  const cpuError = cpu.trim() && !(Number(cpu) > 0) ? 'Cores, like 8' : null;

  function submit(e: FormEvent) {
    e.preventDefault();
    if (memoryError || diskError || cpuError) return;
    save.mutate({
      capacity: { memory: sizeOf(memory), disk: sizeOf(disk), cpu: cpu.trim() === '' ? null : Number(cpu) },
      overallocate: {
        memory: Number(over.memory),
        disk: Number(over.disk),
        cpu: Number(over.cpu),
      },
    });
  }

  return (
    <Paper className="cap-glass" p="md" data-testid="node-capacity">
      <Title order={3} size="h5" mb={4}>
        Capacity
      </Title>
      <Text size="sm" c="dimmed" mb="sm">
        What this node's servers' limits take against what it may hold: its capacity (from the Agent, or set
        here) plus the over-allocation percentage. −1 means the resource is not checked. Creating or resizing
        a server past it is refused with INSUFFICIENT_RESOURCES.
      </Text>
      <Stack gap="sm">
        {RESOURCES.map((r) => {
          const c = cap[r];
          const pct = c.limit === null || c.limit <= 0 ? null : (c.allocated / c.limit) * 100;
          const detail =
            c.limit === null
              ? `${amount(r, c.allocated)} allocated · ${c.total === null ? 'capacity unknown' : 'not checked'}`
              : `${amount(r, c.allocated)} of ${amount(r, c.limit)}${
                  c.overallocate !== 0 ? ` (${amount(r, c.total ?? 0)} + ${c.overallocate} %)` : ''
                }${c.source === 'override' ? ' · set by an admin' : ''}`;
          return (
            <div key={r} data-testid={`node-capacity-${r}`}>
              <UsageBar label={`${LABEL[r]} allocated`} percent={pct} detail={detail} />
            </div>
          );
        })}
      </Stack>
      {canWrite ? (
        <form onSubmit={submit} aria-label="Capacity">
          <Stack gap="sm" mt="md">
            <Group align="flex-start">
              <TextInput
                label="Memory capacity"
                placeholder={cap.memory.source === 'agent' ? 'from the Agent' : 'e.g. 16g'}
                value={memory}
                error={memoryError}
                onChange={(e) => setMemory(e.currentTarget.value)}
                data-testid="node-capacity-memory-input"
              />
              <TextInput
                label="Disk capacity"
                placeholder={cap.disk.source === 'agent' ? 'from the Agent' : 'e.g. 500g'}
                value={disk}
                error={diskError}
                onChange={(e) => setDisk(e.currentTarget.value)}
                data-testid="node-capacity-disk-input"
              />
              <TextInput
                label="CPU cores"
                placeholder={cap.cpu.source === 'agent' ? 'from the Agent' : 'e.g. 8'}
                value={cpu}
                error={cpuError}
                onChange={(e) => setCpu(e.currentTarget.value)}
                data-testid="node-capacity-cpu-input"
              />
            </Group>
            <Group align="flex-start">
              {RESOURCES.map((r) => (
                <NumberInput
                  key={r}
                  label={`${LABEL[r]} over-allocation %`}
                  min={-1}
                  max={10000}
                  allowDecimal={false}
                  value={over[r]}
                  onChange={(v) => setOver((o) => ({ ...o, [r]: v }))}
                  data-testid={`node-overallocate-${r}`}
                />
              ))}
            </Group>
            <Group>
              <Button type="submit" loading={save.isPending} data-testid="node-capacity-save">
                Save capacity
              </Button>
            </Group>
            {save.isError ? (
              <Text c="red.4" size="sm" role="alert">
                {errorCode(save.error)}: {errorMessage(save.error)}
              </Text>
            ) : null}
          </Stack>
        </form>
      ) : null}
    </Paper>
  );
}

function ms(v: number | null): string {
  if (v === null) return '—';
  return Math.abs(v) >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`;
}

export function NodeHealthPanel({ node }: { node: PanelNode }) {
  const h = node.health;
  const docker = h?.docker ?? null;
  const rows: [string, string][] = h
    ? [
        ['Connected', h.connectedSince ? `since ${formatAgo(h.connectedSince)}` : 'no'],
        ['Reconnects', String(h.reconnects)],
        ['Last heartbeat', formatAgo(h.lastPongAt)],
        ['Heartbeat gap', `${ms(h.lastGapMs)} (largest ${ms(h.maxGapMs)})`],
        ['Missed heartbeats', String(h.missedPongs)],
        ['Round trip', ms(h.rttMs)],
        ['Clock skew', h.clockSkewMs === null ? '—' : `${h.clockSkewMs > 0 ? '+' : ''}${ms(h.clockSkewMs)}`],
        ['Docker errors', docker?.errors === null || docker === null ? '—' : String(docker.errors)],
      ]
    : [];
  return (
    <Paper className="cap-glass" p="md" data-testid="node-health">
      <Group justify="space-between" mb="xs">
        <Title order={3} size="h5">
          Health
        </Title>
        {docker ? (
          <Badge color={docker.reachable ? 'teal' : 'red'} data-testid="node-docker-health">
            Docker {docker.reachable ? `up${docker.version ? ` ${docker.version}` : ''}` : 'unreachable'}
          </Badge>
        ) : null}
      </Group>
      {h ? (
        <Table verticalSpacing={4} aria-label="Agent link health">
          <Table.Tbody>
            {rows.map(([k, v]) => (
              <Table.Tr key={k}>
                <Table.Th w={150}>{k}</Table.Th>
                <Table.Td data-testid={`node-health-${k.toLowerCase().replace(/ /g, '-')}`}>{v}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      ) : (
        <Text size="sm" c="dimmed">
          The Agent has not connected since the Panel started.
        </Text>
      )}
    </Paper>
  );
}
