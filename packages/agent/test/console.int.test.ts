/** Console throughput: the per-server throttle drops what is over the limit and says how much. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { egg, type Fixture, fixture, sleep, uid } from './helpers.ts';

let f: Fixture;
before(async () => {
  f = await fixture({ env: { AGENT_LOG_THROTTLE_LINES: '50', AGENT_LOG_THROTTLE_INTERVAL_MS: '1000' } });
  await f.panel.waitConnected();
});
after(() => f.cleanup());

test('a flood of console lines is throttled with a dropped-count notice', async () => {
  const id = uid('flood-');
  await f.panel.command('create_server', {
    serverId: id,
    eggConfig: egg('i=0; while [ $i -lt 500 ]; do echo "line $i"; i=$((i+1)); done; sleep 1000'),
  });
  await f.panel.command('start_server', {}, { serverId: id });
  const notice = await f.panel.waitEvent(
    'server_log_dropped',
    (d) => d.serverId === id && d.reason === 'throttled',
  );
  const delivered = () => f.panel.events('server_log').filter((e) => e.data.serverId === id).length;
  const droppedTotal = () =>
    f.panel
      .events('server_log_dropped')
      .filter((e) => e.data.serverId === id)
      .reduce((n, e) => n + e.data.count, 0);
  // every line is accounted for, delivered or counted, once the last window has closed
  const t0 = Date.now();
  while (delivered() + droppedTotal() < 500 && Date.now() - t0 < 10_000) await sleep(50);
  await sleep(100); // and nothing more arrives: no line counted twice
  assert.ok(notice.data.count > 0);
  assert.ok(delivered() < 500, `delivered ${delivered()}`);
  assert.equal(delivered() + droppedTotal(), 500);
});

test('ready detection with a regex: pattern and a list', async () => {
  const id = uid('regex-');
  await f.panel.command('create_server', {
    serverId: id,
    eggConfig: egg('echo booting; sleep 1.5; printf "\\033[32mDone (1.5s)!\\033[0m\\n"; sleep 1000', {
      done: ['never this', 'regex:^Done \\(\\d+\\.\\d+s\\)!$'],
    }),
  });
  const mark = f.panel.received.length;
  await f.panel.command('start_server', {}, { serverId: id });
  const st = await f.panel.command('get_status', {}, { serverId: id });
  assert.equal((st.data as { status: string }).status, 'starting');
  const running = await f.panel.waitEvent(
    'server_status_changed',
    (d) => d.serverId === id && d.currentStatus === 'running',
    { since: mark },
  );
  assert.equal(running.data.previousStatus, 'starting');
  const lines = f.panel
    .events('server_log')
    .filter((e) => e.data.serverId === id)
    .map((e) => e.data.message);
  assert.ok(lines.includes('booting'));
});

test("the egg's stop: a console command on stdin, or ^C as SIGINT; neither is a crash", async () => {
  const viaStdin = uid('stopcmd-');
  await f.panel.command('create_server', {
    serverId: viaStdin,
    eggConfig: egg('echo up; while read l; do [ "$l" = quit ] && exit 0; echo "got:$l"; done', {
      done: 'up',
      stop: 'quit',
      stopTimeout: 20,
    }),
  });
  const viaSigint = uid('stopint-');
  await f.panel.command('create_server', {
    serverId: viaSigint,
    eggConfig: egg('trap "echo bye; exit 0" INT; echo up; while true; do sleep 0.1; done', {
      done: 'up',
      stop: '^C',
      stopTimeout: 20,
    }),
  });
  for (const id of [viaStdin, viaSigint]) {
    const mark = f.panel.received.length;
    await f.panel.command('start_server', {}, { serverId: id });
    await f.panel.waitEvent(
      'server_status_changed',
      (d) => d.serverId === id && d.currentStatus === 'running',
      {
        since: mark,
      },
    );
    const t0 = Date.now();
    const res = await f.panel.command('stop_server', {}, { serverId: id });
    assert.equal(res.success, true, JSON.stringify(res.error));
    assert.ok(Date.now() - t0 < 10_000, `${id} stopped by its stop command, not by the 20 s kill`);
    assert.equal((res.data as { status: string }).status, 'offline');
  }
  assert.equal(
    f.panel.events('server_crashed').filter((e) => [viaStdin, viaSigint].includes(e.data.serverId)).length,
    0,
  );
});

test('two starts at once: one runs, the other is SERVER_BUSY at once; the server starts once (try-lock)', async () => {
  const id = uid('twice-');
  await f.panel.command('create_server', {
    serverId: id,
    eggConfig: egg('sleep 1; echo up; sleep 1000', { done: 'up' }),
  });
  const [a, b] = await Promise.all([
    f.panel.command('start_server', {}, { serverId: id }),
    f.panel.command('start_server', {}, { serverId: id }),
  ]);
  const ok = [a, b].filter((r) => r.success);
  const busy = [a, b].filter((r) => !r.success);
  assert.equal(ok.length, 1, JSON.stringify([a, b]));
  assert.equal(busy[0]?.error?.code, 'SERVER_BUSY');
  await f.panel.waitEvent('server_status_changed', (d) => d.serverId === id && d.currentStatus === 'running');
  const starts = f.panel
    .events('server_status_changed')
    .filter((e) => e.data.serverId === id && e.data.currentStatus === 'starting');
  assert.equal(starts.length, 1);
});
