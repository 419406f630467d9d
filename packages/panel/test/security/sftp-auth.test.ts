/**
 * SFTP logins asked of the Panel (issue 10 item 3): only an Agent's own token may ask, only for a
 * server on that Agent's node, wrong credentials all look alike, guessing is rate-limited per
 * user, and SSH keys and usernames are validated with coded errors.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { registerAgent } from '../fake-agent.ts';
import { ADMIN_PASSWORD, type Session, startTestPanel, type TestPanel } from '../helpers.ts';

describe('POST /api/agents/sftp/auth', () => {
  let panel: TestPanel;
  let owner: Session;
  let token: string;
  let otherToken: string;
  let username: string;
  let serverId: string;
  let keyDir: string;
  const ask = (body: unknown, bearer: string | undefined = token) =>
    fetch(`${panel.url}/api/agents/sftp/auth`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
      },
      body: JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: await r.json() }));

  before(async () => {
    panel = await startTestPanel({ PANEL_LOGIN_RATE_PER_MIN: '5' });
    owner = await panel.login();
    const node = await panel.createNode(owner, 'sftp-node');
    token = (await registerAgent(panel.url, node.agentSecret)).body.agent.token;
    const other = await panel.createNode(owner, 'sftp-other');
    otherToken = (await registerAgent(panel.url, other.agentSecret, 'other')).body.agent.token;
    username = (await panel.api(owner, 'GET', '/api/users')).body[0].username;
    // a server row on the node (no Agent answers here; the system test makes real ones)
    serverId = 'ssftp00001';
    const ownerId = (await panel.api(owner, 'GET', '/api/users')).body[0].id;
    const now = new Date().toISOString();
    await panel.app.panel.db
      .insertInto('servers')
      .values({
        id: serverId,
        name: 's',
        node_id: node.id,
        image: 'ctrl-alt-play/busybox:latest',
        startup: '',
        environment: '{}',
        ports: '[]',
        limits: '{}',
        done: null,
        stop: null,
        status: 'offline',
        desired_state: 'offline',
        last_update: null,
        created_at: now,
        updated_at: now,
        template_id: null,
        allocation_id: null,
        stop_timeout: null,
        owner_id: ownerId,
      })
      .execute();
    keyDir = mkdtempSync(join(tmpdir(), 'cap-sftp-keys-'));
  });
  after(async () => {
    await panel?.stop();
    if (keyDir) rmSync(keyDir, { recursive: true, force: true });
  });

  test('the right password answers the user and their permissions', async () => {
    const r = await ask({ username: `${username}.${serverId}`, ip: '10.0.0.1', password: ADMIN_PASSWORD });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.serverId, serverId);
    assert.ok(r.body.permissions.includes('file.sftp'));
  });

  test('no token, a user session, or another node: refused', async () => {
    const body = { username: `${username}.${serverId}`, ip: '10.0.0.2', password: ADMIN_PASSWORD };
    assert.equal((await ask(body, '')).status, 401);
    assert.equal((await ask(body, 'not-a-jwt')).status, 401);
    const other = await ask(body, otherToken);
    assert.equal(other.status, 401);
    assert.equal(other.body.error?.code ?? other.body.code, 'AUTH_FAILED');
  });

  test('bad input is a coded 400', async () => {
    for (const body of [
      { username: `${username}.${serverId}`, ip: '10.0.0.3' },
      { username: `${username}.${serverId}`, ip: '10.0.0.3', password: 'a', publicKey: 'b' },
      { username: 'x'.repeat(300), ip: '10.0.0.3', password: 'a' },
    ]) {
      const r = await ask(body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
    }
  });

  test('SSH keys: only real OpenSSH keys, a key answers the login, removal is per user', async () => {
    const bad = await panel.api(owner, 'POST', '/api/auth/ssh-keys', {
      name: 'k',
      publicKey: 'ssh-ed25519 !!!',
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error?.code ?? bad.body.code, 'VALIDATION_FAILED');
    // an RSA blob labelled ed25519
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(keyDir, 'k')]);
    const line = readFileSync(join(keyDir, 'k.pub'), 'utf8');
    const b64 = line.split(' ')[1] ?? '';
    const liar = await panel.api(owner, 'POST', '/api/auth/ssh-keys', {
      name: 'k',
      publicKey: `ssh-rsa ${b64}`,
    });
    assert.equal(liar.status, 400);
    const ok = await panel.api(owner, 'POST', '/api/auth/ssh-keys', { name: 'k', publicKey: line });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    assert.match(ok.body.fingerprint, /^SHA256:/);
    const dup = await panel.api(owner, 'POST', '/api/auth/ssh-keys', { name: 'k2', publicKey: line });
    assert.equal(dup.status, 409);
    const r = await ask({ username: `${username}.${serverId}`, ip: '10.0.0.4', publicKey: line.trim() });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const user = await panel.userWithRole('user');
    assert.equal((await panel.api(user, 'DELETE', `/api/auth/ssh-keys/${ok.body.id}`)).status, 404);
    assert.equal((await panel.api(owner, 'DELETE', `/api/auth/ssh-keys/${ok.body.id}`)).status, 204);
    const gone = await ask({ username: `${username}.${serverId}`, ip: '10.0.0.4', publicKey: line.trim() });
    assert.equal(gone.status, 401);
  });

  test('usernames: validated, unique', async () => {
    const user = await panel.userWithRole('user');
    for (const bad of ['Has Space', '', '.dot', 'x'.repeat(33), 'a/b', 'a\u0000b']) {
      const r = await panel.api(user, 'PUT', '/api/auth/username', { username: bad });
      assert.equal(r.status, 400, `${JSON.stringify(bad)}: ${JSON.stringify(r.body)}`);
    }
    assert.equal((await panel.api(user, 'PUT', '/api/auth/username', { username })).status, 409);
    const r = await panel.api(user, 'PUT', '/api/auth/username', { username: 'new-name_1.x' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.username, 'new-name_1.x');
  });

  test('a user without access to the server: PERMISSION_DENIED; guessing is rate-limited per user', async () => {
    const user = await panel.userWithRole('user');
    const name = (await panel.api(owner, 'GET', '/api/users')).body.find(
      (u: { email: string }) => u.email === user.email,
    ).username;
    const pw = user.email.replace(/^user(\d+)@.*/, 'user-password-$1');
    const denied = await ask({ username: `${name}.${serverId}`, ip: '10.0.1.1', password: pw });
    assert.equal(denied.status, 403, JSON.stringify(denied.body));
    // five a minute per user (PANEL_LOGIN_RATE_PER_MIN=5), whatever the address: a fresh user
    const victim = await panel.userWithRole('user');
    const vname = (await panel.api(owner, 'GET', '/api/users')).body.find(
      (u: { email: string }) => u.email === victim.email,
    ).username;
    const codes: number[] = [];
    for (let i = 0; i < 6; i++)
      codes.push(
        (await ask({ username: `${vname}.${serverId}`, ip: `10.0.2.${i}`, password: 'wrong' })).status,
      );
    assert.deepEqual(codes, [401, 401, 401, 401, 401, 429]);
    const vpw = victim.email.replace(/^user(\d+)@.*/, 'user-password-$1');
    const right = await ask({ username: `${vname}.${serverId}`, ip: '10.0.3.1', password: vpw });
    assert.equal(right.status, 429);
  });
});
