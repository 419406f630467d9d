import { Anchor, Badge, Button, Code, Group, Paper, Stack, Table, Text, Title } from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { type ChangeEvent, useRef, useState } from 'react';
import { Link } from 'react-router';
import { useAuth } from '../api/auth.tsx';
import { ApiError, api, errorCode, errorMessage } from '../api/http.ts';
import { keys, useTemplates } from '../api/queries.ts';
import type { ImportResult } from '../api/types.ts';
import { Empty, ErrorState, Loading } from '../components/states.tsx';

/** One uploaded file's outcome, kept so a CONFLICT can be retried as a replace. */
type Outcome =
  | { file: string; ok: true; result: ImportResult }
  | { file: string; ok: false; code: string; message: string; location?: string; content: string };

const MAX_FILE_BYTES = 4 * 1024 * 1024;

async function importOne(file: string, content: string, replace: boolean): Promise<Outcome> {
  try {
    const result = await api<ImportResult>(`/templates/import${replace ? '?replace=true' : ''}`, {
      method: 'POST',
      body: { content, filename: file },
    });
    return { file, ok: true, result };
  } catch (e) {
    return {
      file,
      ok: false,
      code: errorCode(e),
      message: errorMessage(e),
      ...(e instanceof ApiError && e.location ? { location: e.location } : {}),
      content,
    };
  }
}

function ImportOutcome({ o, onReplace }: { o: Outcome; onReplace: (o: Outcome) => void }) {
  const slug = o.file.replace(/[^a-z0-9]+/gi, '-');
  if (o.ok)
    return (
      <Paper p="sm" withBorder data-testid={`import-ok-${slug}`}>
        <Group justify="space-between">
          <Text size="sm">
            <Badge color="teal" variant="light" mr="xs">
              {o.result.replaced ? 'replaced' : 'imported'}
            </Badge>
            {o.file} →{' '}
            <Anchor component={Link} to={`/templates/${o.result.template.id}`}>
              {o.result.template.name}
            </Anchor>{' '}
            <Text span c="dimmed" size="xs">
              ({o.result.template.format}, {o.result.template.variables} variable(s))
            </Text>
          </Text>
        </Group>
        {o.result.warnings.length ? (
          <Stack gap={2} mt={6}>
            {o.result.warnings.map((w) => (
              <Text key={`${w.location}:${w.message}`} size="xs" c="yellow.4">
                warning at <Code>{w.location}</Code>: {w.message}
              </Text>
            ))}
          </Stack>
        ) : null}
      </Paper>
    );
  return (
    <Paper
      p="sm"
      withBorder
      style={{ borderColor: 'var(--mantine-color-red-8)' }}
      data-testid={`import-error-${slug}`}
    >
      <Stack gap={4}>
        <Text size="sm">
          <Badge color="red" variant="light" mr="xs">
            rejected
          </Badge>
          {o.file}
        </Text>
        <Text size="sm">
          <Code data-testid="import-error-code">{o.code}</Code>
          {o.location ? (
            <>
              {' '}
              at <Code data-testid="import-error-location">{o.location}</Code>
            </>
          ) : null}{' '}
          {o.message}
        </Text>
        {o.code === 'CONFLICT' ? (
          <Group>
            <Button size="xs" variant="light" onClick={() => onReplace(o)} data-testid="import-replace">
              Replace the existing template
            </Button>
          </Group>
        ) : null}
      </Stack>
    </Paper>
  );
}

export function TemplatesPage() {
  const { canWrite } = useAuth();
  const q = useTemplates();
  const qc = useQueryClient();
  const input = useRef<HTMLInputElement>(null);
  const [busy, setBusy] = useState(false);
  const [outcomes, setOutcomes] = useState<Outcome[]>([]);
  const [deleteError, setDeleteError] = useState<unknown>(null);

  async function onFiles(e: ChangeEvent<HTMLInputElement>) {
    const files = [...(e.currentTarget.files ?? [])];
    e.currentTarget.value = '';
    if (!files.length) return;
    setBusy(true);
    try {
      const results: Outcome[] = [];
      // one at a time: the outcome list reads in the order the files were chosen
      for (const f of files) {
        if (f.size > MAX_FILE_BYTES) {
          results.push({
            file: f.name,
            ok: false,
            code: 'TOO_LARGE',
            message: `the file is larger than ${MAX_FILE_BYTES / 1024 / 1024} MiB`,
            content: '',
          });
          continue;
        }
        results.push(await importOne(f.name, await f.text(), false));
      }
      setOutcomes(results);
      await qc.invalidateQueries({ queryKey: keys.templates });
    } finally {
      setBusy(false);
    }
  }

  async function replace(o: Outcome) {
    if (o.ok) return;
    const next = await importOne(o.file, o.content, true);
    setOutcomes((all) => all.map((x) => (x === o ? next : x)));
    await qc.invalidateQueries({ queryKey: keys.templates });
  }

  async function remove(id: string, name: string) {
    if (!window.confirm(`Delete template ${name}?`)) return;
    setDeleteError(null);
    try {
      await api(`/templates/${encodeURIComponent(id)}`, { method: 'DELETE' });
      await qc.invalidateQueries({ queryKey: keys.templates });
    } catch (e) {
      setDeleteError(e);
    }
  }

  return (
    <Stack gap="lg" data-testid="page-templates">
      <Group justify="space-between">
        <Stack gap={2}>
          <Title order={2}>Templates</Title>
          <Text size="sm" c="dimmed">
            Pterodactyl and Pelican eggs (PTDL_v1/v2, PLCN_v1–v3; JSON or YAML), imported as published.
          </Text>
        </Stack>
        {canWrite ? (
          <>
            <input
              ref={input}
              type="file"
              accept=".json,.yaml,.yml,application/json"
              multiple
              hidden
              onChange={onFiles}
              data-testid="template-file-input"
            />
            <Button loading={busy} onClick={() => input.current?.click()} data-testid="template-upload">
              Import egg files
            </Button>
          </>
        ) : null}
      </Group>
      {outcomes.length ? (
        <Stack gap="xs" data-testid="import-outcomes">
          {outcomes.map((o) => (
            <ImportOutcome key={o.file} o={o} onReplace={replace} />
          ))}
        </Stack>
      ) : null}
      {deleteError ? <ErrorState error={deleteError} title="Could not delete the template" /> : null}
      {q.isPending ? (
        <Loading label="Loading templates…" />
      ) : q.isError ? (
        <ErrorState error={q.error} title="Could not load templates" onRetry={() => q.refetch()} />
      ) : q.data.length === 0 ? (
        <Paper className="cap-glass" p="md">
          <Empty title="No templates yet">Import an egg file to create servers from it.</Empty>
        </Paper>
      ) : (
        <Paper className="cap-glass" p="md" style={{ overflowX: 'auto' }}>
          <Table verticalSpacing="xs" highlightOnHover aria-label="Templates">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Author</Table.Th>
                <Table.Th>Format</Table.Th>
                <Table.Th>Images</Table.Th>
                <Table.Th>Variables</Table.Th>
                <Table.Th>Install</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {q.data.map((t) => (
                <Table.Tr key={t.id} data-testid={`template-row-${t.name}`}>
                  <Table.Td>
                    <Group gap={6} wrap="nowrap">
                      <Anchor component={Link} to={`/templates/${t.id}`}>
                        {t.name}
                      </Anchor>
                      {t.builtin ? (
                        <Badge size="xs" variant="outline" color="cyan">
                          built-in
                        </Badge>
                      ) : null}
                    </Group>
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm" c="dimmed">
                      {t.author}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    <Code>{t.format}</Code>
                  </Table.Td>
                  <Table.Td>{t.images.length}</Table.Td>
                  <Table.Td>{t.variables}</Table.Td>
                  <Table.Td>{t.hasInstall ? 'script' : '—'}</Table.Td>
                  <Table.Td>
                    <Group gap="xs" justify="flex-end" wrap="nowrap">
                      <Button
                        size="xs"
                        variant="subtle"
                        component="a"
                        href={`/api/templates/${encodeURIComponent(t.id)}/export`}
                        download
                      >
                        Export
                      </Button>
                      {canWrite ? (
                        <Button
                          size="xs"
                          variant="subtle"
                          color="red"
                          onClick={() => void remove(t.id, t.name)}
                          aria-label={`Delete template ${t.name}`}
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
        </Paper>
      )}
    </Stack>
  );
}
