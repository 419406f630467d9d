import {
  Alert,
  Badge,
  Button,
  Checkbox,
  Code,
  CopyButton,
  Group,
  Modal,
  SegmentedControl,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
  Tooltip,
} from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { type FormEvent, type ReactNode, useState } from 'react';
import { api, errorMessage } from '../api/http.ts';
import { type OperationProgress as OpState, useOperationProgress } from '../api/operation-progress.ts';
import { keys, useBackups } from '../api/queries.ts';
import type { Backup, BackupLink, BackupStarted, Permission } from '../api/types.ts';
import { formatBytes } from '../lib/format.ts';
import { startDownload } from '../lib/transfer.ts';
import { ActionError, ConfirmDelete, useRowAction } from './actions.tsx';
import { ErrorState, Loading } from './states.tsx';

const BACKUP_KINDS = ['backup', 'restore'] as const;

function when(iso: string | null): string {
  return iso ? new Date(iso).toLocaleString() : '—';
}

function StateBadge({ b }: { b: Backup }) {
  const color = b.state === 'completed' ? 'teal' : b.state === 'failed' ? 'red' : 'gray';
  return (
    <Badge
      color={color}
      style={{ minWidth: 'max-content' }}
      title={b.error ? `${b.error.code}: ${b.error.message}` : undefined}
    >
      {b.state === 'failed' && b.error ? b.error.code : b.state}
    </Badge>
  );
}

/** One operation's progress as it happens (stage and the Agent's message), then its outcome. */
function OperationProgress({
  label,
  op,
  testId,
}: {
  label: string;
  op: OpState | undefined;
  testId: string;
}) {
  if (!op) return null;
  const color = op.success === undefined ? 'blue' : op.success ? 'teal' : 'red';
  return (
    <Alert color={color} data-testid={testId} data-stage={op.stage} data-success={String(op.success ?? '')}>
      <Text size="sm">
        {label}: <b data-testid={`${testId}-stage`}>{op.stage}</b>
        {op.message ? ` — ${op.message}` : ''}
        {op.success === false && op.errorCode ? ` (${op.errorCode})` : ''}
      </Text>
    </Alert>
  );
}

/**
 * The Backups tab: the server's backups with state, size, checksum, who made them and when; create
 * (name, format, locked) with its progress live, download through a short-lived link, restore
 * (optionally deleting the current files first) with its progress, lock/unlock and delete. Each
 * control shows only with its `backup.*` permission; the limit reads "2 of 3".
 */
export function BackupsTab({
  serverId,
  permissions,
}: {
  serverId: string;
  permissions: readonly Permission[];
}) {
  const can = (p: Permission) => permissions.includes(p);
  const list = useBackups(serverId, can('backup.read'));
  const qc = useQueryClient();
  const [createOp, setCreateOp] = useState<string | null>(null);
  const [restoreOp, setRestoreOp] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  const [restoring, setRestoring] = useState<Backup | null>(null);
  const [deleting, setDeleting] = useState<Backup | null>(null);
  const refresh = () => qc.invalidateQueries({ queryKey: keys.backups(serverId) });
  const { error, clearError, run } = useRowAction(refresh);

  const ops = useOperationProgress(serverId, { kinds: BACKUP_KINDS, onMessage: () => void refresh() });

  const download = (b: Backup) =>
    run(async () => {
      const link = await api<BackupLink>(
        `/servers/${encodeURIComponent(serverId)}/backups/${encodeURIComponent(b.backupId)}/download`,
        { method: 'POST' },
      );
      // straight from the node's Agent when it answers, else through the Panel's relay
      await startDownload(link, link.name);
    });
  const setLocked = (b: Backup, locked: boolean) =>
    run(() =>
      api(`/servers/${encodeURIComponent(serverId)}/backups/${encodeURIComponent(b.backupId)}/lock`, {
        method: 'POST',
        body: { locked },
      }),
    );

  if (!can('backup.read')) return <Text c="dimmed">You may not see this server's backups.</Text>;
  if (list.isLoading) return <Loading />;
  if (list.error) return <ErrorState error={list.error} />;
  const data = list.data;
  const backups = data?.backups ?? [];
  const limit = data?.backupLimit ?? null;
  const held = backups.filter((b) => b.state !== 'failed').length;
  const full = limit !== null && held >= limit;

  return (
    <Stack data-testid="backups-tab">
      <Group justify="space-between">
        <Group gap="xs">
          <Title order={4}>Backups</Title>
          <Badge variant="light" data-testid="backup-count">
            {limit === null ? `${held} (no limit)` : `${held} of ${limit}`}
          </Badge>
        </Group>
        {can('backup.create') ? (
          <Tooltip label="The backup limit is reached: delete one first" disabled={!full}>
            <Button onClick={() => setCreating(true)} disabled={full} data-testid="backup-create">
              Create backup
            </Button>
          </Tooltip>
        ) : null}
      </Group>
      <ActionError error={error} onClose={clearError} testId="backup-error" />
      <OperationProgress
        label="Backup"
        op={createOp ? ops[createOp] : undefined}
        testId="backup-create-progress"
      />
      <OperationProgress
        label="Restore"
        op={restoreOp ? ops[restoreOp] : undefined}
        testId="backup-restore-progress"
      />
      {backups.length === 0 ? (
        <Text c="dimmed" data-testid="backups-empty">
          No backups yet.
        </Text>
      ) : (
        <Table.ScrollContainer minWidth={900}>
          <Table data-testid="backups-table">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>State</Table.Th>
                <Table.Th>Size</Table.Th>
                <Table.Th>Checksum (sha256)</Table.Th>
                <Table.Th>Created by</Table.Th>
                <Table.Th>Created</Table.Th>
                <Table.Th>Completed</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {backups.map((b) => (
                <Table.Tr key={b.backupId} data-testid={`backup-row-${b.backupId}`} data-state={b.state}>
                  <Table.Td>
                    <Group gap={6}>
                      <Text size="sm" data-testid="backup-name">
                        {b.name ?? b.backupId.slice(0, 8)}
                      </Text>
                      <Badge size="xs" variant="outline">
                        {b.format}
                      </Badge>
                      <Badge
                        size="xs"
                        variant="light"
                        color={b.storage === 's3' ? 'grape' : 'gray'}
                        title={
                          b.storage === 's3' ? 'stored in S3-compatible object storage' : 'stored on the node'
                        }
                        data-testid="backup-storage"
                      >
                        {b.storage === 's3' ? 'S3' : 'node'}
                      </Badge>
                      {b.upload ? (
                        <Badge
                          size="xs"
                          variant="light"
                          color={b.upload.state === 'failed' ? 'red' : 'blue'}
                          title={
                            b.upload.error
                              ? `${b.upload.attempts} attempt(s); last: ${b.upload.error.message}`
                              : 'waiting to be moved to S3'
                          }
                          data-testid="backup-upload"
                        >
                          {b.upload.state === 'failed' ? 'upload failed' : 'upload pending'}
                        </Badge>
                      ) : null}
                      {b.locked ? (
                        <Badge size="xs" color="yellow" data-testid="backup-locked">
                          locked
                        </Badge>
                      ) : null}
                    </Group>
                  </Table.Td>
                  <Table.Td>
                    <StateBadge b={b} />
                  </Table.Td>
                  <Table.Td style={{ whiteSpace: 'nowrap' }}>
                    {b.size === null ? '—' : formatBytes(b.size)}
                  </Table.Td>
                  <Table.Td>
                    {b.sha256 ? (
                      <Group gap={4}>
                        <Code data-testid="backup-sha256" data-sha256={b.sha256} title={b.sha256}>
                          {b.sha256.slice(0, 12)}…
                        </Code>
                        <CopyButton value={b.sha256}>
                          {({ copied, copy }) => (
                            <Button size="compact-xs" variant="subtle" onClick={copy}>
                              {copied ? 'Copied' : 'Copy'}
                            </Button>
                          )}
                        </CopyButton>
                      </Group>
                    ) : (
                      '—'
                    )}
                  </Table.Td>
                  <Table.Td>{b.createdBy?.username ?? '—'}</Table.Td>
                  <Table.Td>{when(b.createdAt)}</Table.Td>
                  <Table.Td>{when(b.completedAt)}</Table.Td>
                  <Table.Td>
                    <Group gap={4} wrap="nowrap">
                      {can('backup.download') && b.state === 'completed' ? (
                        <Button
                          size="compact-sm"
                          variant="light"
                          onClick={() => download(b)}
                          data-testid="backup-download"
                        >
                          Download
                        </Button>
                      ) : null}
                      {can('backup.restore') && b.state === 'completed' ? (
                        <Button
                          size="compact-sm"
                          variant="light"
                          color="orange"
                          onClick={() => setRestoring(b)}
                          data-testid="backup-restore"
                        >
                          Restore
                        </Button>
                      ) : null}
                      {can('backup.delete') && b.state !== 'pending' ? (
                        <Button
                          size="compact-sm"
                          variant="subtle"
                          onClick={() => setLocked(b, !b.locked)}
                          data-testid="backup-lock"
                        >
                          {b.locked ? 'Unlock' : 'Lock'}
                        </Button>
                      ) : null}
                      {can('backup.delete') && b.state !== 'pending' ? (
                        <Tooltip label="Unlock it first" disabled={!b.locked}>
                          <Button
                            size="compact-sm"
                            variant="subtle"
                            color="red"
                            disabled={b.locked}
                            onClick={() => setDeleting(b)}
                            data-testid="backup-delete"
                          >
                            Delete
                          </Button>
                        </Tooltip>
                      ) : null}
                    </Group>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      <CreateBackupModal
        opened={creating}
        onClose={() => setCreating(false)}
        onStarted={(id) => {
          setCreateOp(id);
          setCreating(false);
          void refresh();
        }}
        serverId={serverId}
      />
      <RestoreModal
        backup={restoring}
        onClose={() => setRestoring(null)}
        onStarted={(id) => {
          setRestoreOp(id);
          setRestoring(null);
        }}
        serverId={serverId}
      />
      <ConfirmDelete
        opened={deleting !== null}
        title="Delete backup"
        onCancel={() => setDeleting(null)}
        onConfirm={() => {
          const b = deleting;
          if (b)
            void run(() =>
              api(`/servers/${encodeURIComponent(serverId)}/backups/${encodeURIComponent(b.backupId)}`, {
                method: 'DELETE',
              }),
            );
        }}
        confirmTestId="backup-delete-confirm"
      >
        Delete <b>{deleting?.name ?? deleting?.backupId}</b> from the node? This cannot be undone.
      </ConfirmDelete>
    </Stack>
  );
}

/**
 * A modal that starts an operation: `start` asks the Panel, its operationId goes to `onStarted`,
 * a refusal is shown in the modal (create and restore alike).
 */
function StartOperationModal({
  opened,
  onClose,
  title,
  submit,
  start,
  onStarted,
  children,
}: {
  opened: boolean;
  onClose: () => void;
  title: string;
  submit: { label: string; color?: string; testId: string; errorTestId: string };
  /** the request; resolves with the operation's id */
  start: () => Promise<string>;
  onStarted: (operationId: string) => void;
  children: ReactNode;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onStarted(await start());
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal opened={opened} onClose={onClose} title={title}>
      <form onSubmit={onSubmit}>
        <Stack>
          {children}
          {error ? (
            <Alert color="red" data-testid={submit.errorTestId}>
              {error}
            </Alert>
          ) : null}
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" color={submit.color} loading={busy} data-testid={submit.testId}>
              {submit.label}
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

function CreateBackupModal({
  opened,
  onClose,
  onStarted,
  serverId,
}: {
  opened: boolean;
  onClose: () => void;
  onStarted: (operationId: string) => void;
  serverId: string;
}) {
  const [name, setName] = useState('');
  const [format, setFormat] = useState<'tar.zst' | 'tar.gz'>('tar.zst');
  const [locked, setLocked] = useState(false);
  const start = async () => {
    const r = await api<BackupStarted>(`/servers/${encodeURIComponent(serverId)}/backups`, {
      method: 'POST',
      body: { ...(name.trim() ? { name: name.trim() } : {}), format, locked },
    });
    setName('');
    return r.operationId;
  };
  return (
    <StartOperationModal
      opened={opened}
      onClose={onClose}
      title="Create backup"
      submit={{ label: 'Create', testId: 'backup-create-submit', errorTestId: 'backup-create-error' }}
      start={start}
      onStarted={onStarted}
    >
      <TextInput
        label="Name"
        placeholder="optional"
        maxLength={191}
        value={name}
        onChange={(e) => setName(e.currentTarget.value)}
        data-testid="backup-name-input"
      />
      <div>
        <Text size="sm" fw={500} mb={4}>
          Format
        </Text>
        <SegmentedControl
          value={format}
          onChange={(v) => setFormat(v === 'tar.gz' ? 'tar.gz' : 'tar.zst')}
          data={[
            { value: 'tar.zst', label: 'tar.zst (fast)' },
            { value: 'tar.gz', label: 'tar.gz' },
          ]}
          data-testid="backup-format"
        />
      </div>
      <Checkbox
        label="Locked (kept by retention, cannot be deleted until unlocked)"
        checked={locked}
        onChange={(e) => setLocked(e.currentTarget.checked)}
        data-testid="backup-locked-input"
      />
    </StartOperationModal>
  );
}

function RestoreModal({
  backup,
  onClose,
  onStarted,
  serverId,
}: {
  backup: Backup | null;
  onClose: () => void;
  onStarted: (operationId: string) => void;
  serverId: string;
}) {
  const [truncate, setTruncate] = useState(false);
  const start = async () => {
    if (!backup) throw new Error('no backup chosen');
    const r = await api<{ operationId: string }>(
      `/servers/${encodeURIComponent(serverId)}/backups/${encodeURIComponent(backup.backupId)}/restore`,
      { method: 'POST', body: { truncate } },
    );
    setTruncate(false);
    return r.operationId;
  };
  return (
    <StartOperationModal
      opened={backup !== null}
      onClose={onClose}
      title="Restore backup"
      submit={{
        label: 'Restore',
        color: 'orange',
        testId: 'backup-restore-confirm',
        errorTestId: 'backup-restore-error',
      }}
      start={start}
      onStarted={onStarted}
    >
      <Text size="sm">
        Restore <b>{backup?.name ?? backup?.backupId}</b>? The server is stopped, the backup's files are
        written over the current ones, and it is started again if it was running.
      </Text>
      <Checkbox
        label="Delete the current files first (only after the archive was verified)"
        checked={truncate}
        onChange={(e) => setTruncate(e.currentTarget.checked)}
        data-testid="backup-restore-truncate"
      />
    </StartOperationModal>
  );
}
