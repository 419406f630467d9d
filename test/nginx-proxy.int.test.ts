/**
 * The nginx reverse-proxy example in docs/deploy.md, as it is written there (read from the
 * document; only the ports, certificate paths and name are put in), run by Debian's nginx in
 * front of a real Panel on loopback: an Agent pinning nginx's certificate registers and links
 * over wss:// through it, and the API answers through it (verified against that certificate).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadAgentConfig, type RunningAgent, startAgent } from '@cap/agent';
import { loadPanelConfig, type RunningPanel, startPanel } from '@cap/panel';
import { pino } from 'pino';
import { ADMIN_EMAIL, ADMIN_PASSWORD, freePort } from '../packages/panel/test/helpers.ts';
import { selfSigned } from './tls.ts';

const root = path.resolve(import.meta.dirname, '..');
const hasNginx = existsSync('/usr/sbin/nginx');

describe('the nginx example of docs/deploy.md', {
  skip: !hasNginx && !process.env['CAP_REQUIRE_REAL'] ? 'nginx not installed' : false,
}, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cap-nginx-'));
  let nginx: ChildProcess | undefined;
  let panel: RunningPanel;
  let agent: RunningAgent | undefined;
  let proxyPort = 0;
  let sha256 = '';
  let nginxLog = () => '';

  before(async () => {
    const doc = readFileSync(path.join(root, 'docs/deploy.md'), 'utf8');
    const example = /```nginx\n([\s\S]*?)```/.exec(doc)?.[1];
    assert.ok(example, 'docs/deploy.md has an nginx example');
    const tls = selfSigned(dir, {
      cn: 'localhost',
      subjectAltName: 'DNS:localhost',
      certFile: 'fullchain.pem',
      keyFile: 'privkey.pem',
    });
    const { cert, key } = tls;
    sha256 = tls.sha256;
    const panelPort = await freePort();
    proxyPort = await freePort();
    // the example, with this test's ports, certificate and name
    const server = example
      .replace('listen 443 ssl;', `listen 127.0.0.1:${proxyPort} ssl;`)
      .replace('server_name panel.example;', 'server_name localhost;')
      .replace('/etc/ssl/panel.example/fullchain.pem', cert)
      .replace('/etc/ssl/panel.example/privkey.pem', key)
      .replace('proxy_pass http://127.0.0.1:8080;', `proxy_pass http://127.0.0.1:${panelPort};`);
    assert.notEqual(server, example);
    for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(path.join(dir, d));
    writeFileSync(
      path.join(dir, 'nginx.conf'),
      [
        'daemon off;',
        'worker_processes 1;',
        `pid ${dir}/nginx.pid;`,
        `error_log ${dir}/error.log warn;`,
        'events { worker_connections 64; }',
        'http {',
        `  access_log ${dir}/access.log;`,
        ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((d) => `  ${d}_temp_path ${dir}/${d};`),
        server,
        '}',
        '',
      ].join('\n'),
    );
    execFileSync('nginx', ['-t', '-q', '-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'pipe' });
    nginx = spawn('nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'ignore' });
    nginxLog = () =>
      existsSync(path.join(dir, 'error.log')) ? readFileSync(path.join(dir, 'error.log'), 'utf8') : '';
    panel = await startPanel(
      loadPanelConfig({
        DATA_DIR: path.join(dir, 'panel'),
        HOST: '127.0.0.1',
        PORT: String(panelPort),
        PANEL_URL: `https://localhost:${proxyPort}`,
        PANEL_TRUST_PROXY: '127.0.0.1',
        ADMIN_EMAIL,
        ADMIN_PASSWORD,
        LOG_LEVEL: 'silent',
        PANEL_AGENT_PING_MS: '1000',
      }),
      { logger: pino({ level: 'silent' }) },
    );
  });

  after(async () => {
    await agent?.stop();
    await panel?.stop();
    if (nginx && nginx.exitCode === null) {
      const exited = new Promise((r) => nginx?.once('exit', r));
      nginx.kill('SIGQUIT');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test('an Agent pinning the proxy certificate links over wss:// through nginx', async () => {
    const login = await panel.app.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD },
    });
    const headers = {
      cookie: String(login.headers['set-cookie']).split(';')[0] ?? '',
      'x-csrf-token': login.json().csrfToken,
    };
    const node = await panel.app.inject({
      method: 'POST',
      url: '/api/nodes',
      headers,
      payload: { name: 'behind-nginx' },
    });
    assert.equal(node.statusCode, 201);
    const { id } = node.json().node;
    agent = await startAgent(
      loadAgentConfig({
        PANEL_URL: `https://localhost:${proxyPort}`,
        AGENT_PANEL_CERT_SHA256: sha256,
        NODE_ID: id,
        AGENT_SECRET: node.json().agentSecret,
        AGENT_DATA_DIR: path.join(dir, 'agent'),
        AGENT_HTTP_PORT: '0',
        AGENT_FIREWALL: 'false',
        LOG_LEVEL: 'silent',
      }),
      { logger: pino({ level: 'silent' }) },
    );
    const t0 = Date.now();
    for (;;) {
      const n = await panel.app.inject({ method: 'GET', url: `/api/nodes/${id}`, headers });
      // both ends agree: the Panel lists it online and the Agent's link is up (the Panel can
      // mark it online an instant before a reconnecting Agent's link is ready again)
      if (n.json().online && agent.panelConnected) break;
      if (Date.now() - t0 > 20_000) assert.fail(`never online; nginx: ${nginxLog()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(agent.panelConnected, true);
    // the link stays up past nginx's proxy timeouts for a quiet socket (pings keep it busy)
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(agent.panelConnected, true);
    // nginx logs an upgraded connection when it ends
    await agent.stop();
    agent = undefined;
    await new Promise((r) => setTimeout(r, 300));
    const access = readFileSync(path.join(dir, 'access.log'), 'utf8');
    assert.match(access, /"GET \/ws\/agents HTTP\/1\.1" 101 /, 'the socket went through nginx');
    assert.match(access, /"POST \/api\/agents\/register HTTP\/1\.1" 200 /);
  });

  test('the web UI and the API answer through nginx', async () => {
    const get = (p: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = https.request(
          {
            host: '127.0.0.1',
            port: proxyPort,
            path: p,
            servername: 'localhost',
            ca: readFileSync(path.join(dir, 'fullchain.pem')),
          },
          (r) => {
            let body = '';
            r.on('data', (d) => (body += d));
            r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
          },
        );
        req.once('error', reject);
        req.end();
      });
    const health = await get('/api/health');
    assert.equal(health.status, 200, health.body);
    const spec = await get('/api/openapi.json');
    assert.equal(spec.status, 200);
    assert.equal(JSON.parse(spec.body).openapi, '3.0.3');
  });
});
