/**
 * Token confusion (Wings "JWT scope confusion" class): user credentials never open the Agent
 * socket, Agent credentials never call user routes, and a JWT must be the Panel's own, unexpired,
 * for this audience and for the node it claims.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import type WebSocket from 'ws';
import { connectAgentSocket, registerAgent } from '../fake-agent.ts';
import { ADMIN_PASSWORD, type Session, startTestPanel, type TestPanel } from '../helpers.ts';

const upgrade = (ws: WebSocket) =>
  new Promise<number>((resolve) => {
    ws.once('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0));
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('error', () => undefined);
  });

describe('agent and user credentials do not mix', () => {
  let panel: TestPanel;
  let owner: Session;
  let apiKey: string;
  let node: { id: string; agentSecret: string };
  let other: { id: string; agentSecret: string };
  let creds: { token: string; refreshToken: string; websocketUrl: string };
  let key: Uint8Array;
  const sign = (claims: { sub?: string; aud?: string; iss?: string; exp?: number; tv?: number }, k = key) => {
    // tv: the node's token generation (1 after its first registration)
    let j = new SignJWT({ tv: claims.tv ?? 1 }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
    if (claims.sub) j = j.setSubject(claims.sub);
    j = j.setIssuer(claims.iss ?? 'ctrl-alt-play-panel').setAudience(claims.aud ?? 'ctrl-alt-play-agent');
    return j.setExpirationTime(claims.exp ?? Math.floor(Date.now() / 1000) + 600).sign(k);
  };

  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
    apiKey = (await panel.api(owner, 'POST', '/api/api-keys', { name: 'k', currentPassword: ADMIN_PASSWORD }))
      .body.key;
    node = await panel.createNode(owner);
    other = await panel.createNode(owner);
    creds = (await registerAgent(panel.url, node.agentSecret)).body.agent;
    // the Panel's own signing key, from its key file (DATA_DIR/keys, 0600)
    key = Buffer.from(readFileSync(join(panel.dataDir, 'keys', 'agent-jwt.key'), 'utf8').trim(), 'base64url');
  });
  after(() => panel.stop());

  test('the genuine token opens /ws/agents (so the refusals below are about the credential)', async () => {
    assert.equal(await upgrade(connectAgentSocket(creds.websocketUrl, creds.token, node.id)), 101);
    assert.equal(
      await upgrade(connectAgentSocket(creds.websocketUrl, await sign({ sub: node.id }), node.id)),
      101,
    );
  });

  test('a session, an API key, the AGENT_SECRET or a refresh token cannot open /ws/agents', async () => {
    const url = creds.websocketUrl;
    for (const bearer of [apiKey, node.agentSecret, creds.refreshToken, owner.cookie.split('=')[1] ?? '']) {
      assert.equal(await upgrade(connectAgentSocket(url, bearer, node.id)), 401, bearer.slice(0, 8));
    }
  });

  test('forged, foreign, expired, wrong-audience and other-node JWTs are refused', async () => {
    const url = creds.websocketUrl;
    const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(
      JSON.stringify({ sub: node.id, iss: 'ctrl-alt-play-panel', aud: 'ctrl-alt-play-agent' }),
    ).toString('base64url')}.`;
    const cases: [string, string, string][] = [
      ['alg none', none, node.id],
      ['another key', await sign({ sub: node.id }, new Uint8Array(32).fill(7)), node.id],
      ['expired', await sign({ sub: node.id, exp: Math.floor(Date.now() / 1000) - 60 }), node.id],
      ['wrong audience', await sign({ sub: node.id, aud: 'ctrl-alt-play-client' }), node.id],
      ['wrong issuer', await sign({ sub: node.id, iss: 'someone-else' }), node.id],
      ['no subject', await sign({}), node.id],
      ['an older token generation', await sign({ sub: node.id, tv: 0 }), node.id],
      ['node A token as node B', creds.token, other.id],
      ['a node that does not exist', await sign({ sub: 'n_gone' }), 'n_gone'],
    ];
    for (const [what, token, agentId] of cases) {
      assert.equal(await upgrade(connectAgentSocket(url, token, agentId)), 401, what);
    }
  });

  test('register checks the secret before the body: 401 AUTH_FAILED whatever the body', async () => {
    const bodies: [string, string][] = [
      ['a valid body', JSON.stringify({ name: 'x', hostname: 'h', port: 0, capabilities: {} })],
      ['an empty object', '{}'],
      ['a wrong type', JSON.stringify({ name: 42, port: 'no' })],
      ['malformed JSON', '{"name":'],
    ];
    for (const bearer of [undefined, 'not-the-secret', other.agentSecret.slice(0, -2)]) {
      for (const [what, body] of bodies) {
        const r = await fetch(`${panel.url}/api/agents/register`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }),
          },
          body,
        });
        const json = (await r.json()) as { code: string; message: string; details?: unknown };
        assert.equal(r.status, 401, `${what} with ${bearer ?? 'no secret'}`);
        assert.equal(json.code, 'AUTH_FAILED');
        assert.equal(json.details, undefined);
        assert.doesNotMatch(json.message, /body|capabilities|hostname/);
      }
    }
    // with the right secret a bad body is still refused as a bad body
    const bad = await fetch(`${panel.url}/api/agents/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${other.agentSecret}` },
      body: '{}',
    });
    assert.equal(bad.status, 400);
  });

  test("re-registration revokes the node's earlier JWTs and refresh tokens", async () => {
    const n = await panel.createNode(owner);
    const first = (await registerAgent(panel.url, n.agentSecret)).body.agent;
    // the first token works until the node registers again
    assert.equal(await upgrade(connectAgentSocket(first.websocketUrl, first.token, n.id)), 101);
    const rotated = await fetch(`${panel.url}/api/agents/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-agent-id': n.id },
      body: JSON.stringify({ refreshToken: first.refreshToken }),
    });
    assert.equal(rotated.status, 200);
    const firstRotated = ((await rotated.json()) as { agent: typeof first }).agent;
    const second = (await registerAgent(panel.url, n.agentSecret)).body.agent;
    for (const [what, token] of [
      ['the first token', first.token],
      ['the token from the first refresh', firstRotated.token],
    ] as const) {
      assert.equal(await upgrade(connectAgentSocket(first.websocketUrl, token, n.id)), 401, what);
    }
    const stale = await fetch(`${panel.url}/api/agents/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-agent-id': n.id },
      body: JSON.stringify({ refreshToken: firstRotated.refreshToken }),
    });
    assert.equal(stale.status, 401);
    assert.equal(((await stale.json()) as { code: string }).code, 'AUTH_FAILED');
    // the new registration's credentials work, and so does what its refresh gives
    assert.equal(await upgrade(connectAgentSocket(second.websocketUrl, second.token, n.id)), 101);
    const fresh = await fetch(`${panel.url}/api/agents/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-agent-id': n.id },
      body: JSON.stringify({ refreshToken: second.refreshToken }),
    });
    assert.equal(fresh.status, 200);
    const third = ((await fresh.json()) as { agent: typeof first }).agent;
    assert.equal(await upgrade(connectAgentSocket(third.websocketUrl, third.token, n.id)), 101);
  });

  test("a deleted node's token stops working", async () => {
    const gone = await panel.createNode(owner);
    const c = (await registerAgent(panel.url, gone.agentSecret)).body.agent;
    assert.equal((await panel.api(owner, 'DELETE', `/api/nodes/${gone.id}`)).status, 204);
    assert.equal(await upgrade(connectAgentSocket(c.websocketUrl, c.token, gone.id)), 401);
  });

  test('Agent credentials get 401 on user routes and /ws/client', async () => {
    for (const bearer of [creds.token, node.agentSecret, creds.refreshToken]) {
      for (const [method, path] of [
        ['GET', '/api/servers'],
        ['GET', '/api/nodes'],
        ['POST', '/api/nodes'],
        ['GET', '/api/auth/me'],
        ['GET', '/api/users'],
      ] as const) {
        const r = await fetch(`${panel.url}${path}`, {
          method,
          headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
          ...(method === 'POST' ? { body: JSON.stringify({ name: 'via-agent' }) } : {}),
        });
        assert.equal(r.status, 401, `${method} ${path} with ${bearer.slice(0, 4)}…`);
        assert.equal(((await r.json()) as { code: string }).code, 'UNAUTHENTICATED');
      }
      const { default: WS } = await import('ws');
      const ws = new WS(`${panel.url.replace('http', 'ws')}/ws/client`, {
        headers: { authorization: `Bearer ${bearer}` },
      });
      assert.equal(await upgrade(ws), 401);
    }
    const nodes = (await panel.api(owner, 'GET', '/api/nodes')).body as { name: string }[];
    assert.equal(
      nodes.some((n) => n.name === 'via-agent'),
      false,
    );
  });
});
