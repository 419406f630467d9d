/**
 * Templates, allocations, reinstall, API keys and the account page in real Chromium against a real
 * Panel, a real Agent and the real Docker Engine: upload a published egg and a malformed one (its
 * code and location shown), upload a tiny busybox egg, add a port range on the node (and see a
 * PORT_CONFLICT), create a server from the egg (a rule's message beside its field first), install →
 * start → running with the chosen port, reinstall with its output streamed, a spectator not seeing
 * the hidden variable, an API key shown once and working, a password change.
 * Screenshots go to test-artifacts/screenshots/t*.png.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { RunningAgent } from '@cap/agent';
import type { RunningPanel } from '@cap/panel';
import type { Browser, Page } from 'playwright-core';
import {
  apiFromPage as api,
  type E2E,
  EGGS,
  FAST_AGENT,
  freePortBlock,
  openE2E,
  SHOTS,
  setupOwner,
  startNodeAgent,
  stepper,
} from './harness.ts';

const GOOD_EGG = join(EGGS, 'pterodactyl__panel/database/Seeders/eggs/minecraft/egg-paper.json');
// a trailing comma in a published egg's history: JSON that does not parse
const BAD_EGG = join(
  EGGS,
  '_history/unparseable/pelican-eggs__generic/8ef57df40cb5/python/egg-python-generic.json',
);
const FIXTURE = fileURLToPath(new URL('./fixtures/egg-busybox-echo.json', import.meta.url));
const FIXTURE_NAME = 'Busybox echo (e2e)';
const run = randomBytes(3).toString('hex');
const OWNER = { email: `towner-${run}@example.test`, password: `pw-${run}-owner-secret` };
const NODE_NAME = `t-node-${run}`;
const SERVER_NAME = `t-echo-${run}`;
// ports far from the other tests' and unlikely to be bound on the host
const BASE_PORT = await freePortBlock(11);
const WAIT = 60_000;

let panel: RunningPanel;
let agent: RunningAgent | undefined;
let browser: Browser;
let page: Page;
let agentDir: string;
let nodeId: string | undefined;
let serverId: string | undefined;
let pageErrors: string[] = [];

/** fullPage for pages; the viewport for dialogs, whose overlay only covers the viewport */
async function shot(name: string, fullPage = true): Promise<void> {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage });
}

const byTestId = (id: string) => page.locator(`[data-testid="${id}"]`);

async function waitForStatus(status: string, timeout = WAIT): Promise<void> {
  await page.waitForSelector(
    `[data-testid="page-server-detail"] [data-testid="server-status"][data-status="${status}"]`,
    { timeout },
  );
}

/** A REST call from the page, with its session and CSRF token, as the UI makes it. */
const apiFromPage = <T>(method: string, path: string, body?: unknown) => api<T>(page, method, path, body);

async function pick(testId: string, option: string | RegExp): Promise<void> {
  await byTestId(testId).click();
  await page.getByRole('option', { name: option }).click();
}

let e2e: E2E | undefined;

before(async () => {
  e2e = await openE2E('tpl', { width: 1366, height: 1100 });
  ({ panel, browser, page, agentDir } = e2e);
  pageErrors = e2e.pageErrors;
});

after(async () => {
  await e2e?.close({ agent, nodeId });
});

test('templates, allocations, reinstall, API keys and account in the UI', { timeout: 240_000 }, async (t) => {
  const step = stepper(t, () => page, 't-');

  await step('set up the owner, add a node and start its Agent', async () => {
    await setupOwner(panel, page, OWNER, WAIT);

    await page.getByRole('link', { name: 'Nodes' }).click();
    await byTestId('add-node').click();
    await byTestId('node-name').fill(NODE_NAME);
    await byTestId('node-submit').click();
    const command = (await byTestId('agent-command').textContent({ timeout: WAIT }))?.trim() ?? '';
    // the shown command is complete: where the Agent keeps its data included
    assert.match(command, / AGENT_DATA_DIR=\S+ npx ctrl-alt-play agent$/);
    const secret = /AGENT_SECRET=(\S+)/.exec(command)?.[1];
    nodeId = /NODE_ID=(\S+)/.exec(command)?.[1];
    assert.ok(secret && nodeId);
    await page.getByRole('button', { name: 'Done' }).click();
    agent = await startNodeAgent({ panelUrl: panel.url, nodeId, secret, agentDir, extra: FAST_AGENT });
    await page
      .locator(`[data-testid="node-card-${NODE_NAME}"] [data-testid="node-status"][data-online="true"]`)
      .waitFor({ timeout: WAIT });
  });

  await step('port allocations on the node page: add a range, a conflict refused, delete one', async () => {
    await page.getByRole('link', { name: NODE_NAME }).click();
    await byTestId('allocations-empty').waitFor({ timeout: WAIT });
    assert.match(
      (await byTestId('node-agent-command').textContent()) ?? '',
      new RegExp(`NODE_ID=${nodeId} `),
    );
    // caught beside the field before the Panel is asked
    await byTestId('allocation-ports').fill('70000');
    await byTestId('allocation-add').click();
    await page.getByText('70000: ports are 1-65535').waitFor();
    await byTestId('allocation-ports').fill(`${BASE_PORT}-${BASE_PORT + 3}`);
    await byTestId('allocation-add').click();
    await byTestId(`allocation-0.0.0.0:${BASE_PORT + 3}`).waitFor({ timeout: WAIT });
    assert.equal(await byTestId('allocations-count').textContent(), '4 allocated · 4 free');
    // one of them again: the Panel refuses the whole request with PORT_CONFLICT
    await byTestId('allocation-ports').fill(`${BASE_PORT + 2}, ${BASE_PORT + 10}`);
    await byTestId('allocation-add').click();
    assert.equal(
      await page
        .locator('[data-testid="allocation-error"] [data-testid="error-code"]')
        .textContent({ timeout: WAIT }),
      'PORT_CONFLICT',
    );
    await page.getByText('Port already allocated').waitFor();
    assert.equal(await byTestId(`allocation-0.0.0.0:${BASE_PORT + 10}`).count(), 0, 'nothing half-added');
    await shot('t01-node-allocations');
    await page.getByRole('button', { name: `Delete allocation 0.0.0.0:${BASE_PORT + 3}` }).click();
    await byTestId(`allocation-0.0.0.0:${BASE_PORT + 3}`).waitFor({ state: 'detached', timeout: WAIT });
  });

  await step(
    'import eggs: a published one, a malformed one (code + location), the busybox fixture',
    async () => {
      await page.getByRole('link', { name: 'Templates' }).click();
      await byTestId('page-templates').waitFor();
      await byTestId('template-file-input').setInputFiles([GOOD_EGG, BAD_EGG, FIXTURE]);
      await byTestId('import-ok-egg-paper-json').waitFor({ timeout: WAIT });
      await byTestId('import-ok-egg-busybox-echo-json').waitFor();
      const bad = page.locator('[data-testid="import-error-egg-python-generic-json"]');
      assert.equal(await bad.locator('[data-testid="import-error-code"]').textContent(), 'TEMPLATE_INVALID');
      assert.equal(
        await bad.locator('[data-testid="import-error-location"]').textContent(),
        'line 169, column 9',
      );
      await byTestId('template-row-Paper').waitFor({ timeout: WAIT });
      await byTestId(`template-row-${FIXTURE_NAME}`).waitFor();
      await shot('t02-templates-import');

      await page.getByRole('link', { name: FIXTURE_NAME, exact: true }).first().click();
      await byTestId('page-template-detail').waitFor();
      await byTestId('template-install-script').waitFor();
      assert.match((await byTestId('template-variables').textContent()) ?? '', /ADMIN_TOKEN.*hidden/);
      await shot('t03-template-detail');
      // the export is PTDL_v2 and names the same variables
      const id = new URL(page.url()).pathname.split('/').pop();
      const exported = await page.evaluate(
        async (tid) => (await fetch(`/api/templates/${tid}/export`)).json(),
        id,
      );
      assert.equal(exported.meta.version, 'PTDL_v2');
      assert.deepEqual(
        exported.variables.map((v: { env_variable: string }) => v.env_variable),
        ['GREETING', 'MAX_PLAYERS', 'MODE', 'ADMIN_TOKEN'],
      );
    },
  );

  await step('create a server from the egg: a rule message beside its field, then created', async () => {
    await page.getByRole('link', { name: 'Create a server from it' }).click();
    await byTestId('page-server-create').waitFor();
    await byTestId('create-var-MAX_PLAYERS').waitFor({ timeout: WAIT });
    assert.equal(await byTestId('create-var-GREETING').inputValue(), 'hello', 'defaults filled in');
    await byTestId('create-name').fill(SERVER_NAME);
    await pick('create-node', NODE_NAME);
    await pick('create-template-image', /ctrl-alt-play\/busybox:latest/);
    await pick('create-allocation', `0.0.0.0:${BASE_PORT + 1}`);
    await byTestId('create-var-MAX_PLAYERS').fill('500');
    await byTestId('create-var-GREETING').fill('hi-from-template');
    await byTestId('create-submit').click();
    // the Panel's VALIDATION_FAILED details land beside the field
    await page
      .locator(
        '.mantine-InputWrapper-root:has([data-testid="create-var-MAX_PLAYERS"]) .mantine-InputWrapper-error',
      )
      .waitFor({ timeout: WAIT });
    assert.equal(await byTestId('error-code').textContent(), 'VALIDATION_FAILED');
    await shot('t04-create-from-template-invalid');
    await byTestId('create-var-MAX_PLAYERS').fill('16');
    await byTestId('create-submit').click();
    await byTestId('page-server-detail').waitFor({ timeout: WAIT });
    serverId = new URL(page.url()).pathname.split('/').pop();
    assert.ok(serverId);
    // on 0.0.0.0 and no public address set for the node: the port, never 0.0.0.0
    assert.match(
      (await byTestId('server-address').textContent()) ?? '',
      new RegExp(`^port ${BASE_PORT + 1} `),
    );
  });

  await step('it installs, starts with its variables and port, and reaches running', async () => {
    // the install script runs on create; then the server is offline until started
    await waitForStatus('offline', 120_000);
    await byTestId('power-start').click();
    await waitForStatus('running');
    await page.waitForFunction(
      () => {
        const t = document.querySelector('[data-testid="console-preview"]')?.textContent ?? '';
        return t.includes('installed-marker') && t.includes('ready');
      },
      undefined,
      { timeout: WAIT },
    );
    const preview = (await byTestId('console-preview').textContent()) ?? '';
    assert.ok(
      preview.includes(`greeting=hi-from-template players=16 mode=easy port=${BASE_PORT + 1}`),
      preview,
    );
    const env = (await byTestId('server-env').textContent()) ?? '';
    assert.match(env, /ADMIN_TOKEN=tok-e2e-hidden/, 'an admin sees the hidden value');
    await shot('t05-template-server-running');
  });

  await step(
    'the config modal edits the variables: a rule message beside the field, then applied',
    async () => {
      await byTestId('open-config').click();
      await byTestId('config-var-MAX_PLAYERS').waitFor();
      assert.equal(await byTestId('config-var-MAX_PLAYERS').inputValue(), '16');
      await byTestId('config-var-MAX_PLAYERS').fill('99');
      await byTestId('config-save').click();
      await byTestId('config-var-errors').waitFor({ timeout: WAIT });
      await page
        .locator(
          '.mantine-InputWrapper-root:has([data-testid="config-var-MAX_PLAYERS"]) .mantine-InputWrapper-error',
        )
        .waitFor();
      await shot('t05b-config-variables-invalid', false);
      await byTestId('config-var-MAX_PLAYERS').fill('20');
      await byTestId('config-save').click();
      await byTestId('config-success').waitFor({ timeout: 120_000 });
      await byTestId('config-close').click();
      await waitForStatus('running');
      await page.waitForFunction(
        () =>
          (document.querySelector('[data-testid="console-preview"]')?.textContent ?? '').includes(
            'players=20',
          ),
        undefined,
        { timeout: WAIT },
      );
      assert.match((await byTestId('server-env').textContent()) ?? '', /MAX_PLAYERS=20/);
    },
  );

  await step('reinstall streams the install output', async () => {
    await byTestId('tab-install').click();
    await byTestId('reinstall').click();
    await page.waitForFunction(
      () =>
        (document.querySelector('[data-testid="install-output"]')?.textContent ?? '').includes(
          'install finished',
        ),
      undefined,
      { timeout: 120_000 },
    );
    await page.locator('[data-testid="install-state"][data-state="ok"]').waitFor({ timeout: WAIT });
    assert.match((await byTestId('install-output').textContent()) ?? '', /installing the e2e echo server/);
    await shot('t06-reinstall');
  });

  await step('a spectator does not see the hidden variable', async () => {
    const email = `tview-${run}@example.test`;
    const created = await apiFromPage('POST', '/users', {
      email,
      password: 'viewer-password',
      role: 'spectator',
    });
    assert.equal(created.status, 201);
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      const p2 = await ctx.newPage();
      p2.on('pageerror', (e) => pageErrors.push(e.message));
      await p2.goto(`${panel.url}/login`);
      await p2.locator('[data-testid="login-email"]').fill(email);
      await p2.locator('[data-testid="login-password"]').fill('viewer-password');
      await p2.locator('[data-testid="login-submit"]').click();
      await p2.locator('[data-testid="page-dashboard"]').waitFor({ timeout: WAIT });
      await p2.goto(`${panel.url}/servers/${serverId}`);
      await p2.locator('[data-testid="server-env"]').waitFor({ timeout: WAIT });
      const env = (await p2.locator('[data-testid="server-env"]').textContent()) ?? '';
      assert.match(env, /GREETING=hi-from-template/);
      assert.ok(!env.includes('ADMIN_TOKEN') && !env.includes('tok-e2e-hidden'), env);
      assert.ok(
        !((await p2.locator('[data-testid="server-startup"]').textContent()) ?? '').includes(
          'tok-e2e-hidden',
        ),
      );
      assert.equal(await p2.locator('[data-testid="tab-install"]').count(), 0);
      await p2.screenshot({ path: join(SHOTS, 't07-server-spectator.png'), fullPage: true });
      // the template page does not show the hidden variable's default to a spectator either
      await p2.locator('[data-testid="server-template"]').click();
      await p2.locator('[data-testid="template-variables"]').waitFor({ timeout: WAIT });
      assert.ok(
        !((await p2.locator('[data-testid="template-variables"]').textContent()) ?? '').includes(
          'tok-e2e-hidden',
        ),
      );
      assert.equal(await p2.locator('[data-testid="template-delete"]').count(), 0);
      // a spectator changes its own password too; a wrong current password is refused with its code
      await p2.goto(`${panel.url}/account`);
      await p2.locator('[data-testid="change-password"]').waitFor({ timeout: WAIT });
      await p2.locator('[data-testid="password-current"]').fill('not-my-password');
      await p2.locator('[data-testid="password-new"]').fill('viewer-password-2');
      await p2.locator('[data-testid="password-confirm"]').fill('viewer-password-2');
      await p2.locator('[data-testid="password-submit"]').click();
      await p2.getByText('AUTH_FAILED').first().waitFor({ timeout: WAIT });
      await p2.locator('[data-testid="password-current"]').fill('viewer-password');
      await p2.locator('[data-testid="password-new"]').fill('viewer-password-2');
      await p2.locator('[data-testid="password-confirm"]').fill('viewer-password-2');
      await p2.locator('[data-testid="password-submit"]').click();
      await p2.locator('[data-testid="password-changed"]').waitFor({ timeout: WAIT });
      await p2.screenshot({ path: join(SHOTS, 't07b-account-spectator.png'), fullPage: true });
    } finally {
      await ctx.close();
    }
  });

  await step('account: an API key shown once works, is deleted; the password is changed', async () => {
    await page.getByRole('link', { name: 'Account' }).click();
    await byTestId('page-account').waitFor();
    await byTestId('api-key-name').fill('e2e script');
    // the Panel asks for the password before it mints a key: a wrong one is refused
    await byTestId('api-key-password').fill('not-my-password');
    await byTestId('api-key-submit').click();
    await page.getByText('Could not create the key').waitFor({ timeout: WAIT });
    await byTestId('api-key-password').fill(OWNER.password);
    await byTestId('api-key-expiry').selectOption('7');
    await byTestId('api-key-submit').click();
    const key = (await byTestId('api-key-value').textContent({ timeout: WAIT }))?.trim() ?? '';
    assert.match(key, /^cap_/);
    await byTestId('api-key-row-e2e script').waitFor();
    const shown = (await byTestId('api-key-expires-e2e script').textContent())?.trim() ?? '';
    assert.notEqual(shown, 'never');
    const listed = await page.evaluate(async () => (await fetch('/api/api-keys')).json());
    const exp = Date.parse(listed.find((k: { name: string }) => k.name === 'e2e script').expiresAt);
    assert.ok(Math.abs(exp - (Date.now() + 7 * 86_400_000)) < 120_000, 'expires in 7 days');
    await shot('t08-account-api-key');
    const me = await page.evaluate(async (k) => {
      const r = await fetch('/api/auth/me', {
        headers: { authorization: `Bearer ${k}` },
        credentials: 'omit',
      });
      return { status: r.status, body: await r.json() };
    }, key);
    assert.equal(me.status, 200);
    assert.equal(me.body.user.email, OWNER.email);
    await page.getByRole('button', { name: 'Delete API key e2e script' }).click();
    await byTestId('api-key-row-e2e script').waitFor({ state: 'detached', timeout: WAIT });
    assert.equal(await byTestId('api-key-value').count(), 0, 'the key is gone from the page with it');
    const after = await page.evaluate(async (k) => {
      const r = await fetch('/api/auth/me', {
        headers: { authorization: `Bearer ${k}` },
        credentials: 'omit',
      });
      return { status: r.status, body: await r.json() };
    }, key);
    assert.equal(after.status, 401);
    assert.equal(after.body.code, 'UNAUTHENTICATED');

    // a key made now dies with the password change below (the keep box stays unticked)
    await byTestId('api-key-name').fill('e2e doomed');
    await byTestId('api-key-password').fill(OWNER.password);
    await byTestId('api-key-expiry').selectOption('');
    await byTestId('api-key-submit').click();
    const doomed = (await byTestId('api-key-value').textContent({ timeout: WAIT }))?.trim() ?? '';
    assert.match(doomed, /^cap_/);
    assert.equal((await byTestId('api-key-expires-e2e doomed').textContent())?.trim(), 'never');

    await byTestId('password-current').fill(OWNER.password);
    await byTestId('password-new').fill('short');
    await byTestId('password-submit').click();
    await page.getByText('At least 8 characters').waitFor();
    const next = `${OWNER.password}-2`;
    await byTestId('password-new').fill(next);
    await byTestId('password-confirm').fill(next);
    await byTestId('password-submit').click();
    await byTestId('password-changed').waitFor({ timeout: WAIT });
    await byTestId('api-key-row-e2e doomed').waitFor({ state: 'detached', timeout: WAIT });
    const revoked = await page.evaluate(async (k) => {
      const r = await fetch('/api/auth/me', {
        headers: { authorization: `Bearer ${k}` },
        credentials: 'omit',
      });
      return r.status;
    }, doomed);
    assert.equal(revoked, 401, 'the password change revoked the key');
    await shot('t09-account');
    await byTestId('logout').click();
    await byTestId('login-email').fill(OWNER.email);
    await byTestId('login-password').fill(next);
    await byTestId('login-submit').click();
    await byTestId('page-dashboard').waitFor({ timeout: WAIT });
  });

  await step(
    'after the reinstall it starts again; stop and delete it, the allocation is free again',
    async () => {
      await page.goto(`${panel.url}/servers/${serverId}`);
      // the reinstall stopped it
      await waitForStatus('offline');
      await byTestId('power-start').click();
      await waitForStatus('running');
      await byTestId('power-stop').click();
      await waitForStatus('offline');
      await byTestId('delete-server').click();
      await byTestId('delete-confirm').click();
      await byTestId('page-servers').waitFor({ timeout: WAIT });
      const list = await apiFromPage<{ port: number; serverId: string | null }[]>(
        'GET',
        `/nodes/${nodeId}/allocations`,
      );
      assert.equal(list.body.find((a) => a.port === BASE_PORT + 1)?.serverId, null);
    },
  );

  assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
});
