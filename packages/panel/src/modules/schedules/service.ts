/**
 * Schedules (issue 13 item 1): a tick (through the `Periodic` seam, so several Panel replicas can
 * put a leader lock around it) finds enabled schedules whose slot is due, claims the slot with a
 * run row (unique per schedule and slot: a slot runs once, whatever restarts or other rounds do)
 * and moves the schedule on to its next slot; then the run's tasks go in order, each after its
 * offset, and each task's progress is stored in the run row before and after it runs.
 *
 * The rules, stated once (docs/contracts.md repeats them):
 * - Missed slots: a slot found due more than `missedGraceMs` (5 min) late (the Panel was down,
 *   or the schedule's slots were passed over) is not run: one `skipped` run records it ("missed"),
 *   with how many slots were passed; a slot less late runs once (trigger `catch_up` when it is
 *   over a minute late). Never more than one run per schedule for the slots missed.
 * - Restart in the middle: at start, a run still `running` resumes when it was claimed less than
 *   `resumeWindowMs` (15 min) ago: a task that had started an operation (power, backup,
 *   reinstall) waits for that operation's end (never started twice); a command that was being
 *   sent is not sent again (failed, "interrupted"); tasks not begun run after their offsets.
 *   An older run is closed `interrupted` and its tasks not begun are `skipped`.
 * - One run of a schedule at a time: a slot due while the previous run goes on is recorded as
 *   `skipped`; run now then answers 409 CONFLICT.
 * - `onlyWhenOnline`: a run (scheduled or run now) of a server that is not `running` when the run
 *   starts is `skipped`, every task skipped.
 */
import { randomUUID } from 'node:crypto';
import { CodedError, isCodedError, type ServerStatus } from '@cap/protocol';
import type { Logger } from 'pino';
import type { EventBus } from '../../bus/index.ts';
import type { ScheduleRunsTable, SchedulesTable } from '../../db/schema.ts';
import type { Periodic } from '../../lib/periodic.ts';
import type { SchedulesRepo } from './repo.ts';
import {
  assertTrigger,
  type CreateSchedule,
  MAX_SCHEDULES_PER_SERVER,
  nextSlot,
  type PatchSchedule,
  type RunTaskResult,
  type Schedule,
  type ScheduleRun,
  ScheduleTask,
  type Trigger,
} from './schemas.ts';

export const TICK_MS = 5000;
export const MISSED_GRACE_MS = 5 * 60_000;
export const RESUME_WINDOW_MS = 15 * 60_000;
/** a task's operation that has not ended after this long fails the task (TIMEOUT) */
export const TASK_TIMEOUT_MS = 30 * 60_000;

/** What runs a task on a server: the Panel's use cases (see `panelTaskRunner`), fakes in tests. */
export interface TaskRunner {
  status(serverId: string): Promise<ServerStatus>;
  /**
   * Runs the task to its end; resolves with a short message, throws on failure. A task that
   * starts an operation calls `started(operationId)` first (stored, for a resume).
   */
  run(
    serverId: string,
    task: ScheduleTask,
    ctx: { actor: string | null; scheduleName: string; started: (operationId: string) => Promise<void> },
  ): Promise<string>;
  /** Waits for an operation a task started before a restart; resolves with a message or throws. */
  resume(operationId: string): Promise<string>;
}

export interface SchedulesDeps {
  repo: SchedulesRepo;
  runner: TaskRunner;
  bus: EventBus;
  log: Logger;
  periodic: Periodic;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  tickMs?: number;
  missedGraceMs?: number;
  resumeWindowMs?: number;
}

const iso = (ms: number) => new Date(ms).toISOString();
const parseTasks = (json: string): ScheduleTask[] => ScheduleTask.array().parse(JSON.parse(json));
const triggerOf = (r: SchedulesTable): Trigger => ({
  cron: r.cron,
  intervalSeconds: r.interval_seconds === null ? null : Number(r.interval_seconds),
  timezone: r.timezone,
});

function pendingResults(tasks: ScheduleTask[]): RunTaskResult[] {
  return tasks.map((t, index) => ({
    index,
    action: t.action,
    result: 'pending',
    message: null,
    operationId: null,
    startedAt: null,
    finishedAt: null,
  }));
}

function errorText(e: unknown): string {
  const msg = (e as Error)?.message ?? String(e);
  return (isCodedError(e) ? `${e.code}: ${msg}` : msg).slice(0, 1024);
}

export class SchedulesService {
  readonly #repo: SchedulesRepo;
  readonly #runner: TaskRunner;
  readonly #bus: EventBus;
  readonly #log: Logger;
  readonly #periodic: Periodic;
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #tickMs: number;
  readonly #graceMs: number;
  readonly #resumeMs: number;
  /** runs executing in this process */
  readonly #active = new Map<string, Promise<void>>();
  /** schedules with a run being claimed or executing here (one run per schedule) */
  readonly #busy = new Set<string>();
  #stop: (() => void) | undefined;
  #closed = false;

  constructor(deps: SchedulesDeps) {
    this.#repo = deps.repo;
    this.#runner = deps.runner;
    this.#bus = deps.bus;
    this.#log = deps.log;
    this.#periodic = deps.periodic;
    this.#now = deps.now ?? Date.now;
    this.#sleep =
      deps.sleep ??
      ((ms) =>
        new Promise((r) => {
          setTimeout(r, ms).unref();
        }));
    this.#tickMs = deps.tickMs ?? TICK_MS;
    this.#graceMs = deps.missedGraceMs ?? MISSED_GRACE_MS;
    this.#resumeMs = deps.resumeWindowMs ?? RESUME_WINDOW_MS;
  }

  /**
   * Starts the tick; its first round (one tick after start, so Agents had a moment to connect)
   * resumes or closes the runs an earlier Panel left running.
   */
  init(): void {
    let recovered = false;
    this.#stop = this.#periodic.every('schedules', this.#tickMs, async () => {
      if (!recovered) {
        await this.recover();
        recovered = true;
      }
      await this.tick();
    });
  }

  /** Stops the tick; runs in progress stay `running` in the database (the next start's rule). */
  close(): void {
    this.#closed = true;
    this.#stop?.();
  }

  /** Resolves once every run this process executes has settled (tests). */
  async idle(): Promise<void> {
    while (this.#active.size > 0) await Promise.allSettled([...this.#active.values()]);
  }

  // ---- CRUD -------------------------------------------------------------------------------

  async list(serverId: string): Promise<Schedule[]> {
    const rows = await this.#repo.list(serverId);
    return Promise.all(rows.map((r) => this.#toSchedule(r)));
  }

  async get(serverId: string, id: string): Promise<Schedule> {
    return this.#toSchedule(await this.#row(serverId, id));
  }

  /** The stored tasks (for the permission check of run now). */
  async tasksOf(serverId: string, id: string): Promise<ScheduleTask[]> {
    return parseTasks((await this.#row(serverId, id)).tasks);
  }

  async create(serverId: string, input: CreateSchedule, actor: string | null): Promise<Schedule> {
    const trigger: Trigger = {
      cron: input.cron ?? null,
      intervalSeconds: input.intervalSeconds ?? null,
      timezone: input.timezone,
    };
    assertTrigger(trigger);
    if ((await this.#repo.count(serverId)) >= MAX_SCHEDULES_PER_SERVER)
      throw new CodedError('CONFLICT', `a server has at most ${MAX_SCHEDULES_PER_SERVER} schedules`);
    const now = this.#now();
    const id = randomUUID();
    const next = input.enabled ? nextSlot(trigger, now) : null;
    await this.#repo.insert({
      id,
      server_id: serverId,
      name: input.name,
      cron: trigger.cron === null ? null : trigger.cron.trim(),
      interval_seconds: trigger.intervalSeconds,
      timezone: trigger.timezone,
      only_when_online: input.onlyWhenOnline ? 1 : 0,
      enabled: input.enabled ? 1 : 0,
      tasks: JSON.stringify(input.tasks),
      next_run_at: next === null ? null : iso(next),
      created_by: actor,
      created_at: iso(now),
      updated_at: iso(now),
    });
    return this.get(serverId, id);
  }

  async patch(serverId: string, id: string, input: PatchSchedule): Promise<Schedule> {
    const row = await this.#row(serverId, id);
    const was = triggerOf(row);
    const trigger: Trigger = {
      cron: input.cron === undefined ? was.cron : input.cron,
      intervalSeconds: input.intervalSeconds === undefined ? was.intervalSeconds : input.intervalSeconds,
      timezone: input.timezone ?? was.timezone,
    };
    // switching kinds: giving the new one is enough
    if (input.cron && input.intervalSeconds === undefined) trigger.intervalSeconds = null;
    if (input.intervalSeconds && input.cron === undefined) trigger.cron = null;
    assertTrigger(trigger);
    const enabled = input.enabled ?? Number(row.enabled) === 1;
    const changedTrigger =
      trigger.cron !== was.cron ||
      trigger.intervalSeconds !== was.intervalSeconds ||
      trigger.timezone !== was.timezone;
    const now = this.#now();
    let next = row.next_run_at;
    if (!enabled) next = null;
    else if (changedTrigger || next === null) {
      const n = nextSlot(trigger, now);
      next = n === null ? null : iso(n);
    }
    await this.#repo.update(id, {
      ...(input.name === undefined ? {} : { name: input.name }),
      cron: trigger.cron === null ? null : trigger.cron.trim(),
      interval_seconds: trigger.intervalSeconds,
      timezone: trigger.timezone,
      ...(input.onlyWhenOnline === undefined ? {} : { only_when_online: input.onlyWhenOnline ? 1 : 0 }),
      enabled: enabled ? 1 : 0,
      ...(input.tasks === undefined ? {} : { tasks: JSON.stringify(input.tasks) }),
      next_run_at: next,
      updated_at: iso(now),
    });
    return this.get(serverId, id);
  }

  /** Deletes the schedule and its history; a run in progress here stops before its next task. */
  async delete(serverId: string, id: string): Promise<void> {
    await this.#row(serverId, id);
    await this.#repo.delete(id);
  }

  async runs(serverId: string, id: string, limit: number): Promise<ScheduleRun[]> {
    await this.#row(serverId, id);
    return (await this.#repo.runs(id, limit)).map(toRun);
  }

  async run(serverId: string, runId: string): Promise<ScheduleRun> {
    const r = await this.#repo.run(runId);
    if (!r || r.server_id !== serverId) throw new CodedError('SCHEDULE_NOT_FOUND', 'no such run');
    return toRun(r);
  }

  /** Run now: claims a manual run and starts it; `done` resolves with the run once it ended. */
  async runNow(
    serverId: string,
    id: string,
    actor: string | null,
  ): Promise<{ runId: string; done: Promise<ScheduleRun> }> {
    const row = await this.#row(serverId, id);
    if (this.#busy.has(id) || (await this.#repo.runningOf(id)))
      throw new CodedError('CONFLICT', 'a run of this schedule is in progress');
    const runId = randomUUID();
    this.#busy.add(id);
    try {
      await this.#claim(row, { runId, slot: `manual:${runId}`, trigger: 'manual', dueAt: null, actor });
    } catch (e) {
      this.#busy.delete(id);
      throw e;
    }
    const done = this.#start(runId).then(() => this.run(serverId, runId));
    return { runId, done };
  }

  // ---- the tick -------------------------------------------------------------------------------

  /** One round: every due schedule's slot claimed once, moved on, and run (or recorded skipped). */
  async tick(): Promise<void> {
    if (this.#closed) return;
    const now = this.#now();
    for (const row of await this.#repo.due(iso(now))) {
      if (this.#closed) return;
      await this.#due(row, now).catch((e: unknown) =>
        this.#log.error(
          { scheduleId: row.id, serverId: row.server_id, err: errorText(e) },
          'schedule round failed',
        ),
      );
    }
  }

  async #due(row: SchedulesTable, now: number): Promise<void> {
    const stored = row.next_run_at;
    if (stored === null) return;
    const trigger = triggerOf(row);
    // the latest slot at or before now, and how many earlier ones were passed over
    let slot = Date.parse(stored);
    let passed = 0;
    for (;;) {
      const n = nextSlot(trigger, slot, slot);
      if (n === null || n > now || passed >= 100_000) break;
      slot = n;
      passed++;
    }
    const next = nextSlot(trigger, now, slot);
    // move the schedule on first: a round that lost this race (another replica) stops here
    if (!(await this.#repo.advance(row.id, stored, next === null ? null : iso(next)))) return;
    const late = now - slot;
    const runId = randomUUID();
    const base = { runId, slot: iso(slot), dueAt: iso(slot), actor: row.created_by };
    const missedNote = passed > 0 ? ` (${passed} earlier slot${passed > 1 ? 's' : ''} passed over)` : '';
    if (late > this.#graceMs) {
      const message = `missed: due at ${iso(slot)}, found ${Math.round(late / 60_000)} min late (more than ${Math.round(this.#graceMs / 60_000)} min: not run)${missedNote}`;
      await this.#claim(row, { ...base, trigger: 'schedule', skipped: message });
      this.#log.warn({ scheduleId: row.id, serverId: row.server_id, dueAt: iso(slot) }, message);
      this.#record(row, runId, 'skipped');
      return;
    }
    const trig = late > 60_000 || passed > 0 ? 'catch_up' : 'schedule';
    if (this.#busy.has(row.id) || (await this.#repo.runningOf(row.id))) {
      await this.#claim(row, {
        ...base,
        trigger: trig,
        skipped: 'skipped: the previous run of this schedule was still going on',
      });
      this.#record(row, runId, 'skipped');
      return;
    }
    this.#busy.add(row.id);
    let claimed = false;
    try {
      claimed = await this.#claim(row, { ...base, trigger: trig });
    } finally {
      if (!claimed) this.#busy.delete(row.id);
    }
    if (!claimed) return;
    if (missedNote) await this.#repo.updateRun(runId, { message: `catch-up run${missedNote}` });
    void this.#start(runId);
  }

  /** Inserts the run row (the claim); a `skipped` one is closed at once with every task skipped. */
  async #claim(
    row: SchedulesTable,
    r: {
      runId: string;
      slot: string;
      trigger: 'schedule' | 'catch_up' | 'manual';
      dueAt: string | null;
      actor: string | null;
      skipped?: string;
    },
  ): Promise<boolean> {
    const tasks = parseTasks(row.tasks);
    const now = iso(this.#now());
    const results = pendingResults(tasks).map((t) => (r.skipped ? { ...t, result: 'skipped' as const } : t));
    return this.#repo.claim({
      id: r.runId,
      schedule_id: row.id,
      server_id: row.server_id,
      slot: r.slot,
      trigger: r.trigger,
      state: r.skipped ? 'skipped' : 'running',
      due_at: r.dueAt,
      tasks: JSON.stringify(tasks),
      results: JSON.stringify(results),
      next_task: 0,
      next_at: r.skipped ? null : iso(this.#now() + (tasks[0]?.offsetSeconds ?? 0) * 1000),
      message: r.skipped ?? null,
      actor_user_id: r.actor,
      started_at: now,
      finished_at: r.skipped ? now : null,
    });
  }

  // ---- executing a run ------------------------------------------------------------------------

  #start(runId: string, resumed = false): Promise<void> {
    const p = this.#execute(runId, resumed)
      .catch((e: unknown) => this.#log.error({ runId, err: errorText(e) }, 'schedule run failed'))
      .finally(() => this.#active.delete(runId));
    this.#active.set(runId, p);
    return p;
  }

  async #execute(runId: string, resumed: boolean): Promise<void> {
    const run = await this.#repo.run(runId);
    if (!run) return;
    try {
      await this.#steps(run, resumed);
    } finally {
      this.#busy.delete(run.schedule_id);
    }
  }

  async #steps(run: ScheduleRunsTable, resumed: boolean): Promise<void> {
    const schedule = await this.#repo.byId(run.schedule_id);
    if (!schedule) return;
    const tasks = parseTasks(run.tasks);
    const results: RunTaskResult[] = JSON.parse(run.results);
    const save = (patch: Partial<ScheduleRunsTable> = {}) =>
      this.#repo.updateRun(run.id, { results: JSON.stringify(results), ...patch });
    const finish = async (
      state: 'completed' | 'failed' | 'skipped' | 'interrupted',
      message: string | null,
    ) => {
      for (const r of results) if (r.result === 'pending') r.result = 'skipped';
      await save({ state, message: message ?? run.message, finished_at: iso(this.#now()), next_at: null });
      this.#record(schedule, run.id, state);
    };

    if (!resumed && Number(schedule.only_when_online) === 1) {
      const status = await this.#runner.status(run.server_id).catch(() => 'unknown');
      if (status !== 'running') {
        await finish('skipped', `skipped: the server is ${status} (only when online)`);
        return;
      }
    }
    let failed = false;
    let i = Number(run.next_task);
    let nextAt = run.next_at ? Date.parse(run.next_at) : this.#now();
    for (; i < tasks.length; i++) {
      const task = tasks[i] as ScheduleTask;
      const res = results[i] as RunTaskResult;
      if (res.result === 'running') {
        // begun before a restart: an operation is waited for, a command is not sent again
        if (res.operationId) {
          try {
            res.message = await this.#runner.resume(res.operationId);
            res.result = 'ok';
          } catch (e) {
            res.result = 'failed';
            res.message = errorText(e);
          }
        } else {
          res.result = 'failed';
          res.message = 'interrupted: the Panel restarted while this task ran; it is not sent again';
        }
      } else {
        const wait = nextAt - this.#now();
        if (wait > 0) await this.#sleep(wait);
        if (this.#closed) return;
        if (!(await this.#repo.byId(schedule.id))) return;
        res.result = 'running';
        res.startedAt = iso(this.#now());
        await save();
        try {
          res.message = await this.#withTimeout(
            this.#runner.run(run.server_id, task, {
              actor: run.actor_user_id,
              scheduleName: schedule.name,
              started: async (operationId) => {
                res.operationId = operationId;
                await save();
              },
            }),
          );
          res.result = 'ok';
        } catch (e) {
          res.result = 'failed';
          res.message = errorText(e);
        }
        if (this.#closed) return;
      }
      res.finishedAt = iso(this.#now());
      const following = tasks[i + 1];
      nextAt = this.#now() + (following?.offsetSeconds ?? 0) * 1000;
      await save({ next_task: i + 1, next_at: following ? iso(nextAt) : null });
      if (res.result === 'failed') {
        failed = true;
        if (!task.continueOnFailure) break;
      }
    }
    await finish(failed ? 'failed' : 'completed', null);
  }

  #withTimeout(p: Promise<string>): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new CodedError('TIMEOUT', `the task did not end in ${TASK_TIMEOUT_MS / 60_000} min`)),
        TASK_TIMEOUT_MS,
      );
      timer.unref();
    });
    return Promise.race([p, limit]).finally(() => clearTimeout(timer));
  }

  /** At start: runs left `running` resume (claimed within the window) or are closed `interrupted`. */
  async recover(): Promise<void> {
    const now = this.#now();
    for (const run of await this.#repo.running()) {
      if (this.#active.has(run.id)) continue;
      const age = now - Date.parse(run.started_at);
      if (age <= this.#resumeMs) {
        this.#log.info(
          { runId: run.id, scheduleId: run.schedule_id },
          'resuming a schedule run after a restart',
        );
        this.#busy.add(run.schedule_id);
        void this.#start(run.id, true);
        continue;
      }
      const results: RunTaskResult[] = JSON.parse(run.results);
      for (const r of results) {
        if (r.result === 'pending') r.result = 'skipped';
        if (r.result === 'running') {
          r.result = 'failed';
          r.message = 'interrupted: the Panel stopped while this task ran';
        }
      }
      const message = `interrupted: the Panel stopped during this run and came back ${Math.round(age / 60_000)} min after it began (more than ${Math.round(this.#resumeMs / 60_000)} min: not resumed)`;
      await this.#repo.updateRun(run.id, {
        state: 'interrupted',
        results: JSON.stringify(results),
        message,
        finished_at: iso(now),
        next_at: null,
      });
      this.#log.warn({ runId: run.id, scheduleId: run.schedule_id }, message);
    }
  }

  /** A run's end as an activity entry `schedule.run` (no actor: the schedule did it). */
  #record(schedule: SchedulesTable, runId: string, state: string): void {
    this.#bus.publish({
      kind: 'user_action',
      action: 'schedule.run',
      actor: null,
      ip: null,
      serverId: schedule.server_id,
      result: state === 'failed' || state === 'interrupted' ? 'INTERNAL_ERROR' : 'ok',
      at: iso(this.#now()),
      details: { scheduleId: schedule.id, name: schedule.name, runId, state },
    });
  }

  // ---- reading ----------------------------------------------------------------------------

  async #row(serverId: string, id: string): Promise<SchedulesTable> {
    const row = id.length <= 64 ? await this.#repo.find(serverId, id) : undefined;
    if (!row) throw new CodedError('SCHEDULE_NOT_FOUND', 'no such schedule on this server');
    return row;
  }

  async #toSchedule(r: SchedulesTable): Promise<Schedule> {
    const [last] = await this.#repo.runs(r.id, 1);
    return {
      id: r.id,
      serverId: r.server_id,
      name: r.name,
      cron: r.cron,
      intervalSeconds: r.interval_seconds === null ? null : Number(r.interval_seconds),
      timezone: r.timezone,
      onlyWhenOnline: Number(r.only_when_online) === 1,
      enabled: Number(r.enabled) === 1,
      tasks: parseTasks(r.tasks),
      nextRunAt: r.next_run_at,
      lastRun: last
        ? {
            id: last.id,
            state: toRun(last).state,
            startedAt: last.started_at,
            finishedAt: last.finished_at,
          }
        : null,
      running: this.#busy.has(r.id) || last?.state === 'running',
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    };
  }
}

const STATES = new Set(['running', 'completed', 'failed', 'skipped', 'interrupted']);
const TRIGGERS = new Set(['schedule', 'catch_up', 'manual']);

export function toRun(r: ScheduleRunsTable): ScheduleRun {
  return {
    id: r.id,
    scheduleId: r.schedule_id,
    trigger: (TRIGGERS.has(r.trigger) ? r.trigger : 'schedule') as ScheduleRun['trigger'],
    state: (STATES.has(r.state) ? r.state : 'failed') as ScheduleRun['state'],
    dueAt: r.due_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    message: r.message,
    tasks: JSON.parse(r.results) as RunTaskResult[],
  };
}
