/**
 * A transfer whose Panel replica fences itself, or whose row another replica failed meanwhile
 * (it took the owner for dead: issue 15), is no longer the owner's to go on with or to undo
 * (modules/transfers: `fence`, the step claims): undone there and here at once, both would stop,
 * start and delete the same server, and a run left going would switch the server to a target
 * whose copy the leader removed. A real Panel (one process; the fence and the other replica's
 * verdict are played by the test) with two fake Agents; the transfer held in its archiving step.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Command } from '@cap/protocol';
import type { FakeAgent } from './fake-agent.ts';
import {
  createServer,
  fakeAgentNode,
  type Session,
  startTestPanel,
  type TestPanel,
  until,
} from './helpers.ts';

describe('a transfer left by a fenced replica, or failed by another replica', () => {
  let panel: TestPanel;
  let owner: Session;
  let source: { id: string; agent: FakeAgent };
  let target: { id: string; agent: FakeAgent };
  /** how long the source's backup_create takes (the archiving step held) */
  let archiveMs = 60_000;
  const archives = new Map<string, { backupId: string; serverId: string }>();

  /** the whole StatusData (the fake's own answer is short of what transfers parse) */
  const status = (agent: () => FakeAgent) => (cmd: Command) => ({
    serverId: cmd.serverId,
    status: agent().servers.get(cmd.serverId ?? '')?.status ?? 'offline',
    containerId: null,
    uptime: 0,
    resources: {
      cpu: 0,
      memory: { used: '0', available: '1g', usedBytes: 0, limitBytes: 1024 },
      network: { tx: 0, rx: 0 },
    },
  });

  before(async () => {
    panel = await startTestPanel();
    owner = await panel.login();
    source = await fakeAgentNode(
      panel,
      owner,
      {
        operationMs: (cmd) => (cmd.action === 'backup_create' ? archiveMs : 40),
        handlers: {
          get_status: status(() => source.agent),
          backup_create: (cmd) => {
            const p = (cmd as Command<'backup_create'>).payload;
            archives.set(String(p.backupId), { backupId: String(p.backupId), serverId: cmd.serverId ?? '' });
            return {};
          },
          backup_list: (cmd) => {
            const backups = [...archives.values()]
              .filter((a) => a.serverId === cmd.serverId)
              .map((a) => ({
                ...a,
                name: 'transfer',
                format: 'tar.zst',
                state: 'completed',
                size: 42,
                sha256: 'ab'.repeat(32),
                bytes: 42,
                entries: 1,
                locked: false,
                createdAt: new Date().toISOString(),
                completedAt: new Date().toISOString(),
              }));
            return { backups, total: backups.length, offset: 0, limit: 100 };
          },
        },
      },
      'tf-source',
    );
    target = await fakeAgentNode(
      panel,
      owner,
      { handlers: { get_status: status(() => target.agent) } },
      'tf-target',
    );
  });
  after(async () => {
    source?.agent.close();
    target?.agent.close();
    await panel?.stop();
  });

  const row = (id: string) =>
    panel.app.panel.db.selectFrom('transfers').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  /** the commands for that server each Agent got from index `from` on (not the reads) */
  const sent = (agent: FakeAgent, serverId: string, from = 0) =>
    agent.commands
      .slice(from)
      .filter((c) => c.serverId === serverId && c.action !== 'get_status' && c.action !== 'backup_list')
      .map((c) => c.action);

  const begin = async (name: string) => {
    const serverId = await createServer(panel, owner, source.id, name);
    const { transfer, done } = await panel.app.panel.transfers.start(serverId, { nodeId: target.id }, null);
    const ended = done.then(
      () => 'completed',
      (e: { code?: string }) => e.code ?? 'no code',
    );
    // the step is stored before its command goes: the source has the archive's command too
    // (else it lands after the test's snapshot of what was sent, as if undone; a CI run at load)
    await until(
      async () =>
        (await row(transfer.id)).step === 'archiving' &&
        source.agent.commands.some((c) => c.serverId === serverId && c.action === 'backup_create'),
      10_000,
    ).catch(async (e) => {
      throw new Error(`${(e as Error).message}: ${JSON.stringify(await row(transfer.id))} ${await ended}`);
    });
    return { serverId, id: transfer.id, ended };
  };

  it('fenced: the run stops where it is, nothing undone by it; the row stays running for the leader to fail and undo', async () => {
    archiveMs = 60_000;
    const t = await begin('tf-fenced');
    const [s0, t0] = [source.agent.commands.length, target.agent.commands.length];
    assert.equal(panel.app.panel.transfers.fence(), 1, 'one transfer running here was left');
    assert.equal(await t.ended, 'REPLICA_FENCED');
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(
      sent(source.agent, t.serverId, s0),
      [],
      'nothing undone on the source by the fenced one',
    );
    assert.deepEqual(sent(target.agent, t.serverId, t0), [], 'nothing made on the target');
    const r = await row(t.id);
    assert.equal(r.state, 'running', 'left as stored: the leader fails it once its owner is past the TTL');
    // what the leader's round does with it (one process: every running transfer is its owner's gone)
    assert.equal(await panel.app.panel.transfers.failOrphans({ afterStart: false }), 1);
    const failed = await row(t.id);
    assert.equal(failed.state, 'failed');
    assert.equal(failed.archive_id !== null, true, "the archive on the source is the leader's to delete");
  });

  it('failed by another replica meanwhile: the owner neither goes on to the target nor undoes it', async () => {
    archiveMs = 1500;
    const t = await begin('tf-taken');
    const [s0, t0] = [source.agent.commands.length, target.agent.commands.length];
    // the leader took the owner for dead and failed the transfer (its #failCut)
    await panel.app.panel.db
      .updateTable('transfers')
      .set({
        state: 'failed',
        cleanup_pending: 1,
        error_code: 'INTERNAL_ERROR',
        finished_at: new Date().toISOString(),
      })
      .where('id', '=', t.id)
      .execute();
    // the archive ends; the owner's next step finds the row failed
    assert.equal(await t.ended, 'INVALID_STATE');
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(
      sent(target.agent, t.serverId, t0),
      [],
      'no create_server on the target (before: create, then undo)',
    );
    assert.deepEqual(sent(source.agent, t.serverId, s0), [], 'nothing undone on the source by the owner');
    const server = await panel.app.panel.db
      .selectFrom('servers')
      .select('node_id')
      .where('id', '=', t.serverId)
      .executeTakeFirstOrThrow();
    assert.equal(server.node_id, source.id, 'the server stays on the source');
    assert.equal((await row(t.id)).state, 'failed');
  });
});
