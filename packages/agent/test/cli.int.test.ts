/** `npx ctrl-alt-play agent` as a process: boots, connects, and on SIGTERM closes the link cleanly. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FakePanel } from './fake-panel.ts';
import { docker, IMAGE, uid } from './helpers.ts';

const MAIN = fileURLToPath(new URL('../../cli/src/main.ts', import.meta.url));

test('the agent command connects and closes the link with 1000 on SIGTERM', async (t) => {
  const panel = await new FakePanel({ secret: 'cli-secret-123456' }).start();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'cap-agent-cli-'));
  t.after(async () => {
    await panel.stop();
    await rm(dataDir, { recursive: true, force: true });
  });
  const child = spawn(process.execPath, [MAIN, 'agent'], {
    env: {
      ...process.env,
      PANEL_URL: panel.url,
      NODE_ID: uid('cli-'),
      AGENT_SECRET: 'cli-secret-123456',
      AGENT_DATA_DIR: dataDir,
      AGENT_HTTP_PORT: '0',
      AGENT_HTTP_HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  await panel.waitConnected(15_000);
  // a running game server must neither keep the process alive nor be stopped by the shutdown
  const serverId = uid('cli-srv-');
  const created = await panel.command('create_server', {
    serverId,
    eggConfig: { name: 'x', image: IMAGE, startup: 'sleep 1000' },
  });
  assert.equal(created.success, true, JSON.stringify(created.error));
  assert.equal((await panel.command('start_server', {}, { serverId })).success, true);
  t.after(() => docker.getContainer(`cap-${serverId}`).remove({ force: true }));
  const t0 = Date.now();
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
  assert.ok(Date.now() - t0 < 5000, `exit took ${Date.now() - t0} ms`);
  assert.equal((await docker.getContainer(`cap-${serverId}`).inspect()).State.Running, true);
  const t1 = Date.now();
  while (panel.closes.length === 0 && Date.now() - t1 < 2000) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(panel.closes, [1000]);
});

test('a bad configuration exits 2 naming every bad key', async () => {
  const child = spawn(process.execPath, [MAIN, 'agent'], {
    env: { PATH: process.env.PATH ?? '', PANEL_URL: 'gopher://x', AGENT_HTTP_PORT: 'x' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d) => {
    err += d;
  });
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  assert.equal(code, 2);
  assert.match(err, /^CONFIG_INVALID/);
  for (const k of ['PANEL_URL', 'NODE_ID', 'AGENT_SECRET', 'AGENT_HTTP_PORT']) assert.ok(err.includes(k), k);
});
