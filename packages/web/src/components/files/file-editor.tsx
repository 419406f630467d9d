import { Alert, Anchor, Badge, Button, Group, Paper, Stack, Text } from '@mantine/core';
import { lazy, Suspense, useEffect, useRef, useState } from 'react';
import { ApiError, api, errorCode, errorMessage } from '../../api/http.ts';
import { useFileContent } from '../../api/queries.ts';
import type { FileContent, FileSaved } from '../../api/types.ts';
import { languageOf } from '../../lib/files.ts';
import { formatBytes } from '../../lib/format.ts';
import { ErrorState, Loading } from '../states.tsx';

// CodeMirror and its language packs: a chunk of their own, fetched when a file is first opened
const CodeEditor = lazy(() => import('./code-editor.tsx'));

export interface FileEditorProps {
  serverId: string;
  path: string;
  canUpdate: boolean;
  onClose: () => void;
  /** unsaved edits or not: the tab asks before it drops them */
  onDirty: (dirty: boolean) => void;
  onSaved: () => void;
  onDownload: () => void;
  canDownload: boolean;
}

/** the version the editor holds, as the conflict check names it */
const loaded = (d: FileContent) => ({
  content: d.content,
  ...(d.sha256 ? { sha256: d.sha256 } : {}),
  ...(d.modifiedAt ? { modifiedAt: d.modifiedAt } : {}),
});
const expected = (b: { sha256?: string; modifiedAt?: string }) =>
  b.sha256 ? { expectedSha256: b.sha256 } : b.modifiedAt ? { expectedModifiedAt: b.modifiedAt } : {};

type Phase = { kind: 'idle' } | { kind: 'saving' } | { kind: 'saved'; at: string } | { kind: 'conflict' };

/** A text file in CodeMirror; saves with the conflict check (the sha256 it was read with). */
export function FileEditor({
  serverId,
  path,
  canUpdate,
  onClose,
  onDirty,
  onSaved,
  onDownload,
  canDownload,
}: FileEditorProps) {
  const file = useFileContent(serverId, path);
  // what the editor was loaded with: the save's expectedSha256
  const [base, setBase] = useState<{ sha256?: string; modifiedAt?: string; content: string } | null>(null);
  const [mount, setMount] = useState(0);
  const text = useRef('');
  const [dirty, setDirty] = useState(false);
  const [phase, setPhase] = useState<Phase>({ kind: 'idle' });
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    if (file.data && file.data.encoding === 'utf8' && base === null) {
      setBase(loaded(file.data));
      text.current = file.data.content;
    }
  }, [file.data, base]);
  useEffect(() => onDirty(dirty), [dirty, onDirty]);
  useEffect(() => {
    if (!dirty) return;
    const warn = (e: BeforeUnloadEvent) => e.preventDefault();
    window.addEventListener('beforeunload', warn);
    return () => window.removeEventListener('beforeunload', warn);
  }, [dirty]);

  const save = async (overwrite: boolean) => {
    if (!base || !canUpdate || phase.kind === 'saving') return;
    const content = text.current;
    setPhase({ kind: 'saving' });
    setError(null);
    try {
      const saved = await api<FileSaved>(`/servers/${encodeURIComponent(serverId)}/files/content`, {
        method: 'PUT',
        body: overwrite ? { path, content } : { path, content, ...expected(base) },
      });
      setBase({
        content,
        ...(saved.sha256 ? { sha256: saved.sha256 } : {}),
        ...(saved.modifiedAt ? { modifiedAt: saved.modifiedAt } : {}),
      });
      setDirty(text.current !== content);
      setPhase({ kind: 'saved', at: new Date().toLocaleTimeString() });
      onSaved();
    } catch (e) {
      if (e instanceof ApiError && e.code === 'FILE_CHANGED') setPhase({ kind: 'conflict' });
      else {
        setError(e);
        setPhase({ kind: 'idle' });
      }
    }
  };
  const reload = async () => {
    const r = await file.refetch();
    if (r.data && r.data.encoding === 'utf8') {
      setBase(loaded(r.data));
      text.current = r.data.content;
      setDirty(false);
      setMount((m) => m + 1);
      setPhase({ kind: 'idle' });
      setError(null);
    } else if (r.error) setError(r.error);
  };

  return (
    <Paper className="cap-glass" p="sm" data-testid="file-viewer">
      <Group justify="space-between" mb="xs">
        <Group gap="xs">
          <Text fw={600} ff="monospace" size="sm" data-testid="file-open-path">
            {path}
          </Text>
          {dirty ? (
            <Badge color="yellow" variant="light" data-testid="file-dirty">
              unsaved changes
            </Badge>
          ) : null}
          {phase.kind === 'saved' && !dirty ? (
            <Badge color="teal" variant="light" data-testid="file-saved">
              saved {phase.at}
            </Badge>
          ) : null}
          {!canUpdate ? (
            <Badge color="gray" variant="light">
              read only
            </Badge>
          ) : null}
        </Group>
        <Group gap="xs">
          {canDownload ? (
            <Button size="compact-sm" variant="default" onClick={onDownload} data-testid="file-download">
              Download
            </Button>
          ) : null}
          {canUpdate && file.data?.encoding === 'utf8' ? (
            <Button
              size="compact-sm"
              onClick={() => void save(false)}
              loading={phase.kind === 'saving'}
              disabled={!dirty}
              data-testid="file-save"
              title="Save (Ctrl+S)"
            >
              Save
            </Button>
          ) : null}
          <Anchor component="button" type="button" onClick={onClose} size="sm" data-testid="file-close">
            Close
          </Anchor>
        </Group>
      </Group>
      {phase.kind === 'conflict' ? (
        <Alert
          color="orange"
          title="The file changed since you opened it"
          mb="xs"
          data-testid="file-conflict"
        >
          <Stack gap="xs">
            <Text size="sm">
              Someone (or the server itself) wrote {path} after it was loaded here. Reload it to see theirs
              (your edits here are dropped), or overwrite it with yours.
            </Text>
            <Group gap="xs">
              <Button
                size="xs"
                variant="light"
                onClick={() => void reload()}
                data-testid="file-conflict-reload"
              >
                Reload theirs
              </Button>
              <Button
                size="xs"
                color="orange"
                onClick={() => void save(true)}
                data-testid="file-conflict-overwrite"
              >
                Overwrite with mine
              </Button>
            </Group>
          </Stack>
        </Alert>
      ) : null}
      {error ? (
        <Alert color="red" mb="xs" role="alert" data-testid="file-save-error">
          <Text size="sm">
            Not saved: <code>{errorCode(error)}</code> {errorMessage(error)}
          </Text>
        </Alert>
      ) : null}
      {file.isPending ? (
        <Loading label="Reading file…" />
      ) : file.isError ? (
        <Stack gap="xs">
          <ErrorState error={file.error} title="Could not read the file" onRetry={() => file.refetch()} />
          {canDownload && errorCode(file.error) === 'FILE_TOO_LARGE' ? (
            <Text size="sm" c="dimmed">
              The editor takes files up to 1 MiB; download this one instead.
            </Text>
          ) : null}
        </Stack>
      ) : file.data.encoding === 'base64' ? (
        <Text size="sm" c="dimmed" data-testid="file-binary">
          Binary file, {formatBytes(file.data.size)}: not shown{canDownload ? '; download it instead.' : '.'}
        </Text>
      ) : base ? (
        <Suspense fallback={<Loading label="Loading the editor…" />}>
          <div data-testid="file-content">
            <CodeEditor
              key={mount}
              initial={base.content}
              language={languageOf(path)}
              readOnly={!canUpdate}
              onChange={(t) => {
                text.current = t;
                setDirty(t !== base.content);
              }}
              onSave={() => void save(false)}
            />
          </div>
        </Suspense>
      ) : null}
    </Paper>
  );
}
