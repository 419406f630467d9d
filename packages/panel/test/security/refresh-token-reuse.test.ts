/**
 * Agent refresh tokens: single use even under parallel replay, a replay revokes the family,
 * bound to their node, and re-registering revokes the old ones.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type InjectPanel, type InjectSession, injectPanel } from '../helpers.ts';

const REGISTER = {
  name: 'n',
  hostname: 'h',
  port: 1,
  capabilities: {
    maxMemory: '1g',
    maxCpuCores: 1,
    dockerVersion: '20.10',
    supportedArchitectures: ['amd64'],
  },
};

describe('refresh-token reuse', () => {
  let p: InjectPanel;
  let owner: InjectSession;
  const node = async () => {
    const r = await p.app.inject({
      method: 'POST',
      url: '/api/nodes',
      headers: owner.headers,
      payload: { name: `n-${Math.random().toString(36).slice(2, 8)}` },
    });
    return { id: r.json().node.id as string, secret: r.json().agentSecret as string };
  };
  const register = async (secret: string) => {
    const r = await p.app.inject({
      method: 'POST',
      url: '/api/agents/register',
      headers: { authorization: `Bearer ${secret}` },
      payload: REGISTER,
    });
    assert.equal(r.statusCode, 200, r.body);
    return r.json().agent.refreshToken as string;
  };
  const refresh = (agentId: string, refreshToken: string) =>
    p.app.inject({
      method: 'POST',
      url: '/api/agents/refresh',
      headers: { 'x-agent-id': agentId },
      payload: { refreshToken },
    });

  before(async () => {
    p = await injectPanel();
    owner = await p.login();
  });
  after(() => p.stop());

  test('the same token sent 8 times at once is honoured once', async () => {
    const n = await node();
    const token = await register(n.secret);
    const rs = await Promise.all(Array.from({ length: 8 }, () => refresh(n.id, token)));
    const ok = rs.filter((r) => r.statusCode === 200);
    assert.equal(ok.length, 1, rs.map((r) => r.statusCode).join(','));
    for (const r of rs.filter((x) => x.statusCode !== 200)) assert.equal(r.json().code, 'AUTH_FAILED');
  });

  test('a replay after rotation revokes the newer token too', async () => {
    const n = await node();
    const t0 = await register(n.secret);
    const r1 = await refresh(n.id, t0);
    assert.equal(r1.statusCode, 200);
    const t1 = r1.json().agent.refreshToken as string;
    assert.notEqual(t1, t0);
    assert.equal((await refresh(n.id, t0)).statusCode, 401);
    const after = await refresh(n.id, t1);
    assert.equal(after.statusCode, 401);
    assert.equal(after.json().code, 'AUTH_FAILED');
  });

  test("node A's token presented as node B is refused, and A's own use still works", async () => {
    const a = await node();
    const b = await node();
    const t = await register(a.secret);
    assert.equal((await refresh(b.id, t)).statusCode, 401);
    assert.equal((await refresh('', t)).statusCode, 401);
    assert.equal((await refresh(a.id, t)).statusCode, 200);
  });

  test('registering again revokes outstanding refresh tokens', async () => {
    const n = await node();
    const old = await register(n.secret);
    const fresh = await register(n.secret);
    assert.equal((await refresh(n.id, old)).statusCode, 401);
    assert.equal((await refresh(n.id, fresh)).statusCode, 200);
  });
});
