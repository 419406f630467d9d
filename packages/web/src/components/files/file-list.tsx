import { ActionIcon, Checkbox, Code, Menu, Table, Text, UnstyledButton } from '@mantine/core';
import { memo, useCallback, useMemo, useRef } from 'react';
import type { FileSort, SortOrder } from '../../api/queries.ts';
import type { FileEntry } from '../../api/types.ts';
import { isArchiveName, modeString } from '../../lib/files.ts';
import { formatBytes } from '../../lib/format.ts';

export interface RowActions {
  open?: (e: FileEntry) => void;
  download?: (e: FileEntry) => void;
  rename?: (e: FileEntry) => void;
  copy?: (e: FileEntry) => void;
  chmod?: (e: FileEntry) => void;
  decompress?: (e: FileEntry) => void;
  remove?: (e: FileEntry) => void;
}

function SortHeader({
  label,
  by,
  sort,
  order,
  onSort,
}: {
  label: string;
  by: FileSort;
  sort: FileSort;
  order: SortOrder;
  onSort: (by: FileSort, order: SortOrder) => void;
}) {
  const active = sort === by;
  return (
    <Table.Th aria-sort={active ? (order === 'asc' ? 'ascending' : 'descending') : 'none'}>
      <UnstyledButton
        onClick={() => onSort(by, active && order === 'asc' ? 'desc' : 'asc')}
        data-testid={`files-sort-${by}`}
      >
        <Text size="sm" fw={600}>
          {label} {active ? (order === 'asc' ? '▲' : '▼') : ''}
        </Text>
      </UnstyledButton>
    </Table.Th>
  );
}

/** An entry; a Docker volume's symlinks carry their `target` (the link's own text). */
export type ListedEntry = FileEntry & { target?: string };

/**
 * One page of a folder: sortable columns, checkboxes (with select all), a menu of actions per row.
 * The server Files tab and a Docker volume's browser both show their folders with it.
 * `folderDownload: false`: no download offered for folders (a volume's files download one by one).
 */
export function FileList({
  entries,
  sort,
  order,
  onSort,
  selected,
  onSelect,
  selectable,
  actions,
  folderDownload = true,
}: {
  entries: ListedEntry[];
  folderDownload?: boolean;
  sort: FileSort;
  order: SortOrder;
  onSort: (by: FileSort, order: SortOrder) => void;
  selected: ReadonlySet<string>;
  onSelect: (names: string[], on: boolean) => void;
  selectable: boolean;
  actions: RowActions;
}) {
  // rows are memoised (a page is up to 200 of them): they get callbacks that never change and
  // call the latest ones; the set of actions offered (by permission) is part of their props
  const latest = useRef({ actions, onSelect });
  latest.current = { actions, onSelect };
  const offered = ACTION_KEYS.filter((k) => actions[k] !== undefined).join(',');
  const stable = useMemo(() => {
    const out: RowActions = {};
    for (const k of offered.split(',').filter(isActionKey))
      out[k] = (e: FileEntry) => latest.current.actions[k]?.(e);
    return out;
  }, [offered]);
  const check = useCallback((name: string, on: boolean) => latest.current.onSelect([name], on), []);
  const all = entries.length > 0 && entries.every((e) => selected.has(e.name));
  const some = entries.some((e) => selected.has(e.name));
  return (
    <Table.ScrollContainer minWidth={560}>
      <Table verticalSpacing={4} highlightOnHover aria-label="Files">
        <Table.Thead>
          <Table.Tr>
            {selectable ? (
              <Table.Th w={32}>
                <Checkbox
                  aria-label="Select all"
                  checked={all}
                  indeterminate={some && !all}
                  onChange={() =>
                    onSelect(
                      entries.map((e) => e.name),
                      !all,
                    )
                  }
                  data-testid="files-select-all"
                />
              </Table.Th>
            ) : null}
            <SortHeader label="Name" by="name" sort={sort} order={order} onSort={onSort} />
            <SortHeader label="Size" by="size" sort={sort} order={order} onSort={onSort} />
            <Table.Th>Mode</Table.Th>
            <SortHeader label="Modified" by="modified" sort={sort} order={order} onSort={onSort} />
            <Table.Th w={40} />
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {entries.map((e) => (
            <FileRow
              key={e.name}
              entry={e}
              selectable={selectable}
              checked={selected.has(e.name)}
              onCheck={check}
              actions={stable}
              folderDownload={folderDownload}
            />
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

const ACTION_KEYS = ['open', 'download', 'rename', 'copy', 'chmod', 'decompress', 'remove'] as const;
type ActionKey = (typeof ACTION_KEYS)[number];
const isActionKey = (k: string): k is ActionKey => (ACTION_KEYS as readonly string[]).includes(k);

const FileRow = memo(function FileRow({
  entry: e,
  selectable,
  checked,
  onCheck,
  actions,
  folderDownload,
}: {
  entry: ListedEntry;
  selectable: boolean;
  checked: boolean;
  onCheck: (name: string, on: boolean) => void;
  actions: RowActions;
  folderDownload: boolean;
}) {
  const isDir = e.type === 'directory';
  // a link whose target is known (a volume's) opens as what it points at; the Agent refuses one
  // that leads out
  const opens = isDir || ((e.type === 'file' || e.target !== undefined) && actions.open);
  const items: { label: string; run: ((x: FileEntry) => void) | undefined; color?: string }[] = [
    {
      label: isDir ? 'Download as .tar.gz' : 'Download',
      run: isDir && !folderDownload ? undefined : actions.download,
    },
    { label: 'Rename / move', run: actions.rename },
    { label: 'Copy', run: actions.copy },
    { label: 'Permissions', run: actions.chmod },
    {
      label: 'Decompress here',
      run: e.type === 'file' && isArchiveName(e.name) ? actions.decompress : undefined,
    },
    { label: 'Delete', run: actions.remove, color: 'red' },
  ];
  const shown = items.filter(
    (i) => i.run && (e.type === 'file' || e.type === 'directory' || i.label !== 'Download'),
  );
  return (
    <Table.Tr
      data-testid={`file-${e.name}`}
      data-type={e.type}
      bg={checked ? 'var(--mantine-color-dark-5)' : undefined}
    >
      {selectable ? (
        <Table.Td>
          <Checkbox
            aria-label={`Select ${e.name}`}
            checked={checked}
            onChange={(ev) => onCheck(e.name, ev.currentTarget.checked)}
            data-testid={`select-${e.name}`}
          />
        </Table.Td>
      ) : null}
      <Table.Td>
        {opens ? (
          <UnstyledButton
            onClick={() => actions.open?.(e)}
            aria-label={`${isDir ? 'Open folder' : 'View file'} ${e.name}`}
          >
            <Text size="sm" c={isDir ? 'cyan.3' : undefined} ff="monospace">
              {isDir ? `${e.name}/` : e.name}
            </Text>
          </UnstyledButton>
        ) : (
          <Text size="sm" ff="monospace" c={e.type === 'file' ? undefined : 'dimmed'}>
            {e.name}
            {e.type === 'file' || e.target !== undefined ? '' : ` (${e.type})`}
          </Text>
        )}
        {e.target !== undefined ? (
          <Text span size="xs" c="dimmed" ff="monospace" data-testid="file-link-target">
            {' '}
            → {e.target}
          </Text>
        ) : null}
      </Table.Td>
      <Table.Td>{isDir ? '—' : formatBytes(e.size)}</Table.Td>
      <Table.Td>
        <Code title={modeString(e.mode)}>{e.mode}</Code>
      </Table.Td>
      <Table.Td>{new Date(e.modifiedAt).toLocaleString()}</Table.Td>
      <Table.Td>
        {shown.length > 0 ? (
          <Menu position="bottom-end" withinPortal>
            <Menu.Target>
              <ActionIcon
                variant="subtle"
                aria-label={`Actions for ${e.name}`}
                data-testid={`actions-${e.name}`}
              >
                ⋯
              </ActionIcon>
            </Menu.Target>
            <Menu.Dropdown>
              {shown.map((i) => (
                <Menu.Item key={i.label} color={i.color} onClick={() => i.run?.(e)}>
                  {i.label}
                </Menu.Item>
              ))}
            </Menu.Dropdown>
          </Menu>
        ) : null}
      </Table.Td>
    </Table.Tr>
  );
});
