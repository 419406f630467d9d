/** What every browser test shares: paths, a free port, Docker cleanup, a fresh build, Chromium. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { RunningAgent } from '@cap/agent';
import { loadPanelConfig, type RunningPanel, startPanel } from '@cap/panel';
import { type Browser, chromium, type Page } from 'playwright-core';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const WEB = fileURLToPath(new URL('../', import.meta.url));
export const DIST = join(WEB, 'dist');
export const SHOTS = join(ROOT, 'test-artifacts', 'screenshots');
/** the egg corpus: shared/ stands beside the repository (CI and developers alike) */
export const EGGS = process.env['EGG_CORPUS'] ?? join(ROOT, '..', 'shared', 'eggs');

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const addr = srv.address();
  await new Promise<void>((r) => srv.close(() => r()));
  if (!addr || typeof addr === 'string') throw new Error('no port');
  return addr.port;
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
  /** close the browser, the Agent and the Panel; remove the node's containers and the data dirs */
  close(opts: { agent?: RunningAgent | undefined; nodeId?: string | undefined }): Promise<void>;
}

/** A fresh build, a real Panel on a free port serving it, Debian's Chromium with one page. */
export async function openE2E(tag: string, viewport: { width: number; height: number }): Promise<E2E> {
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
    }),
  );
  const browser = await launchChromium();
  const page = await browser.newPage({ viewport });
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
  return {
    panel,
    browser,
    page,
    panelDir,
    agentDir,
    pageErrors,
    async close({ agent, nodeId }) {
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
