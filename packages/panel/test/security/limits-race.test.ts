/**
 * CVE-2025-69198 class: parallel requests must not get past a check-then-write. The database is
 * slowed a little (as over a network) so the requests really interleave.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadPanelConfig } from '../../src/config/index.ts';
import { type Db, openDatabase } from '../../src/db/index.ts';
import { FakeAgent } from '../fake-agent.ts';
import { type Session, slowQueries, startTestPanel, type TestPanel, until } from '../helpers.ts';

describe('parallel requests against limits and uniqueness', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cap-race-'));
  let db: Db;
  let panel: TestPanel;
  let owner: Session;
  const all = <T>(n: number, fn: (i: number) => Promise<T>) =>
    Promise.all(Array.from({ length: n }, (_, i) => fn(i)));
  const codes = (rs: { status: number; body: { code?: string } }[]) =>
    rs.map((r) => (r.status < 300 ? 'ok' : r.body.code)).sort();

  before(async () => {
    db = (await openDatabase(loadPanelConfig({ DATA_DIR: dir }))).withPlugin(slowQueries());
    panel = await startTestPanel({}, { db });
    owner = await panel.login();
  });
  after(async () => {
    await panel.stop();
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the same user email 5 times at once: one 201, the rest 409 CONFLICT (never a 500)', async () => {
    const rs = await all(5, () =>
      panel.api(owner, 'POST', '/api/users', { email: 'twin@x.test', password: 'password-1', role: 'admin' }),
    );
    assert.deepEqual(codes(rs), ['CONFLICT', 'CONFLICT', 'CONFLICT', 'CONFLICT', 'ok']);
  });

  test('the same node name 5 times at once: one node', async () => {
    const rs = await all(5, () => panel.api(owner, 'POST', '/api/nodes', { name: 'twin-node' }));
    assert.deepEqual(codes(rs), ['CONFLICT', 'CONFLICT', 'CONFLICT', 'CONFLICT', 'ok']);
    const nodes = (await panel.api(owner, 'GET', '/api/nodes')).body as { name: string }[];
    assert.equal(nodes.filter((n) => n.name === 'twin-node').length, 1);
  });

  test('two owners removing each other at once leave one owner', async () => {
    const mk = async (email: string) => {
      const r = await panel.api(owner, 'POST', '/api/users', {
        email,
        password: 'password-1',
        role: 'owner',
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return { id: r.body.id as string, session: await panel.login(email, 'password-1') };
    };
    const x = await mk('owner-x@x.test');
    const y = await mk('owner-y@x.test');
    // the original owner steps down so that x and y are the only two
    const me = (await panel.api(owner, 'GET', '/api/auth/me')).body.user.id;
    assert.equal((await panel.api(x.session, 'DELETE', `/api/users/${me}`)).status, 204);
    const rs = await Promise.all([
      panel.api(x.session, 'DELETE', `/api/users/${y.id}`),
      panel.api(y.session, 'DELETE', `/api/users/${x.id}`),
    ]);
    const owners = await db.selectFrom('users').select('id').where('role', '=', 'owner').execute();
    assert.equal(owners.length, 1, codes(rs).join(','));
    assert.deepEqual(codes(rs), ['INVALID_STATE', 'ok']);
    // and the same for demotions
    const survivor = owners[0]?.id === x.id ? x : y;
    const z = await (async () => {
      const r = await panel.api(survivor.session, 'POST', '/api/users', {
        email: 'owner-z@x.test',
        password: 'password-1',
        role: 'owner',
      });
      return { id: r.body.id as string, session: await panel.login('owner-z@x.test', 'password-1') };
    })();
    await Promise.all([
      panel.api(survivor.session, 'PATCH', `/api/users/${z.id}`, { role: 'admin' }),
      panel.api(z.session, 'PATCH', `/api/users/${survivor.id}`, { role: 'admin' }),
    ]);
    const left = await db.selectFrom('users').select('id').where('role', '=', 'owner').execute();
    assert.equal(left.length, 1);
    owner = survivor.session;
  });

  test('the same pool port added at once, and one host port claimed by 4 creates at once', async () => {
    const node = await panel.createNode(owner);
    const adds = await all(4, () =>
      panel.api(owner, 'POST', `/api/nodes/${node.id}/allocations`, { ip: '0.0.0.0', ports: ['36000'] }),
    );
    assert.deepEqual(codes(adds), ['PORT_CONFLICT', 'PORT_CONFLICT', 'PORT_CONFLICT', 'ok']);
    const agent = await FakeAgent.start({ panelUrl: panel.url, agentSecret: node.agentSecret });
    try {
      await until(() => panel.app.panel.hub.isOnline(node.id));
      const rs = await all(4, (i) =>
        panel.api(owner, 'POST', '/api/servers?wait=true', {
          name: `r${i}`,
          nodeId: node.id,
          image: 'img',
          port: 36001,
        }),
      );
      assert.deepEqual(codes(rs), ['PORT_CONFLICT', 'PORT_CONFLICT', 'PORT_CONFLICT', 'ok']);
      assert.equal(agent.commands.filter((c) => c.action === 'create_server').length, 1);
    } finally {
      await agent.close();
    }
  });
});
