import { Badge, Button, Code, Group, Paper, SimpleGrid, Stack, Table, Text, Title } from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { useAuth } from '../api/auth.tsx';
import { api } from '../api/http.ts';
import { keys, useTemplate } from '../api/queries.ts';
import { RemoteConsoleForm } from '../components/remote-console-form.tsx';
import { ErrorState, Loading } from '../components/states.tsx';
import { TemplateUpdateButton } from '../components/template-update.tsx';
import { formatAgo } from '../lib/format.ts';

function stopLabel(stop: string): string {
  if (stop === '^C' || stop === '^c') return '^C → SIGINT';
  if (stop.startsWith('^')) return `${stop} → SIGKILL`;
  if (stop === '') return 'SIGTERM';
  return `console command "${stop}"`;
}

export function TemplateDetailPage() {
  const { id = '' } = useParams();
  const { canWrite } = useAuth();
  const q = useTemplate(id);
  const qc = useQueryClient();
  const navigate = useNavigate();
  const [delError, setDelError] = useState<unknown>(null);
  if (q.isPending) return <Loading label="Loading template…" />;
  if (q.isError)
    return <ErrorState error={q.error} title="Could not load the template" onRetry={() => q.refetch()} />;
  const d = q.data;
  const t = d.template;

  async function remove() {
    if (!window.confirm(`Delete template ${d.name}?`)) return;
    setDelError(null);
    try {
      await api(`/templates/${encodeURIComponent(d.id)}`, { method: 'DELETE' });
      await qc.invalidateQueries({ queryKey: keys.templates });
      navigate('/templates');
    } catch (e) {
      setDelError(e);
    }
  }

  const files = Object.entries(t.config.files);
  return (
    <Stack gap="lg" data-testid="page-template-detail">
      <Group justify="space-between" align="flex-start">
        <Stack gap={4}>
          <Group gap="sm">
            <Title order={2} data-testid="template-name">
              {d.name}
            </Title>
            <Badge variant="outline">{d.format}</Badge>
            {d.builtin ? <Badge color="cyan">built-in</Badge> : null}
          </Group>
          <Text size="sm" c="dimmed">
            by {d.author || 'unknown'} · imported {formatAgo(d.createdAt)}
            {d.uuid ? (
              <>
                {' '}
                · uuid <Code>{d.uuid}</Code>
              </>
            ) : null}
          </Text>
        </Stack>
        <Group gap="xs">
          {canWrite ? (
            <Button component={Link} to={`/servers/new?template=${encodeURIComponent(d.id)}`}>
              Create a server from it
            </Button>
          ) : null}
          <Button
            variant="light"
            component="a"
            href={`/api/templates/${encodeURIComponent(d.id)}/export`}
            download
          >
            Export (PTDL_v2)
          </Button>
          {canWrite ? <TemplateUpdateButton templateId={d.id} updateUrl={t.source.updateUrl} /> : null}
          {canWrite ? (
            <Button color="red" variant="outline" onClick={remove} data-testid="template-delete">
              Delete
            </Button>
          ) : null}
        </Group>
      </Group>
      {delError ? <ErrorState error={delError} title="Could not delete the template" /> : null}
      {d.description ? (
        <Text size="sm" style={{ whiteSpace: 'pre-wrap' }}>
          {d.description}
        </Text>
      ) : null}
      <SimpleGrid cols={{ base: 1, md: 2 }}>
        <Paper className="cap-glass" p="md">
          <Title order={3} size="h5" mb="xs">
            Images
          </Title>
          <Stack gap={4}>
            {t.images.map((i, n) => (
              <Text key={`${i.label}:${i.image}`} size="sm">
                {i.label ? `${i.label}: ` : ''}
                <Code>{i.image}</Code>
                {n === 0 ? (
                  <Text span size="xs" c="dimmed">
                    {' '}
                    (default)
                  </Text>
                ) : null}
              </Text>
            ))}
          </Stack>
          <Title order={3} size="h5" mt="md" mb="xs">
            Startup
          </Title>
          <Code
            block
            style={{ whiteSpace: 'pre-wrap', wordBreak: 'break-all' }}
            data-testid="template-startup"
          >
            {t.startup || '(image default)'}
          </Code>
          <Table verticalSpacing={4} mt="sm">
            <Table.Tbody>
              <Table.Tr>
                <Table.Th w={140} style={{ whiteSpace: 'nowrap' }}>
                  Running when
                </Table.Th>
                <Table.Td>
                  {t.config.startup.done.length
                    ? t.config.startup.done.map((p) => (
                        <Code key={p} mr={4}>
                          {p}
                        </Code>
                      ))
                    : 'at once'}
                </Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Th>Stop</Table.Th>
                <Table.Td>{stopLabel(t.config.stop)}</Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Th>Config files</Table.Th>
                <Table.Td>
                  {files.length
                    ? files.map(([path, f]) => (
                        <div key={path}>
                          <Code>{path}</Code>{' '}
                          <Text span size="xs" c="dimmed">
                            ({f.parser}, {Object.keys(f.find).length} key(s))
                          </Text>
                        </div>
                      ))
                    : 'none'}
                </Table.Td>
              </Table.Tr>
            </Table.Tbody>
          </Table>
        </Paper>
        <Paper className="cap-glass" p="md">
          <Title order={3} size="h5" mb="xs">
            Install script
          </Title>
          {t.install.script.trim() ? (
            <>
              <Text size="xs" c="dimmed" mb={4}>
                runs in <Code>{t.install.container || '(none)'}</Code> with{' '}
                <Code>{t.install.entrypoint || 'sh'}</Code>
              </Text>
              <Code
                block
                style={{ maxHeight: 320, overflow: 'auto', whiteSpace: 'pre' }}
                data-testid="template-install-script"
              >
                {t.install.script}
              </Code>
            </>
          ) : (
            <Text size="sm" c="dimmed">
              None: the server starts from the image as it is.
            </Text>
          )}
        </Paper>
      </SimpleGrid>
      <Paper className="cap-glass" p="md">
        <RemoteConsoleForm
          key={JSON.stringify(t.remoteConsole ?? null)}
          templateId={d.id}
          template={t}
          canEdit={canWrite}
        />
      </Paper>
      <Paper className="cap-glass" p="md" style={{ overflowX: 'auto' }}>
        <Title order={3} size="h5" mb="xs">
          Variables ({t.variables.length})
        </Title>
        {t.variables.length === 0 ? (
          <Text size="sm" c="dimmed">
            None.
          </Text>
        ) : (
          <Table verticalSpacing="xs" aria-label="Template variables" data-testid="template-variables">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Env</Table.Th>
                <Table.Th>Default</Table.Th>
                <Table.Th>Rules</Table.Th>
                <Table.Th>Users</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {t.variables.map((v) => (
                <Table.Tr key={v.envVariable}>
                  <Table.Td>
                    <Text size="sm" fw={600}>
                      {v.name}
                    </Text>
                    <Text size="xs" c="dimmed">
                      {v.description}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    <Code>{v.envVariable}</Code>
                  </Table.Td>
                  <Table.Td>
                    {v.userViewable || canWrite ? (
                      <Code style={{ wordBreak: 'break-all' }}>{v.defaultValue || '""'}</Code>
                    ) : (
                      <Text size="xs" c="dimmed">
                        hidden
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td>
                    <Text size="xs" style={{ wordBreak: 'break-all' }}>
                      {v.rules.join(' | ')}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    <Text size="xs">
                      {v.userViewable ? 'see' : 'hidden'}
                      {v.userEditable ? ' · edit' : ''}
                    </Text>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </Paper>
    </Stack>
  );
}
