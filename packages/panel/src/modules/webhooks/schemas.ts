/** Webhooks as the REST surface sends and answers them (issue 13 item 2). */
import { z } from 'zod';
import type { DomainEventKind } from '../../bus/index.ts';

/** Every kind of event on the bus a webhook can ask for. */
export const BUS_EVENT_KINDS = [
  'server.status',
  'server.crashed',
  'server.players',
  'operation',
  'server.install',
  'server.update',
  'server.feature',
  'server.deleted',
  'server.console',
  'server.console_dropped',
  'server.stats',
  'node.online',
  'node.offline',
  'user_action',
  'server.failover',
] as const satisfies readonly DomainEventKind[];

export const WebhookEventKind = z.enum(BUS_EVENT_KINDS).meta({ id: 'WebhookEventKind' });
export const WebhookKind = z.enum(['discord', 'json']);

export const CreateWebhook = z.object({
  name: z.string().trim().min(1).max(191),
  /** `discord`: embeds for crashes, status changes, backups and players; `json`: any event, signed */
  kind: WebhookKind,
  /** http(s); resolved and refused when it points at a loopback/private/link-local address */
  url: z.string().min(1).max(2048),
  /** the event kinds it gets (Discord: server.crashed, server.status, operation (backup ends), server.players) */
  events: z.array(WebhookEventKind).min(1).max(BUS_EVENT_KINDS.length),
  enabled: z.boolean().default(true),
});
export type CreateWebhook = z.infer<typeof CreateWebhook>;

export const PatchWebhook = z.object({
  name: z.string().trim().min(1).max(191).optional(),
  url: z.string().min(1).max(2048).optional(),
  events: z.array(WebhookEventKind).min(1).max(BUS_EVENT_KINDS.length).optional(),
  enabled: z.boolean().optional(),
});
export type PatchWebhook = z.infer<typeof PatchWebhook>;

export const Webhook = z
  .object({
    id: z.string(),
    /** null: Panel-wide (admins) */
    serverId: z.string().nullable(),
    name: z.string(),
    kind: WebhookKind,
    /** scheme, host and a masked path: the full URL (a Discord token) is never shown again */
    url: z.string(),
    events: z.array(WebhookEventKind),
    enabled: z.boolean(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'Webhook' });
export type Webhook = z.infer<typeof Webhook>;

export const CreatedWebhook = Webhook.extend({
  /** a JSON hook's signing secret, shown this once (null for Discord) */
  secret: z.string().nullable(),
});

export const DeliveryState = z.enum(['pending', 'delivered', 'failed']);
export const WebhookDelivery = z
  .object({
    id: z.string(),
    webhookId: z.string(),
    /** the event kind, or `webhook.test` */
    event: z.string(),
    state: DeliveryState,
    attempts: z.number().int(),
    lastStatus: z.number().int().nullable(),
    lastError: z.string().nullable(),
    nextAttemptAt: z.string().nullable(),
    createdAt: z.string(),
    deliveredAt: z.string().nullable(),
    /** each attempt: its time, the HTTP status (null: no answer) and the error */
    log: z.array(
      z.object({ at: z.string(), status: z.number().int().nullable(), error: z.string().nullable() }),
    ),
  })
  .meta({ id: 'WebhookDelivery' });
export type WebhookDelivery = z.infer<typeof WebhookDelivery>;
