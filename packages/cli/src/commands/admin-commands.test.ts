import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { build, loadPanelConfig } from '@cap/panel';
import { pino } from 'pino';

const main = new URL('../main.ts', import.meta.url).pathname;

test('user / node / apikey create work on the database, and the Panel accepts what they made', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cap-cli-'));
  const env = { ...process.env, DATA_DIR: dir, LOG_LEVEL: 'silent' };
  const cli = (...args: string[]) => spawnSync(process.execPath, [main, ...args], { env, encoding: 'utf8' });
  try {
    const u = cli('user', 'create', '--email', 'ops@x.test', '--password', 'ops-password', '--role', 'admin');
    assert.equal(u.status, 0, u.stderr);
    assert.equal(
      cli('user', 'create', '--email', 'ops@x.test', '--password', 'ops-password', '--role', 'admin').status,
      1,
    );
    assert.equal(
      cli('user', 'create', '--email', 'x@x.test', '--password', 'pw-long-enough', '--role', 'root').status,
      1,
    );
    assert.equal(cli('user').status, 2);
    const n = cli('node', 'create', '--name', 'edge-1');
    assert.equal(n.status, 0, n.stderr);
    const secret = /AGENT_SECRET=(\S+)/.exec(n.stdout)?.[1];
    assert.ok(secret);
    assert.match(n.stdout, /npx ctrl-alt-play agent/);
    const k = cli('apikey', 'create', '--email', 'ops@x.test', '--name', 'ci');
    assert.equal(k.status, 0, k.stderr);
    const key = k.stdout.trim();
    assert.match(key, /^cap_/);

    const app = await build(loadPanelConfig({ DATA_DIR: dir }), { logger: pino({ level: 'silent' }) });
    try {
      const nodes = await app.inject({
        method: 'GET',
        url: '/api/nodes',
        headers: { authorization: `Bearer ${key}` },
      });
      assert.equal(nodes.statusCode, 200);
      assert.equal(nodes.json()[0].name, 'edge-1');
      const reg = await app.inject({
        method: 'POST',
        url: '/api/agents/register',
        headers: { authorization: `Bearer ${secret}` },
        payload: {
          name: 'edge-1',
          hostname: 'h',
          port: 1,
          capabilities: { maxMemory: '1g', maxCpuCores: 1, dockerVersion: '1', supportedArchitectures: [] },
        },
      });
      assert.equal(reg.statusCode, 200);
    } finally {
      await app.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
