/**
 * The Schedules tab and the webhooks (Panel page and server tab) in real Chromium against a real Panel, a real Agent and the real Docker
 * Engine: a schedule is made in the form (cron in a time zone, a backup then a restart 1 s
 * later; a bad time zone is refused with the Panel's message), listed with its trigger and next
 * run, run now: the history shows each task's result and the node has the backup; then it is
 * changed to an interval, disabled (no next run) and deleted. Webhooks: a signed JSON hook made on
 * the admin page (its secret shown once, and a loopback receiver verifies the test delivery with
 * it), a refused URL, the delivery log; a Discord hook on the server's tab whose test body has
 * Discord's shape. Screenshots: test-artifacts/screenshots/s*.png.
 */
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { createServer as httpServer, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { RunningAgent } from '@cap/agent';
import type { RunningPanel } from '@cap/panel';
import type { Page } from 'playwright-core';
import {
  apiFromPage,
  createServer,
  type E2E,
  openE2E,
  openServer,
  ownerWithNode,
  SHOTS,
  startFromPage,
  stepper,
  until,
} from './harness.ts';

const run = randomBytes(3).toString('hex');
const OWNER = { email: `sowner-${run}@example.test`, password: `pw-${run}-owner-secret` };
const WAIT = 60_000;

let e2e: E2E | undefined;
let panel: RunningPanel;
let page: Page;
let agent: RunningAgent | undefined;
let nodeId: string | undefined;
let serverId = '';

const byTestId = (id: string) => page.locator(`[data-testid="${id}"]`);
const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`) });

before(async () => {
  e2e = await openE2E('schedules', { width: 1500, height: 950 }, { PANEL_OUTBOUND_ALLOW_PRIVATE: '1' });
  ({ panel, page } = e2e);
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
    ({ nodeId, agent } = await ownerWithNode(e2e, {
      owner: OWNER,
      nodeName: `s-node-${run}`,
      timeout: WAIT,
    }));
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

test('webhooks: a signed JSON hook on the admin page, a Discord hook on the server tab, send test, delivery log', {
  timeout: 120_000,
}, async (t) => {
  const step = stepper(t, () => page, 's-w');
  // a receiver on loopback, as a team's CI endpoint or Discord would be
  const got: { path: string; headers: IncomingHttpHeaders; raw: string }[] = [];
  const rx = httpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({ path: req.url ?? '', headers: req.headers, raw: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => rx.listen(0, '127.0.0.1', () => r()));
  const addr = rx.address();
  const rxUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  try {
    await step('the admin page: a refused URL, then a JSON hook whose secret is shown once', async () => {
      await page.goto(`${panel.url}/webhooks`);
      await byTestId('page-webhooks').waitFor({ timeout: WAIT });
      await byTestId('webhooks-empty').waitFor({ timeout: WAIT });
      await byTestId('webhook-new').click();
      await byTestId('webhook-form-name').fill('ci');
      await byTestId('webhook-form-kind').selectOption('json');
      await byTestId('webhook-form-url').fill('ftp://example.test/hook');
      // crashes are ticked already; add status changes
      await byTestId('webhook-event-server.status').click();
      await byTestId('webhook-form-save').click();
      await byTestId('webhook-form-error').waitFor({ timeout: WAIT });
      assert.match((await byTestId('webhook-form-error').textContent()) ?? '', /only http and https URLs/);
      await byTestId('webhook-form-url').fill(`${rxUrl}/ci-hook`);
      await byTestId('webhook-form-save').click();
      await byTestId('webhook-secret').waitFor({ timeout: WAIT });
    });

    await step(
      'send test: delivered, the receiver verifies the signature with that secret; the log says 204',
      async () => {
        const secret = ((await byTestId('webhook-secret').textContent()) ?? '').trim();
        assert.match(secret, /^whsec_/);
        assert.equal(
          (await byTestId('webhook-events').textContent())?.trim(),
          'server.crashed, server.status',
        );
        await byTestId('webhook-test').click();
        await page.waitForSelector('[data-testid="webhook-test-result"][data-state="delivered"]', {
          timeout: WAIT,
        });
        const req = got.find((g) => g.path === '/ci-hook');
        assert.ok(req, 'the receiver got the test');
        const want = `sha256=${createHmac('sha256', secret).update(req.raw).digest('hex')}`;
        assert.equal(req.headers['x-signature-256'], want);
        assert.equal(JSON.parse(req.raw).event, 'webhook.test');
        await page.waitForSelector(
          '[data-testid="webhook-delivery"][data-state="delivered"][data-status="204"]',
          {
            timeout: WAIT,
          },
        );
        // the secret is not shown again after a reload
        await page.reload();
        await byTestId('webhooks-table').waitFor({ timeout: WAIT });
        assert.equal(await byTestId('webhook-secret').count(), 0);
        assert.ok(!(await page.content()).includes(secret));
        await shot('s4-webhooks-admin');
      },
    );

    await step('the server tab: a Discord hook for crashes; its test body has Discord’s shape', async () => {
      await openServer(panel, page, serverId, WAIT);
      await byTestId('tab-webhooks').click();
      await byTestId('webhooks-empty').waitFor({ timeout: WAIT });
      await byTestId('webhook-new').click();
      await byTestId('webhook-form-name').fill('crash reports');
      await byTestId('webhook-form-url').fill(`${rxUrl}/api/webhooks/42/secret-discord-token-abcdefghijkl`);
      await byTestId('webhook-form-save').click();
      await byTestId('webhooks-table').waitFor({ timeout: WAIT });
      assert.equal(await byTestId('webhook-secret').count(), 0);
      assert.ok(!((await byTestId('webhook-url').textContent()) ?? '').includes('secret-discord-token'));
      await byTestId('webhook-test').click();
      await page.waitForSelector('[data-testid="webhook-test-result"][data-state="delivered"]', {
        timeout: WAIT,
      });
      const req = got.find((g) => g.path.startsWith('/api/webhooks/42/'));
      assert.ok(req, 'the receiver got the Discord test');
      const body = JSON.parse(req.raw);
      assert.ok(Array.isArray(body.embeds) && body.embeds.length === 1);
      assert.ok(typeof body.embeds[0].title === 'string' && body.embeds[0].title.length <= 256);
      assert.ok(Number.isInteger(body.embeds[0].color));
      await page.waitForSelector('[data-testid="webhook-delivery"][data-state="delivered"]', {
        timeout: WAIT,
      });
      await shot('s5-webhooks-server');
    });
  } finally {
    rx.closeAllConnections();
    await new Promise<void>((r) => rx.close(() => r()));
  }
});
