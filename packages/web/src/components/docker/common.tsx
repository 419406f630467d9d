import { Alert, Badge, Code, Text } from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { createContext, useContext, useState } from 'react';
import { dockerFetch, invalidateDocker } from '../../api/docker.ts';
import { api, errorCode, errorMessage } from '../../api/http.ts';

const STATE_COLOURS: Record<string, string> = {
  running: 'teal',
  paused: 'yellow',
  restarting: 'orange',
  exited: 'gray',
  created: 'blue',
  dead: 'red',
  removing: 'red',
};

/** Whether the caller holds docker.write on a node (else the UI is read-only there). */
export const DockerWriteContext = createContext<(nodeId: string) => boolean>(() => true);
export const useCanWrite = (nodeId: string): boolean => useContext(DockerWriteContext)(nodeId);

export function StateBadge({ state }: { state: string }) {
  const colour = Object.hasOwn(STATE_COLOURS, state) ? STATE_COLOURS[state] : 'gray';
  return (
    <Badge size="sm" variant="light" color={colour} data-testid="container-state" data-state={state}>
      {state}
    </Badge>
  );
}

/** An error with its code (the Panel's, or `DOCKER_<status>` for the Engine's own message). */
export function ActionError({ error, onClose }: { error: unknown; onClose?: () => void }) {
  if (!error) return null;
  return (
    <Alert
      color="red"
      variant="light"
      role="alert"
      data-testid="docker-error"
      withCloseButton={!!onClose}
      {...(onClose ? { onClose } : {})}
    >
      <Text size="sm">
        <Code data-testid="docker-error-code">{errorCode(error)}</Code> {errorMessage(error)}
      </Text>
    </Alert>
  );
}

/**
 * A change through the relay with its pending flag and error, refreshing that node's Docker
 * queries afterwards.
 */
export function useDockerAction(nodeId: string) {
  const qc = useQueryClient();
  const [pending, setPending] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  async function run(
    label: string,
    path: string,
    o: { method?: string; body?: unknown } = {},
  ): Promise<boolean> {
    setPending(label);
    setError(null);
    try {
      await dockerFetch(nodeId, path, { method: o.method ?? 'POST', body: o.body });
      return true;
    } catch (e) {
      setError(e);
      return false;
    } finally {
      setPending(null);
      void invalidateDocker(qc, nodeId);
    }
  }
  /**
   * A managed container's power action goes through its game server (POST /servers/:id/power)
   * so the server's state stays right.
   */
  async function power(serverId: string, action: 'start' | 'stop' | 'restart' | 'kill'): Promise<boolean> {
    setPending(action);
    setError(null);
    try {
      await api(`/servers/${encodeURIComponent(serverId)}/power`, { method: 'POST', body: { action } });
      return true;
    } catch (e) {
      setError(e);
      return false;
    } finally {
      setPending(null);
      void invalidateDocker(qc, nodeId);
    }
  }
  return { run, power, pending, error, clear: () => setError(null) };
}

export function formatCreated(unixSeconds: number | undefined): string {
  if (!unixSeconds || !Number.isFinite(unixSeconds)) return '—';
  return new Date(unixSeconds * 1000).toISOString().replace('T', ' ').slice(0, 16);
}
