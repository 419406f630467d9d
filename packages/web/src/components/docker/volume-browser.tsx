/**
 * A Docker volume's files, read-only (issue 11): one page of a directory at a time (directories
 * first, sortable), a file opened as text (≤ 1 MiB, as the Panel reads it) or downloaded through a
 * ticket. Paths stay inside the volume on the Agent: a link that leads out answers
 * PATH_OUTSIDE_ROOT, shown as the error it is.
 */
import { Anchor, Breadcrumbs, Button, Code, Group, Modal, Select, Stack, Table, Text } from '@mantine/core';
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { api } from '../../api/http.ts';
import { formatBytes } from '../../lib/format.ts';
import { startDownload } from '../../lib/transfer.ts';
import { ErrorState, Loading } from '../states.tsx';
import { ActionError } from './common.tsx';

const PAGE = 100;

export interface VolumeEntry {
  name: string;
  type: 'file' | 'directory' | 'symlink' | 'other';
  size: number;
  mode: string;
  modifiedAt: string;
  target?: string;
}
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

const join = (dir: string, name: string) => `${dir.replace(/\/$/, '')}/${name}`;

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
  const [dir, setDir] = useState('/');
  const [offset, setOffset] = useState(0);
  const [sort, setSort] = useState<'name' | 'size' | 'modified'>('name');
  const [open, setOpen] = useState<string | null>(null);
  const [downloadError, setDownloadError] = useState<unknown>(null);
  const base = `/nodes/${encodeURIComponent(nodeId)}/volumes/${encodeURIComponent(volume ?? '')}`;
  const q = useQuery({
    queryKey: ['docker', nodeId, 'volume-files', volume, dir, offset, sort],
    queryFn: ({ signal }) =>
      api<VolumePage>(
        `${base}/files?path=${encodeURIComponent(dir)}&offset=${offset}&limit=${PAGE}&sort=${sort}&order=${sort === 'name' ? 'asc' : 'desc'}`,
        { signal },
      ),
    enabled: volume !== null,
    placeholderData: keepPreviousData,
    retry: false,
  });
  const go = (to: string) => {
    setDir(to);
    setOffset(0);
    setOpen(null);
  };
  async function download(path: string) {
    setDownloadError(null);
    try {
      const grant = await api<Grant>(`${base}/file-download`, { method: 'POST', body: { path } });
      await startDownload(grant, grant.name);
    } catch (e) {
      setDownloadError(e);
    }
  }
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
          <Select
            size="xs"
            w={140}
            value={sort}
            onChange={(v) => {
              setSort((v as typeof sort) ?? 'name');
              setOffset(0);
            }}
            data={[
              { value: 'name', label: 'By name' },
              { value: 'size', label: 'Largest first' },
              { value: 'modified', label: 'Newest first' },
            ]}
            aria-label="Sort"
            data-testid="volume-sort"
          />
        </Group>
        <ActionError error={downloadError} onClose={() => setDownloadError(null)} />
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
            <Table highlightOnHover aria-label="Volume files" fz="sm">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Name</Table.Th>
                  <Table.Th>Size</Table.Th>
                  <Table.Th>Mode</Table.Th>
                  <Table.Th>Modified</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {dir !== '/' ? (
                  <Table.Tr>
                    <Table.Td colSpan={4}>
                      <Anchor component="button" onClick={() => go(`/${parts.slice(0, -1).join('/')}`)}>
                        ..
                      </Anchor>
                    </Table.Td>
                  </Table.Tr>
                ) : null}
                {q.data.entries.map((e) => (
                  <Table.Tr key={e.name} data-testid="volume-entry" data-name={e.name} data-type={e.type}>
                    <Table.Td ff="monospace">
                      {e.type === 'directory' ? (
                        <Anchor component="button" onClick={() => go(join(q.data.path, e.name))}>
                          {e.name}/
                        </Anchor>
                      ) : e.type === 'other' ? (
                        e.name
                      ) : (
                        <Anchor component="button" onClick={() => setOpen(join(q.data.path, e.name))}>
                          {e.name}
                        </Anchor>
                      )}
                      {e.target !== undefined ? (
                        <Text span size="xs" c="dimmed" data-testid="volume-link-target">
                          {' '}
                          → {e.target}
                        </Text>
                      ) : null}
                    </Table.Td>
                    <Table.Td>{e.type === 'directory' ? '—' : formatBytes(e.size)}</Table.Td>
                    <Table.Td ff="monospace">{e.mode}</Table.Td>
                    <Table.Td fz="xs">{e.modifiedAt.slice(0, 19).replace('T', ' ')}</Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
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
    </Modal>
  );
}
