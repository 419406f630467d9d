/** Image updates over REST (issue 13 item 3); see service.ts. */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { principalOf } from '../../http/auth.ts';
import type { PanelServices } from '../../services.ts';
import {
  ImageUpdateOptions,
  LastImageUpdate,
  MAX_CHECK_INTERVAL_SECONDS,
  MIN_CHECK_INTERVAL_SECONDS,
  ServerImageState,
} from './service.ts';

const IdParams = z.object({ id: z.string().min(1).max(64) });
const WaitQuery = z.object({ wait: z.enum(['true', 'false']).optional() });
const IntervalSettings = z.object({
  intervalSeconds: z.number().int().min(MIN_CHECK_INTERVAL_SECONDS).max(MAX_CHECK_INTERVAL_SECONDS),
});

export async function imageUpdatesRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['image-updates'];

  r.get(
    '/api/servers/:id/image',
    {
      config: { auth: 'user', access: 'startup.read' },
      schema: {
        tags,
        description:
          "The server's image as last checked: the digest its container runs (`localDigest`, of its RepoDigests), the registry's current one for the same tag (`remoteDigest`, asked from the node), `updateAvailable`, `checkedAt`, the check's `error` (an unreachable registry: the digests of the check before are kept), the last update's outcome (`lastUpdate`: updated | unchanged | rolled_back with its reason | failed) and the update running now with its pull so far (`running`). Needs startup.read.",
        params: IdParams,
        response: { 200: ServerImageState },
      },
    },
    async (req) => {
      await s.servers.nodeIdOf(req.params.id);
      return s.imageUpdates.get(req.params.id);
    },
  );

  r.post(
    '/api/servers/:id/image/check',
    {
      config: { auth: 'user', access: 'startup.read', activity: 'server.image_check' },
      schema: {
        tags,
        description:
          "Checks now (the Panel also checks every server on its own, every `intervalSeconds` of GET /api/image-updates/settings): the node asks the registry for the tag's digest (the Engine's GET /distribution/{name}/json) and compares it with the container's image. A registry that cannot be reached is stored as `error` (200); nothing else changes. 503 AGENT_OFFLINE.",
        params: IdParams,
        response: { 200: ServerImageState },
      },
    },
    async (req) => s.imageUpdates.check(req.params.id),
  );

  r.post(
    '/api/servers/:id/image/update',
    {
      config: { auth: 'user', access: 'settings.image-update', activity: 'server.image_update_request' },
      schema: {
        tags,
        description:
          "Updates the server to what its tag points at now, as one operation (`image_update`): the Agent pulls it (per-layer progress in GET /api/servers/:id/image `running.pull`), keeps the previous image (tagged `<repo>:cap-rollback-<server>`), recreates the container on the new one (files kept), starts it if it was running and waits until it is ready (the template's done pattern, else running for `stableSeconds`) within `readyTimeoutSeconds` (default 120). Not ready or crashed: the container is made again on the previous image and started; the outcome is `rolled_back` with the reason (in the result, the activity log and a `server.update` bus event for webhooks, `outcome` set). 202 { operationId } once acknowledged; ?wait=true answers 200 with the outcome. Needs settings.image-update. 409 SERVER_BUSY while another operation runs; 503 AGENT_OFFLINE.",
        params: IdParams,
        querystring: WaitQuery,
        body: ImageUpdateOptions.optional(),
        response: { 200: LastImageUpdate, 202: z.object({ operationId: z.string() }) },
      },
    },
    async (req, reply) => {
      const nodeId = await s.servers.nodeIdOf(req.params.id);
      const opts = ImageUpdateOptions.parse(req.body ?? {});
      const { operationId, done } = await s.imageUpdates.update(
        { id: req.params.id, node_id: nodeId },
        principalOf(req).user.id,
        opts,
      );
      if (req.query.wait === 'true') return reply.status(200).send(await done);
      done.catch(() => undefined);
      return reply.status(202).send({ operationId });
    },
  );

  r.get(
    '/api/image-updates/settings',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        description: 'How often the Panel checks every server for a newer image (seconds; default 6 h).',
        response: { 200: IntervalSettings },
      },
    },
    async () => ({ intervalSeconds: await s.imageUpdates.intervalSeconds() }),
  );

  r.put(
    '/api/image-updates/settings',
    {
      config: { auth: 'admin', activity: 'image_updates.settings' },
      schema: {
        tags,
        description: `Sets how often the Panel checks every server for a newer image (${MIN_CHECK_INTERVAL_SECONDS} s to 30 days).`,
        body: IntervalSettings,
        response: { 200: IntervalSettings },
      },
    },
    async (req) => {
      await s.imageUpdates.setIntervalSeconds(req.body.intervalSeconds);
      return { intervalSeconds: req.body.intervalSeconds };
    },
  );
}
