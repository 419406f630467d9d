/**
 * Attack class: oversize messages on the Panel link. A folder of 70k long file names once made
 * one `list_files` answer larger than the Panel's frame limit (the Panel closed the link, every
 * command in flight failed, and the answer was replayed on reconnect). Listings are pages with a
 * total; any answer over the link's limit is refused by the Agent with MESSAGE_TOO_LARGE for the
 * same id, the link stays up, and nothing oversize is held for replay.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ResponseMessage } from '@cap/protocol';
import { egg, type Fixture, fixture, uid } from '../helpers.ts';

/** the protocol's LIST_FILES_MAX_LIMIT, written out so this file also runs against older code */
const LIST_FILES_MAX_LIMIT = 1000;

/** `count` empty files with long names (≈200 bytes), written fast, in parallel batches. */
export async function manyFiles(dir: string, count: number, prefix = 'f'): Promise<string[]> {
  const pad = 'x'.repeat(190);
  const names = Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(6, '0')}-${pad}`);
  for (let i = 0; i < names.length; i += 1000) {
    await Promise.all(names.slice(i, i + 1000).map((n) => writeFile(path.join(dir, n), '')));
  }
  return names;
}

type ListData = {
  path: string;
  entries: { name: string; type: string }[];
  total: number;
  offset: number;
  limit: number;
};

describe('a folder of 70k long file names', () => {
  let f: Fixture;
  let id: string;
  let expected: string[];

  before(async () => {
    f = await fixture();
    await f.panel.waitConnected();
    id = uid('big');
    const r = await f.panel.command('create_server', { serverId: id, eggConfig: egg('sleep 3600') });
    assert.equal(r.success, true, JSON.stringify(r));
    const dir = path.join(f.dataDir, 'servers', id);
    const files = await manyFiles(dir, 70_000);
    const dirs = ['zz-last-dir', 'a-dir', 'm-dir'];
    for (const d of dirs) await mkdir(path.join(dir, d));
    expected = [...dirs.sort(), ...files.sort()];
  });
  after(() => f.cleanup());

  test('lists page by page, directories first then by name, with a total; the link stays up', async () => {
    const connections = f.panel.connections.length;
    const first = await f.panel.command('list_files', { path: '/' }, { serverId: id });
    assert.equal(first.success, true, JSON.stringify(first).slice(0, 300));
    const d0 = first.data as ListData;
    assert.equal(d0.total, expected.length);
    assert.equal(d0.offset, 0);
    assert.equal(d0.entries.length, d0.limit, 'a default page is smaller than the folder');
    assert.deepEqual(
      d0.entries.slice(0, 3).map((e) => [e.name, e.type]),
      [
        ['a-dir', 'directory'],
        ['m-dir', 'directory'],
        ['zz-last-dir', 'directory'],
      ],
    );
    const seen: string[] = [];
    for (let offset = 0; offset < expected.length; offset += LIST_FILES_MAX_LIMIT) {
      // a command in flight alongside every page still gets its answer
      const [page, status] = await Promise.all([
        f.panel.command('list_files', { path: '/', offset, limit: LIST_FILES_MAX_LIMIT }, { serverId: id }),
        f.panel.command('get_status', {}, { serverId: id }),
      ]);
      assert.equal(page.success, true, JSON.stringify(page).slice(0, 300));
      assert.equal(status.success, true);
      const d = page.data as ListData;
      assert.equal(d.total, expected.length);
      assert.equal(d.offset, offset);
      assert.ok(Buffer.byteLength(JSON.stringify(page)) < 1024 * 1024, 'a page is far below the frame limit');
      seen.push(...d.entries.map((e) => e.name));
    }
    assert.equal(seen.length, expected.length);
    assert.deepEqual(seen, expected);
    // past the end: an empty page with the total
    const beyond = await f.panel.command('list_files', { path: '/', offset: 80_000 }, { serverId: id });
    assert.deepEqual(
      [(beyond.data as ListData).entries.length, (beyond.data as ListData).total],
      [0, expected.length],
    );
    // a limit over the maximum is refused with a code, not served
    const tooMany = await f.panel.command(
      'list_files',
      { path: '/', limit: LIST_FILES_MAX_LIMIT + 1 },
      { serverId: id },
    );
    assert.equal(tooMany.error?.code, 'CONFIG_INVALID');
    assert.equal(f.panel.connections.length, connections, 'the link was re-established');
    assert.deepEqual(f.panel.closes, []);
  });
});

describe('an answer over the link limit', () => {
  let f: Fixture;
  let id: string;

  before(async () => {
    // a small limit so that one page of long names is over it
    f = await fixture({ env: { AGENT_LINK_MAX_MESSAGE_BYTES: String(64 * 1024) } });
    await f.panel.waitConnected();
    id = uid('big');
    const r = await f.panel.command('create_server', { serverId: id, eggConfig: egg('sleep 3600') });
    assert.equal(r.success, true, JSON.stringify(r));
    await manyFiles(path.join(f.dataDir, 'servers', id), 1000);
  });
  after(() => f.cleanup());

  test('is refused MESSAGE_TOO_LARGE for the same id; the link stays up; nothing is replayed', async () => {
    const connections = f.panel.connections.length;
    const big = await f.panel.command('list_files', { path: '/', limit: 1000 }, { serverId: id });
    assert.equal(big.success, false);
    assert.equal(big.error?.code, 'MESSAGE_TOO_LARGE');
    assert.match(big.error?.message ?? '', /over the link's 65536-byte limit/);
    // the link is the same one and serves the next commands
    assert.equal(f.panel.connections.length, connections);
    const small = await f.panel.command('list_files', { path: '/', limit: 50 }, { serverId: id });
    assert.equal(small.success, true);
    assert.equal((small.data as ListData).total, 1000);
    // a reconnect replays nothing oversize (and no second answer to the refused command)
    const since = f.panel.received.length;
    f.panel.dropAgent();
    await f.panel.waitEvent('agent_hello', () => true, { since });
    await new Promise((r) => setTimeout(r, 300));
    const again = f.panel.received
      .slice(since)
      .filter((m): m is ResponseMessage => m.type === 'response' && m.id === big.id);
    assert.deepEqual(again, []);
    const st = await f.panel.command('get_status', {}, { serverId: id });
    assert.equal(st.success, true);
  });
});
