/**
 * The Schedules tab in real Chromium against a real Panel, a real Agent and the real Docker
 * Engine: a schedule is made in the form (cron in a time zone, a backup then a restart 1 s
 * later; a bad time zone is refused with the Panel's message), listed with its trigger and next
 * run, run now: the history shows each task's result and the node has the backup; then it is
 * changed to an interval, disabled (no next run) and deleted. Screenshots: test-artifacts/screenshots/s*.png.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { RunningAgent } from '@cap/agent';
import type { RunningPanel } from '@cap/panel';
import type { Page } from 'playwright-core';
import {
  addNode,
  apiFromPage,
  createServer,
  type E2E,
  nodeOnline,
  openE2E,
  openServer,
  SHOTS,
  setupOwner,
  startFromPage,
  startNodeAgent,
  stepper,
  until,
} from './harness.ts';

const run = randomBytes(3).toString('hex');
const OWNER = { email: `sowner-${run}@example.test`, password: `pw-${run}-owner-secret` };
const WAIT = 60_000;

let e2e: E2E | undefined;
let panel: RunningPanel;
let page: Page;
let agentDir: string;
let agent: RunningAgent | undefined;
let nodeId: string | undefined;
let serverId = '';

const byTestId = (id: string) => page.locator(`[data-testid="${id}"]`);
const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`) });

before(async () => {
  e2e = await openE2E('schedules', { width: 1500, height: 950 });
  ({ panel, page, agentDir } = e2e);
});

after(async () => {
  await e2e?.close({ agent, nodeId });
});

test('the Schedules tab: create (cron + time zone, tasks), run now, history, edit, disable, delete', {
  timeout: 240_000,
}, async (t) => {
  const step = stepper(t, () => page, 's-');
  const row = () => page.locator('[data-testid^="schedule-row-"]').first();

  await step('an owner, a node with its Agent, a running server', async () => {
    await setupOwner(panel, page, OWNER, WAIT);
    const node = await addNode(page, `s-node-${run}`);
    nodeId = node.nodeId;
    agent = await startNodeAgent({ panelUrl: panel.url, nodeId, secret: node.secret, agentDir });
    await nodeOnline(page, nodeId, WAIT);
    serverId = await createServer(page, {
      name: `s-server-${run}`,
      nodeId,
      image: 'ctrl-alt-play/busybox:latest',
      startup: 'sleep 3600',
      stopTimeout: 1,
    });
    await openServer(panel, page, serverId, WAIT);
    await startFromPage(page, WAIT);
  });

  await step('the form refuses an unknown time zone with the Panel’s message', async () => {
    await byTestId('tab-schedules').click();
    await byTestId('schedules-empty').waitFor({ timeout: WAIT });
    await byTestId('schedule-new').click();
    await byTestId('schedule-form-name').fill('nightly');
    await byTestId('schedule-form-cron').fill('30 3 * * *');
    await byTestId('schedule-form-timezone').fill('Mars/Olympus_Mons');
    // task 1: a backup
    await page.locator('[data-testid="schedule-task-0"] [data-testid="task-action"]').selectOption('backup');
    await byTestId('schedule-form-save').click();
    await byTestId('schedule-form-error').waitFor({ timeout: WAIT });
    assert.match(
      (await byTestId('schedule-form-error').textContent()) ?? '',
      /unknown time zone 'Mars\/Olympus_Mons'/,
    );
  });

  await step(
    'saved with Asia/Tokyo and a restart 1 s after the backup: listed with its next run',
    async () => {
      await byTestId('schedule-form-timezone').fill('Asia/Tokyo');
      await byTestId('schedule-task-add').click();
      await page.locator('[data-testid="schedule-task-1"] [data-testid="task-action"]').selectOption('power');
      await page
        .locator('[data-testid="schedule-task-1"] [data-testid="task-power"]')
        .selectOption('restart');
      await page.locator('[data-testid="schedule-task-1"] [data-testid="task-offset"]').fill('1');
      await shot('s1-form');
      await byTestId('schedule-form-save').click();
      await row().waitFor({ timeout: WAIT });
      assert.equal(
        (await byTestId('schedule-trigger').textContent())?.trim(),
        'cron 30 3 * * * (Asia/Tokyo)',
      );
      assert.equal((await byTestId('schedule-tasks').textContent())?.trim(), 'backup → restart (+1 s)');
      // 03:30 in Tokyo is 18:30Z
      assert.match((await byTestId('schedule-next').getAttribute('data-next')) ?? '', /T18:30:00\.000Z$/);
      assert.equal((await byTestId('schedule-last').textContent())?.trim(), 'never');
    },
  );

  await step(
    'run now: the history shows the run completed, each task ok; the node has the backup',
    async () => {
      await byTestId('schedule-run').click();
      await byTestId('schedule-runs').waitFor({ timeout: WAIT });
      await page.waitForSelector('[data-testid="schedule-run-row"][data-state="completed"]', {
        timeout: WAIT,
      });
      const results = await page
        .locator('[data-testid="schedule-run-task"]')
        .evaluateAll((els) => els.map((e) => e.getAttribute('data-result')));
      assert.deepEqual(results, ['ok', 'ok']);
      await page.waitForSelector('[data-testid="schedule-last"]:has-text("completed")', { timeout: WAIT });
      const backups = await apiFromPage<{ backups: { state: string; name: string }[] }>(
        page,
        'GET',
        `/servers/${serverId}/backups`,
      );
      assert.deepEqual(
        backups.body.backups.map((b) => [b.state, b.name]),
        [['completed', 'schedule: nightly']],
      );
      await page.waitForSelector('[data-testid="server-status"][data-status="running"]', { timeout: WAIT });
      await shot('s2-history');
    },
  );

  await step('edited to every 30 minutes; disabled: no next run; deleted', async () => {
    await byTestId('schedule-edit').click();
    await page.getByText('Every N minutes', { exact: true }).click();
    await byTestId('schedule-form-interval').fill('30');
    await byTestId('schedule-form-save').click();
    await page.waitForSelector('[data-testid="schedule-trigger"]:has-text("every 30 min")', {
      timeout: WAIT,
    });
    await byTestId('schedule-toggle').click();
    await byTestId('schedule-disabled').waitFor({ timeout: WAIT });
    assert.equal(await byTestId('schedule-next').getAttribute('data-next'), '');
    await shot('s3-disabled');
    await byTestId('schedule-delete').click();
    await byTestId('schedule-delete-confirm').click();
    await byTestId('schedules-empty').waitFor({ timeout: WAIT });
    await until('the schedule is gone', async () => {
      const r = await apiFromPage<{ schedules: unknown[] }>(page, 'GET', `/servers/${serverId}/schedules`);
      return r.body.schedules.length === 0;
    });
  });
});
