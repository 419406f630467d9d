import { Stack, Title } from '@mantine/core';
import { ActivityLog } from '../components/activity-log.tsx';

/** The Panel-wide activity log (admins and owners). */
export function ActivityPage() {
  return (
    <Stack>
      <Title order={2}>Activity</Title>
      <ActivityLog serverId={null} />
    </Stack>
  );
}
