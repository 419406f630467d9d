/**
 * The Agent's OCI image (deploy/images/agent, built here by scripts/build-dist.ts from the
 * project's Debian base: no registry) run as seed 001 shows it — `docker run -d --name … -v
 * /var/run/docker.sock:/var/run/docker.sock -e PANEL_URL -e NODE_ID -e AGENT_SECRET
 * ctrl-alt-play-agent` — plus its data directory at the same path and the Panel's certificate
 * pinned (the Panel is off loopback for the container: HTTPS on the Docker bridge's gateway).
 * It registers and drives a busybox server for a real Panel: create, start, console, stop; then a
 * real OpenTTD server from its template, whose game port answers.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AGENT_VERSION } from '@cap/agent';
import { loadPanelConfig, type RunningPanel, startPanel } from '@cap/panel';
import { pino } from 'pino';
import { ADMIN_EMAIL, ADMIN_PASSWORD, freePort } from '../packages/panel/test/helpers.ts';
import { docker, IMAGE, removeNodeContainers } from './harness.ts';
import { driveOpenTTD } from './openttd.ts';
import { selfSigned } from './tls.ts';

const root = path.resolve(import.meta.dirname, '..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

describe('the Agent image, run as seed 001 shows', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cap-agent-image-'));
  const name = `cap-test-agent-${randomBytes(3).toString('hex')}`;
  let panel: RunningPanel;
  let headers: Record<string, string> = {};
  let nodeId = '';

  const api = async (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) => {
    const res = await panel.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });
    return { status: res.statusCode, body: res.body ? res.json() : null };
  };

  before(async () => {
    execFileSync(process.execPath, [path.join(root, 'scripts/build-dist.ts'), 'images'], { stdio: 'pipe' });
    // the bridge's gateway; an Engine whose IPAM config names only the subnet (Debian's 20.10
    // here) has it on its docker0 interface
    const gateway =
      execFileSync('docker', ['network', 'inspect', 'bridge', '-f', '{{(index .IPAM.Config 0).Gateway}}'], {
        encoding: 'utf8',
      }).trim() ||
      (/\binet (\d+\.\d+\.\d+\.\d+)\//.exec(
        execFileSync('ip', ['-4', '-o', 'addr', 'show', 'docker0'], { encoding: 'utf8' }),
      )?.[1] ??
        '');
    assert.match(gateway, /^\d+\.\d+\.\d+\.\d+$/);
    const { cert, key } = selfSigned(dir, { cn: 'panel' });
    const port = await freePort();
    panel = await startPanel(
      loadPanelConfig({
        DATA_DIR: path.join(dir, 'panel'),
        HOST: gateway,
        PORT: String(port),
        PANEL_URL: `https://${gateway}:${port}`,
        PANEL_TLS_CERT: cert,
        PANEL_TLS_KEY: key,
        ADMIN_EMAIL,
        ADMIN_PASSWORD,
        LOG_LEVEL: 'silent',
        PANEL_AGENT_PING_MS: '1000',
      }),
      { logger: pino({ level: 'silent' }) },
    );
    const login = await panel.app.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD },
    });
    headers = {
      cookie: String(login.headers['set-cookie']).split(';')[0] ?? '',
      'x-csrf-token': login.json().csrfToken,
    };
    const node = await api('POST', '/api/nodes', { name: 'image-node' });
    assert.equal(node.status, 201);
    nodeId = node.body.node.id;
    const agentData = path.join(dir, 'agent');
    execFileSync(
      'docker',
      [
        'run',
        '-d',
        '--name',
        name,
        '--label',
        'ctrl-alt-play.test=agent-image',
        '-v',
        '/var/run/docker.sock:/var/run/docker.sock',
        '-v',
        `${agentData}:${agentData}`,
        '-e',
        `PANEL_URL=${panel.url}`,
        '-e',
        `NODE_ID=${nodeId}`,
        '-e',
        `AGENT_SECRET=${node.body.agentSecret}`,
        '-e',
        `AGENT_DATA_DIR=${agentData}`,
        '-e',
        `AGENT_PANEL_CERT_SHA256=${new X509Certificate(readFileSync(cert)).fingerprint256}`,
        'ctrl-alt-play-agent',
      ],
      { stdio: 'pipe' },
    );
  });

  after(async () => {
    execFileSync('docker', ['rm', '-f', name], { stdio: 'ignore' });
    if (nodeId) await removeNodeContainers(nodeId);
    await panel?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the image carries the version; the Agent in it comes online', async () => {
    const out = execFileSync('docker', ['run', '--rm', 'ctrl-alt-play-agent', '--version'], {
      encoding: 'utf8',
    });
    assert.match(out, new RegExp(`^ctrl-alt-play-agent ${AGENT_VERSION.replaceAll('.', '\\.')} `));
    const labels = (await docker.getImage('ctrl-alt-play-agent:latest').inspect()).Config.Labels ?? {};
    assert.equal(labels['org.opencontainers.image.version'], AGENT_VERSION);
    await until('node online', async () =>
      (await api('GET', `/api/nodes/${nodeId}`)).body.online ? true : undefined,
    ).catch((e) => {
      throw new Error(
        `${(e as Error).message}\n${execFileSync('docker', ['logs', '--tail', '20', name], { encoding: 'utf8' })}`,
      );
    });
  });

  test('drives a busybox server: create, start, console, stop', async () => {
    const created = await api('POST', '/api/servers?wait=true', {
      name: 'image busybox',
      nodeId,
      image: IMAGE,
      startup: 'echo "hello from the image"; while read l; do echo "got:$l"; done',
      limits: { memory: '32m', cpu: '0.2' },
      stop: '^C',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    const status = async (want: string) =>
      (await api('GET', `/api/servers/${id}`)).body.status === want ? true : undefined;
    const consoleHas = async (text: string) =>
      ((await api('GET', `/api/servers/${id}/telemetry`)).body?.console ?? []).some((l: string) =>
        l.includes(text),
      )
        ? true
        : undefined;
    assert.equal((await api('POST', `/api/servers/${id}/power`, { action: 'start' })).status, 202);
    await until('running', () => status('running'));
    await until('console output', () => consoleHas('hello from the image'));
    assert.equal((await api('POST', `/api/servers/${id}/command`, { command: 'ping-image' })).status, 202);
    await until('command output', () => consoleHas('got:ping-image'));
    // the server's container was made by the Agent in the image, with its files from the shared path
    const [c] = await docker.listContainers({ filters: { label: [`ctrl-alt-play.server=${id}`] } });
    assert.ok(c, 'the server container');
    assert.ok(
      c.Mounts.some((m) => m.Source.startsWith(path.join(dir, 'agent'))),
      JSON.stringify(c.Mounts),
    );
    assert.equal((await api('POST', `/api/servers/${id}/power`, { action: 'stop' })).status, 202);
    await until('offline', () => status('offline'));
    const del = await api('DELETE', `/api/servers/${id}`);
    assert.ok(del.status === 204 || del.status === 200, `delete: ${del.status}`);
  });

  test('drives a real game server: OpenTTD from its template, installed, started, its port answering, stopped', {
    timeout: 300_000,
  }, async () => {
    await driveOpenTTD((m, p, b) => api(m as 'GET' | 'POST' | 'DELETE', p, b as object), nodeId, 'image');
  });
});
