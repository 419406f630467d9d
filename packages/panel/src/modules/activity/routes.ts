/** GET /api/activity (admins and owners) and GET /api/servers/:id/activity. */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { PanelServices } from '../../services.ts';
import { ACTIVITY_MAX_LIMIT, ActivityEntry } from './service.ts';

const Page = z.object({
  offset: z.coerce.number().int().min(0).max(1_000_000).default(0),
  limit: z.coerce.number().int().min(1).max(ACTIVITY_MAX_LIMIT).default(50),
});
const Filters = Page.extend({
  actor: z.string().min(1).max(64).optional(),
  /** an action name or its dotted prefix (`server.power` finds `server.power.stop`) */
  action: z.string().min(1).max(128).optional(),
  /** `ok` or an error code */
  result: z.string().min(1).max(64).optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
});
const ActivityPage = z.object({
  entries: z.array(ActivityEntry),
  /** the offset of the next page; null on the last */
  nextOffset: z.number().int().nullable(),
});
const IdParams = z.object({ id: z.string().min(1).max(64) });

export async function activityRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['activity'];
  const filterOf = (q: z.infer<typeof Filters>) => ({
    ...(q.actor === undefined ? {} : { actor: q.actor }),
    ...(q.action === undefined ? {} : { action: q.action }),
    ...(q.result === undefined ? {} : { result: q.result }),
    ...(q.since === undefined ? {} : { since: new Date(q.since).toISOString() }),
    ...(q.until === undefined ? {} : { until: new Date(q.until).toISOString() }),
  });
  r.get(
    '/api/activity',
    {
      config: { auth: 'admin' },
      schema: {
        tags,
        description: `The Panel-wide activity log, newest first: state-changing requests and logins (with the email tried) and the Agents' operation ends. Admins and owners. Filters: serverId, actor (user id), action (name or dotted prefix), result (\`ok\` or an error code), since/until (ISO times, inclusive); pages of at most ${ACTIVITY_MAX_LIMIT}.`,
        querystring: Filters.extend({ serverId: z.string().min(1).max(64).optional() }),
        response: { 200: ActivityPage },
      },
    },
    async (req) => {
      const q = req.query;
      return s.activity.list(
        { ...filterOf(q), ...(q.serverId === undefined ? {} : { serverId: q.serverId }) },
        q.offset,
        q.limit,
      );
    },
  );
  r.get(
    '/api/servers/:id/activity',
    {
      config: { auth: 'user', access: 'activity.read' },
      schema: {
        tags,
        description:
          "One server's activity log, newest first (the filters of GET /api/activity). Needs `activity.read` on the server.",
        params: IdParams,
        querystring: Filters,
        response: { 200: ActivityPage },
      },
    },
    async (req) => {
      return s.activity.list(
        { ...filterOf(req.query), serverId: req.params.id },
        req.query.offset,
        req.query.limit,
      );
    },
  );
}
