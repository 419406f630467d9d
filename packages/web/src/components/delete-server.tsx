import { Alert, Button, Code, Group, Modal, Stack, Text } from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useNavigate } from 'react-router';
import { ApiError, api, errorCode, errorMessage } from '../api/http.ts';
import { keys } from '../api/queries.ts';
import type { Server } from '../api/types.ts';

/** Delete with a confirmation; when the node is unreachable, offer removing it from the Panel only. */
export function DeleteServerButton({ server }: { server: Server }) {
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const qc = useQueryClient();
  const navigate = useNavigate();
  const nodeUnreachable =
    error instanceof ApiError && (error.code === 'AGENT_OFFLINE' || error.code === 'TIMEOUT');

  async function remove(force: boolean) {
    setBusy(true);
    setError(null);
    try {
      await api(`/servers/${encodeURIComponent(server.id)}${force ? '?force=true' : ''}`, {
        method: 'DELETE',
      });
      await qc.invalidateQueries({ queryKey: keys.servers });
      void qc.invalidateQueries({ queryKey: keys.dashboard });
      navigate('/servers');
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  return (
    <>
      <Button
        color="red"
        variant="subtle"
        size="sm"
        onClick={() => setOpen(true)}
        data-testid="delete-server"
      >
        Delete
      </Button>
      <Modal
        opened={open}
        onClose={() => {
          setOpen(false);
          setError(null);
        }}
        title={`Delete ${server.name}?`}
        closeButtonProps={{ 'aria-label': 'Close' }}
      >
        <Stack>
          <Text size="sm">The Agent stops the server and removes its container. This cannot be undone.</Text>
          {error ? (
            <Alert color="red" title="The node did not delete it" role="alert" data-testid="delete-error">
              <Code data-testid="error-code">{errorCode(error)}</Code> {errorMessage(error)}
              {nodeUnreachable ? (
                <Text size="sm" mt="xs">
                  You can remove it from the Panel only; its container then stays on the node until you remove
                  it there.
                </Text>
              ) : null}
            </Alert>
          ) : null}
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setOpen(false)}>
              Cancel
            </Button>
            {nodeUnreachable ? (
              <Button
                color="red"
                variant="outline"
                loading={busy}
                onClick={() => remove(true)}
                data-testid="delete-force"
              >
                Remove from the Panel only
              </Button>
            ) : (
              <Button color="red" loading={busy} onClick={() => remove(false)} data-testid="delete-confirm">
                Delete server
              </Button>
            )}
          </Group>
        </Stack>
      </Modal>
    </>
  );
}
