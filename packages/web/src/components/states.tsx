import { Alert, Button, Center, Code, Group, Loader, Stack, Text } from '@mantine/core';
import type { ReactNode } from 'react';
import { errorCode, errorMessage } from '../api/http.ts';

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <Center py="xl" data-testid="state-loading">
      <Group gap="sm">
        <Loader size="sm" aria-hidden />
        <Text c="dimmed" role="status">
          {label}
        </Text>
      </Group>
    </Center>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <Center py="xl" data-testid="state-empty">
      <Stack align="center" gap={6} maw={460} ta="center">
        <Text fw={600}>{title}</Text>
        {children ? (
          <Text c="dimmed" size="sm" component="div">
            {children}
          </Text>
        ) : null}
      </Stack>
    </Center>
  );
}

/** An error with the Panel's code, which is what a user can search for or report. */
export function ErrorState({
  error,
  title = 'Something went wrong',
  onRetry,
}: {
  error: unknown;
  title?: string;
  onRetry?: () => void;
}) {
  return (
    <Alert color="red" variant="light" title={title} data-testid="state-error" role="alert">
      <Stack gap="xs">
        <Text size="sm">
          <Code data-testid="error-code">{errorCode(error)}</Code> {errorMessage(error)}
        </Text>
        {onRetry ? (
          <Group>
            <Button size="xs" variant="light" color="red" onClick={onRetry}>
              Retry
            </Button>
          </Group>
        ) : null}
      </Stack>
    </Alert>
  );
}
