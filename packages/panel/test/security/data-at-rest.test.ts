/**
 * Data at rest (issue 8 item 15): the Panel's data dir is 0700, its SQLite file and WAL/SHM 0600,
 * and the Agent JWT signing key lives in a 0600 key file, not in the database: the settings table
 * holds nothing that verifies an Agent token. An install from before is repaired at start, and a
 * token forged with its old plain-text key is refused.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { jwtVerify, SignJWT } from 'jose';
import { pino } from 'pino';
import type WebSocket from 'ws';
import { startPanel } from '../../src/app.ts';
import { loadPanelConfig } from '../../src/config/index.ts';
import { connectAgentSocket, registerAgent } from '../fake-agent.ts';
import { ADMIN_EMAIL, ADMIN_PASSWORD, freePort } from '../helpers.ts';

const mode = (p: string) => statSync(p).mode & 0o777;
const upgrade = (ws: WebSocket) =>
  new Promise<number>((resolve) => {
    ws.once('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0));
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('error', () => undefined);
  });

async function panelOn(dataDir: string) {
  const port = await freePort();
  return startPanel(
    loadPanelConfig({
      DATA_DIR: dataDir,
      PORT: String(port),
      HOST: '127.0.0.1',
      PANEL_URL: `http://127.0.0.1:${port}`,
      ADMIN_EMAIL,
      ADMIN_PASSWORD,
      LOG_LEVEL: 'silent',
    }),
    { logger: pino({ level: 'silent' }) },
  );
}

async function ownerHeaders(url: string): Promise<Record<string, string>> {
  const r = await fetch(`${url}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }),
  });
  const cookie = (r.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  const { csrfToken } = (await r.json()) as { csrfToken: string };
  return { cookie, 'x-csrf-token': csrfToken, 'content-type': 'application/json' };
}

async function newNode(url: string): Promise<{ id: string; agentSecret: string }> {
  const r = await fetch(`${url}/api/nodes`, {
    method: 'POST',
    headers: await ownerHeaders(url),
    body: JSON.stringify({ name: `n-${Math.random().toString(36).slice(2, 8)}` }),
  });
  const b = (await r.json()) as { node: { id: string }; agentSecret: string };
  return { id: b.node.id, agentSecret: b.agentSecret };
}

describe('the Panel keeps its data and keys private', () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('data dir 0700, database files 0600, signing key in a 0600 file and not in settings', async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), 'cap-rest-')), 'data');
    dirs.push(join(dataDir, '..'));
    const panel = await panelOn(dataDir);
    try {
      const node = await newNode(panel.url);
      const creds = (await registerAgent(panel.url, node.agentSecret)).body.agent;
      assert.equal(mode(dataDir), 0o700);
      for (const f of ['panel.sqlite', 'panel.sqlite-wal', 'panel.sqlite-shm']) {
        assert.ok(existsSync(join(dataDir, f)), f);
        assert.equal(mode(join(dataDir, f)).toString(8), '600', f);
      }
      assert.equal(mode(join(dataDir, 'keys')).toString(8), '700');
      assert.equal(mode(join(dataDir, 'keys', 'agent-jwt.key')).toString(8), '600');
      // nothing in the settings table verifies the genuine token
      const rows = await panel.app.panel.db.selectFrom('settings').selectAll().execute();
      for (const row of rows) {
        for (const key of [Buffer.from(row.value, 'base64url'), Buffer.from(row.value, 'utf8')]) {
          if (key.length === 0) continue;
          await assert.rejects(jwtVerify(creds.token, key), `settings ${row.key} verifies an Agent token`);
        }
      }
    } finally {
      await panel.stop();
    }
  });

  test('an older install is repaired at start and its leaked plain-text key stops working', async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), 'cap-rest-old-')), 'data');
    dirs.push(join(dataDir, '..'));
    let panel = await panelOn(dataDir);
    const node = await newNode(panel.url);
    const creds = (await registerAgent(panel.url, node.agentSecret)).body.agent;
    // as an install from before: a plain key in settings, world-readable files
    const leaked = Buffer.alloc(32, 9);
    await panel.app.panel.db
      .insertInto('settings')
      .values({ key: 'agent_jwt_key', value: leaked.toString('base64url') })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value: leaked.toString('base64url') }))
      .execute();
    await panel.stop();
    rmSync(join(dataDir, 'keys'), { recursive: true, force: true });
    chmodSync(dataDir, 0o755);
    for (const f of ['panel.sqlite', 'panel.sqlite-wal', 'panel.sqlite-shm'])
      if (existsSync(join(dataDir, f))) chmodSync(join(dataDir, f), 0o644);

    panel = await panelOn(dataDir);
    try {
      assert.equal(mode(dataDir).toString(8), '700');
      for (const f of ['panel.sqlite', 'panel.sqlite-wal', 'panel.sqlite-shm'])
        if (existsSync(join(dataDir, f))) assert.equal(mode(join(dataDir, f)).toString(8), '600', f);
      const plain = await panel.app.panel.db
        .selectFrom('settings')
        .select('value')
        .where('key', '=', 'agent_jwt_key')
        .executeTakeFirst();
      assert.equal(plain, undefined, 'the plain-text key is gone from settings');
      const forged = await new SignJWT({ tv: 1 })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(node.id)
        .setIssuer('ctrl-alt-play-panel')
        .setAudience('ctrl-alt-play-agent')
        .setIssuedAt()
        .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
        .sign(leaked);
      const wsUrl = `${panel.url.replace(/^http/, 'ws')}/ws/agents`;
      assert.equal(await upgrade(connectAgentSocket(wsUrl, forged, node.id)), 401, 'forged with the old key');
      // the Agent's refresh token still gets it a token under the new key
      const r = await fetch(`${panel.url}/api/agents/refresh`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-agent-id': node.id },
        body: JSON.stringify({ refreshToken: creds.refreshToken }),
      });
      assert.equal(r.status, 200);
      const fresh = ((await r.json()) as { agent: { token: string } }).agent.token;
      assert.equal(await upgrade(connectAgentSocket(wsUrl, fresh, node.id)), 101);
    } finally {
      await panel.stop();
    }
  });

  test('a registry password is sealed in the database (key file 0600) and never answered', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cap-rest-registry-'));
    dirs.push(dir);
    const panel = await panelOn(dir);
    try {
      const secret = `registry-secret-${process.pid}-${Date.now()}`;
      const headers = await ownerHeaders(panel.url);
      const r = await fetch(`${panel.url}/api/registries`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ name: 'ghcr', host: 'ghcr.io', username: 'me', password: secret }),
      });
      assert.equal(r.status, 201);
      const created = await r.text();
      assert.ok(!created.includes(secret), 'not in the answer');
      assert.equal((JSON.parse(created) as { hasPassword: boolean }).hasPassword, true);
      const list = await (await fetch(`${panel.url}/api/registries`, { headers })).text();
      assert.ok(!list.includes(secret), 'not in the list');
      assert.equal(mode(join(dir, 'keys', 'registries.key')), 0o600);
      const row = await panel.app.panel.db.selectFrom('registries').selectAll().executeTakeFirstOrThrow();
      assert.ok(row.password_sealed?.startsWith('v1.') && !row.password_sealed.includes(secret));
      for (const f of ['panel.sqlite', 'panel.sqlite-wal']) {
        const file = join(dir, f);
        if (existsSync(file)) assert.ok(!readFileSync(file).includes(secret), `not in ${f}`);
      }
    } finally {
      await panel.stop();
    }
  });
});
