/**
 * deploy/compose.yaml brought up by Debian's docker-compose (1.29) from the images built here
 * (ctrl-alt-play/postgres, ctrl-alt-play/panel, ctrl-alt-play-agent): the Panel on PostgreSQL
 * answers on the published port, a node added through its API, the Agent service started with
 * that node's id and secret comes online, and it drives a busybox server and a real OpenTTD server. `down -v` after.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../packages/panel/test/helpers.ts';
import { IMAGE, removeNodeContainers } from './harness.ts';
import { driveOpenTTD } from './openttd.ts';

const root = path.resolve(import.meta.dirname, '..');
const hasCompose = existsSync('/usr/bin/docker-compose');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('deploy/compose.yaml with docker-compose', {
  skip: !hasCompose && !process.env['CAP_REQUIRE_REAL'] ? 'docker-compose not installed' : false,
}, () => {
  const project = `cap-test-${randomBytes(3).toString('hex')}`;
  const agentDir = mkdtempSync(path.join(tmpdir(), 'cap-compose-agent-'));
  let port = 0;
  let base = '';
  let env: Record<string, string> = {};
  let nodeId = '';
  let cookie = '';
  let csrf = '';

  const compose = (...args: string[]) =>
    execFileSync('docker-compose', ['-p', project, '-f', path.join(root, 'deploy/compose.yaml'), ...args], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
      stdio: 'pipe',
    });
  const api = async (method: string, url: string, body?: unknown) => {
    const res = await fetch(`${base}${url}`, {
      method,
      headers: { cookie, 'x-csrf-token': csrf, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  const until = async (what: string, fn: () => Promise<boolean>, ms = 60_000) => {
    const t0 = Date.now();
    while (!(await fn().catch(() => false))) {
      if (Date.now() - t0 > ms) throw new Error(`timed out: ${what}\n${compose('logs', '--tail', '20')}`);
      await sleep(300);
    }
  };

  before(async () => {
    execFileSync(process.execPath, [path.join(root, 'scripts/build-dist.ts'), 'images', 'postgres'], {
      stdio: 'pipe',
    });
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    env = {
      POSTGRES_PASSWORD: randomBytes(12).toString('hex'),
      PANEL_PORT: String(port),
      PANEL_URL: `http://localhost:${port}`,
      ADMIN_EMAIL: 'owner@example.test',
      ADMIN_PASSWORD: 'owner-password-1',
      AGENT_DATA_DIR: agentDir,
    };
    compose('up', '-d', 'postgres', 'panel');
    await until('the Panel answers', async () => (await fetch(`${base}/api/health`)).ok, 120_000);
    const login = await fetch(`${base}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: env['ADMIN_EMAIL'], password: env['ADMIN_PASSWORD'] }),
    });
    assert.equal(login.status, 200);
    cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    csrf = ((await login.json()) as { csrfToken: string }).csrfToken;
  });

  after(async () => {
    try {
      compose('down', '-v', '--timeout', '5');
    } catch {
      // already gone
    }
    if (nodeId) await removeNodeContainers(nodeId);
    rmSync(agentDir, { recursive: true, force: true });
  });

  test('the Panel runs on PostgreSQL, serves the web UI, and its Agent service comes online', async () => {
    const index = await fetch(`${base}/`);
    assert.equal(index.status, 200);
    assert.match(await index.text(), /<div id="root"/);
    const node = await api('POST', '/api/nodes', { name: 'compose-node' });
    assert.equal(node.status, 201, JSON.stringify(node.body));
    nodeId = node.body.node.id;
    env = { ...env, NODE_ID: nodeId, AGENT_SECRET: node.body.agentSecret };
    compose('up', '-d', 'agent');
    await until('node online', async () => (await api('GET', `/api/nodes/${nodeId}`)).body?.online === true);
    // the database is the compose file's PostgreSQL: the Panel's container says so
    const logs = compose('logs', 'panel');
    assert.doesNotMatch(logs, /panel\.sqlite/);
  });

  test('drives a busybox server through the compose Agent', async () => {
    const created = await api('POST', '/api/servers?wait=true', {
      name: 'compose busybox',
      nodeId,
      image: IMAGE,
      startup: 'echo "hello from compose"; while read l; do echo "got:$l"; done',
      limits: { memory: '32m', cpu: '0.2' },
      stop: '^C',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    assert.equal((await api('POST', `/api/servers/${id}/power`, { action: 'start' })).status, 202);
    await until('running', async () => (await api('GET', `/api/servers/${id}`)).body.status === 'running');
    await until('console', async () =>
      ((await api('GET', `/api/servers/${id}/telemetry`)).body?.console ?? []).some((l: string) =>
        l.includes('hello from compose'),
      ),
    );
    assert.equal((await api('POST', `/api/servers/${id}/power`, { action: 'stop' })).status, 202);
    await until('offline', async () => (await api('GET', `/api/servers/${id}`)).body.status === 'offline');
  });

  test('drives a real game server through the compose Agent: OpenTTD, its port answering', {
    timeout: 300_000,
  }, async () => {
    await driveOpenTTD(api, nodeId, 'compose');
  });
});
