import {
  ActionIcon,
  Alert,
  Badge,
  Button,
  Checkbox,
  Code,
  Group,
  Modal,
  NativeSelect,
  NumberInput,
  SegmentedControl,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api, errorMessage } from '../api/http.ts';
import { keys, useScheduleRuns, useSchedules } from '../api/queries.ts';
import type { Permission, Schedule, ScheduleInput, ScheduleRun, ScheduleTask } from '../api/types.ts';
import { ActionError, ConfirmDelete, HistoryTable, useRowAction } from './actions.tsx';
import { ErrorState, Loading } from './states.tsx';

type Action = ScheduleTask['action'];
type Power = 'start' | 'stop' | 'restart' | 'kill';

/** A task as the form edits it (UI-only: every field present, the action's own one used). */
interface TaskDraft {
  action: Action;
  command: string;
  power: Power;
  retain: number | '';
  offsetSeconds: number;
  continueOnFailure: boolean;
}

interface Draft {
  name: string;
  kind: 'cron' | 'interval';
  cron: string;
  intervalMinutes: number;
  timezone: string;
  onlyWhenOnline: boolean;
  enabled: boolean;
  tasks: TaskDraft[];
}

const ACTIONS: { value: Action; label: string }[] = [
  { value: 'command', label: 'Send a command' },
  { value: 'power', label: 'Power action' },
  { value: 'backup', label: 'Make a backup' },
  { value: 'reinstall', label: 'Reinstall' },
  { value: 'update', label: 'Update the image' },
];

const blankTask = (): TaskDraft => ({
  action: 'command',
  command: '',
  power: 'restart',
  retain: '',
  offsetSeconds: 0,
  continueOnFailure: false,
});

function browserZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

function draftOf(s: Schedule | null): Draft {
  if (!s)
    return {
      name: '',
      kind: 'cron',
      cron: '0 4 * * *',
      intervalMinutes: 60,
      timezone: browserZone(),
      onlyWhenOnline: false,
      enabled: true,
      tasks: [blankTask()],
    };
  return {
    name: s.name,
    kind: s.cron === null ? 'interval' : 'cron',
    cron: s.cron ?? '0 4 * * *',
    intervalMinutes: s.intervalSeconds === null ? 60 : Math.round(s.intervalSeconds / 60),
    timezone: s.timezone,
    onlyWhenOnline: s.onlyWhenOnline,
    enabled: s.enabled,
    tasks: s.tasks.map((t) => ({
      ...blankTask(),
      action: t.action,
      offsetSeconds: t.offsetSeconds ?? 0,
      continueOnFailure: t.continueOnFailure ?? false,
      ...(t.action === 'command' ? { command: t.command } : {}),
      ...(t.action === 'power' ? { power: t.power } : {}),
      ...(t.action === 'backup' && t.retain !== undefined ? { retain: t.retain } : {}),
    })),
  };
}

function taskOf(t: TaskDraft): ScheduleInput['tasks'][number] {
  const base = { offsetSeconds: t.offsetSeconds, continueOnFailure: t.continueOnFailure };
  switch (t.action) {
    case 'command':
      return { action: 'command', command: t.command, ...base };
    case 'power':
      return { action: 'power', power: t.power, ...base };
    case 'backup':
      return { action: 'backup', ...(t.retain === '' ? {} : { retain: t.retain }), ...base };
    case 'reinstall':
      return { action: 'reinstall', ...base };
    case 'update':
      return { action: 'update', ...base };
  }
}

export function triggerText(s: Pick<Schedule, 'cron' | 'intervalSeconds' | 'timezone'>): string {
  if (s.cron !== null) return `cron ${s.cron} (${s.timezone})`;
  const sec = s.intervalSeconds ?? 0;
  if (sec % 3600 === 0) return `every ${sec / 3600} h`;
  if (sec % 60 === 0) return `every ${sec / 60} min`;
  return `every ${sec} s`;
}

function taskText(t: ScheduleTask): string {
  const after = t.offsetSeconds ? ` (+${t.offsetSeconds} s)` : '';
  switch (t.action) {
    case 'command':
      return `command “${t.command}”${after}`;
    case 'power':
      return `${t.power}${after}`;
    case 'backup':
      return `backup${t.retain ? ` (keep ${t.retain})` : ''}${after}`;
    case 'reinstall':
      return `reinstall${after}`;
    case 'update':
      return `image update${after}`;
  }
}

const when = (iso: string | null) => (iso ? new Date(iso).toLocaleString() : '—');
const stateColor = (s: string) =>
  s === 'completed' || s === 'ok'
    ? 'teal'
    : s === 'failed' || s === 'interrupted'
      ? 'red'
      : s === 'running'
        ? 'blue'
        : 'gray';

/**
 * The Schedules tab: the server's schedules with their trigger, next run and last run; create and
 * edit (cron in a time zone or an interval; tasks in order with offsets), enable/disable, run now
 * and each schedule's history with every task's result. Controls show with their `schedule.*`
 * permission; the Panel also checks each task's own permission.
 */
export function SchedulesTab({
  serverId,
  permissions,
}: {
  serverId: string;
  permissions: readonly Permission[];
}) {
  const can = (p: Permission) => permissions.includes(p);
  const list = useSchedules(serverId, can('schedule.read'));
  const qc = useQueryClient();
  const [editing, setEditing] = useState<Schedule | 'new' | null>(null);
  const [history, setHistory] = useState<string | null>(null);
  const [deleting, setDeleting] = useState<Schedule | null>(null);
  const refresh = () => qc.invalidateQueries({ queryKey: keys.schedules(serverId) });
  const path = (id: string) => `/servers/${encodeURIComponent(serverId)}/schedules/${encodeURIComponent(id)}`;
  const { error, clearError, run: act } = useRowAction(refresh);
  const runNow = (s: Schedule) =>
    act(async () => {
      await api(`${path(s.id)}/run`, { method: 'POST' });
      setHistory(s.id);
      void qc.invalidateQueries({ queryKey: keys.scheduleRuns(serverId, s.id) });
    });
  const setEnabled = (s: Schedule, enabled: boolean) =>
    act(() => api(path(s.id), { method: 'PATCH', body: { enabled } }));

  if (!can('schedule.read')) return <Text c="dimmed">You may not see this server's schedules.</Text>;
  if (list.isLoading) return <Loading />;
  if (list.error) return <ErrorState error={list.error} />;
  const schedules = list.data ?? [];
  const shown = schedules.find((s) => s.id === history) ?? null;

  return (
    <Stack data-testid="schedules-tab">
      <Group justify="space-between">
        <Title order={4}>Schedules</Title>
        {can('schedule.create') ? (
          <Button onClick={() => setEditing('new')} data-testid="schedule-new">
            New schedule
          </Button>
        ) : null}
      </Group>
      <ActionError error={error} onClose={clearError} testId="schedule-error" />
      {schedules.length === 0 ? (
        <Text c="dimmed" data-testid="schedules-empty">
          No schedules yet.
        </Text>
      ) : (
        <Table.ScrollContainer minWidth={900}>
          <Table data-testid="schedules-table">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>When</Table.Th>
                <Table.Th>Tasks</Table.Th>
                <Table.Th>Next run</Table.Th>
                <Table.Th>Last run</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {schedules.map((s) => (
                <Table.Tr key={s.id} data-testid={`schedule-row-${s.id}`} data-name={s.name}>
                  <Table.Td>
                    <Group gap="xs">
                      <Text size="sm" data-testid="schedule-name">
                        {s.name}
                      </Text>
                      {s.enabled ? null : (
                        <Badge size="xs" color="gray" data-testid="schedule-disabled">
                          disabled
                        </Badge>
                      )}
                      {s.onlyWhenOnline ? (
                        <Badge size="xs" variant="outline">
                          only when online
                        </Badge>
                      ) : null}
                    </Group>
                  </Table.Td>
                  <Table.Td>
                    <Code data-testid="schedule-trigger">{triggerText(s)}</Code>
                  </Table.Td>
                  <Table.Td>
                    <Text size="xs" data-testid="schedule-tasks">
                      {s.tasks.map(taskText).join(' → ')}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    <Text
                      size="sm"
                      data-testid="schedule-next"
                      data-next={s.nextRunAt ?? ''}
                      title={s.nextRunAt ?? ''}
                    >
                      {when(s.nextRunAt)}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    {s.running ? (
                      <Badge color="blue" data-testid="schedule-last">
                        running
                      </Badge>
                    ) : s.lastRun ? (
                      <Badge
                        color={stateColor(s.lastRun.state)}
                        data-testid="schedule-last"
                        title={when(s.lastRun.startedAt)}
                      >
                        {s.lastRun.state}
                      </Badge>
                    ) : (
                      <Text size="sm" c="dimmed" data-testid="schedule-last">
                        never
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td>
                    <Group gap="xs" wrap="nowrap" justify="flex-end">
                      {can('schedule.update') ? (
                        <>
                          <Button
                            size="xs"
                            onClick={() => void runNow(s)}
                            disabled={s.running}
                            data-testid="schedule-run"
                          >
                            Run now
                          </Button>
                          <Button
                            size="xs"
                            variant="default"
                            onClick={() => void setEnabled(s, !s.enabled)}
                            data-testid="schedule-toggle"
                          >
                            {s.enabled ? 'Disable' : 'Enable'}
                          </Button>
                          <Button
                            size="xs"
                            variant="default"
                            onClick={() => setEditing(s)}
                            data-testid="schedule-edit"
                          >
                            Edit
                          </Button>
                        </>
                      ) : null}
                      <Button
                        size="xs"
                        variant={history === s.id ? 'filled' : 'light'}
                        onClick={() => setHistory(history === s.id ? null : s.id)}
                        data-testid="schedule-history"
                      >
                        History
                      </Button>
                      {can('schedule.delete') ? (
                        <Button
                          size="xs"
                          color="red"
                          variant="light"
                          onClick={() => setDeleting(s)}
                          data-testid="schedule-delete"
                        >
                          Delete
                        </Button>
                      ) : null}
                    </Group>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      {shown ? <RunHistory serverId={serverId} schedule={shown} /> : null}
      <ScheduleModal
        key={editing === null ? 'closed' : editing === 'new' ? 'new' : editing.id}
        serverId={serverId}
        editing={editing}
        onClose={() => setEditing(null)}
        onSaved={() => {
          setEditing(null);
          void refresh();
        }}
      />
      <ConfirmDelete
        opened={deleting !== null}
        title="Delete schedule"
        onCancel={() => setDeleting(null)}
        onConfirm={() => {
          const d = deleting;
          if (d) void act(() => api(path(d.id), { method: 'DELETE' }));
        }}
        confirmTestId="schedule-delete-confirm"
      >
        Delete <b>{deleting?.name}</b> and its history?
      </ConfirmDelete>
    </Stack>
  );
}

function RunHistory({ serverId, schedule }: { serverId: string; schedule: Schedule }) {
  const runs = useScheduleRuns(serverId, schedule.id);
  if (runs.isLoading) return <Loading />;
  if (runs.error) return <ErrorState error={runs.error} />;
  const list: ScheduleRun[] = runs.data ?? [];
  return (
    <HistoryTable
      title={`History of ${schedule.name}`}
      testId="schedule-runs"
      rows={list}
      empty={{ text: 'No runs yet.', testId: 'schedule-runs-empty' }}
      rowKey={(r) => r.id}
      rowProps={(r) => ({ 'data-testid': 'schedule-run-row', 'data-state': r.state })}
      columns={[
        { header: 'Started', cell: (r) => when(r.startedAt) },
        { header: 'Trigger', cell: (r) => r.trigger.replace('_', '-') },
        {
          header: 'State',
          cell: (r) => (
            <>
              <Badge color={stateColor(r.state)} data-testid="schedule-run-state">
                {r.state}
              </Badge>
              {r.message ? (
                <Text size="xs" c="dimmed">
                  {r.message}
                </Text>
              ) : null}
            </>
          ),
        },
        {
          header: 'Tasks',
          cell: (r) => (
            <Stack gap={2}>
              {r.tasks.map((t) => (
                <Group
                  key={t.index}
                  gap="xs"
                  wrap="nowrap"
                  data-testid="schedule-run-task"
                  data-result={t.result}
                >
                  <Badge size="xs" color={stateColor(t.result)}>
                    {t.result}
                  </Badge>
                  <Text size="xs">
                    {t.index + 1}. {t.action}
                    {t.message ? `: ${t.message}` : ''}
                  </Text>
                </Group>
              ))}
            </Stack>
          ),
        },
      ]}
    />
  );
}

function ScheduleModal({
  serverId,
  editing,
  onClose,
  onSaved,
}: {
  serverId: string;
  editing: Schedule | 'new' | null;
  onClose: () => void;
  onSaved: () => void;
}) {
  const [d, setD] = useState<Draft>(() => draftOf(editing === 'new' || editing === null ? null : editing));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const set = (patch: Partial<Draft>) => setD((x) => ({ ...x, ...patch }));
  const setTask = (i: number, patch: Partial<TaskDraft>) =>
    setD((x) => ({ ...x, tasks: x.tasks.map((t, j) => (j === i ? { ...t, ...patch } : t)) }));
  const move = (i: number, by: number) =>
    setD((x) => {
      const tasks = [...x.tasks];
      const [t] = tasks.splice(i, 1);
      if (t) tasks.splice(Math.max(0, Math.min(tasks.length, i + by)), 0, t);
      return { ...x, tasks };
    });

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const trigger =
      d.kind === 'cron'
        ? { cron: d.cron.trim(), intervalSeconds: null }
        : { cron: null, intervalSeconds: Math.round(d.intervalMinutes * 60) };
    const body = {
      name: d.name,
      timezone: d.timezone.trim(),
      onlyWhenOnline: d.onlyWhenOnline,
      enabled: d.enabled,
      tasks: d.tasks.map(taskOf),
    };
    try {
      if (editing === 'new' || editing === null) {
        await api(`/servers/${encodeURIComponent(serverId)}/schedules`, {
          method: 'POST',
          body: {
            ...body,
            ...(trigger.cron === null
              ? { intervalSeconds: trigger.intervalSeconds }
              : { cron: trigger.cron }),
          },
        });
      } else {
        await api(`/servers/${encodeURIComponent(serverId)}/schedules/${encodeURIComponent(editing.id)}`, {
          method: 'PATCH',
          body: { ...body, ...trigger },
        });
      }
      onSaved();
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal
      opened={editing !== null}
      onClose={onClose}
      title={editing === 'new' ? 'New schedule' : 'Edit schedule'}
      size="xl"
    >
      <form onSubmit={submit} data-testid="schedule-form">
        <Stack>
          {error ? (
            <Alert color="red" data-testid="schedule-form-error">
              {error}
            </Alert>
          ) : null}
          <TextInput
            label="Name"
            required
            maxLength={191}
            value={d.name}
            onChange={(e) => set({ name: e.currentTarget.value })}
            data-testid="schedule-form-name"
          />
          <SegmentedControl
            value={d.kind}
            onChange={(v) => set({ kind: v === 'interval' ? 'interval' : 'cron' })}
            data={[
              { value: 'cron', label: 'Cron expression' },
              { value: 'interval', label: 'Every N minutes' },
            ]}
            data-testid="schedule-form-kind"
          />
          {d.kind === 'cron' ? (
            <Group grow align="flex-start">
              <TextInput
                label="Cron (minute hour day month weekday)"
                description="e.g. 0 4 * * * for 04:00 every day, or @hourly"
                value={d.cron}
                onChange={(e) => set({ cron: e.currentTarget.value })}
                data-testid="schedule-form-cron"
              />
              <TextInput
                label="Time zone"
                description="IANA name, e.g. Europe/Berlin or UTC"
                value={d.timezone}
                onChange={(e) => set({ timezone: e.currentTarget.value })}
                data-testid="schedule-form-timezone"
              />
            </Group>
          ) : (
            <NumberInput
              label="Every (minutes)"
              min={1}
              max={527_040}
              value={d.intervalMinutes}
              onChange={(v) => set({ intervalMinutes: typeof v === 'number' ? v : Number(v) || 1 })}
              data-testid="schedule-form-interval"
            />
          )}
          <Group>
            <Checkbox
              label="Only when the server is running"
              checked={d.onlyWhenOnline}
              onChange={(e) => set({ onlyWhenOnline: e.currentTarget.checked })}
              data-testid="schedule-form-online"
            />
            <Checkbox
              label="Enabled"
              checked={d.enabled}
              onChange={(e) => set({ enabled: e.currentTarget.checked })}
              data-testid="schedule-form-enabled"
            />
          </Group>
          <Title order={6}>Tasks, in order</Title>
          {d.tasks.map((t, i) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: tasks have no identity of their own
            <Group key={i} align="flex-end" wrap="nowrap" data-testid={`schedule-task-${i}`}>
              <Text size="sm" w={20}>
                {i + 1}.
              </Text>
              <NativeSelect
                label="Action"
                data={ACTIONS}
                value={t.action}
                onChange={(e) => setTask(i, { action: e.currentTarget.value as Action })}
                data-testid="task-action"
              />
              {t.action === 'command' ? (
                <TextInput
                  label="Command"
                  required
                  maxLength={4096}
                  style={{ flex: 1 }}
                  value={t.command}
                  onChange={(e) => setTask(i, { command: e.currentTarget.value })}
                  data-testid="task-command"
                />
              ) : null}
              {t.action === 'power' ? (
                <NativeSelect
                  label="Power"
                  data={['start', 'stop', 'restart', 'kill']}
                  value={t.power}
                  onChange={(e) => setTask(i, { power: e.currentTarget.value as Power })}
                  data-testid="task-power"
                />
              ) : null}
              {t.action === 'backup' ? (
                <NumberInput
                  label="Keep newest (optional)"
                  min={1}
                  max={1000}
                  value={t.retain}
                  onChange={(v) => setTask(i, { retain: typeof v === 'number' ? v : '' })}
                  data-testid="task-retain"
                />
              ) : null}
              <NumberInput
                label="After (s)"
                min={0}
                max={900}
                w={100}
                value={t.offsetSeconds}
                onChange={(v) => setTask(i, { offsetSeconds: typeof v === 'number' ? v : 0 })}
                data-testid="task-offset"
              />
              <Checkbox
                label="Go on if it fails"
                checked={t.continueOnFailure}
                onChange={(e) => setTask(i, { continueOnFailure: e.currentTarget.checked })}
                mb={8}
              />
              <ActionIcon
                variant="default"
                aria-label="Move up"
                disabled={i === 0}
                onClick={() => move(i, -1)}
                mb={4}
              >
                ↑
              </ActionIcon>
              <ActionIcon
                variant="default"
                aria-label="Remove task"
                disabled={d.tasks.length === 1}
                onClick={() => setD((x) => ({ ...x, tasks: x.tasks.filter((_, j) => j !== i) }))}
                data-testid="task-remove"
                mb={4}
              >
                ×
              </ActionIcon>
            </Group>
          ))}
          <Group justify="space-between">
            <Button
              variant="default"
              onClick={() => setD((x) => ({ ...x, tasks: [...x.tasks, blankTask()] }))}
              disabled={d.tasks.length >= 20}
              data-testid="schedule-task-add"
            >
              Add task
            </Button>
            <Group>
              <Button variant="default" onClick={onClose}>
                Cancel
              </Button>
              <Button type="submit" loading={busy} data-testid="schedule-form-save">
                Save
              </Button>
            </Group>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
