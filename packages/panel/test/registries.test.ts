/**
 * `/api/registries` (issue 11 item 3) on SQLite and PostgreSQL: one registry per normalised host
 * (Docker Hub's aliases are one), the password write-only (set, kept, removed), clear errors with
 * codes, admins only, activity entries that name the host and never the password. The relay and
 * the Agent using them: test/registries.int.test.ts (a real registry).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createAccount, type Session, scratchDatabase, startTestPanel, type TestPanel } from './helpers.ts';

const SECRET = `hub-token-${process.pid}-${Date.now()}`;

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`registries (${engine})`, () => {
    let panel: TestPanel;
    let owner: Session;
    let drop = async () => undefined as unknown;
    const seen: string[] = [];
    const api = async (method: string, path: string, body?: unknown, who: Session = owner) => {
      const r = await panel.api(who, method, path, body);
      seen.push(JSON.stringify(r.body));
      return r;
    };

    before(async () => {
      const db = await scratchDatabase(engine, 'cap_registries');
      drop = db.drop;
      panel = await startTestPanel(db.env);
      owner = await panel.login();
    });
    after(async () => {
      await panel?.stop();
      await drop();
    });

    test('one per host, Docker Hub aliases included; the password set, kept and removed', async () => {
      const c = await api('POST', '/api/registries', {
        name: 'hub',
        host: 'https://index.docker.io/v1/',
        username: 'me',
        password: SECRET,
      });
      assert.equal(c.status, 201, JSON.stringify(c.body));
      assert.equal(c.body.host, 'docker.io');
      assert.equal(c.body.hasPassword, true);
      const dup = await api('POST', '/api/registries', {
        name: 'again',
        host: 'Registry-1.Docker.io',
        username: 'x',
      });
      assert.equal(dup.status, 409);
      assert.equal(dup.body.code, 'CONFLICT');
      const bad = await api('POST', '/api/registries', { name: 'bad', host: 'a b/c', username: 'x' });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.code, 'VALIDATION_FAILED');
      const other = await api('POST', '/api/registries', { name: 'gh', host: 'ghcr.io', username: 'u' });
      assert.equal(other.status, 201);
      assert.equal(other.body.hasPassword, false);
      const clash = await api('PATCH', `/api/registries/${other.body.id}`, { host: 'docker.io' });
      assert.equal(clash.status, 409);

      const kept = await api('PATCH', `/api/registries/${c.body.id}`, { username: 'me2' });
      assert.equal(kept.body.hasPassword, true);
      const removed = await api('PATCH', `/api/registries/${c.body.id}`, { password: null });
      assert.equal(removed.status, 200);
      assert.equal(removed.body.hasPassword, false);
      assert.equal(
        (await api('PATCH', `/api/registries/${c.body.id}`, { password: SECRET })).body.hasPassword,
        true,
      );

      const missing = await api('PATCH', '/api/registries/reg_nope', { name: 'x' });
      assert.equal(missing.status, 404);
      assert.equal(missing.body.code, 'REGISTRY_NOT_FOUND');
      assert.equal((await api('DELETE', `/api/registries/${other.body.id}`)).status, 204);
      const list = await api('GET', '/api/registries');
      assert.deepEqual(
        list.body.registries.map((r: { host: string }) => r.host),
        ['docker.io'],
      );
      const test = await api('POST', `/api/registries/${c.body.id}/test`, { nodeId: 'no-such-node' });
      assert.equal(test.status, 404);
    });

    test('admins only', async () => {
      const user = await createAccount(panel, owner, `reg-${engine}-user`, 'user');
      const spectator = await createAccount(panel, owner, `reg-${engine}-spec`, 'spectator');
      for (const who of [user, spectator]) {
        assert.equal((await api('GET', '/api/registries', undefined, who)).status, 403);
        assert.equal(
          (await api('POST', '/api/registries', { name: 'x', host: 'quay.io', username: 'u' }, who)).status,
          403,
        );
      }
    });

    test('activity entries name the registry and host, never the password; no answer holds it', async () => {
      const act = await api('GET', '/api/activity?action=registry');
      const actions = act.body.entries.map((e: { action: string }) => e.action);
      for (const a of ['registry.create', 'registry.update', 'registry.delete'])
        assert.ok(actions.includes(a), `${a} in ${actions.join(',')}`);
      assert.ok(
        act.body.entries.some((e: { details?: { host?: string } }) => e.details?.host === 'docker.io'),
      );
      assert.ok(!seen.join('\n').includes(SECRET));
    });
  });
}
