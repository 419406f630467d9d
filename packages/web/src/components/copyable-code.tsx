import { Button, Code, CopyButton, Group } from '@mantine/core';

/** A value shown once or meant to be pasted (a secret, a key, a command), with a Copy button. */
export function CopyableCode({
  value,
  testId,
  copyTestId,
}: {
  value: string;
  testId: string;
  copyTestId?: string;
}) {
  return (
    <Group gap="xs" wrap="nowrap" align="flex-start">
      <Code block style={{ flex: 1, whiteSpace: 'pre-wrap', wordBreak: 'break-all' }} data-testid={testId}>
        {value}
      </Code>
      <CopyButton value={value}>
        {({ copied, copy }) => (
          <Button size="xs" variant="light" onClick={copy} data-testid={copyTestId}>
            {copied ? 'Copied' : 'Copy'}
          </Button>
        )}
      </CopyButton>
    </Group>
  );
}
