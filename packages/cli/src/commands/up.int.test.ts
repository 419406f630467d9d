/** `ctrl-alt-play up` for real: Panel + the real Agent (real Docker), registered automatically. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const a = srv.address();
  await new Promise<void>((r) => srv.close(() => r()));
  if (!a || typeof a === 'string') throw new Error('no port');
  return a.port;
}

test('up: prints the URL and login, the local node comes online, a second run reuses it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cap-up-'));
  const port = await freePort();
  const main = new URL('../main.ts', import.meta.url).pathname;
  const env = {
    ...process.env,
    DATA_DIR: dir,
    PORT: String(port),
    HOST: '127.0.0.1',
    AGENT_HTTP_PORT: '0',
    LOG_LEVEL: 'warn',
    ADMIN_EMAIL: 'up@x.test',
    ADMIN_PASSWORD: 'up-password-1',
  };
  const runOnce = async (): Promise<{
    nodes: { id: string; name: string; online: boolean }[];
    out: string;
  }> => {
    const child = spawn(process.execPath, [main, 'up'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    try {
      for (let i = 0; i < 300 && !out.includes('is up'); i++) await new Promise((r) => setTimeout(r, 100));
      assert.match(out, /Ctrl-Alt-Play is up/, out);
      assert.match(out, new RegExp(`http://localhost:${port}`));
      assert.match(out, /Log in as up@x\.test/);
      const login = await fetch(`http://127.0.0.1:${port}/api/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'up@x.test', password: 'up-password-1' }),
      });
      assert.equal(login.status, 200);
      const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
      let nodes: { id: string; name: string; online: boolean }[] = [];
      for (let i = 0; i < 100; i++) {
        nodes = (await (
          await fetch(`http://127.0.0.1:${port}/api/nodes`, { headers: { cookie } })
        ).json()) as never;
        if (nodes[0]?.online) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      return { nodes, out };
    } finally {
      child.kill('SIGINT');
      assert.equal(await exited, 0, out);
    }
  };
  try {
    const first = await runOnce();
    assert.equal(first.nodes.length, 1);
    assert.equal(first.nodes[0]?.name, 'local');
    assert.equal(first.nodes[0]?.online, true);
    assert.equal(statSync(join(dir, 'local-agent.json')).mode & 0o777, 0o600);
    const second = await runOnce();
    assert.deepEqual(
      second.nodes.map((n) => [n.id, n.online]),
      [[first.nodes[0]?.id, true]],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
