/**
 * The Docker container list at scale (issue 11): a node with N stopped busybox containers
 * (default 1,400; created here with a label and removed afterwards). Prints, in ms (mean / p50 /
 * max over R rounds):
 *   - the raw Engine API list (`GET /containers/json?all=1` on the socket, body read and parsed);
 *   - the same list through the Panel (`GET /api/nodes/:id/docker/containers/json?all=1`, relayed
 *     over the Agent link, with a session cookie);
 *   - the Panel's cached list (`GET /api/nodes/:id/docker-cache/containers`: the Agent's list kept
 *     from Docker's events, over the link), whole and its first page (`?limit=100`), which the UI uses;
 *   - Chromium (Debian's, headless) opening `/docker/:nodeId/containers` until the first rows are
 *     rendered (from navigation start, so page load, login check, node list and the list itself),
 *     and, the page loaded, a search typed until the filtered rows are rendered.
 * Goal: ≤ 500 ms each (Portainer takes 15–20 s for 1,400, portainer#4387). Needs the web build
 * (`npm run build -w packages/web`).
 *   node bench/docker-list.ts [N] [R]
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { loadAgentConfig, startAgent } from '@cap/agent';
import Docker from 'dockerode';
import pino from 'pino';
import { chromium } from 'playwright-core';
import { startTestPanel } from '../packages/panel/test/helpers.ts';

const N = Number(process.argv[2] ?? 1400);
const R = Number(process.argv[3] ?? 5);
const IMAGE = 'ctrl-alt-play/busybox:latest';
const DIST = path.join(import.meta.dirname, '..', 'packages', 'web', 'dist');
const LABEL = 'ctrl-alt-play.bench';
const RUN = `docker-list-${process.pid}`;
const docker = new Docker({ socketPath: '/var/run/docker.sock' });

if (!existsSync(path.join(DIST, 'index.html')))
  throw new Error('build the web first: npm run build -w packages/web');

function stats(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  return {
    mean: s.reduce((a, b) => a + b, 0) / s.length,
    p50: s[Math.floor(s.length / 2)] ?? 0,
    max: s[s.length - 1] ?? 0,
  };
}
const row = (name: string, ms: number[], extra = '') => {
  const s = stats(ms);
  return `${name.padEnd(52)} ${s.mean.toFixed(0).padStart(7)} ${s.p50.toFixed(0).padStart(7)} ${s.max.toFixed(0).padStart(7)}  ${extra}`;
};

async function pool<T>(items: T[], concurrency: number, fn: (t: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

/** The raw Engine list: request, whole body, JSON.parse (what any client must do). */
function rawList(): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: '/var/run/docker.sock', path: '/containers/json?all=1' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
    });
    req.on('error', reject);
    req.end();
  });
}

async function removeBenchContainers(): Promise<void> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL}=${RUN}`] } });
  await pool(list, 8, async (c) => {
    await docker
      .getContainer(c.Id)
      .remove({ force: true })
      .catch(() => undefined);
  });
}

const panel = await startTestPanel({ PANEL_AGENT_PING_MS: '1000', PANEL_WEB_DIST: DIST });
const owner = await panel.login();
const node = await panel.createNode(owner, 'bench-docker-list');
const agentDir = await mkdtemp(path.join(tmpdir(), 'cap-bench-dlist-'));
const agent = await startAgent(
  loadAgentConfig({
    PANEL_URL: panel.url,
    NODE_ID: node.id,
    AGENT_SECRET: node.agentSecret,
    AGENT_DATA_DIR: agentDir,
    AGENT_HTTP_PORT: '0',
    AGENT_HTTP_HOST: '127.0.0.1',
    AGENT_SFTP_PORT: '0',
    LOG_LEVEL: 'silent',
  }),
  { logger: pino({ level: 'silent' }) },
);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
try {
  for (let i = 0; i < 200 && !(await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body?.online; i++)
    await new Promise((r) => setTimeout(r, 100));
  const t0 = performance.now();
  await pool(
    Array.from({ length: N }, (_, i) => i),
    8,
    async (i) => {
      await docker.createContainer({
        name: `bench-dlist-${process.pid}-${i}`,
        Image: IMAGE,
        Cmd: ['true'],
        Labels: { [LABEL]: RUN, index: String(i) },
      });
    },
  );
  console.log(`created ${N} stopped containers in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const rawTimes: number[] = [];
  const panelTimes: number[] = [];
  const cachedTimes: number[] = [];
  const headTimes: number[] = [];
  let cachedCount = 0;
  let cachedBytes = 0;
  const viaCache = async (limit?: number) => {
    const t = performance.now();
    const res = await fetch(
      `${panel.url}/api/nodes/${node.id}/docker-cache/containers${limit ? `?limit=${limit}` : ''}`,
      { headers: { cookie: owner.cookie } },
    );
    const text = await res.text();
    if (res.status !== 200) throw new Error(`${res.status} ${text.slice(0, 300)}`);
    const body = JSON.parse(text) as { containers: unknown[]; total: number };
    (limit ? headTimes : cachedTimes).push(performance.now() - t);
    if (!limit) {
      cachedCount = body.containers.length;
      cachedBytes = text.length;
    }
  };
  let rawCount = 0;
  let panelCount = 0;
  let panelBytes = 0;
  const viaPanel = async () => {
    const t = performance.now();
    const res = await fetch(`${panel.url}/api/nodes/${node.id}/docker/containers/json?all=1`, {
      headers: { cookie: owner.cookie },
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`${res.status} ${text.slice(0, 300)}`);
    const list = JSON.parse(text) as unknown[];
    panelTimes.push(performance.now() - t);
    panelCount = list.length;
    panelBytes = text.length;
  };
  const viaRaw = async () => {
    const t = performance.now();
    rawCount = (await rawList()).length;
    rawTimes.push(performance.now() - t);
  };
  // warm-up (first relay connection, Engine caches)
  await viaRaw();
  await viaPanel();
  await viaCache();
  await viaCache(100);
  rawTimes.length = 0;
  panelTimes.length = 0;
  cachedTimes.length = 0;
  headTimes.length = 0;
  for (let i = 0; i < R; i++) {
    await viaRaw();
    await viaPanel();
    await viaCache();
    await viaCache(100);
  }

  // Chromium: the session cookie set, the page opened, time to the first rendered row
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const [name, ...rest] = owner.cookie.split('=');
  await ctx.addCookies([{ name: name ?? '', value: rest.join('='), url: panel.url }]);
  await ctx.addInitScript(() => {
    const w = window as unknown as { capFirstRow?: number };
    new MutationObserver((_, obs) => {
      if (document.querySelector('[data-testid="container-row"]')) {
        w.capFirstRow = performance.now();
        obs.disconnect();
      }
    }).observe(document, { subtree: true, childList: true });
  });
  const page = await ctx.newPage();
  const coldTimes: number[] = [];
  const warmTimes: number[] = [];
  // where the time goes: the list request inside the page, and the page's main-thread work (CDP)
  const listFetch: number[] = [];
  const afterList: number[] = [];
  const mainThread: number[] = [];
  const searchBusy: number[] = [];
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('Performance.enable');
  const taskSeconds = async () => {
    const { metrics } = (await cdp.send('Performance.getMetrics')) as {
      metrics: { name: string; value: number }[];
    };
    return metrics.find((m) => m.name === 'TaskDuration')?.value ?? NaN;
  };
  let rendered = 0;
  let shown = '';
  // what the page waited for, the last navigation: every request's start and end, and when the
  // scripts ran (CAP_BENCH_WATERFALL=1 prints it)
  let waterfall: { name: string; start: number; end: number; bytes: number }[] = [];
  for (let i = 0; i < R + 1; i++) {
    await page.goto(`${panel.url}/docker/${node.id}/containers`);
    await page.waitForSelector('[data-testid="container-row"]', { timeout: 60_000 });
    // per document: the metrics start again with each navigation
    const busy = await taskSeconds();
    const t = await page.evaluate(() => {
      const list = performance
        .getEntriesByType('resource')
        .find((e) => e.name.includes('/docker-cache/containers')) as PerformanceResourceTiming | undefined;
      return {
        first: (window as unknown as { capFirstRow?: number }).capFirstRow ?? NaN,
        fetch: list ? list.responseEnd - list.startTime : NaN,
        end: list?.responseEnd ?? NaN,
      };
    });
    waterfall = await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming | undefined;
      const res = (performance.getEntriesByType('resource') as PerformanceResourceTiming[]).map((e) => ({
        name: new URL(e.name).pathname + new URL(e.name).search,
        start: e.startTime,
        end: e.responseEnd,
        bytes: e.encodedBodySize,
      }));
      const marks = [
        ...(nav
          ? [
              { name: '(document)', start: nav.startTime, end: nav.responseEnd, bytes: nav.encodedBodySize },
              {
                name: '(DOMContentLoaded)',
                start: nav.domContentLoadedEventStart,
                end: nav.domContentLoadedEventEnd,
                bytes: 0,
              },
            ]
          : []),
        {
          name: '(first rows)',
          start: (window as unknown as { capFirstRow?: number }).capFirstRow ?? NaN,
          end: (window as unknown as { capFirstRow?: number }).capFirstRow ?? NaN,
          bytes: 0,
        },
      ];
      return [...marks, ...res].sort((a, b) => a.start - b.start);
    });
    if (i > 0) {
      coldTimes.push(t.first);
      listFetch.push(t.fetch);
      afterList.push(t.first - t.end);
      mainThread.push(busy * 1000);
    }
    rendered = await page.locator('[data-testid="container-row"]').count();
    shown = (await page.locator('[data-testid="container-count"]').getAttribute('data-total')) ?? '';
  }
  // the page loaded: a search typed → the filtered rows rendered (filtering all of them, in the page)
  for (let i = 0; i < R; i++) {
    const term = `-${process.pid}-${100 + i}`;
    await page.locator('[data-testid="filter-text"]').fill('');
    // other containers on this engine may come and go: "everything shown" is shown == total
    await page.waitForFunction(() => {
      const el = document.querySelector('[data-testid="container-count"]');
      return !!el && el.getAttribute('data-shown') === el.getAttribute('data-total');
    });
    await page.evaluate(() => {
      const w = window as unknown as { capFiltered?: number; capTyped?: number };
      w.capFiltered = undefined;
      const el = document.querySelector('[data-testid="container-count"]');
      if (!el) return;
      const before = el.getAttribute('data-shown');
      new MutationObserver((_, obs) => {
        if (el.getAttribute('data-shown') !== before) {
          w.capFiltered = performance.now();
          obs.disconnect();
        }
      }).observe(el, { attributes: true });
      document.querySelector('[data-testid="filter-text"]')?.addEventListener(
        'input',
        () => {
          w.capTyped = performance.now();
        },
        { once: true },
      );
    });
    const busy0 = await taskSeconds();
    await page.locator('[data-testid="filter-text"]').fill(term);
    await page.waitForFunction(
      () => (window as unknown as { capFiltered?: number }).capFiltered !== undefined,
    );
    const ms = await page.evaluate(() => {
      const w = window as unknown as { capFiltered?: number; capTyped?: number };
      return (w.capFiltered ?? NaN) - (w.capTyped ?? NaN);
    });
    warmTimes.push(ms);
    searchBusy.push(((await taskSeconds()) - busy0) * 1000);
  }
  await ctx.close();

  console.log(
    `\nDocker container list, ${N} bench containers (${rawCount} on the engine in all), R=${R} (ms)`,
  );
  console.log(`${''.padEnd(52)} ${'mean'.padStart(7)} ${'p50'.padStart(7)} ${'max'.padStart(7)}`);
  console.log(row('raw Engine API GET /containers/json?all=1', rawTimes, `${rawCount} containers`));
  console.log(
    row(
      'Panel API /api/nodes/:id/docker/containers/json',
      panelTimes,
      `${panelCount} containers, ${(panelBytes / 1024).toFixed(0)} KiB`,
    ),
  );
  console.log(
    row(
      'Panel API /api/nodes/:id/docker-cache/containers',
      cachedTimes,
      `${cachedCount} containers, ${(cachedBytes / 1024).toFixed(0)} KiB (the Agent's event-fed cache)`,
    ),
  );
  console.log(row('  its first page ?limit=100 (what the UI shows first)', headTimes));
  console.log(
    row(
      'Chromium: navigation → first rows rendered',
      coldTimes,
      `${shown} listed, ${rendered} rows in the DOM (virtualised)`,
    ),
  );
  console.log(row('  of which the list request in the page', listFetch));
  console.log(row('  of which list answer → first rows rendered', afterList));
  console.log(
    row('  page main-thread task time until then (CDP)', mainThread, 'wall time of its tasks, load-inflated'),
  );
  if (process.env['CAP_BENCH_WATERFALL'] === '1') {
    console.log('  the last navigation (ms from its start):');
    for (const w of waterfall)
      console.log(
        `    ${w.start.toFixed(0).padStart(6)} → ${w.end.toFixed(0).padStart(6)}  ${w.name.slice(0, 70)}${w.bytes ? ` (${(w.bytes / 1024).toFixed(0)} KiB)` : ''}`,
      );
  }
  console.log(row('Chromium: a search typed → filtered rows rendered', warmTimes, `over all ${shown}`));
  console.log(row('  page main-thread task time meanwhile (CDP)', searchBusy, 'incl. the wait polling'));
  console.log(
    `load average at the end: ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} on ${cpus().length} CPUs`,
  );
} finally {
  await browser.close().catch(() => undefined);
  await removeBenchContainers();
  await agent.stop();
  await panel.stop();
  await rm(agentDir, { recursive: true, force: true });
}
