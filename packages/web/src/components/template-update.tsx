/**
 * A newer version of a template's egg: from a file or from its update_url, previewed as the
 * list of differences and the servers whose kept values would fail the new rules, then applied.
 */
import { Alert, Badge, Button, Code, FileButton, Group, Modal, Stack, Table, Text } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { api } from '../api/http.ts';
import { keys } from '../api/queries.ts';
import type { ApiResponse } from '../api/types.ts';
import { ErrorState } from './states.tsx';

type Answer = ApiResponse<'/api/templates/{id}/update', 'post'>;
type Source = { content: string; filename: string } | { fromUpdateUrl: true };

const KIND_COLOR = { added: 'teal', removed: 'red', changed: 'yellow' } as const;

export function TemplateUpdateButton({
  templateId,
  updateUrl,
}: {
  templateId: string;
  updateUrl: string | null;
}) {
  const qc = useQueryClient();
  const [open, setOpen] = useState(false);
  const [source, setSource] = useState<Source | null>(null);
  const [answer, setAnswer] = useState<Answer | null>(null);
  const call = useMutation({
    mutationFn: (v: { source: Source; apply: boolean }) =>
      api<Answer>(`/templates/${encodeURIComponent(templateId)}/update`, {
        method: 'POST',
        body: { ...v.source, apply: v.apply },
      }),
    onSuccess: async (a) => {
      setAnswer(a);
      if (a.applied) {
        // the prefix covers this template's detail too
        await qc.invalidateQueries({ queryKey: keys.templates });
      }
    },
  });
  const preview = (s: Source) => {
    setSource(s);
    setAnswer(null);
    call.mutate({ source: s, apply: false });
  };
  const close = () => {
    setOpen(false);
    setAnswer(null);
    setSource(null);
    call.reset();
  };
  return (
    <>
      <Button variant="light" onClick={() => setOpen(true)} data-testid="template-update">
        Update…
      </Button>
      <Modal opened={open} onClose={close} title="Update this template" size="xl">
        <Stack>
          <Text size="sm" c="dimmed">
            Servers made from it keep their values; a variable the new version adds gets its default the next
            time a server's container is made. Nothing changes until you apply.
          </Text>
          <Group>
            <FileButton
              accept=".json,.yaml,.yml"
              onChange={async (f) => {
                if (f) preview({ content: await f.text(), filename: f.name });
              }}
            >
              {(props) => (
                <Button variant="default" {...props} data-testid="template-update-file">
                  From a file…
                </Button>
              )}
            </FileButton>
            <Button
              variant="default"
              disabled={!updateUrl}
              title={updateUrl ?? 'this egg names no update_url'}
              onClick={() => preview({ fromUpdateUrl: true })}
              data-testid="template-update-url"
            >
              From its update URL
            </Button>
          </Group>
          {call.isError ? <ErrorState error={call.error} title="Could not read the new version" /> : null}
          {answer ? (
            <Stack gap="xs" data-testid="template-update-preview">
              {answer.applied ? (
                <Alert color="teal" data-testid="template-update-applied">
                  Applied: {answer.changes.length} change{answer.changes.length === 1 ? '' : 's'}.
                </Alert>
              ) : answer.changes.length === 0 ? (
                <Alert color="gray">This version is the one stored: nothing to change.</Alert>
              ) : null}
              {answer.changes.length > 0 ? (
                <Table striped data-testid="template-update-changes">
                  <Table.Tbody>
                    {answer.changes.map((c) => (
                      <Table.Tr key={c.field}>
                        <Table.Td>
                          <Badge color={KIND_COLOR[c.kind]} variant="light">
                            {c.kind}
                          </Badge>
                        </Table.Td>
                        <Table.Td>
                          <Code>{c.field}</Code>
                        </Table.Td>
                        <Table.Td>
                          {c.before !== undefined ? (
                            <Text size="xs" td="line-through" c="dimmed" lineClamp={3}>
                              {c.before}
                            </Text>
                          ) : null}
                          {c.after !== undefined ? (
                            <Text size="xs" lineClamp={3}>
                              {c.after}
                            </Text>
                          ) : null}
                        </Table.Td>
                      </Table.Tr>
                    ))}
                  </Table.Tbody>
                </Table>
              ) : null}
              {answer.servers.map((s) =>
                Object.keys(s.failingValues).length > 0 || s.imageGone ? (
                  <Alert
                    key={s.id}
                    color="yellow"
                    title={s.name}
                    data-testid="template-update-server-warning"
                  >
                    {Object.entries(s.failingValues).map(([k, msgs]) => (
                      <Text key={k} size="sm">
                        {k}: its value fails the new rules ({msgs.join('; ')})
                      </Text>
                    ))}
                    {s.imageGone ? <Text size="sm">its image is not one of the new version's</Text> : null}
                  </Alert>
                ) : null,
              )}
              {!answer.applied && answer.changes.length > 0 && source ? (
                <Group justify="flex-end">
                  <Button
                    loading={call.isPending}
                    onClick={() => call.mutate({ source, apply: true })}
                    data-testid="template-update-apply"
                  >
                    Apply {answer.changes.length} change{answer.changes.length === 1 ? '' : 's'}
                  </Button>
                </Group>
              ) : null}
            </Stack>
          ) : null}
        </Stack>
      </Modal>
    </>
  );
}
