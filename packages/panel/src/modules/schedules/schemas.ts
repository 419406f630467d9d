/**
 * Schedules as the REST surface sends and answers them (issue 13 item 1), and the rules of a
 * trigger: a 5-field cron expression (or a nickname such as `@daily`) in an IANA time zone, or an
 * interval of seconds; `next()` gives the slot after a time.
 */
import { CodedError, PowerAction } from '@cap/protocol';
import { Cron } from 'croner';
import { z } from 'zod';
import type { Permission } from '../access/permissions.ts';
import { POWER_PERMISSION } from '../access/permissions.ts';

export const MAX_TASKS = 20;
/** seconds after the previous task (Pterodactyl's `time_offset` allows 0–900 as well) */
export const MAX_OFFSET_SECONDS = 900;
export const MIN_INTERVAL_SECONDS = 60;
export const MAX_INTERVAL_SECONDS = 366 * 86_400;
export const MAX_SCHEDULES_PER_SERVER = 50;

const taskBase = {
  /** seconds to wait after the previous task ended (the first: after the run started) */
  offsetSeconds: z.number().int().min(0).max(MAX_OFFSET_SECONDS).default(0),
  /** go on with the next task when this one fails (else the rest are skipped) */
  continueOnFailure: z.boolean().default(false),
};

export const ScheduleTask = z
  .discriminatedUnion('action', [
    z.object({ action: z.literal('command'), command: z.string().min(1).max(4096), ...taskBase }),
    z.object({ action: z.literal('power'), power: PowerAction, ...taskBase }),
    z.object({
      action: z.literal('backup'),
      /** after a success keep only the newest N completed unlocked backups */
      retain: z.number().int().min(1).max(1000).optional(),
      ...taskBase,
    }),
    z.object({ action: z.literal('reinstall'), ...taskBase }),
    /** an image update (issue 13 item 3): pull → recreate → wait ready → roll back when not */
    z.object({
      action: z.literal('update'),
      readyTimeoutSeconds: z.number().int().min(5).max(3600).optional(),
      ...taskBase,
    }),
  ])
  .meta({ id: 'ScheduleTask' });
export type ScheduleTask = z.infer<typeof ScheduleTask>;

/** What the caller must hold on the server to put a task in a schedule (or to run it now). */
export function taskPermission(t: ScheduleTask): Permission {
  switch (t.action) {
    case 'command':
      return 'control.command';
    case 'power':
      return POWER_PERMISSION[t.power];
    case 'backup':
      return 'backup.create';
    case 'reinstall':
      return 'settings.reinstall';
    case 'update':
      return 'settings.image-update';
  }
}

const TZ_SHAPE = /^[A-Za-z0-9_+\-/]{1,64}$/;

/** An IANA time zone name the runtime knows (`UTC`, `Europe/Berlin`…). */
export function validTimeZone(tz: string): boolean {
  if (!TZ_SHAPE.test(tz)) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Why a cron expression is refused (undefined: fine). Seconds fields are refused: minutes at most. */
export function cronProblem(expr: string, timezone: string): string | undefined {
  const trimmed = expr.trim();
  if (!trimmed.startsWith('@') && trimmed.split(/\s+/).length !== 5)
    return 'a cron expression has 5 fields (minute hour day-of-month month day-of-week) or is a nickname such as @daily';
  try {
    const next = new Cron(trimmed, { timezone, paused: true }).nextRun();
    if (!next) return 'this cron expression never runs';
  } catch (e) {
    return `not a cron expression: ${(e as Error).message}`;
  }
  return undefined;
}

export interface Trigger {
  cron: string | null;
  intervalSeconds: number | null;
  timezone: string;
}

/** Throws VALIDATION_FAILED (with the field) unless exactly one of cron / interval is valid. */
export function assertTrigger(t: Trigger): void {
  if (!validTimeZone(t.timezone))
    throw new CodedError(
      'VALIDATION_FAILED',
      `unknown time zone '${t.timezone}' (an IANA name such as Europe/Berlin)`,
      {
        location: 'timezone',
      },
    );
  if ((t.cron === null) === (t.intervalSeconds === null))
    throw new CodedError('VALIDATION_FAILED', 'give exactly one of cron and intervalSeconds', {
      location: 'cron',
    });
  if (t.cron !== null) {
    const problem = cronProblem(t.cron, t.timezone);
    if (problem) throw new CodedError('VALIDATION_FAILED', problem, { location: 'cron' });
  }
}

/**
 * The first slot strictly after `after` (ms), or null when there is none. An interval counts from
 * `prev` (the previous slot; none: from `after`), so its slots keep their rhythm.
 */
export function nextSlot(t: Trigger, after: number, prev?: number): number | null {
  if (t.intervalSeconds !== null) {
    const step = t.intervalSeconds * 1000;
    const base = prev ?? after;
    if (base + step > after) return base + step;
    return base + (Math.floor((after - base) / step) + 1) * step;
  }
  if (t.cron === null) return null;
  const next = new Cron(t.cron.trim(), { timezone: t.timezone, paused: true }).nextRun(new Date(after));
  return next ? next.getTime() : null;
}

const name = z.string().trim().min(1).max(191);
const cron = z.string().min(1).max(128);
const interval = z.number().int().min(MIN_INTERVAL_SECONDS).max(MAX_INTERVAL_SECONDS);
const timezone = z.string().min(1).max(64);

export const CreateSchedule = z.object({
  name,
  /** 5 fields (minute hour day-of-month month day-of-week) or a nickname (@hourly, @daily…) */
  cron: cron.optional(),
  /** or every N seconds (60 s to a year), counted from when the schedule was created or enabled */
  intervalSeconds: interval.optional(),
  /** IANA time zone the cron expression is read in */
  timezone: timezone.default('UTC'),
  /** run only while the server is running (else the run is recorded as skipped) */
  onlyWhenOnline: z.boolean().default(false),
  enabled: z.boolean().default(true),
  tasks: z.array(ScheduleTask).min(1).max(MAX_TASKS),
});
export type CreateSchedule = z.infer<typeof CreateSchedule>;

/** Only the fields given change; `cron: null` with an `intervalSeconds` switches kinds. */
export const PatchSchedule = z.object({
  name: name.optional(),
  cron: cron.nullable().optional(),
  intervalSeconds: interval.nullable().optional(),
  timezone: timezone.optional(),
  onlyWhenOnline: z.boolean().optional(),
  enabled: z.boolean().optional(),
  tasks: z.array(ScheduleTask).min(1).max(MAX_TASKS).optional(),
});
export type PatchSchedule = z.infer<typeof PatchSchedule>;

export const RunTrigger = z.enum(['schedule', 'catch_up', 'manual']);
export const RunState = z.enum(['running', 'completed', 'failed', 'skipped', 'interrupted']);
export const TaskResult = z.enum(['pending', 'running', 'ok', 'failed', 'skipped']);

export const RunTaskResult = z.object({
  index: z.number().int(),
  action: z.string(),
  result: TaskResult,
  message: z.string().nullable(),
  operationId: z.string().nullable(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
});
export type RunTaskResult = z.infer<typeof RunTaskResult>;

export const ScheduleRun = z
  .object({
    id: z.string(),
    scheduleId: z.string(),
    trigger: RunTrigger,
    state: RunState,
    /** the slot this run was for (null: run now) */
    dueAt: z.string().nullable(),
    startedAt: z.string(),
    finishedAt: z.string().nullable(),
    message: z.string().nullable(),
    tasks: z.array(RunTaskResult),
  })
  .meta({ id: 'ScheduleRun' });
export type ScheduleRun = z.infer<typeof ScheduleRun>;

export const Schedule = z
  .object({
    id: z.string(),
    serverId: z.string(),
    name: z.string(),
    cron: z.string().nullable(),
    intervalSeconds: z.number().int().nullable(),
    timezone: z.string(),
    onlyWhenOnline: z.boolean(),
    enabled: z.boolean(),
    tasks: z.array(ScheduleTask),
    /** the next slot (null: disabled, or the expression never runs again) */
    nextRunAt: z.string().nullable(),
    lastRun: z
      .object({
        id: z.string(),
        state: RunState,
        startedAt: z.string(),
        finishedAt: z.string().nullable(),
      })
      .nullable(),
    /** a run of it is in progress */
    running: z.boolean(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'Schedule' });
export type Schedule = z.infer<typeof Schedule>;
