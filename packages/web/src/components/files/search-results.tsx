import { Stack, Table, Text, UnstyledButton } from '@mantine/core';
import type { useFileSearch } from '../../api/queries.ts';
import { baseName, parentOf } from '../../lib/files.ts';
import { Empty, ErrorState, Loading } from '../states.tsx';

/** What the name search found under the folder (the Agent walks, links not followed). */
export function SearchResults({
  query,
  result,
  onOpen,
}: {
  query: string;
  result: ReturnType<typeof useFileSearch>;
  onOpen: (m: { path: string; type: string }) => void;
}) {
  if (result.isPending) return <Loading label={`Searching for “${query}”…`} />;
  if (result.isError)
    return <ErrorState error={result.error} title="Search failed" onRetry={() => result.refetch()} />;
  const { matches, truncated } = result.data;
  if (matches.length === 0) return <Empty title={`No names contain “${query}”`} />;
  return (
    <Stack gap="xs" data-testid="files-search-results">
      <Text size="sm" c="dimmed">
        {matches.length} match{matches.length === 1 ? '' : 'es'}
        {truncated ? ' (the search stopped early: narrow it down)' : ''}
      </Text>
      <Table verticalSpacing={4} aria-label="Search results">
        <Table.Tbody>
          {matches.map((m) => (
            <Table.Tr key={m.path} data-testid={`match-${m.path}`}>
              <Table.Td>
                <UnstyledButton onClick={() => onOpen(m)}>
                  <Text size="sm" ff="monospace" c={m.type === 'directory' ? 'cyan.3' : undefined}>
                    {m.type === 'directory' ? `${m.path}/` : m.path}
                  </Text>
                </UnstyledButton>
              </Table.Td>
              <Table.Td>
                <Text size="xs" c="dimmed">
                  {m.type} · {baseName(parentOf(m.path)) || '/'}
                </Text>
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Stack>
  );
}
