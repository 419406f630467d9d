/** Says when a server has no memory or CPU limit (it may take all the node has). */
import { Badge, Group } from '@mantine/core';
import type { Limits } from '../api/types.ts';
import { isUnlimited } from '../lib/format.ts';

export function NoLimitBadges({ limits, size = 'sm' }: { limits: Limits | undefined; size?: 'xs' | 'sm' }) {
  const memory = isUnlimited(limits?.memory);
  const cpu = isUnlimited(limits?.cpu);
  if (!memory && !cpu) return null;
  return (
    <Group gap={4} wrap="nowrap">
      {memory ? (
        <Badge size={size} color="yellow" variant="light" data-testid="badge-no-memory-limit">
          no memory limit
        </Badge>
      ) : null}
      {cpu ? (
        <Badge size={size} color="yellow" variant="light" data-testid="badge-no-cpu-limit">
          no CPU limit
        </Badge>
      ) : null}
    </Group>
  );
}
