/**
 * A server's image updates (issue 13 item 3): an "Update available" badge from the last check,
 * "Check now", and "Update" with the pull's per-layer progress (the Docker section's PullProgress)
 * and the outcome (updated, or rolled back and why).
 */
import { Badge, Button, Group, Modal, Stack, Text } from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { api, errorMessage } from '../api/http.ts';
import type { ApiResponse } from '../api/types.ts';
import { applyPullEvent, emptyPull, type PullState } from '../lib/docker.ts';
import { PullProgress } from './docker/images.tsx';

type ImageState = ApiResponse<'/api/servers/{id}/image', 'get'>;

const key = (id: string) => ['server-image', id] as const;

/** The layers as the Panel last heard them, as the Docker section's pull state. */
function pullStateOf(s: ImageState): PullState | null {
  const r = s.running;
  if (!r) return null;
  let state = emptyPull();
  for (const l of r.pull.layers)
    state = applyPullEvent(state, { id: l.id, status: l.status, progressDetail: l });
  return { ...state, done: r.pull.done };
}

export function ImageUpdate({ serverId, canUpdate }: { serverId: string; canUpdate: boolean }) {
  const qc = useQueryClient();
  const [open, setOpen] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const q = useQuery({
    queryKey: key(serverId),
    queryFn: () => api<ImageState>(`/servers/${encodeURIComponent(serverId)}/image`),
    refetchInterval: (query) => (query.state.data?.running || open ? 1000 : 30_000),
  });
  const s = q.data;
  const refresh = () => qc.invalidateQueries({ queryKey: key(serverId) });
  const check = async () => {
    setError(null);
    try {
      await api(`/servers/${encodeURIComponent(serverId)}/image/check`, { method: 'POST' });
    } catch (e) {
      setError(errorMessage(e));
    }
    await refresh();
  };
  const update = async () => {
    setError(null);
    setBusy(true);
    try {
      await api(`/servers/${encodeURIComponent(serverId)}/image/update`, { method: 'POST', body: {} });
    } catch (e) {
      setError(errorMessage(e));
    }
    setBusy(false);
    await refresh();
  };
  if (!s) return null;
  const pull = s ? pullStateOf(s) : null;
  const last = s.lastUpdate;
  return (
    <>
      {s.updateAvailable ? (
        <Badge
          color="grape"
          variant="light"
          style={{ cursor: 'pointer' }}
          data-testid="image-update-badge"
          onClick={() => setOpen(true)}
        >
          update available
        </Badge>
      ) : null}
      <Button size="xs" variant="default" data-testid="image-update-open" onClick={() => setOpen(true)}>
        Image
      </Button>
      <Modal opened={open} onClose={() => setOpen(false)} title="Image updates" size="lg">
        <Stack gap="sm" data-testid="image-update-panel">
          <Text size="sm" ff="monospace">
            {s.image ?? 'not checked yet'}
          </Text>
          <Text size="sm" c="dimmed" data-testid="image-check-state">
            {s.checkedAt ? `checked ${new Date(s.checkedAt).toLocaleString()}` : 'never checked'}
            {s.updateAvailable ? ' · a newer image is in the registry' : s.checkedAt ? ' · current' : ''}
          </Text>
          {s.error ? (
            <Text size="sm" c="red" data-testid="image-check-error">
              {s.error}
            </Text>
          ) : null}
          {pull ? <PullProgress state={pull} /> : null}
          {s.running ? (
            <Text size="sm" data-testid="image-update-stage">
              {s.running.stage}
            </Text>
          ) : null}
          {last && !s.running ? (
            <Text
              size="sm"
              c={last.outcome === 'updated' || last.outcome === 'unchanged' ? 'teal' : 'red'}
              data-testid="image-update-outcome"
              data-outcome={last.outcome}
            >
              {last.outcome === 'updated'
                ? 'Updated: running the new image.'
                : last.outcome === 'unchanged'
                  ? 'The image was already current.'
                  : last.outcome === 'rolled_back'
                    ? `Rolled back to the previous image: ${last.reason ?? ''}`
                    : `Failed: ${last.reason ?? last.code ?? ''}`}
            </Text>
          ) : null}
          {error ? (
            <Text size="sm" c="red" role="alert">
              {error}
            </Text>
          ) : null}
          <Group justify="flex-end">
            <Button variant="default" onClick={() => void check()} data-testid="image-check-now">
              Check now
            </Button>
            {canUpdate ? (
              <Button
                onClick={() => void update()}
                loading={busy || Boolean(s.running)}
                data-testid="image-update-run"
              >
                Update
              </Button>
            ) : null}
          </Group>
        </Stack>
      </Modal>
    </>
  );
}
