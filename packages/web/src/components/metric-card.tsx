import { Paper, Progress, Stack, Text } from '@mantine/core';
import type { ReactNode } from 'react';

export function MetricCard({
  label,
  value,
  hint,
  testId,
}: {
  label: string;
  value: ReactNode;
  hint?: ReactNode;
  testId?: string;
}) {
  return (
    <Paper className="cap-glass" p="md" data-testid={testId}>
      <Stack gap={4}>
        <Text className="cap-metric-label" c="dimmed">
          {label}
        </Text>
        <Text fz={26} fw={700} c="cyan.2" data-testid={testId ? `${testId}-value` : undefined}>
          {value}
        </Text>
        {hint ? (
          <Text size="xs" c="dimmed">
            {hint}
          </Text>
        ) : null}
      </Stack>
    </Paper>
  );
}

export function UsageBar({
  label,
  percent,
  detail,
}: {
  label: string;
  percent: number | null;
  detail?: string;
}) {
  const p = percent === null || !Number.isFinite(percent) ? null : Math.max(0, Math.min(100, percent));
  const color = p === null ? 'gray' : p > 90 ? 'red' : p > 70 ? 'yellow' : 'cyan';
  return (
    <Stack gap={2}>
      <Text size="xs" c="dimmed">
        {label}: {p === null ? 'no data' : `${p.toFixed(0)} %`}
        {detail ? ` · ${detail}` : ''}
      </Text>
      <Progress value={p ?? 0} color={color} size="sm" aria-label={`${label} usage`} />
    </Stack>
  );
}
