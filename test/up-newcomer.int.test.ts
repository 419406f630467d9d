/**
 * Issue 14 item 6, a newcomer's first run: `ctrl-alt-play up` from a clone where the web UI was
 * never built, on a terminal, against the real Docker Engine: `/` is the web UI, logs are pretty,
 * the local node has a default port range, and the first server (from a template, on the first
 * free port of that range) shows an address players can use.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { removeNodeContainers } from './harness.ts';

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const a = srv.address();
  await new Promise<void>((r) => srv.close(() => r()));
  if (!a || typeof a === 'string') throw new Error('no port');
  return a.port;
}

/** A tiny template on the local busybox image: no install, listens on its primary port. */
const BUSYBOX_EGG = {
  meta: { version: 'PTDL_v2' },
  name: 'Up test listener',
  author: 'up-test@ctrl-alt-play.local',
  description: 'busybox nc on SERVER_PORT',
  docker_images: { busybox: 'ctrl-alt-play/busybox:latest' },
  startup: 'sh -c "echo listening on {{SERVER_PORT}}; exec nc -lk -p {{SERVER_PORT}} -e cat"',
  config: { files: '{}', startup: '{"done": "listening on"}', logs: '{}', stop: '^C' },
  scripts: { installation: { script: '', container: 'ctrl-alt-play/busybox:latest', entrypoint: 'sh' } },
  variables: [],
};

test('up for a newcomer: / is the web UI without a build step, pretty logs on a terminal, the local node has ports 25565-25665, the first server shows an address players can use', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cap-up-new-'));
  const templates = join(dir, 'templates');
  mkdirSync(templates);
  writeFileSync(join(templates, 'listener.json'), JSON.stringify(BUSYBOX_EGG));
  const port = await freePort();
  const main = new URL('../packages/cli/src/main.ts', import.meta.url).pathname;
  const env = {
    ...process.env,
    DATA_DIR: join(dir, 'data'),
    PORT: String(port),
    HOST: '127.0.0.1',
    // where players reach this machine (the local Agent itself dials 127.0.0.1)
    PANEL_URL: `http://play.example.test:${port}`,
    // a fresh clone: no web UI built yet
    PANEL_WEB_DIST: join(dir, 'web-dist'),
    PANEL_BUILTIN_TEMPLATES_DIR: templates,
    AGENT_HTTP_PORT: '0',
    AGENT_DATA_DIR: join(dir, 'agent'),
    LOG_LEVEL: 'info',
    ADMIN_EMAIL: 'newcomer@x.test',
    ADMIN_PASSWORD: 'newcomer-password-1',
  };
  // on a terminal, as a newcomer runs it: `script` gives the process a pseudo-terminal
  const cmd = `exec ${process.execPath} ${main} up`;
  const child = spawn('script', ['-qfec', cmd, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    out += d;
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  const base = `http://127.0.0.1:${port}`;
  let nodeId: string | undefined;
  let code: unknown;
  try {
    for (let i = 0; i < 900 && !out.includes('is up'); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(out, /Ctrl-Alt-Play is up/, out);

    const home = await fetch(`${base}/`);
    assert.equal(home.status, 200, await home.clone().text());
    assert.match(home.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await home.text(), /<div id="root">/);
    assert.equal((await fetch(`${base}/servers`)).status, 200, 'client-side routes are the UI too');

    // pretty, not JSON, on a terminal
    assert.doesNotMatch(out, /^\{"level"/m, out);
    assert.match(out, /INFO/, out);

    const login = await fetch(`${base}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'newcomer@x.test', password: 'newcomer-password-1' }),
    });
    assert.equal(login.status, 200);
    const csrf = ((await login.json()) as { csrfToken: string }).csrfToken;
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const api = async (path: string, init: { method?: string; body?: unknown } = {}) => {
      const r = await fetch(`${base}/api${path}`, {
        method: init.method ?? 'GET',
        headers: {
          cookie,
          'x-csrf-token': csrf,
          ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      });
      const text = await r.text();
      return { status: r.status, body: text ? (JSON.parse(text) as never) : (null as never) };
    };
    let nodes: { id: string; online: boolean; publicAddress: string | null }[] = [];
    for (let i = 0; i < 100; i++) {
      nodes = (await api('/nodes')).body;
      if (nodes[0]?.online) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const node = nodes[0];
    assert.ok(node?.online, `${JSON.stringify(nodes)}\n${out}`);
    nodeId = node.id;
    assert.equal(node.publicAddress, 'play.example.test');
    const allocs: { ip: string; port: number; serverId: string | null }[] = (
      await api(`/nodes/${node.id}/allocations`)
    ).body;
    assert.deepEqual(
      allocs.map((a) => a.port),
      Array.from({ length: 101 }, (_, i) => 25565 + i),
    );

    const tpl = ((await api('/templates')).body as { id: string; name: string }[]).find(
      (t) => t.name === 'Up test listener',
    );
    assert.ok(tpl, 'the template was imported');
    const created = await api('/servers?wait=true', {
      method: 'POST',
      body: { name: 'first', nodeId: node.id, templateId: tpl.id },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const server = created.body as { id: string; allocation: { port: number }; address: string | null };
    assert.equal(server.allocation.port, 25565);
    assert.equal(server.address, 'play.example.test:25565');
    const listed = (await api('/servers')).body as { id: string; address: string | null }[];
    assert.equal(listed.find((s) => s.id === server.id)?.address, 'play.example.test:25565');
    assert.doesNotMatch(JSON.stringify(listed), /"address":"0\.0\.0\.0/);
    assert.equal((await api(`/servers/${server.id}`, { method: 'DELETE' })).status, 204);
  } finally {
    child.stdin.write('\x03'); // Ctrl-C on the terminal
    code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 15_000))]);
    if (code === 'timeout') child.kill('SIGKILL');
    if (nodeId) await removeNodeContainers(nodeId);
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(code, 0, `up ends cleanly on Ctrl-C\n${out}`);
});
