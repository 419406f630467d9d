import {
  Anchor,
  Breadcrumbs,
  Button,
  Code,
  Group,
  Paper,
  Stack,
  Table,
  Text,
  UnstyledButton,
} from '@mantine/core';
import { useState } from 'react';
import { FILES_PAGE_SIZE, useFileContent, useFiles } from '../api/queries.ts';
import { formatBytes } from '../lib/format.ts';
import { Empty, ErrorState, Loading } from './states.tsx';

const join = (dir: string, name: string) => (dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`);

const dirOf = (p: string) => p.slice(0, p.lastIndexOf('/')) || '/';

/** `logFile`: the game's log file from its template (`config.logs.location`), linked above the list. */
export function FilesTab({ serverId, logFile = null }: { serverId: string; logFile?: string | null }) {
  const [path, setPathState] = useState('/');
  const [offset, setOffset] = useState(0);
  const [open, setOpen] = useState<string | null>(null);
  // the Agent sends one sorted page at a time (directories first, then by name)
  const list = useFiles(serverId, path, offset);
  const setPath = (p: string) => {
    setPathState(p);
    setOffset(0);
  };
  const file = useFileContent(serverId, open);
  const parts = path.split('/').filter(Boolean);

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
              setPath(dirOf(logFile));
              setOpen(logFile);
            }}
            data-testid="open-log-file"
          >
            {logFile}
          </Anchor>
        </Text>
      ) : null}
      <Breadcrumbs aria-label="Current folder">
        <Anchor
          component="button"
          type="button"
          onClick={() => {
            setPath('/');
            setOpen(null);
          }}
        >
          /
        </Anchor>
        {parts.map((p, i) => (
          <Anchor
            key={`/${parts.slice(0, i + 1).join('/')}`}
            component="button"
            type="button"
            onClick={() => {
              setPath(`/${parts.slice(0, i + 1).join('/')}`);
              setOpen(null);
            }}
          >
            {p}
          </Anchor>
        ))}
      </Breadcrumbs>
      <Paper className="cap-glass" p="sm">
        {list.isPending ? (
          <Loading label="Listing files…" />
        ) : list.isError ? (
          <ErrorState error={list.error} title="Could not list files" onRetry={() => list.refetch()} />
        ) : list.data.total === 0 ? (
          <Empty title="This folder is empty" />
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
                  >
                    Previous
                  </Button>
                  <Button
                    size="compact-sm"
                    variant="default"
                    disabled={offset + FILES_PAGE_SIZE >= list.data.total}
                    onClick={() => setOffset(offset + FILES_PAGE_SIZE)}
                  >
                    Next
                  </Button>
                </Group>
              ) : null}
            </Group>
            <Table.ScrollContainer minWidth={480}>
              <Table verticalSpacing={4} highlightOnHover aria-label="Files">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Name</Table.Th>
                    <Table.Th>Size</Table.Th>
                    <Table.Th>Mode</Table.Th>
                    <Table.Th>Modified</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {list.data.entries.map((e) => (
                    <Table.Tr key={e.name} data-testid={`file-${e.name}`}>
                      <Table.Td>
                        {e.type === 'directory' || e.type === 'file' ? (
                          <UnstyledButton
                            onClick={() =>
                              e.type === 'directory'
                                ? setPath(join(path, e.name))
                                : setOpen(join(path, e.name))
                            }
                            aria-label={`${e.type === 'directory' ? 'Open folder' : 'View file'} ${e.name}`}
                          >
                            <Text size="sm" c={e.type === 'directory' ? 'cyan.3' : undefined} ff="monospace">
                              {e.type === 'directory' ? `${e.name}/` : e.name}
                            </Text>
                          </UnstyledButton>
                        ) : (
                          <Text size="sm" ff="monospace" c="dimmed">
                            {e.name} ({e.type})
                          </Text>
                        )}
                      </Table.Td>
                      <Table.Td>{e.type === 'directory' ? '—' : formatBytes(e.size)}</Table.Td>
                      <Table.Td>
                        <Code>{e.mode}</Code>
                      </Table.Td>
                      <Table.Td>{new Date(e.modifiedAt).toLocaleString()}</Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
          </Stack>
        )}
      </Paper>
      {open ? (
        <Paper className="cap-glass" p="sm" data-testid="file-viewer">
          <Group justify="space-between" mb="xs">
            <Text fw={600} ff="monospace" size="sm">
              {open}
            </Text>
            <Anchor component="button" type="button" onClick={() => setOpen(null)} size="sm">
              Close
            </Anchor>
          </Group>
          {file.isPending ? (
            <Loading label="Reading file…" />
          ) : file.isError ? (
            <ErrorState error={file.error} title="Could not read the file" />
          ) : file.data.encoding === 'base64' ? (
            <Text size="sm" c="dimmed">
              Binary file, {formatBytes(file.data.size)}: not shown.
            </Text>
          ) : (
            // React escapes text: file content is never interpreted as HTML
            <Code block className="cap-file-view" data-testid="file-content">
              {file.data.content}
            </Code>
          )}
        </Paper>
      ) : null}
    </Stack>
  );
}
