/** A node's default limits for servers created without them: shown to all, edited by admins. */
import { Button, Group, Paper, Stack, Text, TextInput, Title } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api } from '../api/http.ts';
import { keys } from '../api/queries.ts';
import type { DefaultLimits, PanelNode } from '../api/types.ts';
import { ErrorState } from './states.tsx';

const SIZE = /^\s*\d+(\.\d+)?\s*([kmgt]i?b?|b)?\s*$/i;
const CPU = /^\d+(\.\d+)?$/;

function shown(v: string | number | undefined, unit = ''): string {
  if (v === undefined || v === '') return 'no quota';
  return Number(v) === 0 || /^0+(\.0+)?\s*[a-z]*$/i.test(String(v)) ? 'unlimited' : `${v}${unit}`;
}

export function DefaultLimitsPanel({ node, canWrite }: { node: PanelNode; canWrite: boolean }) {
  const qc = useQueryClient();
  const eff = node.effectiveDefaultLimits ?? {};
  const own = node.defaultLimits ?? null;
  const [memory, setMemory] = useState(String(own?.memory ?? ''));
  const [cpu, setCpu] = useState(String(own?.cpu ?? ''));
  const [disk, setDisk] = useState(String(own?.disk ?? ''));
  const save = useMutation({
    mutationFn: (defaultLimits: DefaultLimits | null) =>
      api(`/nodes/${encodeURIComponent(node.id)}`, { method: 'PATCH', body: { defaultLimits } }),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: keys.node(node.id) });
      void qc.invalidateQueries({ queryKey: keys.nodes });
    },
  });
  const memoryError = memory.trim() && !SIZE.test(memory) ? 'A size like 1024m or 2g' : null;
  const cpuError = cpu.trim() && !CPU.test(cpu.trim()) ? 'Cores, like 1 or 0.5' : null;
  const diskError = disk.trim() && !SIZE.test(disk) ? 'A size like 10g' : null;

  function submit(e: FormEvent) {
    e.preventDefault();
    if (memoryError || cpuError || diskError) return;
    const next: DefaultLimits = {
      ...(memory.trim() ? { memory: memory.trim() } : {}),
      ...(cpu.trim() ? { cpu: Number(cpu.trim()) } : {}),
      ...(disk.trim() ? { disk: disk.trim() } : {}),
    };
    save.mutate(next);
  }

  return (
    <Paper className="cap-glass" p="md" data-testid="node-default-limits">
      <Title order={3} size="h5" mb={4}>
        Default limits
      </Title>
      <Text size="sm" c="dimmed" mb="sm" data-testid="node-default-limits-effective">
        A server created on this node without limits gets memory {shown(eff.memory)}, CPU{' '}
        {shown(eff.cpu, ' cores')}, disk {shown(eff.disk)}{' '}
        {own === null ? "(the Panel's defaults)" : '(set for this node)'}. 0 means unlimited.
      </Text>
      {canWrite ? (
        <form onSubmit={submit} aria-label="Default limits">
          <Stack gap="sm">
            <Group align="flex-start">
              <TextInput
                label="Memory"
                placeholder={String(eff.memory ?? '1024m')}
                value={memory}
                error={memoryError}
                onChange={(e) => setMemory(e.currentTarget.value)}
                data-testid="node-default-memory"
              />
              <TextInput
                label="CPU cores"
                placeholder={String(eff.cpu ?? '1')}
                value={cpu}
                error={cpuError}
                onChange={(e) => setCpu(e.currentTarget.value)}
                data-testid="node-default-cpu"
              />
              <TextInput
                label="Disk"
                placeholder={eff.disk === undefined ? 'none' : String(eff.disk)}
                value={disk}
                error={diskError}
                onChange={(e) => setDisk(e.currentTarget.value)}
                data-testid="node-default-disk"
              />
            </Group>
            {save.isError ? <ErrorState error={save.error} title="The defaults were not saved" /> : null}
            <Group>
              <Button type="submit" loading={save.isPending} data-testid="node-default-save">
                Save defaults
              </Button>
              {own !== null ? (
                <Button
                  variant="default"
                  onClick={() => {
                    setMemory('');
                    setCpu('');
                    setDisk('');
                    save.mutate(null);
                  }}
                  data-testid="node-default-reset"
                >
                  Use the Panel's defaults
                </Button>
              ) : null}
            </Group>
          </Stack>
        </form>
      ) : null}
    </Paper>
  );
}
