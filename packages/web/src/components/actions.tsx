import { Alert, Button, Group, Modal, Stack, Table, Text, Title } from '@mantine/core';
import { type ReactNode, useState } from 'react';
import { errorMessage } from '../api/http.ts';

/**
 * A tab's row actions: `run(fn)` clears the last refusal, runs the request, keeps its refusal to
 * show (ActionError) and refreshes the list whatever came of it.
 */
export function useRowAction(refresh: () => unknown): {
  error: string | null;
  clearError: () => void;
  run: (fn: () => Promise<unknown>) => Promise<void>;
} {
  const [error, setError] = useState<string | null>(null);
  const run = async (fn: () => Promise<unknown>) => {
    setError(null);
    try {
      await fn();
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      void refresh();
    }
  };
  return { error, clearError: () => setError(null), run };
}

/** The refusal of a row action, closable. */
export function ActionError({
  error,
  onClose,
  testId,
}: {
  error: string | null;
  onClose: () => void;
  testId: string;
}) {
  return error ? (
    <Alert color="red" data-testid={testId} withCloseButton onClose={onClose}>
      {error}
    </Alert>
  ) : null;
}

/** "Delete this?": Cancel, or the red button that closes the modal and then runs `onConfirm`. */
export function ConfirmDelete({
  opened,
  title,
  onCancel,
  onConfirm,
  confirmTestId,
  children,
}: {
  opened: boolean;
  title: string;
  onCancel: () => void;
  onConfirm: () => void;
  confirmTestId: string;
  children: ReactNode;
}) {
  return (
    <Modal opened={opened} onClose={onCancel} title={title}>
      <Stack>
        <Text size="sm">{children}</Text>
        <Group justify="flex-end">
          <Button variant="default" onClick={onCancel}>
            Cancel
          </Button>
          <Button
            color="red"
            data-testid={confirmTestId}
            onClick={() => {
              onCancel();
              onConfirm();
            }}
          >
            Delete
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}

export interface HistoryColumn<T> {
  header: string;
  cell: (row: T) => ReactNode;
}

/**
 * A history under a list (a schedule's runs, a webhook's deliveries): a title, then the rows newest
 * first as the Panel gives them, or a line saying there are none.
 */
export function HistoryTable<T>({
  title,
  testId,
  rows,
  empty,
  columns,
  rowKey,
  rowProps,
}: {
  title: ReactNode;
  testId: string;
  rows: readonly T[];
  empty: { text: string; testId?: string };
  columns: readonly HistoryColumn<T>[];
  rowKey: (row: T) => string;
  /** data-* attributes of a row (what tests read) */
  rowProps: (row: T) => Record<`data-${string}`, string>;
}) {
  return (
    <Stack gap="xs" data-testid={testId}>
      <Title order={5}>{title}</Title>
      {rows.length === 0 ? (
        <Text c="dimmed" size="sm" data-testid={empty.testId}>
          {empty.text}
        </Text>
      ) : (
        <Table>
          <Table.Thead>
            <Table.Tr>
              {columns.map((c) => (
                <Table.Th key={c.header}>{c.header}</Table.Th>
              ))}
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {rows.map((r) => (
              <Table.Tr key={rowKey(r)} {...rowProps(r)}>
                {columns.map((c) => (
                  <Table.Td key={c.header}>{c.cell(r)}</Table.Td>
                ))}
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Stack>
  );
}
