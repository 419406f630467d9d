/**
 * A Docker volume's files (issue 11): one page of a directory at a time (directories first,
 * sortable), a file opened as text (≤ 1 MiB, as the Panel reads it) or downloaded through a
 * ticket; with docker.write on the node also upload (files streamed to a ticket's URL, with
 * progress), new folder, rename or move, and delete (one or the selected). The table, the upload
 * queue and the dialogs are the server Files tab's own (components/files). Paths stay inside the
 * volume on the Agent: a link that leads out answers PATH_OUTSIDE_ROOT, shown as the error it is.
 */
import { Anchor, Breadcrumbs, Button, Code, Group, Modal, Stack, Text } from '@mantine/core';
import { keepPreviousData, useQuery, useQueryClient } from '@tanstack/react-query';
import { useCallback, useMemo, useRef, useState } from 'react';
import { api } from '../../api/http.ts';
import type { FileSort, SortOrder } from '../../api/queries.ts';
import type { FileEntry, TransferGrant } from '../../api/types.ts';
import { checkName, joinPath, resolvePath } from '../../lib/files.ts';
import { formatBytes } from '../../lib/format.ts';
import { startDownload } from '../../lib/transfer.ts';
import { DeleteDialog, PromptDialog, type PromptSpec } from '../files/dialogs.tsx';
import { FileList, type ListedEntry, type RowActions } from '../files/file-list.tsx';
import { UploadPanel, type UploadTarget, useUploads } from '../files/uploads.tsx';
import { ErrorState, Loading } from '../states.tsx';
import { ActionError, useCanWrite } from './common.tsx';

const PAGE = 100;

export type VolumeEntry = ListedEntry;
interface VolumePage {
  path: string;
  entries: VolumeEntry[];
  total: number;
  offset: number;
  limit: number;
}
interface VolumeFile {
  path: string;
  size: number;
  encoding: 'utf8' | 'base64';
  content: string;
}
interface Grant {
  url: string;
  relayUrl: string;
  name: string;
}

function FileView({ base, path }: { base: string; path: string }) {
  const q = useQuery({
    queryKey: ['docker', 'volume-file', base, path],
    queryFn: ({ signal }) => api<VolumeFile>(`${base}/file?path=${encodeURIComponent(path)}`, { signal }),
    retry: false,
  });
  if (q.isPending) return <Loading label="Reading…" />;
  if (q.isError) return <ErrorState error={q.error} title={`Could not read ${path}`} />;
  return q.data.encoding === 'utf8' ? (
    <Code block data-testid="volume-file-content" style={{ maxHeight: '50vh', overflow: 'auto' }}>
      {q.data.content}
    </Code>
  ) : (
    <Text size="sm" c="dimmed" data-testid="volume-file-binary">
      Binary, {formatBytes(q.data.size)}: download it to look inside.
    </Text>
  );
}

export function VolumeBrowser({
  nodeId,
  volume,
  onClose,
}: {
  nodeId: string;
  volume: string | null;
  onClose: () => void;
}) {
  const canWrite = useCanWrite(nodeId);
  const qc = useQueryClient();
  const [dir, setDir] = useState('/');
  const [offset, setOffset] = useState(0);
  const [sort, setSort] = useState<FileSort>('name');
  const [order, setOrder] = useState<SortOrder>('asc');
  const [open, setOpen] = useState<string | null>(null);
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const [prompt, setPrompt] = useState<PromptSpec | null>(null);
  const [toDelete, setToDelete] = useState<{ names: string[]; folders: number } | null>(null);
  const [failure, setFailure] = useState<unknown>(null);
  const fileInput = useRef<HTMLInputElement | null>(null);
  const base = `/nodes/${encodeURIComponent(nodeId)}/volumes/${encodeURIComponent(volume ?? '')}`;
  const listKey = ['docker', nodeId, 'volume-files', volume];
  const q = useQuery({
    queryKey: [...listKey, dir, offset, sort, order],
    queryFn: ({ signal }) =>
      api<VolumePage>(
        `${base}/files?path=${encodeURIComponent(dir)}&offset=${offset}&limit=${PAGE}&sort=${sort}&order=${order}`,
        { signal },
      ),
    enabled: volume !== null,
    placeholderData: keepPreviousData,
    retry: false,
  });
  // biome-ignore lint/correctness/useExhaustiveDependencies: the list's key is made of these
  const refresh = useCallback(() => {
    setSelected(new Set());
    void qc.invalidateQueries({ queryKey: listKey });
  }, [qc, nodeId, volume]);
  const target: UploadTarget = useMemo(
    () => ({
      grant: (path, size, signal) =>
        api<TransferGrant>(`${base}/file-upload`, { method: 'POST', body: { path, size }, signal }),
      mkdir: (path) => api(`${base}/mkdir`, { method: 'POST', body: { path } }),
    }),
    [base],
  );
  const uploads = useUploads(target, refresh);

  const go = (to: string) => {
    setDir(to);
    setOffset(0);
    setOpen(null);
    setSelected(new Set());
  };
  async function download(path: string) {
    setFailure(null);
    try {
      const grant = await api<Grant>(`${base}/file-download`, { method: 'POST', body: { path } });
      await startDownload(grant, grant.name);
    } catch (e) {
      setFailure(e);
    }
  }
  const here = q.data?.path ?? dir;
  const actions: RowActions = {
    open: (e: FileEntry) =>
      e.type === 'directory' ? go(joinPath(here, e.name)) : setOpen(joinPath(here, e.name)),
    download: (e: FileEntry) => void download(joinPath(here, e.name)),
    ...(canWrite
      ? {
          rename: (e: FileEntry) =>
            setPrompt({
              title: `Rename or move ${e.name}`,
              label: 'Path',
              description: `A name (stays in ${here}), a relative path like ../other/name, or an absolute one from the volume's root.`,
              initial: e.name,
              submitLabel: 'Rename',
              testId: 'rename',
              validate: (v) => {
                const r = resolvePath(here, v);
                return r.ok ? null : r.error;
              },
              submit: async (v) => {
                const r = resolvePath(here, v);
                if (!r.ok) throw new Error(r.error);
                await api(`${base}/rename`, {
                  method: 'POST',
                  body: { from: joinPath(here, e.name), to: r.path },
                });
                refresh();
              },
            }),
          remove: (e: FileEntry) => setToDelete({ names: [e.name], folders: e.type === 'directory' ? 1 : 0 }),
        }
      : {}),
  };
  const newFolder = () =>
    setPrompt({
      title: 'New folder',
      label: 'Name',
      description: `In ${here}`,
      initial: '',
      submitLabel: 'Create',
      testId: 'new-folder',
      validate: checkName,
      submit: async (v) => {
        await api(`${base}/mkdir`, { method: 'POST', body: { path: joinPath(here, v.trim()) } });
        refresh();
      },
    });
  const selectedNames = [...selected];
  const selectedFolders = (q.data?.entries ?? []).filter(
    (e) => selected.has(e.name) && e.type === 'directory',
  ).length;
  const parts = dir.split('/').filter(Boolean);
  return (
    <Modal
      opened={volume !== null}
      onClose={() => {
        go('/');
        onClose();
      }}
      title={`Files of ${volume ?? ''}`}
      size="xl"
    >
      <Stack gap="sm" data-testid="volume-browser">
        <Group justify="space-between">
          <Breadcrumbs data-testid="volume-path">
            <Anchor component="button" onClick={() => go('/')}>
              {volume}
            </Anchor>
            {parts.map((p, i) => (
              <Anchor
                key={parts.slice(0, i + 1).join('/')}
                component="button"
                onClick={() => go(`/${parts.slice(0, i + 1).join('/')}`)}
              >
                {p}
              </Anchor>
            ))}
          </Breadcrumbs>
          {canWrite && !open ? (
            <Group gap="xs">
              {selected.size > 0 ? (
                <Button
                  size="xs"
                  color="red"
                  variant="light"
                  onClick={() => setToDelete({ names: selectedNames, folders: selectedFolders })}
                  data-testid="volume-delete-selected"
                >
                  Delete {selected.size}
                </Button>
              ) : null}
              <Button size="xs" variant="default" onClick={newFolder} data-testid="volume-new-folder">
                New folder
              </Button>
              <Button size="xs" onClick={() => fileInput.current?.click()} data-testid="volume-upload">
                Upload
              </Button>
              <input
                ref={fileInput}
                type="file"
                multiple
                hidden
                data-testid="volume-upload-input"
                onChange={(ev) => {
                  const files = [...(ev.currentTarget.files ?? [])];
                  ev.currentTarget.value = '';
                  if (files.length > 0)
                    void uploads.start({
                      dirs: [],
                      files: files.map((f) => ({ path: joinPath(here, f.name), file: f })),
                    });
                }}
              />
            </Group>
          ) : null}
        </Group>
        <ActionError error={failure} onClose={() => setFailure(null)} />
        <UploadPanel
          items={uploads.items}
          dirError={uploads.dirError}
          onCancel={uploads.cancel}
          onCancelAll={uploads.cancelAll}
          onClear={uploads.clear}
        />
        {open ? (
          <Stack gap="xs">
            <Group justify="space-between">
              <Text size="sm" ff="monospace" data-testid="volume-file-path">
                {open}
              </Text>
              <Group gap="xs">
                <Button
                  size="xs"
                  variant="light"
                  onClick={() => void download(open)}
                  data-testid="volume-file-download"
                >
                  Download
                </Button>
                <Button
                  size="xs"
                  variant="subtle"
                  onClick={() => setOpen(null)}
                  data-testid="volume-file-close"
                >
                  Back to the folder
                </Button>
              </Group>
            </Group>
            <FileView base={base} path={open} />
          </Stack>
        ) : q.isPending ? (
          <Loading label="Listing…" />
        ) : q.isError ? (
          <ErrorState error={q.error} title={`Could not list ${dir}`} />
        ) : (
          <>
            {dir !== '/' ? (
              <Anchor component="button" size="sm" onClick={() => go(`/${parts.slice(0, -1).join('/')}`)}>
                .. (up)
              </Anchor>
            ) : null}
            <FileList
              entries={q.data.entries}
              sort={sort}
              order={order}
              onSort={(by, o) => {
                setSort(by);
                setOrder(o);
                setOffset(0);
              }}
              selected={selected}
              onSelect={(names, on) =>
                setSelected((cur) => {
                  const next = new Set(cur);
                  for (const n of names) on ? next.add(n) : next.delete(n);
                  return next;
                })
              }
              selectable={canWrite}
              actions={actions}
              folderDownload={false}
            />
            <Group justify="space-between">
              <Text size="xs" c="dimmed" data-testid="volume-entry-count">
                {q.data.total === 0
                  ? 'Empty'
                  : `${offset + 1}–${offset + q.data.entries.length} of ${q.data.total}`}
              </Text>
              <Group gap="xs">
                <Button
                  size="xs"
                  variant="default"
                  disabled={offset === 0}
                  onClick={() => setOffset(Math.max(0, offset - PAGE))}
                >
                  Previous
                </Button>
                <Button
                  size="xs"
                  variant="default"
                  disabled={offset + PAGE >= q.data.total}
                  onClick={() => setOffset(offset + PAGE)}
                  data-testid="volume-next"
                >
                  Next
                </Button>
              </Group>
            </Group>
          </>
        )}
      </Stack>
      <PromptDialog spec={prompt} onClose={() => setPrompt(null)} />
      <DeleteDialog
        names={toDelete?.names ?? null}
        folders={toDelete?.folders ?? 0}
        onClose={() => setToDelete(null)}
        submit={async () => {
          await api(`${base}/delete`, { method: 'POST', body: { root: here, names: toDelete?.names ?? [] } });
          refresh();
        }}
      />
    </Modal>
  );
}
