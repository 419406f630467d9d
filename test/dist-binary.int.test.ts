/**
 * What is deployed, run as a user runs it: the Agent as a single executable
 * (dist/bin/ctrl-alt-play-agent-linux-x64, built by scripts/build-dist.ts, cached) drives a
 * busybox server and a real OpenTTD server for a real Panel through the real Docker Engine; the Panel's bundle
 * (`node dist/panel.mjs`) serves the web UI and the API docs. Nothing is loaded from source in
 * either process.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AGENT_VERSION } from '@cap/agent';
import { PANEL_VERSION } from '@cap/panel';
import {
  freePort,
  type Session,
  startTestPanel,
  type TestPanel,
  until,
} from '../packages/panel/test/helpers.ts';
import { IMAGE, removeNodeContainers } from './harness.ts';
import { driveOpenTTD } from './openttd.ts';

const root = path.resolve(import.meta.dirname, '..');
const BIN = path.join(root, 'dist/bin/ctrl-alt-play-agent-linux-x64');

function buildDist(...targets: string[]): void {
  execFileSync(process.execPath, [path.join(root, 'scripts/build-dist.ts'), ...targets, '--arch', 'x64'], {
    cwd: root,
    stdio: 'pipe',
  });
}

/** A child's output, kept to explain a failure. */
function spawnLogged(
  cmd: string,
  args: string[],
  env: Record<string, string>,
): { child: ChildProcess; out: () => string } {
  const child = spawn(cmd, args, {
    cwd: tmpdir(),
    env: { PATH: process.env['PATH'] ?? '', ...env },
    stdio: 'pipe',
  });
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  return { child, out: () => out };
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

describe('the Agent as a single executable, against a real Panel and Docker', () => {
  let panel: TestPanel;
  let owner: Session;
  let nodeId = '';
  let agent: ReturnType<typeof spawnLogged> | undefined;
  const agentDir = mkdtempSync(path.join(tmpdir(), 'cap-bin-agent-'));

  before(async () => {
    buildDist('bin');
    panel = await startTestPanel({ PANEL_AGENT_PING_MS: '1000' });
    owner = await panel.login();
  });

  after(async () => {
    await stopChild(agent?.child);
    if (nodeId) await removeNodeContainers(nodeId);
    await panel?.stop();
    rmSync(agentDir, { recursive: true, force: true });
  });

  it('prints its version, built in', () => {
    const out = execFileSync(BIN, ['--version'], { encoding: 'utf8', env: {} });
    assert.match(
      out,
      new RegExp(
        `^ctrl-alt-play-agent ${AGENT_VERSION.replaceAll('.', '\\.')} \\(protocol \\d+, commit [0-9a-f]{7,}`,
      ),
    );
    assert.match(out, /node v24\.\d+\.\d+ linux-x64\)/);
  });

  it('refuses a bad configuration with CONFIG_INVALID and exit code 2', () => {
    let status: number | null = null;
    let stderr = '';
    try {
      execFileSync(BIN, [], { encoding: 'utf8', env: {}, stdio: 'pipe' });
    } catch (e) {
      status = (e as { status: number }).status;
      stderr = String((e as { stderr: string }).stderr);
    }
    assert.equal(status, 2);
    assert.match(stderr, /^CONFIG_INVALID: .*PANEL_URL is required/);
  });

  it('registers, and drives a busybox server: create, start, console, stop, archives', async () => {
    const node = await panel.createNode(owner, 'binary-node');
    nodeId = node.id;
    agent = spawnLogged(BIN, [], {
      PANEL_URL: panel.url,
      NODE_ID: node.id,
      AGENT_SECRET: node.agentSecret,
      AGENT_DATA_DIR: agentDir,
      AGENT_HTTP_PORT: '0',
      LOG_LEVEL: 'info',
    });
    const { out } = agent;
    await until(
      async () => (await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body?.online === true,
      20_000,
    ).catch((e) => {
      throw new Error(`${(e as Error).message}; agent output:\n${out()}`);
    });
    // JSON logs (no terminal), from the bundle
    assert.match(out(), /"msg":"connected to the panel"/);

    const created = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'binary busybox',
      nodeId,
      image: IMAGE,
      startup: 'echo "hello from the binary"; while read l; do echo "got:$l"; done',
      limits: { memory: '64m', cpu: '0.5' },
      stop: '^C',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const serverId = created.body.id as string;
    const ws = await panel.clientSocket(owner);
    ws.send({ type: 'subscribe', serverId });
    await ws.next((m) => m.type === 'subscribed' && m.serverId === serverId);
    const start = await panel.api(owner, 'POST', `/api/servers/${serverId}/power`, { action: 'start' });
    assert.equal(start.status, 202);
    await ws.next((m) => m.type === 'status' && m.status === 'running', 20_000);
    await ws.next(
      (m) => m.type === 'console' && m.lines.some((l: string) => l.includes('hello from the binary')),
      10_000,
    );
    ws.send({ type: 'send_command', serverId, command: 'ping-binary' });
    await ws.next(
      (m) => m.type === 'console' && m.lines.some((l: string) => l.includes('got:ping-binary')),
      10_000,
    );
    const stop = await panel.api(owner, 'POST', `/api/servers/${serverId}/power`, { action: 'stop' });
    assert.equal(stop.status, 202);
    await ws.next((m) => m.type === 'status' && m.status === 'offline', 20_000);
    ws.close();
    // archives: tar, yazl and yauzl are loaded by the executable on this first use (islands whose
    // stand-ins load them on demand: scripts/build-dist.ts, DEFERRED_ISLANDS)
    const text = 'binary archive line\n'.repeat(100);
    const put = await panel.api(owner, 'PUT', `/api/servers/${serverId}/files/content`, {
      path: 'notes.txt',
      content: text,
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    for (const format of ['zip', 'tar.gz'] as const) {
      const name = `notes.${format}`;
      const c = await panel.api(owner, 'POST', `/api/servers/${serverId}/files/compress?wait=true`, {
        root: '/',
        names: ['notes.txt'],
        format,
        name,
      });
      assert.equal(c.status, 200, `${format}: ${JSON.stringify(c.body)}`);
      assert.equal(c.body.path, `/${name}`);
      const d = await panel.api(owner, 'POST', `/api/servers/${serverId}/files/decompress?wait=true`, {
        path: `/${name}`,
        destination: `/out-${format}`,
      });
      assert.equal(d.status, 200, `${format}: ${JSON.stringify(d.body)}`);
      assert.equal(d.body.bytes, text.length);
      const back = await panel.api(
        owner,
        'GET',
        `/api/servers/${serverId}/files/content?path=${encodeURIComponent(`/out-${format}/notes.txt`)}`,
      );
      assert.equal(back.status, 200, JSON.stringify(back.body));
      assert.equal(back.body.content, text);
    }
    assert.ok(!out().includes('not in the Agent'), `a stand-in was called:\n${out()}`);
    const del = await panel.api(owner, 'DELETE', `/api/servers/${serverId}`);
    assert.ok(del.status === 204 || del.status === 200, `delete: ${del.status}`);
  });

  it('drives a real game server: OpenTTD from its template, installed, started, its port answering, stopped', {
    timeout: 300_000,
  }, async () => {
    assert.ok(nodeId, 'the node of the previous step');
    await driveOpenTTD((m, p, b) => panel.api(owner, m, p, b), nodeId, 'binary');
  });

  it('stops cleanly on SIGTERM', async () => {
    const child = agent?.child;
    assert.ok(child);
    const code = new Promise((r) => child.once('exit', (c) => r(c)));
    child.kill('SIGTERM');
    assert.equal(await code, 0);
    assert.match(agent?.out() ?? '', /agent stopped; game servers left running/);
  });
});

/**
 * The linux-arm64 executable, run here under QEMU's user-mode emulation (Debian's
 * qemu-user-static with the arm64 C and C++ runtimes of the cross toolchain as its sysroot): the
 * same bundle in Node's arm64 binary prints its version, registers with a real Panel, comes online
 * and drives a busybox server through the real (x64) Docker Engine. Emulation is slow: the
 * timeouts are wide, and what is checked is that it works, not how fast.
 */
describe('the Agent as a linux-arm64 executable, under QEMU', () => {
  const QEMU = '/usr/bin/qemu-aarch64-static';
  const SYSROOT = '/usr/aarch64-linux-gnu';
  const ARM_BIN = path.join(root, 'dist/bin/ctrl-alt-play-agent-linux-arm64');
  let panel: TestPanel;
  let owner: Session;
  let nodeId = '';
  let agent: ReturnType<typeof spawnLogged> | undefined;
  const agentDir = mkdtempSync(path.join(tmpdir(), 'cap-arm64-agent-'));

  before(async () => {
    assert.ok(
      existsSync(QEMU),
      `${QEMU} is missing: apt-get install qemu-user-static (scripts/setup-host.sh does)`,
    );
    assert.ok(
      existsSync(path.join(SYSROOT, 'lib/ld-linux-aarch64.so.1')),
      'the arm64 C runtime is missing: apt-get install libc6-arm64-cross libstdc++6-arm64-cross',
    );
    execFileSync(process.execPath, [path.join(root, 'scripts/build-dist.ts'), 'bin', '--arch', 'arm64'], {
      cwd: root,
      stdio: 'pipe',
    });
    panel = await startTestPanel({ PANEL_AGENT_PING_MS: '2000' });
    owner = await panel.login();
  });

  after(async () => {
    await stopChild(agent?.child);
    if (nodeId) await removeNodeContainers(nodeId);
    await panel?.stop();
    rmSync(agentDir, { recursive: true, force: true });
  });

  it('prints its version: an arm64 Node with the Agent built in', { timeout: 300_000 }, () => {
    const out = execFileSync(QEMU, ['-L', SYSROOT, ARM_BIN, '--version'], { encoding: 'utf8', env: {} });
    assert.match(out, new RegExp(`^ctrl-alt-play-agent ${AGENT_VERSION.replaceAll('.', '\\.')} `));
    assert.match(out, /node v24\.\d+\.\d+ linux-arm64\)/);
  });

  it('registers, comes online and drives a busybox server', { timeout: 600_000 }, async () => {
    const node = await panel.createNode(owner, 'arm64-node');
    nodeId = node.id;
    agent = spawnLogged(QEMU, ['-L', SYSROOT, ARM_BIN], {
      PANEL_URL: panel.url,
      NODE_ID: node.id,
      AGENT_SECRET: node.agentSecret,
      AGENT_DATA_DIR: agentDir,
      AGENT_HTTP_PORT: '0',
      AGENT_SFTP_PORT: '0',
      LOG_LEVEL: 'info',
    });
    const { out } = agent;
    await until(
      async () => (await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body?.online === true,
      240_000,
    ).catch((e) => {
      throw new Error(`${(e as Error).message}; agent output:\n${out()}`);
    });
    const info = (await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body;
    assert.match(JSON.stringify(info), /arm64/, 'the node reports its arm64 Agent');
    const created = await panel.api(owner, 'POST', '/api/servers?wait=true', {
      name: 'arm64 busybox',
      nodeId,
      image: IMAGE,
      startup: 'echo "hello from arm64"; while read l; do echo "got:$l"; done',
      limits: { memory: '64m', cpu: '0.5' },
      stop: '^C',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    const consoleHas = async (text: string) =>
      ((await panel.api(owner, 'GET', `/api/servers/${id}/telemetry`)).body?.console ?? []).some(
        (l: string) => l.includes(text),
      );
    assert.equal(
      (await panel.api(owner, 'POST', `/api/servers/${id}/power`, { action: 'start' })).status,
      202,
    );
    await until(() => consoleHas('hello from arm64'), 120_000);
    assert.equal(
      (await panel.api(owner, 'POST', `/api/servers/${id}/command`, { command: 'ping-arm64' })).status,
      202,
    );
    await until(() => consoleHas('got:ping-arm64'), 120_000);
    assert.equal(
      (await panel.api(owner, 'POST', `/api/servers/${id}/power`, { action: 'kill' })).status,
      202,
    );
    await until(
      async () => (await panel.api(owner, 'GET', `/api/servers/${id}`)).body.status === 'offline',
      120_000,
    );
  });
});

describe('the Panel from its bundle', () => {
  let panel: ReturnType<typeof spawnLogged> | undefined;
  const dataDir = mkdtempSync(path.join(tmpdir(), 'cap-bundle-panel-'));

  before(() => {
    if (!existsSync(path.join(root, 'packages/web/dist/index.html'))) {
      execFileSync('npm', ['run', 'build', '-w', 'packages/web'], { cwd: root, stdio: 'pipe' });
    }
    buildDist('panel');
  });

  after(async () => {
    await stopChild(panel?.child);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('prints its version', () => {
    const out = execFileSync(process.execPath, [path.join(root, 'dist/panel.mjs'), '--version'], {
      encoding: 'utf8',
    });
    assert.match(
      out,
      new RegExp(`^ctrl-alt-play-panel ${PANEL_VERSION.replaceAll('.', '\\.')} \\(protocol \\d+`),
    );
  });

  it('serves the web UI, the API and its docs, run from another directory', async () => {
    const port = await freePort();
    panel = spawnLogged(process.execPath, [path.join(root, 'dist/panel.mjs')], {
      DATA_DIR: dataDir,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
    });
    const base = `http://127.0.0.1:${port}`;
    const { out } = panel;
    await until(async () => (await fetch(`${base}/api/health`).catch(() => null)) !== null, 20_000).catch(
      (e) => {
        throw new Error(`${(e as Error).message}; panel output:\n${out()}`);
      },
    );
    const index = await fetch(`${base}/`);
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await index.text(), /<div id="root"/);
    const docs = await fetch(`${base}/api/docs/static/swagger-ui.css`);
    assert.equal(docs.status, 200, 'the API docs assets');
    const spec = await fetch(`${base}/api/openapi.json`);
    assert.equal(spec.status, 200);
    assert.equal(((await spec.json()) as { info: { version: string } }).info.version, PANEL_VERSION);
    const templates = execFileSync('ls', [path.join(root, 'dist/templates/builtin')], { encoding: 'utf8' });
    assert.ok(templates.includes('.json'), 'built-in templates beside the bundle');
    assert.doesNotMatch(out(), /must exist|ENOENT/);
  });
});
