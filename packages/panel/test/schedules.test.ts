/**
 * Schedules (issue 13 item 1) with a fake clock: the SchedulesService on a real Panel database
 * (SQLite), its tick called by hand, its tasks run by a recording runner. Slots run once (also
 * with two services on one database, as after a restart or with two replicas), offsets are
 * waited, missed slots follow the stated rule, a run cut by a restart resumes or is closed.
 * Then the REST surface against a real Panel with the fake Agent.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { InProcessBus } from '../src/bus/index.ts';
import type { Db } from '../src/db/index.ts';
import type { Periodic } from '../src/lib/periodic.ts';
import { SchedulesRepo } from '../src/modules/schedules/repo.ts';
import type { ScheduleTask } from '../src/modules/schedules/schemas.ts';
import { SchedulesService, type TaskRunner } from '../src/modules/schedules/service.ts';
import {
  createServer,
  fakeAgentNode,
  type InjectPanel,
  injectPanel,
  type Json,
  type Session,
  scratchDatabase,
  startTestPanel,
  type TestPanel,
  until,
} from './helpers.ts';

const T0 = Date.parse('2026-12-01T10:00:00.000Z');
const MIN = 60_000;
const noPeriodic: Periodic = { every: () => () => undefined };

interface Clock {
  t: number;
}

/** A runner that records what ran; `hold` makes a task of that action hang after starting an operation. */
function recorder(opts: { status?: string; fail?: Set<string>; hold?: string } = {}) {
  const ran: { serverId: string; task: ScheduleTask; at: number }[] = [];
  const resumed: string[] = [];
  let clock: Clock = { t: 0 };
  const runner: TaskRunner = {
    status: async () => (opts.status ?? 'running') as never,
    resume: async (op) => {
      resumed.push(op);
      return `resumed ${op}`;
    },
    async run(serverId, task, ctx) {
      ran.push({ serverId, task, at: clock.t });
      if (task.action !== 'command') await ctx.started(`op-${ran.length}`);
      if (opts.hold === task.action) await new Promise(() => undefined);
      if (opts.fail?.has(task.action)) throw new Error(`${task.action} broke`);
      return `${task.action} ok`;
    },
  };
  return {
    runner,
    ran,
    resumed,
    use(c: Clock) {
      clock = c;
    },
  };
}

function service(db: Db, clock: Clock, runner: TaskRunner, extra: { resumeWindowMs?: number } = {}) {
  const slept: number[] = [];
  const s = new SchedulesService({
    repo: new SchedulesRepo(db),
    runner,
    bus: new InProcessBus({ error: () => undefined }),
    log: pino({ level: 'silent' }),
    periodic: noPeriodic,
    now: () => clock.t,
    sleep: async (ms) => {
      slept.push(ms);
      clock.t += ms;
    },
    ...extra,
  });
  return { s, slept };
}

const cmd = (command: string, offsetSeconds = 0): ScheduleTask => ({
  action: 'command',
  command,
  offsetSeconds,
  continueOnFailure: false,
});
const power = (p: 'start' | 'stop' | 'restart' | 'kill', offsetSeconds = 0): ScheduleTask => ({
  action: 'power',
  power: p,
  offsetSeconds,
  continueOnFailure: false,
});
const input = (over: Json = {}) => ({
  name: 'nightly',
  timezone: 'UTC',
  onlyWhenOnline: false,
  enabled: true,
  tasks: [cmd('say hi'), power('restart', 30)],
  ...over,
});

for (const engine of ['sqlite', 'postgres'] as const)
  describe(`schedules with a fake clock (${engine})`, () => {
    let drop: () => Promise<void> = async () => undefined;
    let panel: InjectPanel;
    let db: Db;
    let serverId: string;
    let n = 0;

    before(async () => {
      const scratch = await scratchDatabase(engine, 'cap_sched_clock');
      drop = scratch.drop;
      panel = await injectPanel(scratch.env);
      db = panel.app.panel.db;
      // this Panel's own scheduler (the real clock) stays out of the way
      panel.app.panel.schedules.close();
      const now = new Date().toISOString();
      await db
        .insertInto('nodes')
        .values({ id: 'nsched0001', name: 'sched-node', secret_hash: 'x', created_at: now } as never)
        .execute();
      const ownerId = (await db.selectFrom('users').select('id').executeTakeFirstOrThrow()).id;
      serverId = 'ssched0001';
      await db
        .insertInto('servers')
        .values({
          id: serverId,
          name: 's',
          node_id: 'nsched0001',
          image: 'ctrl-alt-play/busybox:latest',
          startup: '',
          environment: '{}',
          ports: '[]',
          limits: '{}',
          done: null,
          stop: null,
          status: 'offline',
          desired_state: 'offline',
          last_update: null,
          created_at: now,
          updated_at: now,
          template_id: null,
          allocation_id: null,
          stop_timeout: null,
          owner_id: ownerId,
        })
        .execute();
    });
    after(async () => {
      await panel?.stop();
      await drop();
    });
    const fresh = async (s: SchedulesService, over: Json = {}) =>
      s.create(serverId, input({ name: `sch-${++n}`, ...over }), null);

    test('a cron expression is read in its time zone; the next slot is in the answer', async () => {
      const clock = { t: T0 };
      const { s } = service(db, clock, recorder().runner);
      // 03:00 in Berlin in December (UTC+1) is 02:00Z
      const berlin = await fresh(s, { cron: '0 3 * * *', timezone: 'Europe/Berlin' });
      assert.equal(berlin.nextRunAt, '2026-12-02T02:00:00.000Z');
      const ny = await fresh(s, { cron: '30 9 * * 1-5', timezone: 'America/New_York' });
      // Tue 1 Dec 2026 10:00Z is 05:00 in New York: 09:30 EST that day is 14:30Z
      assert.equal(ny.nextRunAt, '2026-12-01T14:30:00.000Z');
      const every = await fresh(s, { intervalSeconds: 3600 });
      assert.equal(every.nextRunAt, new Date(T0 + 60 * MIN).toISOString());
      const off = await fresh(s, { intervalSeconds: 3600, enabled: false });
      assert.equal(off.nextRunAt, null);
      // enabling computes it from now; disabling clears it
      clock.t += 5 * MIN;
      const on = await s.patch(serverId, off.id, { enabled: true });
      assert.equal(on.nextRunAt, new Date(clock.t + 60 * MIN).toISOString());
      for (const x of [berlin, ny, every, off]) await s.delete(serverId, x.id);
    });

    test('a due slot runs once, tasks in order after their offsets; a second service does not run it again', async () => {
      const clock = { t: T0 };
      const rec = recorder();
      rec.use(clock);
      const a = service(db, clock, rec.runner);
      const b = service(db, clock, rec.runner);
      const sch = await fresh(a.s, { intervalSeconds: 600 });
      clock.t = T0 + 10 * MIN + 1000;
      // two rounds at the same moment (another replica, or a round that overlapped)
      await Promise.all([a.s.tick(), b.s.tick()]);
      await Promise.all([a.s.idle(), b.s.idle()]);
      assert.deepEqual(
        rec.ran.map((r) => r.task.action),
        ['command', 'power'],
      );
      // the restart waited its 30 s after the command
      assert.equal(rec.ran[1]?.at, (rec.ran[0]?.at ?? 0) + 30_000);
      const runs = await a.s.runs(serverId, sch.id, 10);
      assert.equal(runs.length, 1);
      const run = runs[0] as Json;
      assert.equal(run.state, 'completed');
      assert.equal(run.trigger, 'schedule');
      assert.equal(run.dueAt, new Date(T0 + 10 * MIN).toISOString());
      assert.deepEqual(
        run.tasks.map((t: Json) => [t.result, t.message]),
        [
          ['ok', 'command ok'],
          ['ok', 'power ok'],
        ],
      );
      assert.equal(run.tasks[1].operationId, 'op-2');
      const again = await a.s.get(serverId, sch.id);
      assert.equal(again.nextRunAt, new Date(T0 + 20 * MIN).toISOString());
      assert.equal(again.lastRun?.state, 'completed');
      // nothing due: nothing runs
      await a.s.tick();
      await a.s.idle();
      assert.equal(rec.ran.length, 2);
      await a.s.delete(serverId, sch.id);
    });

    test('missed slots: one catch-up run when less than 5 min late, else one skipped run saying so', async () => {
      const clock = { t: T0 };
      const rec = recorder();
      const { s } = service(db, clock, rec.runner);
      const sch = await fresh(s, { intervalSeconds: 60 });
      // down for 3.5 slots, the latest one 30 s ago: one catch-up run
      clock.t = T0 + 4 * MIN + 30_000;
      await s.tick();
      await s.idle();
      let runs = await s.runs(serverId, sch.id, 10);
      assert.equal(runs.length, 1);
      assert.equal(runs[0]?.trigger, 'catch_up');
      assert.equal(runs[0]?.state, 'completed');
      assert.equal(runs[0]?.dueAt, new Date(T0 + 4 * MIN).toISOString());
      assert.match(runs[0]?.message ?? '', /3 earlier slots passed over/);
      assert.equal(rec.ran.length, 2);
      await s.delete(serverId, sch.id);

      const daily = await fresh(s, { cron: '0 12 * * *' });
      assert.equal(daily.nextRunAt, '2026-12-01T12:00:00.000Z');
      // the Panel was down from 11:00 to 12:20: the 12:00 slot is 20 min late: skipped, logged
      clock.t = Date.parse('2026-12-01T12:20:00.000Z');
      rec.ran.length = 0;
      await s.tick();
      await s.idle();
      runs = await s.runs(serverId, daily.id, 10);
      assert.equal(runs.length, 1);
      assert.equal(runs[0]?.state, 'skipped');
      assert.match(runs[0]?.message ?? '', /^missed: due at 2026-12-01T12:00:00.000Z, found 20 min late/);
      assert.deepEqual(
        runs[0]?.tasks.map((t) => t.result),
        ['skipped', 'skipped'],
      );
      assert.equal(rec.ran.filter((r) => r.serverId === serverId).length, 0);
      assert.equal((await s.get(serverId, daily.id)).nextRunAt, '2026-12-02T12:00:00.000Z');
      await s.delete(serverId, daily.id);
    });

    test('only when online: a server that is not running skips the run, every task skipped', async () => {
      const clock = { t: T0 };
      const rec = recorder({ status: 'offline' });
      const { s } = service(db, clock, rec.runner);
      const sch = await fresh(s, { intervalSeconds: 60, onlyWhenOnline: true });
      const { done } = await s.runNow(serverId, sch.id, null);
      const run = await done;
      assert.equal(run.state, 'skipped');
      assert.equal(run.trigger, 'manual');
      assert.match(run.message ?? '', /the server is offline \(only when online\)/);
      assert.equal(rec.ran.length, 0);
      await s.delete(serverId, sch.id);
    });

    test('a failing task stops the run unless it may fail; results say which', async () => {
      const clock = { t: T0 };
      const rec = recorder({ fail: new Set(['command']) });
      const { s } = service(db, clock, rec.runner);
      const stop = await fresh(s, { intervalSeconds: 60 });
      let run = await (await s.runNow(serverId, stop.id, null)).done;
      assert.equal(run.state, 'failed');
      assert.deepEqual(
        run.tasks.map((t) => t.result),
        ['failed', 'skipped'],
      );
      assert.equal(run.tasks[0]?.message, 'command broke');
      const goOn = await fresh(s, {
        intervalSeconds: 60,
        tasks: [{ ...cmd('x'), continueOnFailure: true }, power('stop')],
      });
      run = await (await s.runNow(serverId, goOn.id, null)).done;
      assert.equal(run.state, 'failed');
      assert.deepEqual(
        run.tasks.map((t) => t.result),
        ['failed', 'ok'],
      );
      await s.delete(serverId, stop.id);
      await s.delete(serverId, goOn.id);
    });

    test('a restart in the middle: the run resumes (its operation waited for, not started again) or, too old, is closed interrupted', async () => {
      const clock = { t: T0 };
      // the first Panel: the restart's operation starts, then the Panel stops
      const first = recorder({ hold: 'power' });
      const a = service(db, clock, first.runner);
      const sch = await fresh(a.s, {
        intervalSeconds: 600,
        tasks: [power('restart'), cmd('after', 10), cmd('last', 5)],
      });
      const { runId } = await a.s.runNow(serverId, sch.id, null);
      // its operation id is stored before the Panel "stops"
      await until(async () => (await a.s.run(serverId, runId)).tasks[0]?.operationId === 'op-1');
      a.s.close();
      assert.equal(first.ran.length, 1);
      // a second run is refused while that one is open
      const b0 = service(db, clock, recorder().runner);
      await assert.rejects(b0.s.runNow(serverId, sch.id, null), { code: 'CONFLICT' });

      // the next Panel, 2 min later: resumes
      clock.t += 2 * MIN;
      const second = recorder();
      second.use(clock);
      const b = service(db, clock, second.runner);
      await b.s.recover();
      await b.s.idle();
      assert.deepEqual(second.resumed, ['op-1']);
      assert.deepEqual(
        second.ran.map((r) => (r.task.action === 'command' ? r.task.command : r.task.action)),
        ['after', 'last'],
      );
      const run = await b.s.run(serverId, runId);
      assert.equal(run.state, 'completed');
      assert.deepEqual(
        run.tasks.map((t) => [t.result, t.message]),
        [
          ['ok', 'resumed op-1'],
          ['ok', 'command ok'],
          ['ok', 'command ok'],
        ],
      );

      // a command being sent when the Panel stopped is not sent again
      const third = recorder({ hold: 'command' });
      const c = service(db, clock, third.runner);
      const sch2 = await fresh(c.s, { intervalSeconds: 600, tasks: [cmd('once'), cmd('next')] });
      const r2 = await c.s.runNow(serverId, sch2.id, null);
      await until(() => third.ran.length === 1);
      c.s.close();
      const fourth = recorder();
      const d = service(db, clock, fourth.runner);
      await d.s.recover();
      await d.s.idle();
      assert.equal(fourth.ran.length, 0);
      const run2 = await d.s.run(serverId, r2.runId);
      assert.equal(run2.state, 'failed');
      assert.match(
        run2.tasks[0]?.message ?? '',
        /interrupted: the Panel restarted while this task ran; it is not sent again/,
      );
      assert.equal(run2.tasks[1]?.result, 'skipped');

      // back after more than 15 min: closed as interrupted, nothing more runs
      const fifth = recorder({ hold: 'power' });
      const e = service(db, clock, fifth.runner);
      const sch3 = await fresh(e.s, { intervalSeconds: 600, tasks: [power('stop'), cmd('later')] });
      const r3 = await e.s.runNow(serverId, sch3.id, null);
      await until(async () => (await e.s.run(serverId, r3.runId)).tasks[0]?.operationId === 'op-1');
      e.s.close();
      clock.t += 16 * MIN;
      const sixth = recorder();
      const f = service(db, clock, sixth.runner);
      await f.s.recover();
      await f.s.idle();
      assert.equal(sixth.ran.length + sixth.resumed.length, 0);
      const run3 = await f.s.run(serverId, r3.runId);
      assert.equal(run3.state, 'interrupted');
      assert.match(run3.message ?? '', /came back 16 min after it began \(more than 15 min: not resumed\)/);
      assert.deepEqual(
        run3.tasks.map((t) => t.result),
        ['failed', 'skipped'],
      );
      for (const id of [sch.id, sch2.id, sch3.id]) await f.s.delete(serverId, id);
    });
  });

for (const engine of ['sqlite', 'postgres'] as const)
  describe(`schedules REST (${engine})`, () => {
    let drop: () => Promise<void> = async () => undefined;
    let panel: TestPanel;
    let owner: Session;
    let serverId: string;
    const api = (method: string, path: string, body?: unknown) =>
      panel.api(owner, method, `/api/servers/${serverId}${path}`, body);

    before(async () => {
      const db = await scratchDatabase(engine, 'cap_schedules');
      drop = db.drop;
      panel = await startTestPanel(db.env);
      owner = await panel.login();
      const node = await fakeAgentNode(panel, owner);
      serverId = await createServer(panel, owner, node.id, 'sched-rest');
    });
    after(async () => {
      await panel?.stop();
      await drop();
    });

    test('bad input is 400 VALIDATION_FAILED with the field', async () => {
      const cases: [Json, string][] = [
        [input({ cron: '0 3 * * *', timezone: 'Mars/Olympus' }), 'timezone'],
        [input({ cron: '0 3 * * *', timezone: '../etc' }), 'timezone'],
        [input({ cron: 'every day' }), 'cron'],
        [input({ cron: '*/5 * * * * *' }), 'cron'],
        [input({ cron: '0 0 31 2 *' }), 'cron'],
        [input({ cron: '0 3 * * *', intervalSeconds: 3600 }), 'cron'],
        [input({}), 'cron'],
      ];
      for (const [body, location] of cases) {
        const r = await api('POST', '/schedules', body);
        assert.equal(r.status, 400, JSON.stringify(body));
        assert.equal(r.body.code, 'VALIDATION_FAILED');
        assert.equal(r.body.location, location, JSON.stringify(r.body));
      }
      for (const body of [
        input({ intervalSeconds: 10 }),
        input({ intervalSeconds: Number.POSITIVE_INFINITY }),
        input({ intervalSeconds: 60, tasks: [] }),
        input({ intervalSeconds: 60, tasks: [{ action: 'power', power: 'explode' }] }),
        input({ intervalSeconds: 60, tasks: [{ action: 'command', command: 'x', offsetSeconds: 901 }] }),
        input({ intervalSeconds: 60, tasks: [{ action: 'update', readyTimeoutSeconds: 1 }] }),
        input({ intervalSeconds: 60, tasks: Array.from({ length: 21 }, () => cmd('x')) }),
      ]) {
        const r = await api('POST', '/schedules', body);
        assert.equal(r.status, 400, JSON.stringify(body).slice(0, 200));
        assert.equal(r.body.code, 'VALIDATION_FAILED');
      }
    });

    test('create, list, patch, run now (the fake Agent restarts), history, delete', async () => {
      const created = await api(
        'POST',
        '/schedules',
        input({
          cron: '15 4 * * *',
          timezone: 'Asia/Tokyo',
          tasks: [power('start'), cmd('say hi', 1), power('restart')],
        }),
      );
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const sid = created.body.id;
      assert.match(created.body.nextRunAt, /T19:15:00.000Z$/);
      const list = await api('GET', '/schedules');
      assert.deepEqual(
        list.body.schedules.map((x: Json) => x.id),
        [sid],
      );
      const patched = await api('PATCH', `/schedules/${sid}`, { intervalSeconds: 120, name: 'every two' });
      assert.equal(patched.status, 200, JSON.stringify(patched.body));
      assert.equal(patched.body.cron, null);
      assert.equal(patched.body.intervalSeconds, 120);
      const run = await api('POST', `/schedules/${sid}/run?wait=true`);
      assert.equal(run.status, 200, JSON.stringify(run.body));
      assert.equal(run.body.state, 'completed', JSON.stringify(run.body));
      assert.deepEqual(
        run.body.tasks.map((t: Json) => t.result),
        ['ok', 'ok', 'ok'],
      );
      const runs = await api('GET', `/schedules/${sid}/runs`);
      assert.equal(runs.body.runs[0].id, run.body.id);
      const activity = await panel.api(owner, 'GET', `/api/servers/${serverId}/activity`);
      const actions = activity.body.entries.map((x: Json) => x.action);
      for (const a of ['schedule.create', 'schedule.update', 'schedule.run'])
        assert.ok(actions.includes(a), a);
      assert.equal((await api('DELETE', `/schedules/${sid}`)).status, 204);
      const gone = await api('GET', `/schedules/${sid}`);
      assert.equal(gone.status, 404);
      assert.equal(gone.body.code, 'SCHEDULE_NOT_FOUND');
    });
  });
