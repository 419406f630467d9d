/**
 * A schedule on a real game server (issue 13 item 1): OpenTTD from its built-in template on the
 * real Agent and Docker Engine; a schedule "say, back up, restart" run now goes through its
 * tasks in order: the console line shows, a completed backup is on the node, the container was
 * restarted (a later StartedAt) and the server is running again; the run's history says so.
 * Then a due slot (the tick) runs it once more on its own. Images: scripts/images/build.sh games.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../packages/agent/test/helpers.ts';
import { type Json, until } from '../packages/panel/test/helpers.ts';
import { docker, type Stack, startStack } from './harness.ts';

const READY_MS = 120_000;

describe('Panel + Agent + Docker: a schedule backs up and restarts OpenTTD', () => {
  let stack: Stack;
  let serverId = '';
  const api = (m: string, p: string, b?: unknown) => stack.panel.api(stack.owner, m, p, b);
  const status = async () => (await api('GET', `/api/servers/${serverId}`)).body.status as string;
  const startedAt = async () => {
    const [c] = (await stack.containers(serverId)).filter((x) => x.State === 'running');
    assert.ok(c, 'a running container');
    return (await docker.getContainer(c.Id).inspect()).State.StartedAt;
  };

  before(async () => {
    await docker
      .getImage('ctrl-alt-play/openttd:latest')
      .inspect()
      .catch(() => {
        throw new Error('image ctrl-alt-play/openttd missing: run bash scripts/images/build.sh games');
      });
    stack = await startStack('schedules');
    const tpl = ((await api('GET', '/api/templates')).body as Json[]).find(
      (t) => t.name === 'OpenTTD' && t.builtin,
    );
    assert.ok(tpl, 'the built-in OpenTTD template');
    const port = await freePort('0.0.0.0');
    const pool = await api('POST', `/api/nodes/${stack.nodeId}/allocations`, {
      ip: '0.0.0.0',
      ports: [String(port)],
    });
    assert.equal(pool.status, 201, JSON.stringify(pool.body));
    const res = await api('POST', '/api/servers?wait=true', {
      name: 'scheduled openttd',
      nodeId: stack.nodeId,
      templateId: tpl.id,
      environment: { SERVER_NAME: 'schedule e2e' },
      allocationId: pool.body[0].id,
      limits: { memory: 1024 },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    serverId = res.body.id;
    await until(async () => (await status()) === 'offline', READY_MS);
    assert.equal((await api('POST', `/api/servers/${serverId}/power`, { action: 'start' })).status, 202);
    await until(async () => (await status()) === 'running', READY_MS);
  });
  after(async () => {
    if (serverId) await api('DELETE', `/api/servers/${serverId}?force=true`).catch(() => undefined);
    await stack?.stop();
  });

  it('run now: say, back up, restart, in order; history and the node agree', {
    timeout: 300_000,
  }, async () => {
    const created = await api('POST', `/api/servers/${serverId}/schedules`, {
      name: 'nightly',
      cron: '0 4 * * *',
      timezone: 'Europe/Berlin',
      onlyWhenOnline: true,
      tasks: [
        { action: 'command', command: 'say "schedule-was-here"' },
        { action: 'backup', offsetSeconds: 1 },
        { action: 'power', power: 'restart', offsetSeconds: 1 },
      ],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.match(created.body.nextRunAt, /T0[23]:00:00.000Z$/);
    const sid = created.body.id;
    const before = await startedAt();
    const ws = await stack.panel.clientSocket(stack.owner);
    try {
      ws.send({ type: 'subscribe', serverId });
      await ws.next((m) => m.type === 'subscribed');
      const run = await api('POST', `/api/servers/${serverId}/schedules/${sid}/run?wait=true`);
      assert.equal(run.status, 200, JSON.stringify(run.body));
      assert.equal(run.body.state, 'completed', JSON.stringify(run.body));
      assert.deepEqual(
        run.body.tasks.map((t: Json) => [t.action, t.result]),
        [
          ['command', 'ok'],
          ['backup', 'ok'],
          ['power', 'ok'],
        ],
      );
      // in order: each began after the previous ended
      for (let i = 1; i < 3; i++)
        assert.ok(run.body.tasks[i].startedAt >= run.body.tasks[i - 1].finishedAt, JSON.stringify(run.body));
      assert.ok(
        ws.messages.some(
          (m) => m.type === 'console' && m.lines.some((l: string) => /schedule-was-here/.test(l)),
        ),
        'the command reached the game console',
      );
    } finally {
      ws.close();
    }
    // the backup: completed, on the node, named after the schedule
    const backups = (await api('GET', `/api/servers/${serverId}/backups`)).body.backups as Json[];
    assert.equal(backups.length, 1);
    assert.equal(backups[0].state, 'completed');
    assert.equal(backups[0].name, 'schedule: nightly');
    assert.ok(existsSync(path.join(stack.agentDir, 'backups', serverId, `${backups[0].backupId}.tar.zst`)));
    // restarted: a new start of the container, running again
    await until(async () => (await status()) === 'running', READY_MS);
    assert.ok((await startedAt()) > before, 'the container was restarted');
    const runs = await api('GET', `/api/servers/${serverId}/schedules/${sid}/runs`);
    assert.equal(runs.body.runs.length, 1);
    assert.equal(runs.body.runs[0].trigger, 'manual');
    // a server that is not running: onlyWhenOnline skips the run, no backup is made
    assert.equal((await api('POST', `/api/servers/${serverId}/power`, { action: 'stop' })).status, 202);
    await until(async () => (await status()) === 'offline', 60_000);
    const skipped = await api('POST', `/api/servers/${serverId}/schedules/${sid}/run?wait=true`);
    assert.equal(skipped.body.state, 'skipped', JSON.stringify(skipped.body));
    assert.equal((await api('GET', `/api/servers/${serverId}/backups`)).body.backups.length, 1);
  });

  it('a due slot is run by the tick on its own, once', { timeout: 120_000 }, async () => {
    assert.equal((await api('POST', `/api/servers/${serverId}/power`, { action: 'start' })).status, 202);
    await until(async () => (await status()) === 'running', READY_MS);
    const created = await api('POST', `/api/servers/${serverId}/schedules`, {
      name: 'hourly say',
      intervalSeconds: 3600,
      tasks: [{ action: 'command', command: 'say "tick-was-here"' }],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const sid = created.body.id as string;
    // make its slot due now (as if an hour had passed)
    await stack.panel.app.panel.db
      .updateTable('schedules')
      .set({ next_run_at: new Date(Date.now() - 1000).toISOString() })
      .where('id', '=', sid)
      .execute();
    let runs: Json[] = [];
    await until(async () => {
      runs = (await api('GET', `/api/servers/${serverId}/schedules/${sid}/runs`)).body.runs;
      return runs.length === 1 && runs[0].state !== 'running';
    }, 30_000);
    assert.equal(runs[0].trigger, 'schedule');
    assert.equal(runs[0].state, 'completed', JSON.stringify(runs[0]));
    const after = (await api('GET', `/api/servers/${serverId}/schedules/${sid}`)).body;
    assert.ok(Date.parse(after.nextRunAt) > Date.now() + 3500_000, after.nextRunAt);
    // no second run for that slot
    await new Promise((r) => setTimeout(r, 6000));
    runs = (await api('GET', `/api/servers/${serverId}/schedules/${sid}/runs`)).body.runs;
    assert.equal(runs.length, 1);
  });
});
