/** What every browser test shares: paths, a free port, Docker cleanup, a fresh build, Chromium. */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';

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
function docker(method: string, path: string): Promise<{ status: number; body: string }> {
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
  const res = await docker('GET', `/containers/json?all=1&filters=${filters}`);
  const list = JSON.parse(res.body) as { Id: string }[];
  await Promise.all(list.map((c) => docker('DELETE', `/containers/${c.Id}?force=1`)));
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
