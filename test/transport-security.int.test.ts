/**
 * Attack class: the Agent↔Panel transport (eavesdropping, a man in the middle, a downgrade).
 * A real Panel serving HTTPS with a self-signed certificate made by openssl here, and real
 * Agents: the pinned one links over wss://; a wrong pin, no pin (the CA check) and a stand-in
 * Panel with another certificate are refused before a byte of a request (the Agent secret) is
 * sent; plain ws:// or http:// to a Panel off loopback is refused, at start and when the Panel
 * names such a socket URL, unless AGENT_ALLOW_INSECURE=1.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { loadAgentConfig, type RunningAgent, startAgent } from '@cap/agent';
import { loadPanelConfig, type RunningPanel, startPanel } from '@cap/panel';
import { isCodedError } from '@cap/protocol';
import { type Logger, pino } from 'pino';
import { ADMIN_EMAIL, ADMIN_PASSWORD, freePort } from '../packages/panel/test/helpers.ts';
import { selfSigned } from './tls.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'cap-tls-'));

/** A self-signed certificate for localhost/127.0.0.1. */
const selfSignedFor = (name: string) =>
  selfSigned(dir, { cn: name, subjectAltName: 'DNS:localhost,IP:127.0.0.1' });

/** An Agent's log lines, kept (JSON). */
function capture(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Agent ↔ Panel over TLS with a pinned certificate', () => {
  const panelCert = selfSignedFor('panel');
  const otherCert = selfSignedFor('impostor');
  let panel: RunningPanel;
  let port = 0;
  let cookie = '';
  let csrf = '';
  const agents: RunningAgent[] = [];
  const agentDirs: string[] = [];

  const api = async (method: 'GET' | 'POST', url: string, payload?: unknown) => {
    const res = await panel.app.inject({
      method,
      url,
      headers: { cookie, 'x-csrf-token': csrf },
      ...(payload === undefined ? {} : { payload: payload as object }),
    });
    return { status: res.statusCode, body: res.json() };
  };
  const newNode = async (name: string) => {
    const r = await api('POST', '/api/nodes', { name });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return { id: r.body.node.id as string, secret: r.body.agentSecret as string };
  };
  const online = async (id: string) => (await api('GET', `/api/nodes/${id}`)).body.online === true;
  const agentWith = async (env: Record<string, string>, node: { id: string; secret: string }) => {
    const d = mkdtempSync(path.join(dir, 'agent-'));
    agentDirs.push(d);
    const log = capture();
    const agent = await startAgent(
      loadAgentConfig({
        NODE_ID: node.id,
        AGENT_SECRET: node.secret,
        AGENT_DATA_DIR: d,
        AGENT_HTTP_PORT: '0',
        AGENT_FIREWALL: 'false',
        ...env,
      }),
      { logger: log.logger },
    );
    agents.push(agent);
    return { agent, lines: log.lines };
  };

  before(async () => {
    port = await freePort();
    panel = await startPanel(
      loadPanelConfig({
        DATA_DIR: path.join(dir, 'panel'),
        PORT: String(port),
        HOST: '127.0.0.1',
        PANEL_URL: `https://127.0.0.1:${port}`,
        PANEL_TLS_CERT: panelCert.cert,
        PANEL_TLS_KEY: panelCert.key,
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
    assert.equal(login.statusCode, 200);
    cookie = String(login.headers['set-cookie']).split(';')[0] ?? '';
    csrf = login.json().csrfToken;
  });

  after(async () => {
    for (const a of agents) await a.stop();
    await panel?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the Panel serves HTTPS with PANEL_TLS_CERT/PANEL_TLS_KEY (and not plain HTTP)', async () => {
    assert.match(panel.url, /^https:\/\//);
    const got = await new Promise<string | undefined>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
        resolve(s.getPeerCertificate().fingerprint256);
        s.end();
      });
      s.once('error', reject);
    });
    assert.equal(got, panelCert.sha256);
    await assert.rejects(fetch(`http://127.0.0.1:${port}/api/health`));
  });

  test('with the right pin the Agent registers and links over wss://', async () => {
    const node = await newNode('pinned');
    const { agent, lines } = await agentWith(
      {
        PANEL_URL: `https://127.0.0.1:${port}`,
        AGENT_PANEL_CERT_SHA256: panelCert.sha256.replaceAll(':', '').toLowerCase(),
      },
      node,
    );
    const t0 = Date.now();
    while (!(await online(node.id))) {
      if (Date.now() - t0 > 15_000) assert.fail(`never online: ${JSON.stringify(lines.slice(-5))}`);
      await sleep(100);
    }
    assert.equal(agent.panelConnected, true);
    const connected = lines.find((l) => l['msg'] === 'connected to the panel');
    assert.match(String(connected?.['url']), /^wss:\/\/127\.0\.0\.1:\d+\/ws\/agents$/);
  });

  test("an SFTP login is checked with the Panel through the same pin (a self-signed Panel's answer)", async () => {
    const node = await newNode('pinned-sftp');
    const sftpPort = await freePort();
    const { lines } = await agentWith(
      {
        PANEL_URL: `https://127.0.0.1:${port}`,
        AGENT_PANEL_CERT_SHA256: panelCert.sha256,
        AGENT_SFTP_PORT: String(sftpPort),
        AGENT_SFTP_HOST: '127.0.0.1',
      },
      node,
    );
    const t0 = Date.now();
    while (!(await online(node.id)) || !lines.some((l) => l['msg'] === 'sftp listening')) {
      if (Date.now() - t0 > 15_000) assert.fail(`never online: ${JSON.stringify(lines.slice(-5))}`);
      await sleep(100);
    }
    const { default: ssh2 } = await import('ssh2');
    const refused = await new Promise<string>((resolve, reject) => {
      const c = new ssh2.Client();
      c.on('ready', () => {
        c.end();
        reject(new Error('logged in with a made-up password'));
      });
      c.on('error', (e) => resolve(e.message));
      c.connect({
        host: '127.0.0.1',
        port: sftpPort,
        username: 'nobody.x',
        password: 'nope',
        readyTimeout: 10_000,
      });
    });
    assert.match(refused, /authentication methods failed/i);
    // refused by the Panel's answer, not for want of one: the check reached it over the pinned TLS
    const unreachable = lines.filter((l) => l['msg'] === 'sftp auth: panel unreachable');
    assert.deepEqual(unreachable, [], 'the SFTP login check did not reach the Panel');
  });

  test('a wrong pin, or no pin against a self-signed certificate, is refused: never online', async () => {
    const wrong = await newNode('wrong-pin');
    const w = await agentWith(
      { PANEL_URL: `https://127.0.0.1:${port}`, AGENT_PANEL_CERT_SHA256: otherCert.sha256 },
      wrong,
    );
    const unpinned = await newNode('no-pin');
    const u = await agentWith({ PANEL_URL: `https://127.0.0.1:${port}` }, unpinned);
    await sleep(3000);
    assert.equal(await online(wrong.id), false);
    assert.equal(await online(unpinned.id), false);
    assert.equal(w.agent.panelConnected, false);
    const refused = w.lines.find((l) => l['code'] === 'TLS_PIN_MISMATCH');
    assert.ok(refused, JSON.stringify(w.lines.slice(-3)));
    assert.match(String(refused['error']), /not the pinned one/);
    assert.ok(
      u.lines.some((l) => /self[- ]signed|unable to verify/i.test(String(l['error']))),
      JSON.stringify(u.lines.slice(-3)),
    );
  });

  test('a stand-in Panel with another certificate receives no byte of the request', async () => {
    const received: Buffer[] = [];
    let connections = 0;
    const impostor = tls.createServer(
      { cert: readFileSync(otherCert.cert), key: readFileSync(otherCert.key) },
      (s) => {
        s.on('data', (d: Buffer) => received.push(d));
        s.on('error', () => undefined);
      },
    );
    impostor.on('connection', () => connections++);
    impostor.on('tlsClientError', () => undefined);
    await new Promise<void>((r) => impostor.listen(0, '127.0.0.1', () => r()));
    const addr = impostor.address();
    assert.ok(addr && typeof addr === 'object');
    try {
      const { lines } = await agentWith(
        { PANEL_URL: `https://127.0.0.1:${addr.port}`, AGENT_PANEL_CERT_SHA256: panelCert.sha256 },
        { id: 'impostor-node', secret: 'the-agent-secret-value' },
      );
      const t0 = Date.now();
      while (connections === 0 || !lines.some((l) => l['code'] === 'TLS_PIN_MISMATCH')) {
        if (Date.now() - t0 > 10_000)
          assert.fail(`no connection/refusal: ${JSON.stringify(lines.slice(-3))}`);
        await sleep(50);
      }
      await sleep(300);
      assert.equal(Buffer.concat(received).length, 0, Buffer.concat(received).toString());
    } finally {
      impostor.close();
    }
  });

  test('the Panel naming a plain ws:// socket off loopback is refused (no downgrade)', async () => {
    // a second Panel on the same database files is not needed: this one's public URL is what
    // it names, so a Panel configured with PANEL_URL=http://panel.invalid is started for it
    const p2port = await freePort();
    const p2 = await startPanel(
      loadPanelConfig({
        DATA_DIR: path.join(dir, 'panel2'),
        PORT: String(p2port),
        HOST: '127.0.0.1',
        PANEL_URL: `http://panel.invalid:${p2port}`,
        PANEL_TLS_CERT: panelCert.cert,
        PANEL_TLS_KEY: panelCert.key,
        ADMIN_EMAIL,
        ADMIN_PASSWORD,
        LOG_LEVEL: 'silent',
      }),
      { logger: pino({ level: 'silent' }) },
    );
    try {
      const login = await p2.app.inject({
        method: 'POST',
        url: '/api/auth/login',
        payload: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD },
      });
      const node = await p2.app.inject({
        method: 'POST',
        url: '/api/nodes',
        headers: {
          cookie: String(login.headers['set-cookie']).split(';')[0] ?? '',
          'x-csrf-token': login.json().csrfToken,
        },
        payload: { name: 'downgrade' },
      });
      assert.equal(node.statusCode, 201);
      const { lines } = await agentWith(
        { PANEL_URL: `https://127.0.0.1:${p2port}`, AGENT_PANEL_CERT_SHA256: panelCert.sha256 },
        { id: node.json().node.id, secret: node.json().agentSecret },
      );
      const t0 = Date.now();
      while (!lines.some((l) => l['code'] === 'CONFIG_INVALID')) {
        if (Date.now() - t0 > 10_000) assert.fail(JSON.stringify(lines.slice(-3)));
        await sleep(50);
      }
      const refusal = lines.find((l) => l['code'] === 'CONFIG_INVALID');
      assert.match(String(refusal?.['error']), /refusing the unencrypted ws:\/\/panel\.invalid/);
      assert.ok(
        lines.some((l) => l['msg'] === 'registered with the panel'),
        'registration went over https',
      );
      assert.ok(!lines.some((l) => l['msg'] === 'connected to the panel'));
    } finally {
      await p2.stop();
    }
  });
});

describe('plain ws:// or http:// to a Panel off loopback', () => {
  const base = { NODE_ID: 'n1', AGENT_SECRET: 'secret-secret' };
  const refused = (env: Record<string, string>) => {
    try {
      loadAgentConfig({ ...base, ...env });
    } catch (e) {
      assert.ok(isCodedError(e));
      return e;
    }
    return null;
  };

  test('is refused with CONFIG_INVALID naming PANEL_URL and the way out', () => {
    for (const url of [
      'http://panel.example:8080',
      'ws://10.0.0.5:8080',
      'http://[2001:db8::1]:8080',
      'ws://127.example',
    ]) {
      const e = refused({ PANEL_URL: url });
      assert.ok(e, url);
      assert.equal(e.code, 'CONFIG_INVALID');
      assert.equal(e.location, 'PANEL_URL');
      assert.match(e.message, /not encrypted.*AGENT_ALLOW_INSECURE=1/);
    }
  });

  test('is allowed with AGENT_ALLOW_INSECURE=1, and to loopback; TLS always', () => {
    assert.equal(refused({ PANEL_URL: 'http://panel.example:8080', AGENT_ALLOW_INSECURE: '1' }), null);
    for (const url of [
      'http://127.0.0.1:8080',
      'ws://localhost:8080',
      'http://[::1]:8080',
      'http://127.1.2.3',
      'https://panel.example',
      'wss://10.0.0.5',
    ]) {
      assert.equal(refused({ PANEL_URL: url }), null, url);
    }
  });

  test('a pin needs TLS, and must be a SHA-256 fingerprint', () => {
    const pin = 'AB:'.repeat(31) + 'AB';
    assert.equal(
      refused({ PANEL_URL: 'http://127.0.0.1:8080', AGENT_PANEL_CERT_SHA256: pin })?.code,
      'CONFIG_INVALID',
    );
    assert.equal(
      refused({ PANEL_URL: 'https://p.example', AGENT_PANEL_CERT_SHA256: 'abc' })?.code,
      'CONFIG_INVALID',
    );
    assert.equal(
      loadAgentConfig({ ...base, PANEL_URL: 'https://p.example', AGENT_PANEL_CERT_SHA256: 'ab'.repeat(32) })
        .panelCertSha256,
      pin,
    );
  });
});
