/** Where players reach a node's servers: shown to all, set by admins (PATCH publicAddress). */
import { Button, Code, Group, Paper, Text, TextInput, Title } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api } from '../api/http.ts';
import { keys } from '../api/queries.ts';
import type { PanelNode } from '../api/types.ts';
import { ErrorState } from './states.tsx';

export function PublicAddressPanel({ node, canWrite }: { node: PanelNode; canWrite: boolean }) {
  const qc = useQueryClient();
  const [value, setValue] = useState(node.publicAddress ?? '');
  const save = useMutation({
    mutationFn: (publicAddress: string | null) =>
      api(`/nodes/${encodeURIComponent(node.id)}`, { method: 'PATCH', body: { publicAddress } }),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: keys.node(node.id) });
      void qc.invalidateQueries({ queryKey: keys.nodes });
      void qc.invalidateQueries({ queryKey: keys.servers });
    },
  });
  function submit(e: FormEvent) {
    e.preventDefault();
    save.mutate(value.trim() === '' ? null : value.trim());
  }
  return (
    <Paper className="cap-glass" p="md" data-testid="node-public-address">
      <Title order={3} size="h5" mb={4}>
        Public address
      </Title>
      <Text size="sm" c="dimmed" mb="sm">
        {node.publicAddress ? (
          <>
            Players reach this node's servers at <Code>{node.publicAddress}</Code> and each server's port.
          </>
        ) : (
          'Not set: servers on 0.0.0.0 show no address players can use until it is.'
        )}
      </Text>
      {canWrite ? (
        <form onSubmit={submit} aria-label="Public address">
          <Group align="flex-end" gap="sm">
            <TextInput
              label="Hostname or IP"
              placeholder="play.example.com"
              value={value}
              onChange={(e) => setValue(e.currentTarget.value)}
              w={280}
            />
            <Button type="submit" variant="light" loading={save.isPending}>
              Save
            </Button>
          </Group>
          {save.isError ? <ErrorState error={save.error} title="Could not save the address" /> : null}
        </form>
      ) : null}
    </Paper>
  );
}
