import { ActionIcon, Button, Group, Stack, Text, TextInput } from '@mantine/core';
import type { EnvRow, PortRow } from '../lib/validate.ts';
import { MONO_INPUT } from '../theme.ts';

export function EnvEditor({
  rows,
  errors,
  onChange,
  testId = 'env',
}: {
  rows: EnvRow[];
  errors: Map<number, string>;
  onChange: (rows: EnvRow[]) => void;
  testId?: string;
}) {
  const set = (i: number, patch: Partial<EnvRow>) =>
    onChange(rows.map((r, j) => (j === i ? { ...r, ...patch } : r)));
  return (
    <Stack gap="xs" data-testid={`${testId}-editor`}>
      {rows.length === 0 ? (
        <Text size="sm" c="dimmed">
          No environment variables.
        </Text>
      ) : null}
      {rows.map((r, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: rows have no identity besides their position
        <Group key={i} align="flex-start" gap="xs" wrap="nowrap">
          <TextInput
            aria-label={`Variable ${i + 1} name`}
            placeholder="NAME"
            value={r.key}
            error={errors.get(i)}
            onChange={(e) => set(i, { key: e.currentTarget.value })}
            styles={MONO_INPUT}
            style={{ flex: 1 }}
            data-testid={`${testId}-key-${i}`}
          />
          <TextInput
            aria-label={`Variable ${i + 1} value`}
            placeholder="value"
            value={r.value}
            onChange={(e) => set(i, { value: e.currentTarget.value })}
            styles={MONO_INPUT}
            style={{ flex: 2 }}
            data-testid={`${testId}-value-${i}`}
          />
          <ActionIcon
            variant="subtle"
            color="red"
            size="lg"
            aria-label={`Remove variable ${r.key || i + 1}`}
            onClick={() => onChange(rows.filter((_, j) => j !== i))}
          >
            ×
          </ActionIcon>
        </Group>
      ))}
      <Group>
        <Button
          size="xs"
          variant="light"
          onClick={() => onChange([...rows, { key: '', value: '' }])}
          data-testid={`${testId}-add`}
        >
          Add variable
        </Button>
      </Group>
    </Stack>
  );
}

export function PortEditor({
  rows,
  errors,
  onChange,
}: {
  rows: PortRow[];
  errors: Map<number, string>;
  onChange: (rows: PortRow[]) => void;
}) {
  const set = (i: number, patch: Partial<PortRow>) =>
    onChange(rows.map((r, j) => (j === i ? { ...r, ...patch } : r)));
  return (
    <Stack gap="xs">
      {rows.length === 0 ? (
        <Text size="sm" c="dimmed">
          No ports published.
        </Text>
      ) : null}
      {rows.map((r, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: rows have no identity besides their position
        <Group key={i} align="flex-start" gap="xs" wrap="nowrap">
          <TextInput
            aria-label={`Port ${i + 1} in the container`}
            placeholder="25565/tcp"
            value={r.container}
            error={errors.get(i)}
            onChange={(e) => set(i, { container: e.currentTarget.value })}
            style={{ flex: 1 }}
          />
          <TextInput
            aria-label={`Port ${i + 1} on the host`}
            placeholder="host port"
            value={r.host}
            onChange={(e) => set(i, { host: e.currentTarget.value })}
            style={{ flex: 1 }}
          />
          <ActionIcon
            variant="subtle"
            color="red"
            size="lg"
            aria-label={`Remove port ${i + 1}`}
            onClick={() => onChange(rows.filter((_, j) => j !== i))}
          >
            ×
          </ActionIcon>
        </Group>
      ))}
      <Group>
        <Button size="xs" variant="light" onClick={() => onChange([...rows, { container: '', host: '' }])}>
          Add port
        </Button>
      </Group>
    </Stack>
  );
}
