import { Stack, Title } from '@mantine/core';
import { WebhooksPanel } from '../components/webhooks-panel.tsx';

/** The Panel-wide webhooks (admins and owners): every server's events. */
export function WebhooksPage() {
  return (
    <Stack data-testid="page-webhooks">
      <Title order={2}>Webhooks</Title>
      <WebhooksPanel serverId={null} can={{ create: true, update: true, delete: true }} />
    </Stack>
  );
}
