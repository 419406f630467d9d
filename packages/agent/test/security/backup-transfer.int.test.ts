/**
 * Attack class: a backup's download ticket (issue 10 item 4). `create_transfer { direction:
 * 'download', backupId }` hands out a single-use ticket for a completed backup's archive; it must
 * never name a path too (a backup ticket reading a server file), be an upload (writing over an
 * archive), reach another server's backup, or take an id that walks out of the backup folder.
 * A deleted server's backups go with it. A real Agent, driven over its link by the fake Panel.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { egg, type Fixture, fixture, uid } from '../helpers.ts';

type Res = { success: boolean; data?: unknown; error?: { code: string; message: string } };
type Rec = { backupId: string; sha256: string; size: number; format: string };

describe('backup download tickets', () => {
  let f: Fixture;
  const a = uid('bt-a-');
  const b = uid('bt-b-');
  let recA: Rec;
  let recB: Rec;
  const cmd = async (action: string, payload: unknown, serverId: string) =>
    (await f.panel.command(action as never, payload as never, { serverId })) as Res;

  before(async () => {
    f = await fixture({ env: { AGENT_API_KEY: `k_${uid()}${uid()}${uid()}`, AGENT_COMMAND_RATE: '100000' } });
    await f.panel.waitConnected();
    for (const id of [a, b]) {
      const res = await cmd('create_server', { serverId: id, eggConfig: egg('sleep 1000') }, id);
      assert.equal(res.success, true, JSON.stringify(res.error));
      await writeFile(path.join(f.dataDir, 'servers', id, 'secret.txt'), `only ${id}\n`);
    }
    const mk = async (id: string) => {
      const r = await cmd('backup_create', { format: 'tar.gz' }, id);
      assert.equal(r.success, true, JSON.stringify(r.error));
      return r.data as Rec;
    };
    recA = await mk(a);
    recB = await mk(b);
  });
  after(async () => {
    await f.cleanup();
  });

  it('a backup ticket streams exactly the archive, with its sha256, once', async () => {
    const r = await cmd('create_transfer', { direction: 'download', backupId: recA.backupId }, a);
    assert.equal(r.success, true, JSON.stringify(r.error));
    const t = r.data as { ticket: string; sha256: string; size: number; name: string };
    assert.equal(t.sha256, recA.sha256);
    assert.equal(t.size, recA.size);
    const base = `http://127.0.0.1:${f.agent.httpPort}`;
    const got = await fetch(`${base}/transfers/${t.ticket}`);
    assert.equal(got.status, 200);
    const bytes = Buffer.from(await got.arrayBuffer());
    assert.equal(got.headers.get('x-checksum-sha256'), recA.sha256);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), recA.sha256);
    const onDisk = await readFile(path.join(f.dataDir, 'backups', a, `${recA.backupId}.tar.gz`));
    assert.deepEqual(bytes, onDisk);
    assert.equal((await fetch(`${base}/transfers/${t.ticket}`)).status, 404);
  });

  it("refuses a path with it, an upload, no path at all, a hostile id, and another server's backup", async () => {
    const cases: [unknown, string][] = [
      [{ direction: 'download', backupId: recA.backupId, path: 'secret.txt' }, 'CONFIG_INVALID'],
      [{ direction: 'upload', backupId: recA.backupId, size: 1 }, 'CONFIG_INVALID'],
      [{ direction: 'download' }, 'CONFIG_INVALID'],
      [{ direction: 'download', backupId: '../bt' }, 'CONFIG_INVALID'],
      [{ direction: 'download', backupId: `../${b}/${recB.backupId}` }, 'CONFIG_INVALID'],
      [{ direction: 'download', backupId: 'a'.repeat(65) }, 'CONFIG_INVALID'],
      [{ direction: 'download', backupId: recB.backupId }, 'BACKUP_NOT_FOUND'],
    ];
    for (const [payload, code] of cases) {
      const r = await cmd('create_transfer', payload, a);
      assert.equal(r.success, false, JSON.stringify(payload));
      assert.equal(r.error?.code, code, `${JSON.stringify(payload)} → ${JSON.stringify(r.error)}`);
    }
  });

  it("a deleted server's backups are removed with it", async () => {
    const dir = path.join(f.dataDir, 'backups', b);
    assert.equal(existsSync(path.join(dir, `${recB.backupId}.tar.gz`)), true);
    const r = await cmd('delete_server', {}, b);
    assert.equal(r.success, true, JSON.stringify(r.error));
    assert.equal(existsSync(dir), false);
    // the other server's are untouched
    assert.equal(existsSync(path.join(f.dataDir, 'backups', a, `${recA.backupId}.tar.gz`)), true);
  });
});
