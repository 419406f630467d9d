/**
 * Compress and decompress run as operations (202 { operationId }): their stage and message come
 * live (`operation` messages on /ws/client), with GET /api/operations/:id as the fallback poll,
 * shown the way the server page shows operations; the listing is refreshed when one ends.
 */
import { Badge, Button, Group, Paper, Stack, Text } from '@mantine/core';
import { useCallback, useEffect, useRef, useState } from 'react';
import { api, errorCode, errorMessage } from '../../api/http.ts';
import { useOperationProgress } from '../../api/operation-progress.ts';
import type { Operation } from '../../api/types.ts';

export interface TrackedOperation {
  /** null until the Panel answered */
  operationId: string | null;
  label: string;
  stage: string;
  message?: string;
  /** undefined while it runs */
  success?: boolean;
  error?: string;
}

const POLL_MS = 1500;

export function useFileOperations(serverId: string, onEnded: () => void) {
  const [ops, setOpsState] = useState<TrackedOperation[]>([]);
  const opsRef = useRef<TrackedOperation[]>([]);
  const setOps = useCallback((f: (list: TrackedOperation[]) => TrackedOperation[]) => {
    opsRef.current = f(opsRef.current);
    setOpsState(opsRef.current);
  }, []);
  // live messages can come before the 202 that names the operation: keep the last of each
  const seen = useRef(
    new Map<string, { stage: string; message?: string; success?: boolean; error?: string }>(),
  );
  const update = useCallback(
    (operationId: string, p: { stage: string; message?: string; success?: boolean; error?: string }) => {
      // decided here, not in the state updater (React may run that later)
      const mine = opsRef.current.some((o) => o.operationId === operationId && o.success === undefined);
      if (!mine) return;
      setOps((list) =>
        list.map((o) => (o.operationId !== operationId || o.success !== undefined ? o : { ...o, ...p })),
      );
      if (p.success !== undefined) onEnded();
    },
    [onEnded, setOps],
  );
  useOperationProgress(serverId, {
    onMessage: (m) => {
      const p = {
        stage: m.stage,
        ...(m.message ? { message: m.message } : {}),
        ...(m.success !== undefined ? { success: m.success } : {}),
        ...(m.errorCode ? { error: `${m.errorCode}${m.message ? `: ${m.message}` : ''}` } : {}),
      };
      seen.current.set(m.operationId, p);
      update(m.operationId, p);
    },
  });
  const running = ops
    .filter((o) => o.operationId && o.success === undefined)
    .map((o) => o.operationId as string);
  const runningKey = running.join(',');
  // biome-ignore lint/correctness/useExhaustiveDependencies: keyed on the running ids
  useEffect(() => {
    if (!runningKey) return;
    const t = setInterval(() => {
      for (const id of runningKey.split(',')) {
        api<Operation>(`/operations/${encodeURIComponent(id)}`)
          .then((o) =>
            update(id, {
              stage: o.stage,
              ...(o.success === null ? {} : { success: o.success }),
              ...(o.errorCode ? { error: `${o.errorCode}: ${o.errorMessage ?? ''}` } : {}),
            }),
          )
          .catch(() => undefined);
      }
    }, POLL_MS);
    return () => clearInterval(t);
  }, [runningKey]);

  /** Track what `request` starts; its error is shown as the operation's failure. */
  const run = useCallback(
    async (label: string, request: () => Promise<{ operationId: string }>) => {
      const row: TrackedOperation = { operationId: null, label, stage: 'requested' };
      setOps((list) => [row, ...list].slice(0, 8));
      try {
        const { operationId } = await request();
        const early = seen.current.get(operationId);
        setOps((list) =>
          list.map((o) => (o === row ? { ...o, operationId, stage: 'accepted', ...early } : o)),
        );
        if (early?.success !== undefined) onEnded();
      } catch (e) {
        setOps((list) =>
          list.map((o) =>
            o === row
              ? { ...o, stage: 'refused', success: false, error: `${errorCode(e)}: ${errorMessage(e)}` }
              : o,
          ),
        );
      }
    },
    [onEnded, setOps],
  );
  const clear = useCallback(() => setOps((list) => list.filter((o) => o.success === undefined)), [setOps]);
  return { ops, run, clear };
}

export function FileOperations({ ops, onClear }: { ops: TrackedOperation[]; onClear: () => void }) {
  if (ops.length === 0) return null;
  return (
    <Paper className="cap-glass" p="sm" data-testid="file-operations">
      <Stack gap={4}>
        <Group justify="space-between">
          <Text size="sm" fw={600}>
            Archive operations
          </Text>
          {ops.some((o) => o.success !== undefined) ? (
            <Button size="compact-xs" variant="default" onClick={onClear}>
              Clear finished
            </Button>
          ) : null}
        </Group>
        {ops.map((o, i) => (
          <Group
            key={o.operationId ?? `pending-${i}`}
            gap="xs"
            data-testid="file-operation"
            data-stage={o.stage}
            data-result={o.success === undefined ? 'running' : o.success ? 'ok' : 'failed'}
          >
            {o.success === undefined ? (
              <Badge color="gray">running</Badge>
            ) : o.success ? (
              <Badge color="teal">ok</Badge>
            ) : (
              <Badge color="red">failed</Badge>
            )}
            <Text size="sm">{o.label}</Text>
            <Text size="xs" c="dimmed">
              {o.stage}
              {o.message ? ` · ${o.message}` : ''}
            </Text>
            {o.error ? (
              <Text size="xs" c="red.4" role="alert">
                {o.error}
              </Text>
            ) : null}
          </Group>
        ))}
      </Stack>
    </Paper>
  );
}
