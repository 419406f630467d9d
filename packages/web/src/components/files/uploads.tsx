/**
 * Uploads: each file gets a ticket (a server's POST …/files/transfers { direction: 'upload', path,
 * size }, or another target's, e.g. a Docker volume's POST …/file-upload { path, size })
 * and is then PUT to the ticket's URL by XHR (fetch has no upload progress), two at a time.
 * Folders are created first. Every file's outcome is shown; nothing is swallowed.
 */
import { Alert, Button, CloseButton, Group, Paper, Progress, Stack, Table, Text } from '@mantine/core';
import { useCallback, useRef, useState } from 'react';
import { ApiError, api, errorCode, errorFromBody, errorMessage } from '../../api/http.ts';
import type { TransferGrant } from '../../api/types.ts';
import { totalProgress, type UploadProgress } from '../../lib/files.ts';
import { formatBytes } from '../../lib/format.ts';
import { withRelayFallback } from '../../lib/transfer.ts';

export interface UploadPlan {
  /** absolute folders to create first, parents before children */
  dirs: string[];
  files: { path: string; file: File }[];
}

export interface UploadItem extends UploadProgress {
  id: number;
  path: string;
  error?: { code: string; message: string };
}

const PARALLEL = 2;

/** PUT `file` to `url`, reporting bytes sent; rejects with the Panel's coded error. */
export function putFile(
  url: string,
  file: File,
  onProgress: (loaded: number) => void,
  signal: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    xhr.setRequestHeader('content-type', 'application/octet-stream');
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) return resolve();
      let body: unknown = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      reject(errorFromBody(body, xhr.status));
    };
    xhr.onerror = () => reject(new ApiError('NETWORK_ERROR', 'The upload was cut off.', 0));
    xhr.onabort = () => reject(new ApiError('CANCELLED', 'Cancelled.', 0));
    signal.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(file);
  });
}

/**
 * Where uploads go: a server's files (its id), or any other file tree that hands out upload
 * tickets and makes folders (a Docker volume's browser).
 */
export interface UploadTarget {
  /** an upload ticket for exactly `size` bytes at `path` */
  grant: (path: string, size: number, signal: AbortSignal) => Promise<TransferGrant>;
  mkdir: (path: string) => Promise<unknown>;
}

function serverTarget(serverId: string): UploadTarget {
  const base = `/servers/${encodeURIComponent(serverId)}/files`;
  return {
    grant: (path, size, signal) =>
      api<TransferGrant>(`${base}/transfers`, {
        method: 'POST',
        body: { direction: 'upload', path, size },
        signal,
      }),
    mkdir: (path) => api(`${base}/directories`, { method: 'POST', body: { path } }),
  };
}

export function useUploads(to: string | UploadTarget, onBatchDone: () => void) {
  const targetRef = useRef(to);
  targetRef.current = to;
  const [items, setItems] = useState<UploadItem[]>([]);
  const [dirError, setDirError] = useState<string | null>(null);
  const aborts = useRef(new Map<number, AbortController>());
  const nextId = useRef(1);

  const patch = useCallback((id: number, p: Partial<UploadItem>) => {
    setItems((list) => list.map((i) => (i.id === id ? { ...i, ...p } : i)));
  }, []);

  const start = useCallback(
    async (plan: UploadPlan) => {
      setDirError(null);
      const t = typeof targetRef.current === 'string' ? serverTarget(targetRef.current) : targetRef.current;
      for (const dir of plan.dirs) {
        try {
          await t.mkdir(dir);
        } catch (e) {
          // a folder already there is merged into, as a copy onto it would
          if (!(e instanceof ApiError && e.code === 'FILE_EXISTS')) {
            setDirError(`${dir}: ${errorCode(e)} ${errorMessage(e)}`);
            return;
          }
        }
      }
      const batch: UploadItem[] = plan.files.map((f) => ({
        id: nextId.current++,
        path: f.path,
        size: f.file.size,
        loaded: 0,
        state: 'queued',
      }));
      const fileOf = new Map(batch.map((b, i) => [b.id, plan.files[i]?.file]));
      for (const b of batch) aborts.current.set(b.id, new AbortController());
      setItems((list) => [...list.filter((i) => i.state === 'queued' || i.state === 'uploading'), ...batch]);
      const queue = [...batch];
      const worker = async () => {
        for (;;) {
          const item = queue.shift();
          if (!item) return;
          const ctl = aborts.current.get(item.id);
          const file = fileOf.get(item.id);
          if (!ctl || !file || ctl.signal.aborted) continue;
          patch(item.id, { state: 'uploading' });
          try {
            const grant = await t.grant(item.path, file.size, ctl.signal);
            // direct to the Agent when the node allows it; the relay when that cannot be reached
            await withRelayFallback(grant, (url) =>
              putFile(url, file, (loaded) => patch(item.id, { loaded }), ctl.signal),
            );
            patch(item.id, { state: 'done', loaded: file.size });
          } catch (e) {
            if (ctl.signal.aborted) patch(item.id, { state: 'cancelled' });
            else patch(item.id, { state: 'failed', error: { code: errorCode(e), message: errorMessage(e) } });
          } finally {
            aborts.current.delete(item.id);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(PARALLEL, batch.length) }, worker));
      onBatchDone();
    },
    [patch, onBatchDone],
  );

  const cancel = useCallback((id: number) => {
    const ctl = aborts.current.get(id);
    if (ctl) ctl.abort();
    setItems((list) =>
      list.map((i) => (i.id === id && i.state === 'queued' ? { ...i, state: 'cancelled' } : i)),
    );
  }, []);
  const cancelAll = useCallback(() => {
    for (const ctl of aborts.current.values()) ctl.abort();
    setItems((list) => list.map((i) => (i.state === 'queued' ? { ...i, state: 'cancelled' } : i)));
  }, []);
  const clear = useCallback(() => {
    setItems((list) => list.filter((i) => i.state === 'queued' || i.state === 'uploading'));
    setDirError(null);
  }, []);

  return { items, dirError, start, cancel, cancelAll, clear };
}

const STATE_COLOR: Record<UploadItem['state'], string> = {
  queued: 'gray',
  uploading: 'cyan',
  done: 'teal',
  failed: 'red',
  cancelled: 'gray',
};

/** The uploads of this tab: total and per-file progress (bytes and %), cancel, errors per file. */
export function UploadPanel({
  items,
  dirError,
  onCancel,
  onCancelAll,
  onClear,
}: {
  items: UploadItem[];
  dirError: string | null;
  onCancel: (id: number) => void;
  onCancelAll: () => void;
  onClear: () => void;
}) {
  if (items.length === 0 && !dirError) return null;
  const total = totalProgress(items);
  const active = items.some((i) => i.state === 'queued' || i.state === 'uploading');
  const failed = items.filter((i) => i.state === 'failed').length;
  const done = items.filter((i) => i.state === 'done').length;
  return (
    <Paper className="cap-glass" p="sm" data-testid="uploads">
      <Stack gap="xs">
        {dirError ? (
          <Alert color="red" role="alert" data-testid="upload-dir-error">
            Could not create a folder, nothing uploaded: {dirError}
          </Alert>
        ) : null}
        <Group justify="space-between">
          <Text size="sm" fw={600} data-testid="upload-summary">
            {active ? 'Uploading' : 'Uploaded'} {done} of {items.length} file{items.length === 1 ? '' : 's'}
            {failed > 0 ? `, ${failed} failed` : ''}
          </Text>
          <Group gap="xs">
            {active ? (
              <Button
                size="compact-xs"
                variant="default"
                onClick={onCancelAll}
                data-testid="upload-cancel-all"
              >
                Cancel all
              </Button>
            ) : (
              <Button size="compact-xs" variant="default" onClick={onClear} data-testid="upload-clear">
                Clear
              </Button>
            )}
          </Group>
        </Group>
        <Progress
          value={total.percent}
          animated={active}
          aria-label="Upload progress"
          data-testid="upload-total-bar"
          data-percent={total.percent}
        />
        <Text size="xs" c="dimmed" data-testid="upload-total">
          {formatBytes(total.loaded)} of {formatBytes(total.size)} ({total.percent}%)
        </Text>
        <Table verticalSpacing={2} fz="xs" aria-label="Uploads">
          <Table.Tbody>
            {items.map((i) => {
              const pct =
                i.size === 0
                  ? i.state === 'done'
                    ? 100
                    : 0
                  : Math.floor((Math.min(i.loaded, i.size) / i.size) * 100);
              return (
                <Table.Tr key={i.id} data-testid={`upload-${i.path}`} data-state={i.state}>
                  <Table.Td ff="monospace">{i.path}</Table.Td>
                  <Table.Td w={160}>
                    <Progress
                      value={pct}
                      color={STATE_COLOR[i.state]}
                      size="sm"
                      aria-label={`${i.path} progress`}
                    />
                  </Table.Td>
                  <Table.Td w={190}>
                    {i.state === 'failed' && i.error ? (
                      <Text size="xs" c="red.4" data-testid="upload-error">
                        <code>{i.error.code}</code> {i.error.message}
                      </Text>
                    ) : (
                      <Text size="xs" c="dimmed">
                        {i.state === 'uploading'
                          ? `${formatBytes(i.loaded)} of ${formatBytes(i.size)} (${pct}%)`
                          : i.state === 'done'
                            ? `${formatBytes(i.size)} done`
                            : i.state}
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td w={30}>
                    {i.state === 'queued' || i.state === 'uploading' ? (
                      <CloseButton size="sm" aria-label={`Cancel ${i.path}`} onClick={() => onCancel(i.id)} />
                    ) : null}
                  </Table.Td>
                </Table.Tr>
              );
            })}
          </Table.Tbody>
        </Table>
      </Stack>
    </Paper>
  );
}
