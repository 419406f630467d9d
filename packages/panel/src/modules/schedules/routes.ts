/**
 * The schedules REST surface (issue 13 item 1), under /api/servers/:id/schedules; every route is
 * checked by requireAccess with its `schedule.*` permission, and putting a task in a schedule (or
 * running it now) also needs the permission the task itself needs (a power action's, a backup's…),
 * so a schedule never does what its editor may not. Changes are activity entries `schedule.*`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { accessBy, principalOf, serverAccessOf } from '../../http/auth.ts';
import type { PanelServices } from '../../services.ts';
import type { Permission } from '../access/permissions.ts';
import { assertHolds } from '../access/service.ts';
import {
  CreateSchedule,
  PatchSchedule,
  Schedule,
  ScheduleRun,
  type ScheduleTask,
  taskPermission,
} from './schemas.ts';

const IdParams = z.object({ id: z.string().min(1).max(64) });
const ScheduleParams = IdParams.extend({ sid: z.string().min(1).max(64) });
const WaitQuery = z.object({ wait: z.enum(['true', 'false']).optional() });
const RunsQuery = z.object({ limit: z.coerce.number().int().min(1).max(50).default(20) });

const needsOf = (base: Permission, tasks: readonly ScheduleTask[] | undefined): Permission[] => [
  ...new Set<Permission>([base, ...(tasks ?? []).map(taskPermission)]),
];

function note(req: FastifyRequest, details: Record<string, string>): void {
  if (req.activity) req.activity.details = details;
}

export async function schedulesRoutes(app: FastifyInstance, s: PanelServices): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['schedules'];

  r.get(
    '/api/servers/:id/schedules',
    {
      config: { auth: 'user', access: 'schedule.read' },
      schema: {
        tags,
        description: "The server's schedules, oldest first, each with its next slot and its last run.",
        params: IdParams,
        response: { 200: z.object({ schedules: z.array(Schedule) }) },
      },
    },
    async (req) => ({ schedules: await s.schedules.list(req.params.id) }),
  );

  r.post(
    '/api/servers/:id/schedules',
    {
      config: {
        auth: 'user',
        access: accessBy('schedule.create + each task’s permission', (req) =>
          needsOf('schedule.create', (req.body as CreateSchedule).tasks),
        ),
        activity: 'schedule.create',
      },
      schema: {
        tags,
        description:
          'Creates a schedule: `cron` (5 fields, or @hourly/@daily/…, read in the IANA `timezone`) or `intervalSeconds` (60 s to a year), and its `tasks` in order (1–20), each `offsetSeconds` (0–900) after the previous one ended: `command`, `power` (start/stop/restart/kill), `backup` (with `retain`), `reinstall`. Needs `schedule.create` and the permission of each task (control.command, control.start/stop/restart, backup.create, settings.reinstall). 400 VALIDATION_FAILED (unknown time zone, a bad or never-firing cron expression, both or neither trigger), 409 CONFLICT past 50 schedules.',
        params: IdParams,
        body: CreateSchedule,
        response: { 201: Schedule },
      },
    },
    async (req, reply) => {
      const created = await s.schedules.create(req.params.id, req.body, principalOf(req).user.id);
      note(req, { scheduleId: created.id, name: created.name });
      return reply.status(201).send(created);
    },
  );

  r.get(
    '/api/servers/:id/schedules/:sid',
    {
      config: { auth: 'user', access: 'schedule.read' },
      schema: {
        tags,
        description: 'One schedule. 404 SCHEDULE_NOT_FOUND (also for a schedule of another server).',
        params: ScheduleParams,
        response: { 200: Schedule },
      },
    },
    async (req) => s.schedules.get(req.params.id, req.params.sid),
  );

  r.patch(
    '/api/servers/:id/schedules/:sid',
    {
      config: {
        auth: 'user',
        access: accessBy('schedule.update + each new task’s permission', (req) =>
          needsOf('schedule.update', (req.body as PatchSchedule).tasks),
        ),
        activity: 'schedule.update',
      },
      schema: {
        tags,
        description:
          'Changes the fields given (`cron: null` with `intervalSeconds`, or the other way, switches kinds); a changed trigger or enabling it computes the next slot from now, disabling clears it. New `tasks` need their permissions as on create.',
        params: ScheduleParams,
        body: PatchSchedule,
        response: { 200: Schedule },
      },
    },
    async (req) => {
      note(req, { scheduleId: req.params.sid });
      return s.schedules.patch(req.params.id, req.params.sid, req.body);
    },
  );

  r.delete(
    '/api/servers/:id/schedules/:sid',
    {
      config: { auth: 'user', access: 'schedule.delete', activity: 'schedule.delete' },
      schema: {
        tags,
        description:
          'Deletes the schedule and its run history; a run in progress stops before its next task.',
        params: ScheduleParams,
        response: { 204: z.null() },
      },
    },
    async (req, reply) => {
      note(req, { scheduleId: req.params.sid });
      await s.schedules.delete(req.params.id, req.params.sid);
      return reply.status(204).send(null);
    },
  );

  r.post(
    '/api/servers/:id/schedules/:sid/run',
    {
      config: { auth: 'user', access: 'schedule.update', activity: 'schedule.run' },
      schema: {
        tags,
        description:
          "Runs the schedule now (enabled or not; its next slot stays): 202 { runId }; ?wait=true answers 200 with the run once it ended. Needs `schedule.update` and each task's permission. `onlyWhenOnline` applies (the run is `skipped` when the server is not running). 409 CONFLICT while a run of it is in progress.",
        params: ScheduleParams,
        querystring: WaitQuery,
        response: { 200: ScheduleRun, 202: z.object({ runId: z.string() }) },
      },
    },
    async (req, reply) => {
      const tasks = await s.schedules.tasksOf(req.params.id, req.params.sid);
      assertHolds(serverAccessOf(req), needsOf('schedule.update', tasks));
      const { runId, done } = await s.schedules.runNow(
        req.params.id,
        req.params.sid,
        principalOf(req).user.id,
      );
      note(req, { scheduleId: req.params.sid, runId });
      if (req.query.wait === 'true') return reply.status(200).send(await done);
      done.catch(() => undefined);
      return reply.status(202).send({ runId });
    },
  );

  r.get(
    '/api/servers/:id/schedules/:sid/runs',
    {
      config: { auth: 'user', access: 'schedule.read' },
      schema: {
        tags,
        description:
          "The schedule's runs, newest first (the last 50 are kept): trigger (schedule, catch_up, manual), state (running, completed, failed, skipped, interrupted), each task's result (pending, running, ok, failed, skipped) and message.",
        params: ScheduleParams,
        querystring: RunsQuery,
        response: { 200: z.object({ runs: z.array(ScheduleRun) }) },
      },
    },
    async (req) => ({ runs: await s.schedules.runs(req.params.id, req.params.sid, req.query.limit) }),
  );
}
