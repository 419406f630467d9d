/**
 * The Files tab: browse (breadcrumbs, sorted pages, search), edit in CodeMirror with a conflict
 * check, create, rename/move, copy, chmod, delete many, upload files and folders (drag and drop
 * or pickers) with progress, download files (folders as .tar.gz), compress and decompress. Each
 * control is shown only with the `file.*` permission it needs (the Panel checks it anyway).
 */
import {
  Alert,
  Anchor,
  Breadcrumbs,
  Button,
  Group,
  Menu,
  Paper,
  Stack,
  Text,
  TextInput,
} from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { useQueryClient } from '@tanstack/react-query';
import { type DragEvent, useCallback, useEffect, useRef, useState } from 'react';
import { api, errorCode, errorMessage } from '../api/http.ts';
import {
  FILES_PAGE_SIZE,
  type FileSort,
  keys,
  type SortOrder,
  useFileSearch,
  useFiles,
} from '../api/queries.ts';
import type { FileEntry, TransferGrant } from '../api/types.ts';
import {
  checkName,
  crumbsOf,
  dirsOf,
  joinPath,
  parentOf,
  parseMode,
  resolvePath,
  type WalkEntry,
  walkEntries,
} from '../lib/files.ts';
import { DeleteDialog, PromptDialog, type PromptSpec } from './files/dialogs.tsx';
import { FileEditor } from './files/file-editor.tsx';
import { FileList, type RowActions } from './files/file-list.tsx';
import { FileOperations, useFileOperations } from './files/file-operations.tsx';
import { SearchResults } from './files/search-results.tsx';
import { UploadPanel, type UploadPlan, useUploads } from './files/uploads.tsx';
import { Empty, ErrorState, Loading } from './states.tsx';

const ok = (r: { ok: true; path: string } | { ok: false; error: string }) => (r.ok ? null : r.error);

/** `logFile`: the game's log file from its template (`config.logs.location`), linked above the list. */
export function FilesTab({
  serverId,
  logFile = null,
  permissions,
  onDirty: reportDirty,
}: {
  serverId: string;
  logFile?: string | null;
  permissions: readonly string[];
  /** the editor holds unsaved edits (or no longer): the page asks before it leaves the tab */
  onDirty?: (dirty: boolean) => void;
}) {
  const can = (p: string) => permissions.includes(p);
  const canContent = can('file.read-content');
  const canCreate = can('file.create');
  const canUpdate = can('file.update');
  const canDelete = can('file.delete');
  const canArchive = can('file.archive');

  const qc = useQueryClient();
  const [path, setPathState] = useState('/');
  const [offset, setOffset] = useState(0);
  const [sort, setSort] = useState<FileSort>('name');
  const [order, setOrder] = useState<SortOrder>('asc');
  const [open, setOpen] = useState<string | null>(null);
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const [query, setQuery] = useState('');
  const [debounced] = useDebouncedValue(query.trim(), 300);
  const [prompt, setPrompt] = useState<PromptSpec | null>(null);
  const [toDelete, setToDelete] = useState<{ names: string[]; folders: number } | null>(null);
  const [failure, setFailure] = useState<{ what: string; error: unknown } | null>(null);
  const [dragging, setDragging] = useState(false);
  const dirty = useRef(false);
  const fileInput = useRef<HTMLInputElement | null>(null);
  const folderInput = useRef<HTMLInputElement | null>(null);

  const list = useFiles(serverId, path, offset, sort, order);
  const search = useFileSearch(serverId, path, debounced);
  const base = `/servers/${encodeURIComponent(serverId)}/files`;
  const refresh = useCallback(
    () => void qc.invalidateQueries({ queryKey: keys.filesOf(serverId) }),
    [qc, serverId],
  );
  const uploads = useUploads(serverId, refresh);
  const ops = useFileOperations(serverId, refresh);
  const reportRef = useRef(reportDirty);
  reportRef.current = reportDirty;
  const onDirty = useCallback((d: boolean) => {
    dirty.current = d;
    reportRef.current?.(d);
  }, []);

  // the folder picker takes whole folders (a non-standard attribute React does not know)
  useEffect(() => {
    folderInput.current?.setAttribute('webkitdirectory', '');
  }, []);

  /** Unsaved edits are dropped only when the user says so. */
  const leaveEditor = () => !dirty.current || window.confirm('Discard your unsaved changes?');
  const setPath = (p: string) => {
    setPathState(p);
    setOffset(0);
    setSelected(new Set());
  };
  const openFile = (p: string | null) => {
    if (p === open || !leaveEditor()) return;
    onDirty(false);
    setOpen(p);
  };
  const act = async (what: string, fn: () => Promise<unknown>) => {
    setFailure(null);
    try {
      await fn();
    } catch (e) {
      setFailure({ what, error: e });
    } finally {
      refresh();
    }
  };

  const download = (entry: { path: string; isDir: boolean }) =>
    act(`Download ${entry.path}`, async () => {
      const grant = await api<TransferGrant>(`${base}/transfers`, {
        method: 'POST',
        body: { direction: 'download', path: entry.path, ...(entry.isDir ? { archive: 'tar.gz' } : {}) },
      });
      // the ticket URL works once: hand it to the browser's own download
      const a = document.createElement('a');
      a.href = grant.url;
      a.download = grant.name;
      a.rel = 'noopener';
      document.body.append(a);
      a.click();
      a.remove();
    });

  const askPath = (
    title: string,
    initial: string,
    submitLabel: string,
    testId: string,
    run: (to: string) => Promise<unknown>,
  ) =>
    setPrompt({
      title,
      label: 'Path',
      description: `A name (stays in ${path}), a relative path like ../other/name, or an absolute one from the server folder.`,
      initial,
      submitLabel,
      testId,
      validate: (v) => ok(resolvePath(path, v)),
      submit: async (v) => {
        const r = resolvePath(path, v);
        if (!r.ok) throw new Error(r.error);
        await run(r.path);
        refresh();
      },
    });

  const actions: RowActions = {
    open: (e) =>
      e.type === 'directory'
        ? setPath(joinPath(path, e.name))
        : canContent
          ? openFile(joinPath(path, e.name))
          : undefined,
    ...(canContent
      ? {
          download: (e: FileEntry) =>
            void download({ path: joinPath(path, e.name), isDir: e.type === 'directory' }),
        }
      : {}),
    ...(canUpdate
      ? {
          rename: (e: FileEntry) =>
            askPath(`Rename or move ${e.name}`, e.name, 'Rename', 'rename', async (to) => {
              const from = joinPath(path, e.name);
              await api(`${base}/rename`, { method: 'POST', body: { from, to } });
              if (open === from) setOpen(to);
            }),
          chmod: (e: FileEntry) =>
            setPrompt({
              title: `Permissions of ${e.name}`,
              label: 'Mode (octal)',
              description: 'e.g. 644 for files, 755 for folders and scripts (no setuid/setgid).',
              initial: e.mode.replace(/^0(?=\d{3}$)/, ''),
              submitLabel: 'Set',
              testId: 'chmod',
              validate: (v) => {
                const m = parseMode(v);
                return m.ok ? null : m.error;
              },
              submit: async (v) => {
                const m = parseMode(v);
                if (!m.ok) throw new Error(m.error);
                await api(`${base}/chmod`, {
                  method: 'POST',
                  body: { path: joinPath(path, e.name), mode: m.mode },
                });
                refresh();
              },
            }),
        }
      : {}),
    ...(canCreate
      ? {
          copy: (e: FileEntry) =>
            askPath(`Copy ${e.name}`, `${e.name} copy`, 'Copy', 'copy', (to) =>
              api(`${base}/copy`, { method: 'POST', body: { from: joinPath(path, e.name), to } }),
            ),
        }
      : {}),
    ...(canArchive
      ? {
          decompress: (e: FileEntry) =>
            void ops.run(`Decompress ${e.name}`, () =>
              api<{ operationId: string }>(`${base}/decompress`, {
                method: 'POST',
                body: { path: joinPath(path, e.name) },
              }),
            ),
        }
      : {}),
    ...(canDelete
      ? {
          remove: (e: FileEntry) => setToDelete({ names: [e.name], folders: e.type === 'directory' ? 1 : 0 }),
        }
      : {}),
  };

  const newEntry = (kind: 'file' | 'folder') =>
    setPrompt({
      title: kind === 'file' ? 'New file' : 'New folder',
      label: 'Name',
      description: `In ${path}`,
      initial: '',
      submitLabel: 'Create',
      testId: kind === 'file' ? 'new-file' : 'new-folder',
      validate: checkName,
      submit: async (v) => {
        const p = joinPath(path, v.trim());
        if (kind === 'folder') await api(`${base}/directories`, { method: 'POST', body: { path: p } });
        else {
          await api(`${base}/content`, { method: 'PUT', body: { path: p, content: '', createOnly: true } });
          openFile(p);
        }
        refresh();
      },
    });

  const selectedNames = [...selected];
  const selectedFolders = (list.data?.entries ?? []).filter(
    (e) => selected.has(e.name) && e.type === 'directory',
  ).length;
  const compress = (format: 'tar.gz' | 'zip') =>
    void ops.run(`Compress ${selectedNames.length} into .${format}`, () =>
      api<{ operationId: string }>(`${base}/compress`, {
        method: 'POST',
        body: { root: path, names: selectedNames, format },
      }),
    );

  const uploadPlan = (plan: UploadPlan) => {
    if (plan.files.length === 0 && plan.dirs.length === 0) return;
    void uploads.start(plan);
  };
  const fromPicker = (files: FileList | null) => {
    if (!files) return;
    const picked = [...files];
    const rels = picked.map((f) => f.webkitRelativePath || f.name);
    uploadPlan({
      dirs: dirsOf(rels).map((d) => joinPath(path, d)),
      files: picked.map((f, i) => ({ path: joinPath(path, rels[i] ?? f.name), file: f })),
    });
  };
  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    if (!canCreate) return;
    // entries must be taken while the event runs; the walk reads them afterwards
    const roots: WalkEntry<File>[] = [];
    for (const item of [...e.dataTransfer.items]) {
      const entry = item.kind === 'file' ? item.webkitGetAsEntry?.() : null;
      if (entry) roots.push(entry as unknown as WalkEntry<File>);
    }
    const loose = [...e.dataTransfer.files];
    const here = path;
    if (roots.length === 0) {
      uploadPlan({ dirs: [], files: loose.map((f) => ({ path: joinPath(here, f.name), file: f })) });
      return;
    }
    walkEntries(roots)
      .then((w) =>
        uploadPlan({
          dirs: w.dirs.map((d) => joinPath(here, d)),
          files: w.files.map((f) => ({ path: joinPath(here, f.rel), file: f.file })),
        }),
      )
      .catch((err) => setFailure({ what: 'Reading the dropped folders', error: err }));
  };

  const searching = debounced.length > 0;

  return (
    <Stack data-testid="files-tab">
      {logFile ? (
        <Text size="sm" data-testid="log-file">
          Game log:{' '}
          <Anchor
            component="button"
            type="button"
            ff="monospace"
            onClick={() => {
              setPath(parentOf(logFile));
              openFile(logFile);
            }}
            data-testid="open-log-file"
          >
            {logFile}
          </Anchor>
        </Text>
      ) : null}
      <Group justify="space-between" wrap="wrap" gap="xs">
        <Breadcrumbs aria-label="Current folder" data-testid="files-breadcrumbs">
          <Anchor component="button" type="button" onClick={() => setPath('/')} data-testid="crumb-/">
            /
          </Anchor>
          {crumbsOf(path).map((c) => (
            <Anchor
              key={c.path}
              component="button"
              type="button"
              onClick={() => setPath(c.path)}
              data-testid={`crumb-${c.path}`}
            >
              {c.name}
            </Anchor>
          ))}
        </Breadcrumbs>
        <Group gap="xs">
          <TextInput
            size="xs"
            placeholder="Search names here and below"
            aria-label="Search files by name"
            value={query}
            onChange={(e) => setQuery(e.currentTarget.value)}
            data-testid="files-search"
            w={220}
          />
          {canCreate ? (
            <>
              <Button
                size="xs"
                variant="default"
                onClick={() => newEntry('file')}
                data-testid="files-new-file"
              >
                New file
              </Button>
              <Button
                size="xs"
                variant="default"
                onClick={() => newEntry('folder')}
                data-testid="files-new-folder"
              >
                New folder
              </Button>
              <Menu position="bottom-end">
                <Menu.Target>
                  <Button size="xs" data-testid="files-upload">
                    Upload
                  </Button>
                </Menu.Target>
                <Menu.Dropdown>
                  <Menu.Item onClick={() => fileInput.current?.click()} data-testid="files-upload-files">
                    Files…
                  </Menu.Item>
                  <Menu.Item onClick={() => folderInput.current?.click()} data-testid="files-upload-folder">
                    A folder…
                  </Menu.Item>
                </Menu.Dropdown>
              </Menu>
              <input
                ref={fileInput}
                type="file"
                multiple
                hidden
                data-testid="upload-files-input"
                onChange={(e) => {
                  fromPicker(e.currentTarget.files);
                  e.currentTarget.value = '';
                }}
              />
              <input
                ref={folderInput}
                type="file"
                multiple
                hidden
                data-testid="upload-folder-input"
                onChange={(e) => {
                  fromPicker(e.currentTarget.files);
                  e.currentTarget.value = '';
                }}
              />
            </>
          ) : null}
        </Group>
      </Group>
      {failure ? (
        <Alert
          color="red"
          role="alert"
          withCloseButton
          onClose={() => setFailure(null)}
          data-testid="files-error"
          title={`${failure.what} failed`}
        >
          <code>{errorCode(failure.error)}</code> {errorMessage(failure.error)}
        </Alert>
      ) : null}
      <UploadPanel
        items={uploads.items}
        dirError={uploads.dirError}
        onCancel={uploads.cancel}
        onCancelAll={uploads.cancelAll}
        onClear={uploads.clear}
      />
      <FileOperations ops={ops.ops} onClear={ops.clear} />
      {selected.size > 0 ? (
        <Paper className="cap-glass" p="xs" data-testid="files-selection">
          <Group gap="xs">
            <Text size="sm" data-testid="files-selected-count">
              {selected.size} selected
            </Text>
            {canDelete ? (
              <Button
                size="compact-sm"
                color="red"
                variant="light"
                onClick={() => setToDelete({ names: selectedNames, folders: selectedFolders })}
                data-testid="files-delete-selected"
              >
                Delete {selected.size}
              </Button>
            ) : null}
            {canArchive ? (
              <Menu>
                <Menu.Target>
                  <Button size="compact-sm" variant="light" data-testid="files-compress-selected">
                    Compress
                  </Button>
                </Menu.Target>
                <Menu.Dropdown>
                  <Menu.Item onClick={() => compress('tar.gz')}>as .tar.gz</Menu.Item>
                  <Menu.Item onClick={() => compress('zip')}>as .zip</Menu.Item>
                </Menu.Dropdown>
              </Menu>
            ) : null}
            <Anchor component="button" type="button" size="sm" onClick={() => setSelected(new Set())}>
              Clear selection
            </Anchor>
          </Group>
        </Paper>
      ) : null}
      <Paper
        className="cap-glass"
        p="sm"
        data-testid="files-drop"
        data-dragging={dragging}
        style={dragging ? { outline: '2px dashed var(--mantine-color-cyan-5)' } : undefined}
        onDragOver={(e) => {
          if (!canCreate) return;
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={onDrop}
      >
        {searching ? (
          <SearchResults
            query={debounced}
            result={search}
            onOpen={(m) => {
              setQuery('');
              if (m.type === 'directory') setPath(m.path);
              else {
                setPath(parentOf(m.path));
                if (m.type === 'file' && canContent) openFile(m.path);
              }
            }}
          />
        ) : list.isPending ? (
          <Loading label="Listing files…" />
        ) : list.isError ? (
          <ErrorState error={list.error} title="Could not list files" onRetry={() => list.refetch()} />
        ) : list.data.total === 0 ? (
          <Empty title="This folder is empty">
            {canCreate ? 'Drop files or folders here to upload them.' : null}
          </Empty>
        ) : (
          <Stack gap="xs">
            <Group justify="space-between" data-testid="files-paging">
              <Text size="sm" c="dimmed" data-testid="files-range">
                {list.data.entries.length === 0
                  ? `Nothing here of ${list.data.total} entries`
                  : `${list.data.offset + 1}–${list.data.offset + list.data.entries.length} of ${list.data.total} entries`}
              </Text>
              {list.data.total > FILES_PAGE_SIZE ? (
                <Group gap="xs">
                  <Button
                    size="compact-sm"
                    variant="default"
                    disabled={offset === 0}
                    onClick={() => setOffset(Math.max(0, offset - FILES_PAGE_SIZE))}
                    data-testid="files-prev"
                  >
                    Previous
                  </Button>
                  <Button
                    size="compact-sm"
                    variant="default"
                    disabled={offset + FILES_PAGE_SIZE >= list.data.total}
                    onClick={() => setOffset(offset + FILES_PAGE_SIZE)}
                    data-testid="files-next"
                  >
                    Next
                  </Button>
                </Group>
              ) : null}
            </Group>
            <FileList
              entries={list.data.entries}
              sort={sort}
              order={order}
              onSort={(by, o) => {
                setSort(by);
                setOrder(o);
                setOffset(0);
              }}
              selected={selected}
              selectable={canDelete || canArchive}
              onSelect={(names, on) =>
                setSelected((s) => {
                  const next = new Set(s);
                  for (const n of names) on ? next.add(n) : next.delete(n);
                  return next;
                })
              }
              actions={actions}
            />
            {canCreate ? (
              <Text size="xs" c="dimmed">
                Drop files or whole folders here to upload them into {path}.
              </Text>
            ) : null}
          </Stack>
        )}
      </Paper>
      {open ? (
        <FileEditor
          key={open}
          serverId={serverId}
          path={open}
          canUpdate={canUpdate}
          canDownload={canContent}
          onClose={() => openFile(null)}
          onDirty={onDirty}
          onSaved={refresh}
          onDownload={() => void download({ path: open, isDir: false })}
        />
      ) : null}
      <PromptDialog spec={prompt} onClose={() => setPrompt(null)} />
      <DeleteDialog
        names={toDelete?.names ?? null}
        folders={toDelete?.folders ?? 0}
        onClose={() => setToDelete(null)}
        submit={async () => {
          const names = toDelete?.names ?? [];
          await api(`${base}/delete`, { method: 'POST', body: { root: path, names } });
          if (
            open &&
            names.some((n) => open === joinPath(path, n) || open.startsWith(`${joinPath(path, n)}/`))
          ) {
            onDirty(false);
            setOpen(null);
          }
          setSelected(new Set());
          refresh();
        }}
      />
    </Stack>
  );
}
