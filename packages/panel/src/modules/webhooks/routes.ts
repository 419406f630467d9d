/**
 * The webhooks REST surface (issue 13 item 2): Panel-wide under /api/webhooks (admins), and per
 * server under /api/servers/:id/webhooks (requireAccess with `webhook.*`). Changes are activity
 * entries `webhook.*`; secrets are answered once, at create.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { principalOf } from '../../http/auth.ts';
import type { PanelServices } from '../../services.ts';
import type { Permission } from '../access/permissions.ts';
import { CreatedWebhook, CreateWebhook, PatchWebhook, Webhook, WebhookDelivery } from './schemas.ts';

const ServerParams = z.object({ id: z.string().min(1).max(64) });
const HookParams = z.object({ hid: z.string().min(1).max(64) });
const ServerHookParams = ServerParams.extend({ hid: z.string().min(1).max(64) });
const LogQuery = z.object({ limit: z.coerce.number().int().min(1).max(100).default(50) });

function note(req: FastifyRequest, details: Record<string, string>): void {
  if (req.activity) req.activity.details = details;
}

const DESCRIBE = {
  create:
    'Creates a webhook. `discord` (a Discord webhook URL): embeds for `server.crashed` (exit code and the last console lines), `server.status`, `operation` (backups completed or failed) and `server.players` (who joined or left). `json`: any bus event kind, the body `{ id, webhookId, event, timestamp, data }` signed with `X-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>` and `X-Webhook-Timestamp` (unix seconds, also in the body); its `secret` is in this answer only. `server.console` and `server.console_dropped` data carry `epoch` and `seq` (the number of the last line: the lines are seq − n + 1 … seq) and, for lines sent again after a Panel was lost between storing and publishing them, `resent` (how many of the first lines may have been delivered already): console deliveries are at least once, and (serverId, epoch, line number) is the key to drop a repeat by. The URL is resolved and 400 WEBHOOK_TARGET_REFUSED when any address is loopback, private or link-local (unless PANEL_OUTBOUND_ALLOW_PRIVATE=1), not http(s), or carries credentials.',
  patch: 'Changes the fields given (a new URL is checked as on create).',
  test: 'Sends a `webhook.test` delivery now and answers after that attempt, with its status (retried later like any other when the target did not answer).',
  deliveries:
    'The delivery log, newest first (100 kept): state (pending, delivered, failed), attempts, the last HTTP status and error, each attempt.',
};

export async function webhooksRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['webhooks'];

  // ---- Panel-wide (admins) ----
  r.get(
    '/api/webhooks',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        description: 'The Panel-wide webhooks.',
        response: { 200: z.object({ webhooks: z.array(Webhook) }) },
      },
    },
    async () => ({ webhooks: await s.webhooks.list(null) }),
  );
  r.post(
    '/api/webhooks',
    {
      config: { auth: 'admin', activity: 'webhook.create' },
      schema: { tags, description: DESCRIBE.create, body: CreateWebhook, response: { 201: CreatedWebhook } },
    },
    async (req, reply) => {
      const created = await s.webhooks.create(null, req.body, principalOf(req).user.id);
      note(req, { webhookId: created.id, kind: created.kind });
      return reply.status(201).send(created);
    },
  );
  r.get(
    '/api/webhooks/:hid',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        description: 'One Panel-wide webhook. 404 WEBHOOK_NOT_FOUND.',
        params: HookParams,
        response: { 200: Webhook },
      },
    },
    async (req) => s.webhooks.get(null, req.params.hid),
  );
  r.patch(
    '/api/webhooks/:hid',
    {
      config: { auth: 'admin', activity: 'webhook.update' },
      schema: {
        tags,
        description: DESCRIBE.patch,
        params: HookParams,
        body: PatchWebhook,
        response: { 200: Webhook },
      },
    },
    async (req) => {
      note(req, { webhookId: req.params.hid });
      return s.webhooks.patch(null, req.params.hid, req.body);
    },
  );
  r.delete(
    '/api/webhooks/:hid',
    {
      config: { auth: 'admin', activity: 'webhook.delete' },
      schema: {
        tags,
        description: 'Deletes the webhook and its log.',
        params: HookParams,
        response: { 204: z.null() },
      },
    },
    async (req, reply) => {
      note(req, { webhookId: req.params.hid });
      await s.webhooks.delete(null, req.params.hid);
      return reply.status(204).send(null);
    },
  );
  r.post(
    '/api/webhooks/:hid/test',
    {
      config: { auth: 'admin', activity: 'webhook.test' },
      schema: { tags, description: DESCRIBE.test, params: HookParams, response: { 200: WebhookDelivery } },
    },
    async (req) => {
      note(req, { webhookId: req.params.hid });
      return s.webhooks.test(null, req.params.hid);
    },
  );
  r.get(
    '/api/webhooks/:hid/deliveries',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        description: DESCRIBE.deliveries,
        params: HookParams,
        querystring: LogQuery,
        response: { 200: z.object({ deliveries: z.array(WebhookDelivery) }) },
      },
    },
    async (req) => ({ deliveries: await s.webhooks.deliveries(null, req.params.hid, req.query.limit) }),
  );

  // ---- per server (webhook.*) ----
  const need = (p: Permission) => ({ auth: 'user' as const, access: p });
  r.get(
    '/api/servers/:id/webhooks',
    {
      config: need('webhook.read'),
      schema: {
        tags,
        description: "The server's webhooks.",
        params: ServerParams,
        response: { 200: z.object({ webhooks: z.array(Webhook) }) },
      },
    },
    async (req) => ({ webhooks: await s.webhooks.list(req.params.id) }),
  );
  r.post(
    '/api/servers/:id/webhooks',
    {
      config: { ...need('webhook.create'), activity: 'webhook.create' },
      schema: {
        tags,
        description: `${DESCRIBE.create} Only this server's events.`,
        params: ServerParams,
        body: CreateWebhook,
        response: { 201: CreatedWebhook },
      },
    },
    async (req, reply) => {
      const created = await s.webhooks.create(req.params.id, req.body, principalOf(req).user.id);
      note(req, { webhookId: created.id, kind: created.kind });
      return reply.status(201).send(created);
    },
  );
  r.get(
    '/api/servers/:id/webhooks/:hid',
    {
      config: need('webhook.read'),
      schema: {
        tags,
        description: "One of the server's webhooks. 404 WEBHOOK_NOT_FOUND (also for another server's).",
        params: ServerHookParams,
        response: { 200: Webhook },
      },
    },
    async (req) => s.webhooks.get(req.params.id, req.params.hid),
  );
  r.patch(
    '/api/servers/:id/webhooks/:hid',
    {
      config: { ...need('webhook.update'), activity: 'webhook.update' },
      schema: {
        tags,
        description: DESCRIBE.patch,
        params: ServerHookParams,
        body: PatchWebhook,
        response: { 200: Webhook },
      },
    },
    async (req) => {
      note(req, { webhookId: req.params.hid });
      return s.webhooks.patch(req.params.id, req.params.hid, req.body);
    },
  );
  r.delete(
    '/api/servers/:id/webhooks/:hid',
    {
      config: { ...need('webhook.delete'), activity: 'webhook.delete' },
      schema: {
        tags,
        description: 'Deletes the webhook and its log.',
        params: ServerHookParams,
        response: { 204: z.null() },
      },
    },
    async (req, reply) => {
      note(req, { webhookId: req.params.hid });
      await s.webhooks.delete(req.params.id, req.params.hid);
      return reply.status(204).send(null);
    },
  );
  r.post(
    '/api/servers/:id/webhooks/:hid/test',
    {
      config: { ...need('webhook.update'), activity: 'webhook.test' },
      schema: {
        tags,
        description: DESCRIBE.test,
        params: ServerHookParams,
        response: { 200: WebhookDelivery },
      },
    },
    async (req) => {
      note(req, { webhookId: req.params.hid });
      return s.webhooks.test(req.params.id, req.params.hid);
    },
  );
  r.get(
    '/api/servers/:id/webhooks/:hid/deliveries',
    {
      config: need('webhook.read'),
      schema: {
        tags,
        description: DESCRIBE.deliveries,
        params: ServerHookParams,
        querystring: LogQuery,
        response: { 200: z.object({ deliveries: z.array(WebhookDelivery) }) },
      },
    },
    async (req) => ({
      deliveries: await s.webhooks.deliveries(req.params.id, req.params.hid, req.query.limit),
    }),
  );
}
