/**
 * What every browser test shares: paths, a free port, Docker cleanup, a fresh build, Chromium, and the
 * steps most of them take (the owner's setup, logging in and out, a node with its Agent, a server).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadAgentConfig, type RunningAgent, startAgent } from '@cap/agent';
import { loadPanelConfig, type RunningPanel, startPanel } from '@cap/panel';
import { type Browser, chromium, type Page } from 'playwright-core';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const WEB = fileURLToPath(new URL('../', import.meta.url));
export const DIST = join(WEB, 'dist');
export const SHOTS = join(ROOT, 'test-artifacts', 'screenshots');
/** the egg corpus: shared/ stands beside the repository (CI and developers alike) */
export const EGGS = process.env['EGG_CORPUS'] ?? join(ROOT, '..', 'shared', 'eggs');

/** one free port below the ephemeral range (see freePortBlock: `listen(0)`'s pick can be taken meanwhile) */
export async function freePort(): Promise<number> {
  return freePortBlock(1);
}

/** Whether `port` can be bound on every address (what a published container port needs). */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = netServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '0.0.0.0', () => srv.close(() => resolve(true)));
  });
}

/**
 * `count` consecutive free ports for game servers, below Linux's ephemeral range (32768–60999):
 * a port picked at random inside it can be taken meanwhile by any outgoing connection of the
 * machine (a fresh CI got PORT_CONFLICT on one), one below it only by another test.
 */
export async function freePortBlock(count: number): Promise<number> {
  for (let tries = 0; tries < 100; tries++) {
    const base = 20_000 + Math.floor(Math.random() * (12_000 - count));
    let ok = true;
    for (let k = 0; k < count && ok; k++) ok = await bindable(base + k);
    if (ok) return base;
  }
  throw new Error(`no block of ${count} free ports`);
}

/** The Docker Engine API over its socket (no CLI strings). */
export function dockerApi(method: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: '/var/run/docker.sock', method, path }, (res) => {
      let body = '';
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Remove what this run's node created (containers carry the node's label). */
export async function removeNodeContainers(id: string): Promise<void> {
  const filters = encodeURIComponent(JSON.stringify({ label: [`ctrl-alt-play.node=${id}`] }));
  const res = await dockerApi('GET', `/containers/json?all=1&filters=${filters}`);
  const list = JSON.parse(res.body) as { Id: string }[];
  await Promise.all(list.map((c) => dockerApi('DELETE', `/containers/${c.Id}?force=1`)));
}

/** The tests run against the built app: rebuild when a source is newer than the last build. */
function distIsStale(): boolean {
  const built = join(DIST, 'index.html');
  if (!existsSync(built)) return true;
  const at = statSync(built).mtimeMs;
  const newer = (dir: string): boolean =>
    readdirSync(dir, { withFileTypes: true }).some((e) =>
      e.isDirectory() ? newer(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs > at,
    );
  return newer(join(WEB, 'src')) || statSync(join(WEB, 'index.html')).mtimeMs > at;
}

/** Screenshot dir ready and the build fresh (scripts/test.sh clears old failure shots). */
export function prepareRun(): void {
  mkdirSync(SHOTS, { recursive: true });
  if (distIsStale()) {
    execFileSync(join(ROOT, 'node_modules/.bin/vite'), ['build', '--logLevel', 'warn'], {
      cwd: WEB,
      stdio: 'inherit',
    });
  }
}

/** Debian's Chromium, never a downloaded one. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

export interface E2E {
  panel: RunningPanel;
  browser: Browser;
  page: Page;
  panelDir: string;
  agentDir: string;
  /** uncaught page errors and console errors (a refused socket or an expected 401 do not count) */
  pageErrors: string[];
  /** the node and Agent ownerWithNode made, as far as it came (close cleans them up) */
  made: { nodeId?: string; agent?: RunningAgent };
  /**
   * close the browser, the Agent and the Panel; remove the node's containers and the data dirs
   * (without `agent`/`nodeId`, those ownerWithNode made)
   */
  close(opts: { agent?: RunningAgent | undefined; nodeId?: string | undefined }): Promise<void>;
}

/** A fresh build, a real Panel on a free port serving it, Debian's Chromium with one page. */
export async function openE2E(
  tag: string,
  viewport: { width: number; height: number },
  /** more Panel settings (e.g. PANEL_OUTBOUND_ALLOW_PRIVATE for a loopback receiver) */
  panelEnv: Record<string, string> = {},
): Promise<E2E> {
  prepareRun();
  const panelDir = mkdtempSync(join(tmpdir(), `cap-web-e2e-${tag}-panel-`));
  const agentDir = mkdtempSync(join(tmpdir(), `cap-web-e2e-${tag}-agent-`));
  const port = await freePort();
  const panel = await startPanel(
    loadPanelConfig({
      DATA_DIR: panelDir,
      PORT: String(port),
      HOST: '127.0.0.1',
      PANEL_URL: `http://127.0.0.1:${port}`,
      PANEL_WEB_DIST: DIST,
      LOG_LEVEL: process.env['E2E_LOG'] ?? 'silent',
      PANEL_AGENT_PING_MS: '1000',
      ...panelEnv,
    }),
  );
  const browser = await launchChromium();
  // reduced motion: no modal transitions, so a click never lands on a dialog still moving in
  const page = await browser.newPage({ viewport, reducedMotion: 'reduce' });
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    if (/Failed to load resource|WebSocket connection to/.test(text)) return;
    pageErrors.push(`console: ${text}`);
  });
  // confirm dialogs (reinstall, delete) are answered yes
  page.on('dialog', (d) => void d.accept());
  const made: E2E['made'] = {};
  return {
    panel,
    browser,
    page,
    panelDir,
    agentDir,
    pageErrors,
    made,
    async close({ agent = made.agent, nodeId = made.nodeId }) {
      await browser.close().catch(() => undefined);
      await agent?.stop().catch(() => undefined);
      await panel.stop().catch(() => undefined);
      if (nodeId) await removeNodeContainers(nodeId).catch(() => undefined);
      rmSync(panelDir, { recursive: true, force: true });
      rmSync(agentDir, { recursive: true, force: true });
    },
  };
}

/**
 * Sub-tests that build on each other: after a failure the rest fail at once (instead of each
 * timing out), and the failing step leaves a screenshot `failed-<prefix><step>.png`.
 */
export function stepper(t: TestContext, page: () => Page, prefix: string) {
  let broken: string | null = null;
  return (name: string, fn: () => Promise<void>) =>
    t.test(name, async () => {
      if (broken) assert.fail(`not run: "${broken}" failed`);
      try {
        await fn();
      } catch (e) {
        broken = name;
        const file = `failed-${prefix}${name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40)}.png`;
        await page()
          .screenshot({ path: join(SHOTS, file), fullPage: true })
          .catch(() => undefined);
        throw e;
      }
    });
}

/** The wait every step helper below uses unless told otherwise. */
export const STEP_WAIT = 60_000;

export interface Account {
  email: string;
  password: string;
}

const inPage = (page: Page, id: string) => page.locator(`[data-testid="${id}"]`);

/** A REST call from the page, with its session and CSRF token, as the UI makes it. */
export function apiFromPage<T>(
  page: Page,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  return page.evaluate(
    async ({ method, path, body }) => {
      const me = await (await fetch('/api/auth/me')).json();
      const r = await fetch(`/api${path}`, {
        method,
        headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrfToken },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await r.text();
      return { status: r.status, body: text ? JSON.parse(text) : null };
    },
    { method, path, body },
  );
}

/** Poll until `check` holds; fail with `what` once `timeout` has passed. */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  { timeout = STEP_WAIT, every = 100 }: { timeout?: number; every?: number } = {},
): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** First run: the printed setup link, the owner's form, then the dashboard. */
export async function setupOwner(panel: RunningPanel, page: Page, owner: Account, timeout = STEP_WAIT) {
  const setupUrl = panel.app.setupUrl;
  assert.ok(setupUrl, 'a fresh Panel prints a setup link');
  await page.goto(setupUrl);
  await inPage(page, 'setup-email').fill(owner.email);
  await inPage(page, 'setup-password').fill(owner.password);
  await inPage(page, 'setup-confirm').fill(owner.password);
  await inPage(page, 'setup-submit').click();
  await inPage(page, 'page-dashboard').waitFor({ timeout });
}

/** On the login page: email, password, submit, then the dashboard. */
export async function loginAs(page: Page, who: Account, timeout = STEP_WAIT): Promise<void> {
  await inPage(page, 'login-email').fill(who.email);
  await inPage(page, 'login-password').fill(who.password);
  await inPage(page, 'login-submit').click();
  await inPage(page, 'page-dashboard').waitFor({ timeout });
}

/** The header's log-out, then the login page. */
export async function logout(page: Page, timeout = STEP_WAIT): Promise<void> {
  await inPage(page, 'logout').click();
  await inPage(page, 'login-email').waitFor({ timeout });
}

/** Log out and log in as someone else. */
export async function switchUser(page: Page, who: Account, timeout = STEP_WAIT): Promise<void> {
  await logout(page, timeout);
  await loginAs(page, who, timeout);
}

/** A node made through the REST API (201 checked): its id and the Agent's secret. */
export async function addNode(page: Page, name: string): Promise<{ nodeId: string; secret: string }> {
  const node = await apiFromPage<{ node: { id: string }; agentSecret: string }>(page, 'POST', '/nodes', {
    name,
  });
  assert.equal(node.status, 201, JSON.stringify(node.body));
  return { nodeId: node.body.node.id, secret: node.body.agentSecret };
}

/**
 * A real Agent for that node, its HTTP on a free loopback port; `extra` adds to or overrides its env.
 * Values are passed through as given: the Agent's own config check refuses missing ones.
 */
export function startNodeAgent(o: {
  panelUrl: string | undefined;
  nodeId: string | undefined;
  secret: string | undefined;
  agentDir: string;
  extra?: Record<string, string>;
}): Promise<RunningAgent> {
  return startAgent(
    loadAgentConfig({
      PANEL_URL: o.panelUrl,
      NODE_ID: o.nodeId,
      AGENT_SECRET: o.secret,
      AGENT_DATA_DIR: o.agentDir,
      AGENT_HTTP_PORT: '0',
      AGENT_HTTP_HOST: '127.0.0.1',
      LOG_LEVEL: process.env['E2E_LOG'] ?? 'silent',
      ...o.extra,
    }),
  );
}

/** An Agent that reports stats every 500 ms and beats every second (live badges and charts show soon). */
export const FAST_AGENT = { AGENT_STATS_INTERVAL_MS: '500', AGENT_HEARTBEAT_INTERVAL_MS: '1000' };

/** Until the Panel reports the node online (asked through the REST API). */
export function nodeOnline(page: Page, nodeId: string, timeout = STEP_WAIT): Promise<void> {
  return until(
    'the node online',
    async () => (await apiFromPage<{ online: boolean }>(page, 'GET', `/nodes/${nodeId}`)).body.online,
    { timeout, every: 200 },
  );
}

/** An egg imported through the REST API (201 checked): the template's id. */
export async function importEgg(page: Page, content: string, filename: string): Promise<string> {
  const imported = await apiFromPage<{ template: { id: string } }>(page, 'POST', '/templates/import', {
    content,
    filename,
  });
  assert.equal(imported.status, 201, JSON.stringify(imported.body));
  return imported.body.template.id;
}

/** A server created with `?wait=true` (201 checked): its id. */
export async function createServer(page: Page, body: Record<string, unknown>): Promise<string> {
  const created = await apiFromPage<{ id: string }>(page, 'POST', '/servers?wait=true', body);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return created.body.id;
}

/** Until the server's status (asked through the REST API) is `status`, e.g. 'offline' once installed. */
export async function serverStatus(page: Page, serverId: string, status: string, timeout = STEP_WAIT) {
  let last = '';
  await until(
    `server ${serverId} ${status}`,
    async () => {
      last = (await apiFromPage<{ status: string }>(page, 'GET', `/servers/${serverId}`)).body.status;
      return last === status;
    },
    { timeout, every: 300 },
  ).catch((e: unknown) => {
    throw new Error(`still ${last}: ${(e as Error).message}`);
  });
}

/** The server's page, loaded. */
export async function openServer(panel: RunningPanel, page: Page, serverId: string, timeout = STEP_WAIT) {
  await page.goto(`${panel.url}/servers/${serverId}`);
  await inPage(page, 'page-server-detail').waitFor({ timeout });
}

/** Start from the page's power button and wait for the status badge to say running. */
export async function startFromPage(page: Page, timeout = STEP_WAIT): Promise<void> {
  await inPage(page, 'power-start').click();
  await page.waitForSelector('[data-testid="server-status"][data-status="running"]', { timeout });
}

/**
 * The start most tests share: the owner's setup, a node made through the REST API, a real Agent for
 * it (`agentEnv` adds to its env) and the node online. What is made is kept in `e2e.made` as it is
 * made, so `close` cleans up after a failure half-way too.
 */
export async function ownerWithNode(
  e2e: E2E | undefined,
  o: { owner: Account; nodeName: string; agentEnv?: Record<string, string>; timeout?: number },
): Promise<{ nodeId: string; agent: RunningAgent }> {
  assert.ok(e2e, 'openE2E ran first');
  const { panel, page, agentDir, made } = e2e;
  const timeout = o.timeout ?? STEP_WAIT;
  await setupOwner(panel, page, o.owner, timeout);
  const node = await addNode(page, o.nodeName);
  made.nodeId = node.nodeId;
  made.agent = await startNodeAgent({
    panelUrl: panel.url,
    nodeId: node.nodeId,
    secret: node.secret,
    agentDir,
    ...(o.agentEnv ? { extra: o.agentEnv } : {}),
  });
  await nodeOnline(page, node.nodeId, timeout);
  return { nodeId: node.nodeId, agent: made.agent };
}
