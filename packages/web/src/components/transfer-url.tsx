/**
 * A node's transfer URL (issue 10 item 2): where browsers reach its Agent's HTTP API, so file
 * transfers and backup downloads go there directly instead of through the Panel. Shown to all,
 * edited by admins; empty = relayed by the Panel only.
 */
import { Button, Code, Group, Paper, Stack, Text, TextInput, Title } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api } from '../api/http.ts';
import { keys } from '../api/queries.ts';
import type { PanelNode } from '../api/types.ts';
import { ErrorState } from './states.tsx';

/** The Panel's own rule, checked here first for a quick hint (the Panel decides). */
export function transferUrlError(raw: string): string | null {
  const v = raw.trim();
  if (!v) return null;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return 'A URL like https://node1.example.com:8443';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'Use http:// or https://';
  if (u.username || u.password) return 'No user name or password in it';
  if (v.includes('?') || v.includes('#')) return 'No query or fragment';
  return null;
}

export function TransferUrlPanel({ node, canWrite }: { node: PanelNode; canWrite: boolean }) {
  const qc = useQueryClient();
  const own = node.transferUrl ?? null;
  const [value, setValue] = useState(own ?? '');
  const save = useMutation({
    mutationFn: (transferUrl: string | null) =>
      api(`/nodes/${encodeURIComponent(node.id)}`, { method: 'PATCH', body: { transferUrl } }),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: keys.node(node.id) });
      void qc.invalidateQueries({ queryKey: keys.nodes });
    },
  });
  const error = transferUrlError(value);

  function submit(e: FormEvent) {
    e.preventDefault();
    if (error) return;
    save.mutate(value.trim() ? value.trim() : null);
  }

  return (
    <Paper className="cap-glass" p="md" data-testid="node-transfer-url">
      <Title order={3} size="h5" mb={4}>
        Direct transfers
      </Title>
      <Text size="sm" c="dimmed" mb="sm" data-testid="node-transfer-url-state">
        {own === null
          ? 'File uploads, downloads and backup downloads go through the Panel (works behind NAT).'
          : `Browsers send and fetch files straight from ${own} while the Agent is connected, and fall back to the Panel when they cannot reach it.`}
      </Text>
      {canWrite ? (
        <form onSubmit={submit} aria-label="Direct transfers">
          <Stack gap="sm">
            <TextInput
              label="Agent URL for browsers"
              description={
                <>
                  The address of this node's Agent HTTP API as your users' browsers reach it (its
                  AGENT_HTTP_HOST/AGENT_HTTP_PORT, or a proxy in front; the Agent needs AGENT_API_KEY set).
                  Use https:// when the Panel is on https. The Agent allows the Panel's origin by default (
                  <Code>AGENT_CORS_ORIGINS</Code>). Empty: through the Panel only.
                </>
              }
              placeholder="https://node1.example.com:8443"
              value={value}
              error={error}
              onChange={(e) => setValue(e.currentTarget.value)}
              data-testid="node-transfer-url-input"
            />
            {save.isError ? <ErrorState error={save.error} title="The URL was not saved" /> : null}
            <Group>
              <Button type="submit" loading={save.isPending} data-testid="node-transfer-url-save">
                Save
              </Button>
              {own !== null ? (
                <Button
                  variant="default"
                  onClick={() => {
                    setValue('');
                    save.mutate(null);
                  }}
                  data-testid="node-transfer-url-clear"
                >
                  Relay through the Panel only
                </Button>
              ) : null}
            </Group>
          </Stack>
        </form>
      ) : null}
    </Paper>
  );
}
