/**
 * Backups in the Panel (issue 10 item 4): every route is behind its `backup.*` permission (a
 * subuser without backup.download gets 403 naming it, and the Agent is never asked), hostile
 * backup ids are refused before the Agent hears of them, a backup of another server is not
 * reachable through this one, the per-server limit counts locked backups, a locked backup cannot
 * be deleted, retention's deletions on the node are mirrored, and a deleted server's rows go.
 * Against a real Panel (SQLite and PostgreSQL) with the fake Agent (its backup_* actions kept in a
 * small store here).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { BackupRecord, Command } from '@cap/protocol';
import { type FakeAgent, FakeAgentError } from '../fake-agent.ts';
import {
  type Account,
  createAccount,
  createServer,
  fakeAgentNode,
  grantPermissions,
  type Json,
  type Session,
  scratchDatabase,
  startTestPanel,
  type TestPanel,
  until,
} from '../helpers.ts';

/** The fake Agent's backups: per server, newest last (as the real one keeps them). */
const store = new Map<string, BackupRecord[]>();
const of = (cmd: Command) => {
  const id = cmd.serverId ?? '';
  let list = store.get(id);
  if (!list) {
    list = [];
    store.set(id, list);
  }
  return list;
};
/** what the next backup_create does: refused at once, or accepted and then failed (a full disk) */
let nextCreate: 'ok' | 'busy' | 'disk-full' = 'ok';
const find = (cmd: Command, backupId: string) => {
  const b = of(cmd).find((x) => x.backupId === backupId);
  if (!b) throw new FakeAgentError('BACKUP_NOT_FOUND', `no backup ${backupId}`);
  return b;
};

for (const engine of ['sqlite', 'postgres'] as const)
  describe(`backups (${engine}): access, hostile ids, limit, lock, retention`, () => {
    let drop: () => Promise<void> = async () => undefined;
    let panel: TestPanel;
    let owner: Session;
    let agent: FakeAgent;
    let serverA: string;
    let serverB: string;
    const users = {} as Record<'dora' | 'eve' | 'admin', Account>;

    const account = (name: string, role: 'user' | 'admin') => createAccount(panel, owner, name, role);
    const grant = async (serverId: string, who: Account, permissions: string[]) => {
      await grantPermissions(panel, owner, serverId, who, permissions);
    };
    const create = async (who: Session, serverId: string, body: Json = {}) =>
      panel.api(who, 'POST', `/api/servers/${serverId}/backups?wait=true`, body);
    const agentAsked = (action: string, serverId: string) =>
      agent.commands.filter((c) => c.action === action && c.serverId === serverId).length;

    before(async () => {
      const db = await scratchDatabase(engine, 'cap_backups');
      drop = db.drop;
      panel = await startTestPanel(db.env);
      owner = await panel.login();
      const node = await fakeAgentNode(panel, owner, {
        operationError: (cmd) =>
          cmd.action === 'backup_create' && nextCreate === 'disk-full'
            ? { code: 'INSUFFICIENT_RESOURCES', message: 'no space left on the node' }
            : undefined,
        handlers: {
          backup_create: (cmd) => {
            const p = (cmd as Command<'backup_create'>).payload;
            if (nextCreate === 'busy') throw new FakeAgentError('SERVER_BUSY', 'a backup is already running');
            const fail = nextCreate === 'disk-full';
            const rec: BackupRecord = {
              backupId: p.backupId ?? randomBytes(8).toString('hex'),
              serverId: cmd.serverId ?? '',
              name: p.name ?? null,
              format: p.format,
              state: 'pending',
              size: null,
              sha256: null,
              bytes: null,
              entries: null,
              locked: p.locked,
              createdAt: new Date().toISOString(),
              completedAt: null,
            };
            of(cmd).push(rec);
            // done before the fake's operation_completed (40 ms), retention as the Agent's
            setTimeout(() => {
              if (fail) {
                Object.assign(rec, {
                  state: 'failed',
                  completedAt: new Date().toISOString(),
                  error: { code: 'INSUFFICIENT_RESOURCES', message: 'no space left on the node' },
                });
                return;
              }
              Object.assign(rec, {
                state: 'completed',
                size: 42,
                sha256: 'ab'.repeat(32),
                bytes: 100,
                entries: 3,
                completedAt: new Date().toISOString(),
              });
              if (p.retain !== undefined) {
                const list = of(cmd);
                const doomed = [...list]
                  .reverse()
                  .filter((b) => b.state === 'completed' && !b.locked)
                  .slice(p.retain);
                for (const d of doomed) list.splice(list.indexOf(d), 1);
              }
            }, 5);
            return rec;
          },
          backup_list: (cmd) => {
            const { offset, limit } = (cmd as Command<'backup_list'>).payload;
            const all = [...of(cmd)].reverse();
            return { backups: all.slice(offset, offset + limit), total: all.length, offset, limit };
          },
          backup_lock: (cmd) => {
            const { backupId, locked } = (cmd as Command<'backup_lock'>).payload;
            const b = find(cmd, backupId);
            b.locked = locked;
            return b;
          },
          backup_delete: (cmd) => {
            const { backupId } = (cmd as Command<'backup_delete'>).payload;
            const b = find(cmd, backupId);
            if (b.locked) throw new FakeAgentError('INVALID_STATE', 'locked');
            of(cmd).splice(of(cmd).indexOf(b), 1);
            return { backupId, deleted: true };
          },
          backup_restore: (cmd) => {
            const { backupId } = (cmd as Command<'backup_restore'>).payload;
            find(cmd, backupId);
            return { backupId, bytes: 100, entries: 3 };
          },
          create_transfer: (cmd) => {
            const p = (cmd as Command<'create_transfer'>).payload;
            const b = find(cmd, p.backupId ?? '');
            return {
              ticket: randomBytes(32).toString('base64url'),
              expiresAt: new Date(Date.now() + p.ttlSeconds * 1000).toISOString(),
              size: b.size,
              name: `${b.backupId}.${b.format}`,
              sha256: b.sha256,
            };
          },
        },
      });
      agent = node.agent;
      users.dora = await account('dora', 'user');
      users.eve = await account('eve', 'user');
      users.admin = await account('backup-admin', 'admin');
      serverA = await createServer(panel, owner, node.id, 'A');
      serverB = await createServer(panel, owner, node.id, 'B');
    });
    after(async () => {
      await agent?.close();
      await panel?.stop();
      await drop();
    });

    test('create with ?wait: completed, listed with createdBy and storage; activity backup.create', async () => {
      const r = await create(owner, serverA, { name: 'first', format: 'tar.gz' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.state, 'completed');
      assert.equal(r.body.sha256, 'ab'.repeat(32));
      assert.equal(r.body.format, 'tar.gz');
      assert.equal(r.body.storage, 'node');
      const me = await panel.api(owner, 'GET', '/api/auth/me');
      assert.deepEqual(r.body.createdBy, { id: me.body.user.id, username: me.body.user.username });
      const list = await panel.api(owner, 'GET', `/api/servers/${serverA}/backups`);
      assert.equal(list.status, 200, JSON.stringify(list.body));
      assert.equal(list.body.total, 1);
      assert.equal(list.body.backups[0].backupId, r.body.backupId);
      assert.equal(list.body.backups[0].createdBy.username, me.body.user.username);
      assert.equal(list.body.backupLimit, null);
      const act = await panel.api(owner, 'GET', `/api/servers/${serverA}/activity`);
      const entry = (act.body.entries ?? act.body).find((e: Json) => e.action === 'backup.create');
      assert.ok(entry, JSON.stringify(act.body).slice(0, 800));
      // the 202 form: operationId and backupId at once; the operation is of kind `backup`
      const quick = await panel.api(owner, 'POST', `/api/servers/${serverA}/backups`, {});
      assert.equal(quick.status, 202, JSON.stringify(quick.body));
      assert.ok(quick.body.backupId);
      await until(
        async () =>
          (await panel.api(owner, 'GET', `/api/operations/${quick.body.operationId}`)).body.success === true,
      );
      const op = await panel.api(owner, 'GET', `/api/operations/${quick.body.operationId}`);
      assert.equal(op.body.kind, 'backup');
    });

    test('each backup permission opens only its route; without backup.download a subuser gets 403', async () => {
      const [b] = (await panel.api(owner, 'GET', `/api/servers/${serverA}/backups`)).body.backups;
      const routes: { need: string; method: string; path: string; body?: Json }[] = [
        { need: 'backup.read', method: 'GET', path: `/api/servers/${serverA}/backups` },
        {
          need: 'backup.download',
          method: 'POST',
          path: `/api/servers/${serverA}/backups/${b.backupId}/download`,
        },
        {
          need: 'backup.delete',
          method: 'POST',
          path: `/api/servers/${serverA}/backups/${b.backupId}/lock`,
          body: { locked: false },
        },
        {
          need: 'backup.restore',
          method: 'POST',
          path: `/api/servers/${serverA}/backups/${b.backupId}/restore`,
          body: {},
        },
      ];
      for (const perm of [
        'backup.read',
        'backup.download',
        'backup.delete',
        'backup.restore',
        'backup.create',
      ]) {
        await grant(serverA, users.dora, [perm]);
        for (const route of routes) {
          const transfersBefore = agentAsked('create_transfer', serverA);
          const r = await panel.api(users.dora, route.method, route.path, route.body);
          if (route.need === perm)
            assert.ok(r.status < 300, `${perm} ${route.path} → ${r.status} ${JSON.stringify(r.body)}`);
          else {
            assert.equal(r.status, 403, `${perm} ${route.method} ${route.path} → ${JSON.stringify(r.body)}`);
            assert.equal(r.body.code, 'FORBIDDEN');
            assert.match(r.body.message, new RegExp(route.need.replace('.', '\\.')));
            assert.equal(agentAsked('create_transfer', serverA), transfersBefore, 'the Agent was asked');
          }
        }
      }
      // the download answer: a relayed single-use URL with its checksum
      await grant(serverA, users.dora, ['backup.read', 'backup.download']);
      const link = await panel.api(
        users.dora,
        'POST',
        `/api/servers/${serverA}/backups/${b.backupId}/download`,
      );
      assert.equal(link.status, 201, JSON.stringify(link.body));
      assert.match(link.body.url, /^\/api\/transfers\/[A-Za-z0-9_-]{43}$/);
      assert.equal(link.body.sha256, b.sha256);
      assert.ok(Date.parse(link.body.expiresAt) > Date.now());
      // without backup.download (but reading them): 403 naming it
      await grant(serverA, users.dora, ['backup.read', 'backup.create', 'backup.restore']);
      const refused = await panel.api(
        users.dora,
        'POST',
        `/api/servers/${serverA}/backups/${b.backupId}/download`,
      );
      assert.equal(refused.status, 403, JSON.stringify(refused.body));
      assert.match(refused.body.message, /backup\.download/);
      // a user with nothing on the server does not see it: 404 before anything
      const none = await panel.api(users.eve, 'GET', `/api/servers/${serverA}/backups`);
      assert.equal(none.status, 404);
      assert.equal(none.body.code, 'SERVER_NOT_FOUND');
    });

    test("hostile ids are refused before the Agent hears of them; another server's backup is not found", async () => {
      const asked = agent.commands.length;
      for (const bad of ['..%2F..%2Fetc', '%00', '-lead', 'a'.repeat(65), 'x%20y', '__proto__%2F']) {
        for (const x of ['download', 'restore']) {
          const r = await panel.api(owner, 'POST', `/api/servers/${serverA}/backups/${bad}/${x}`, {});
          assert.ok(
            r.status === 400 || r.status === 404,
            `${bad} ${x} → ${r.status} ${JSON.stringify(r.body)}`,
          );
          assert.ok(['VALIDATION_FAILED', 'NOT_FOUND'].includes(r.body.code), JSON.stringify(r.body));
        }
      }
      assert.equal(agent.commands.length, asked, 'no command reached the Agent');
      const onB = await create(owner, serverB, { name: 'b-only' });
      assert.equal(onB.status, 200, JSON.stringify(onB.body));
      for (const [method, x, body] of [
        ['POST', '/download', undefined],
        ['POST', '/restore', {}],
        ['POST', '/lock', { locked: true }],
        ['DELETE', '', undefined],
      ] as const) {
        const r = await panel.api(
          owner,
          method,
          `/api/servers/${serverA}/backups/${onB.body.backupId}${x}`,
          body,
        );
        assert.equal(r.status, 404, `${method} ${x} ${JSON.stringify(r.body)}`);
        assert.equal(r.body.code, 'BACKUP_NOT_FOUND');
      }
      assert.equal(
        agent.commands.length,
        asked + agent.commands.slice(asked).filter((c) => c.serverId === serverB).length,
      );
      // bad bodies
      for (const body of [
        { format: 'zip' },
        { retain: 0 },
        { retain: 1.5 },
        { name: '' },
        { locked: 'yes' },
      ]) {
        const r = await panel.api(owner, 'POST', `/api/servers/${serverA}/backups`, body);
        assert.equal(r.status, 400, JSON.stringify(body));
        assert.equal(r.body.code, 'VALIDATION_FAILED');
      }
    });

    test('the backup limit: admins set it; a create past it is 409 BACKUP_LIMIT_REACHED, locked ones count', async () => {
      await grant(serverA, users.dora, ['backup.read', 'backup.create', 'settings.rename']);
      const own = await panel.api(users.dora, 'PATCH', `/api/servers/${serverA}`, { backupLimit: 50 });
      assert.equal(own.status, 403, JSON.stringify(own.body));
      const list = (await panel.api(owner, 'GET', `/api/servers/${serverA}/backups`)).body;
      const held = list.total;
      const set = await panel.api(users.admin, 'PATCH', `/api/servers/${serverA}`, { backupLimit: held + 1 });
      assert.equal(set.status, 200, JSON.stringify(set.body));
      assert.equal(set.body.backupLimit, held + 1);
      const last = await create(users.dora, serverA, { name: 'last', locked: true });
      assert.equal(last.status, 200, JSON.stringify(last.body));
      assert.equal(last.body.locked, true);
      const creates = agentAsked('backup_create', serverA);
      const over = await create(users.dora, serverA, { name: 'over' });
      assert.equal(over.status, 409, JSON.stringify(over.body));
      assert.equal(over.body.code, 'BACKUP_LIMIT_REACHED');
      assert.equal(agentAsked('backup_create', serverA), creates, 'the Agent was not asked');
      const after = (await panel.api(owner, 'GET', `/api/servers/${serverA}/backups`)).body;
      assert.equal(after.total, held + 1);
      assert.equal(after.backupLimit, held + 1);
      // unlocking does not free a slot; deleting does
      const unlock = await panel.api(
        owner,
        'POST',
        `/api/servers/${serverA}/backups/${last.body.backupId}/lock`,
        { locked: false },
      );
      assert.equal(unlock.status, 200);
      assert.equal((await create(owner, serverA)).body.code, 'BACKUP_LIMIT_REACHED');
      const del = await panel.api(owner, 'DELETE', `/api/servers/${serverA}/backups/${last.body.backupId}`);
      assert.equal(del.status, 204, JSON.stringify(del.body));
      assert.equal((await create(owner, serverA)).status, 200);
      const zero = await panel.api(owner, 'PATCH', `/api/servers/${serverB}`, { backupLimit: 0 });
      assert.equal(zero.status, 200);
      const none = await create(owner, serverB);
      assert.equal(none.body.code, 'BACKUP_LIMIT_REACHED');
      assert.match(none.body.message, /limit is 0/);
      await panel.api(owner, 'PATCH', `/api/servers/${serverA}`, { backupLimit: null });
      await panel.api(owner, 'PATCH', `/api/servers/${serverB}`, { backupLimit: null });
    });

    test('a locked backup cannot be deleted (the Agent is not asked); unlocked it can', async () => {
      const b = await create(owner, serverA, { name: 'keep', locked: true });
      const deletes = agentAsked('backup_delete', serverA);
      const r = await panel.api(owner, 'DELETE', `/api/servers/${serverA}/backups/${b.body.backupId}`);
      assert.equal(r.status, 409, JSON.stringify(r.body));
      assert.equal(r.body.code, 'INVALID_STATE');
      assert.equal(agentAsked('backup_delete', serverA), deletes);
      await panel.api(owner, 'POST', `/api/servers/${serverA}/backups/${b.body.backupId}/lock`, {
        locked: false,
      });
      assert.equal(
        (await panel.api(owner, 'DELETE', `/api/servers/${serverA}/backups/${b.body.backupId}`)).status,
        204,
      );
      const ids = (await panel.api(owner, 'GET', `/api/servers/${serverA}/backups`)).body.backups.map(
        (x: Json) => x.backupId,
      );
      assert.ok(!ids.includes(b.body.backupId));
    });

    test('retention: the Agent keeps the newest N unlocked; the Panel mirrors its deletions', async () => {
      const locked = await create(owner, serverA, { name: 'locked-keep', locked: true });
      for (let i = 0; i < 3; i++) assert.equal((await create(owner, serverA, { name: `r${i}` })).status, 200);
      const kept = await create(owner, serverA, { name: 'r-last', retain: 2 });
      assert.equal(kept.status, 200, JSON.stringify(kept.body));
      const list = (await panel.api(owner, 'GET', `/api/servers/${serverA}/backups`)).body;
      const unlocked = list.backups.filter((x: Json) => !x.locked).map((x: Json) => x.name);
      assert.deepEqual(unlocked, ['r-last', 'r2']);
      assert.ok(list.backups.some((x: Json) => x.backupId === locked.body.backupId));
      assert.equal(list.total, list.backups.length);
      const agentIds = (store.get(serverA) ?? []).map((x) => x.backupId).sort();
      assert.deepEqual(list.backups.map((x: Json) => x.backupId).sort(), agentIds);
    });

    test('a GET serves the database: the Agent is not asked (no backup_list)', async () => {
      assert.equal((await create(owner, serverA, { name: 'get-no-agent' })).status, 200);
      const asked = agentAsked('backup_list', serverA);
      for (let i = 0; i < 3; i++) {
        const r = await panel.api(owner, 'GET', `/api/servers/${serverA}/backups`);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assert.ok(r.body.backups.some((b: Json) => b.name === 'get-no-agent'));
      }
      assert.equal(agentAsked('backup_list', serverA), asked);
    });

    test("a backup deleted behind the Panel's back is reconciled when the node reconnects", async () => {
      const made = await create(owner, serverA, { name: 'deleted-behind' });
      assert.equal(made.status, 200, JSON.stringify(made.body));
      const list = of({ serverId: serverA } as Command);
      list.splice(
        list.findIndex((b) => b.backupId === made.body.backupId),
        1,
      );
      const ids = async () =>
        ((await panel.api(owner, 'GET', `/api/servers/${serverA}/backups`)).body.backups as Json[]).map(
          (b) => b.backupId,
        );
      // (the table as it was until the node is heard from)
      assert.ok((await ids()).includes(made.body.backupId));
      await agent.reconnect();
      await until(async () => !(await ids()).includes(made.body.backupId), 5000);
    });

    test('a refused create leaves no row; a failed one is listed failed with its code and does not count', async () => {
      const before = (await panel.api(owner, 'GET', `/api/servers/${serverA}/backups`)).body.total;
      nextCreate = 'busy';
      try {
        const busy = await create(owner, serverA, { name: 'refused' });
        assert.equal(busy.status, 409, JSON.stringify(busy.body));
        assert.equal(busy.body.code, 'SERVER_BUSY');
        assert.equal((await panel.api(owner, 'GET', `/api/servers/${serverA}/backups`)).body.total, before);
        nextCreate = 'disk-full';
        const full = await create(owner, serverA, { name: 'no room' });
        assert.equal(full.status, 409, JSON.stringify(full.body));
        assert.equal(full.body.code, 'INSUFFICIENT_RESOURCES');
      } finally {
        nextCreate = 'ok';
      }
      const list = (await panel.api(owner, 'GET', `/api/servers/${serverA}/backups`)).body;
      const failed = list.backups.find((x: Json) => x.name === 'no room');
      assert.equal(failed.state, 'failed');
      assert.equal(failed.error.code, 'INSUFFICIENT_RESOURCES');
      assert.equal(failed.sha256, null);
      // failed ones do not count against the limit
      const held = list.backups.filter((x: Json) => x.state !== 'failed').length;
      await panel.api(owner, 'PATCH', `/api/servers/${serverA}`, { backupLimit: held + 1 });
      assert.equal((await create(owner, serverA, { name: 'fits' })).status, 200);
      await panel.api(owner, 'PATCH', `/api/servers/${serverA}`, { backupLimit: null });
    });

    test("the template's backup commands go to the Agent with the backup", async () => {
      const egg = {
        meta: { version: 'PTDL_v2', update_url: null },
        name: `Saves ${engine}`,
        author: 'a@b.c',
        description: 'd',
        docker_images: { Busybox: 'ctrl-alt-play/busybox:latest' },
        startup: 'sleep 3600',
        config: { files: '{}', startup: '{"done": "ready"}', logs: '{}', stop: 'stop' },
        scripts: { installation: { script: '', container: '', entrypoint: 'ash' } },
        variables: [],
        backup: { commandsBefore: ['save-off', 'save-all'], commandsAfter: ['save-on'] },
      };
      const imported = await panel.api(owner, 'POST', '/api/templates/import', {
        content: JSON.stringify(egg),
        filename: 'saves.json',
      });
      assert.equal(imported.status, 201, JSON.stringify(imported.body));
      const nodeId = (await panel.api(owner, 'GET', `/api/servers/${serverA}`)).body.nodeId;
      const srv = await panel.api(owner, 'POST', '/api/servers?wait=true', {
        name: 'templated',
        nodeId,
        templateId: imported.body.template.id,
        port: 30_000 + Math.floor(Math.random() * 10_000),
      });
      assert.equal(srv.status, 201, JSON.stringify(srv.body));
      const b = await create(owner, srv.body.id, { name: 'with saves' });
      assert.equal(b.status, 200, JSON.stringify(b.body));
      const cmd = agent.commands.find((c) => c.action === 'backup_create' && c.serverId === srv.body.id);
      const p = cmd?.payload as Command<'backup_create'>['payload'];
      assert.deepEqual(p.commandsBefore, ['save-off', 'save-all']);
      assert.deepEqual(p.commandsAfter, ['save-on']);
      assert.equal(p.backupId, b.body.backupId);
      // a raw server sends none
      const raw = agent.commands.find((c) => c.action === 'backup_create' && c.serverId === serverA);
      assert.ok(raw);
      assert.deepEqual((raw.payload as Command<'backup_create'>['payload']).commandsBefore, []);
    });

    test('restore is an operation of kind restore; a deleted server takes its backups with it', async () => {
      const [b] = (await panel.api(owner, 'GET', `/api/servers/${serverB}/backups`)).body.backups;
      const r = await panel.api(
        owner,
        'POST',
        `/api/servers/${serverB}/backups/${b.backupId}/restore?wait=true`,
        { truncate: true },
      );
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const cmd = agent.commands.find((c) => c.action === 'backup_restore' && c.serverId === serverB);
      assert.deepEqual(cmd?.payload, { backupId: b.backupId, truncate: true });
      assert.equal(
        (await panel.api(owner, 'GET', `/api/operations/${r.body.operationId}`)).body.kind,
        'restore',
      );
      const del = await panel.api(owner, 'DELETE', `/api/servers/${serverB}`);
      assert.equal(del.status, 204, JSON.stringify(del.body));
      const rows = await panel.app.panel.db
        .selectFrom('backups')
        .selectAll()
        .where('server_id', '=', serverB)
        .execute();
      assert.deepEqual(rows, []);
    });
  });
