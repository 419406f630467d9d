/**
 * Schedules (issue 13 item 1) and who may do what with them: a schedule never does what its
 * editor may not (each task needs its own permission at create, update and run now: a subuser
 * with `schedule.create` alone cannot schedule a stop), and a schedule of another server is not
 * reachable through this one's path (Pterodactyl 1.2.2's schedule IDOR). Real Panel, fake Agent.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  type Account,
  createAccount,
  createServer,
  fakeAgentNode,
  grantPermissions,
  type Json,
  type Session,
  startTestPanel,
  type TestPanel,
} from '../helpers.ts';

const body = (tasks: Json[]) => ({ name: 'nightly', intervalSeconds: 3600, tasks });
const stop = { action: 'power', power: 'stop' };
const restart = { action: 'power', power: 'restart' };
const say = { action: 'command', command: 'say hi' };

describe('schedule access', () => {
  let panel: TestPanel;
  let owner: Session;
  let serverA: string;
  let serverB: string;
  let scheduleA: string;
  let scheduleB: string;
  let sub: Account;
  let stranger: Account;

  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
    const node = await fakeAgentNode(panel, owner);
    serverA = await createServer(panel, owner, node.id, 'sched-a');
    serverB = await createServer(panel, owner, node.id, 'sched-b');
    sub = await createAccount(panel, owner, 'schedsub', 'user');
    stranger = await createAccount(panel, owner, 'schedstranger', 'user');
    const a = await panel.api(owner, 'POST', `/api/servers/${serverA}/schedules`, body([restart]));
    const b = await panel.api(owner, 'POST', `/api/servers/${serverB}/schedules`, body([stop]));
    assert.equal(a.status, 201, JSON.stringify(a.body));
    assert.equal(b.status, 201, JSON.stringify(b.body));
    scheduleA = a.body.id;
    scheduleB = b.body.id;
  });
  after(async () => {
    await panel?.stop();
  });

  test('each task needs its own permission to be scheduled, changed in, or run now', async () => {
    await grantPermissions(panel, owner, serverA, sub, [
      'schedule.create',
      'schedule.read',
      'schedule.update',
    ]);
    const url = `/api/servers/${serverA}/schedules`;
    for (const [task, perm] of [
      [stop, 'control.stop'],
      [restart, 'control.restart'],
      [say, 'control.command'],
      [{ action: 'power', power: 'kill' }, 'control.stop'],
      [{ action: 'backup' }, 'backup.create'],
      [{ action: 'reinstall' }, 'settings.reinstall'],
    ] as const) {
      const r = await panel.api(sub, 'POST', url, body([say, task].slice(task === say ? 1 : 0)));
      assert.equal(r.status, 403, `${JSON.stringify(task)}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'FORBIDDEN');
      assert.ok(r.body.details.missing.includes(perm), JSON.stringify(r.body));
    }
    // changing the owner's schedule to hold a stop, or running its restart now: refused too
    const patch = await panel.api(sub, 'PATCH', `${url}/${scheduleA}`, { tasks: [stop] });
    assert.equal(patch.status, 403, JSON.stringify(patch.body));
    const run = await panel.api(sub, 'POST', `${url}/${scheduleA}/run?wait=true`);
    assert.equal(run.status, 403, JSON.stringify(run.body));
    assert.deepEqual(run.body.details.missing, ['control.restart']);
    const runs = await panel.api(owner, 'GET', `${url}/${scheduleA}/runs`);
    assert.equal(runs.body.runs.length, 0);
    const kept = await panel.api(owner, 'GET', `${url}/${scheduleA}`);
    assert.deepEqual(
      kept.body.tasks.map((t: Json) => t.power),
      ['restart'],
    );

    // with the task's permission it may
    await grantPermissions(panel, owner, serverA, sub, [
      'schedule.create',
      'schedule.read',
      'schedule.update',
      'control.command',
    ]);
    const ok = await panel.api(sub, 'POST', url, body([say]));
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
  });

  test('a schedule of another server is not reachable through this one', async () => {
    await grantPermissions(panel, owner, serverA, sub, [
      'schedule.create',
      'schedule.read',
      'schedule.update',
      'schedule.delete',
      'control.stop',
    ]);
    const base = `/api/servers/${serverA}/schedules/${scheduleB}`;
    for (const [method, path, b] of [
      ['GET', base, undefined],
      ['PATCH', base, { enabled: false }],
      ['DELETE', base, undefined],
      ['POST', `${base}/run?wait=true`, undefined],
      ['GET', `${base}/runs`, undefined],
    ] as const) {
      const r = await panel.api(sub, method, path, b);
      assert.equal(r.status, 404, `${method} ${path}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'SCHEDULE_NOT_FOUND');
    }
    const b = await panel.api(owner, 'GET', `/api/servers/${serverB}/schedules/${scheduleB}`);
    assert.equal(b.status, 200);
    assert.equal(b.body.enabled, true);
    const runs = await panel.api(owner, 'GET', `/api/servers/${serverB}/schedules/${scheduleB}/runs`);
    assert.equal(runs.body.runs.length, 0);
    // and server B itself is not there for the subuser
    const direct = await panel.api(sub, 'GET', `/api/servers/${serverB}/schedules/${scheduleB}`);
    assert.equal(direct.status, 404);
    assert.equal(direct.body.code, 'SERVER_NOT_FOUND');
  });

  test('without schedule.read nothing is listed; a stranger does not see the server', async () => {
    await grantPermissions(panel, owner, serverA, sub, ['control.console']);
    const r = await panel.api(sub, 'GET', `/api/servers/${serverA}/schedules`);
    assert.equal(r.status, 403);
    assert.deepEqual(r.body.details.missing, ['schedule.read']);
    const s = await panel.api(stranger, 'GET', `/api/servers/${serverA}/schedules`);
    assert.equal(s.status, 404);
    assert.equal(s.body.code, 'SERVER_NOT_FOUND');
  });
});
