/**
 * Attack class: the file manager's changes (issue 10; Wings GHSA-gqmf-jqgv-v8fw, CVE-2023-25152,
 * CVE-2024-27102). Names with `../`, NUL or 4 KiB of characters; chmod, rename, copy and delete
 * through a link or a linked parent; a link swapped in between check and use by another process;
 * the template's file_denylist; writes over the disk quota; a write over a file that changed.
 * A real Agent, driven over its link by the fake Panel; the servers' containers are real.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import {
  lstat,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { egg, type Fixture, fixture, uid } from '../helpers.ts';

const SECRET = `host-secret-${uid()}`;

/**
 * Another process that, for `ms`, keeps (a) pointing the link `<retarget>/d` at `<retarget>/real`
 * (inside: allowed) and at `host` in turn, each swap one atomic rename, and (b) swapping the
 * directory `<swap>/d` with `<swap>/l` (a link to the host), so the swaps interleave with the Agent.
 */
function spawnFlipper(retarget: string, swap: string, host: string, ms: number) {
  return spawn(
    process.execPath,
    [
      '-e',
      `const fs = require('node:fs'); const a = ${JSON.stringify(retarget)}; const b = ${JSON.stringify(swap)};
       const host = ${JSON.stringify(host)}; const end = Date.now() + ${ms};
       const point = (to) => { try { fs.symlinkSync(to, a + '/tmp'); fs.renameSync(a + '/tmp', a + '/d'); } catch { try { fs.unlinkSync(a + '/tmp'); } catch {} } };
       while (Date.now() < end) {
         point(a + '/real'); point(host);
         try { fs.renameSync(b + '/d', b + '/hold'); fs.renameSync(b + '/l', b + '/d');
               fs.renameSync(b + '/d', b + '/l'); fs.renameSync(b + '/hold', b + '/d'); } catch {}
       }`,
    ],
    { stdio: 'ignore' },
  );
}

type Res = { success: boolean; data?: unknown; error?: { code: string; message: string } };

describe('file operations: bad input and links', () => {
  let f: Fixture;
  const id = uid('files-');
  const denyId = uid('fdeny-');
  const quotaId = uid('fquota-');
  let root: string;
  let host: string;
  let cmd: (action: string, payload: unknown, serverId?: string) => Promise<Res>;

  before(async () => {
    // these suites send bursts of file commands: the link's command budget is not what they test
    f = await fixture({ env: { AGENT_COMMAND_RATE: '100000' } });
    await f.panel.waitConnected();
    cmd = (action, payload, serverId = id) =>
      f.panel.command(action as 'get_file', payload as { path: string }, { serverId }) as Promise<Res>;
    for (const [sid, extra] of [
      [id, {}],
      [denyId, { fileDenylist: ['*.jar', 'secret/', '/config/ops.json'] }],
      [quotaId, { limits: { disk: '1m' } }],
    ] as const) {
      const res = await f.panel.command('create_server', {
        serverId: sid,
        eggConfig: egg('sleep 1000', extra),
      });
      assert.equal(res.success, true, JSON.stringify(res.error));
    }
    root = path.join(f.dataDir, 'servers', id);
    host = await mkdtemp(path.join(tmpdir(), 'cap-fhost-'));
    await writeFile(path.join(host, 'secret.txt'), SECRET, { mode: 0o600 });
    await mkdir(path.join(root, 'real'), { recursive: true });
    await writeFile(path.join(root, 'real', 'ok.txt'), 'ok\n');
    await symlink(path.join(host, 'secret.txt'), path.join(root, 'file-link'));
    await symlink(host, path.join(root, 'dir-link'));
  });
  after(async () => {
    await f.cleanup();
    await rm(host, { recursive: true, force: true });
  });

  const hostUnchanged = async () => {
    assert.equal(await readFile(path.join(host, 'secret.txt'), 'utf8'), SECRET);
    assert.equal((await stat(path.join(host, 'secret.txt'))).mode & 0o7777, 0o600);
    assert.deepEqual((await readdir(host)).sort(), ['secret.txt']);
  };
  /** nothing is created next to the server's root (where `../x` would land) */
  const serversDir = async () => (await readdir(path.join(f.dataDir, 'servers'))).sort();

  it('names with ../, NUL or 4 KiB of characters are refused with a code, nothing is created', async () => {
    const long = 'x'.repeat(4000);
    const beside = await serversDir();
    assert.ok(beside.includes(denyId));
    const cases: [string, unknown, string][] = [
      ['create_directory', { path: '../escape' }, 'PATH_OUTSIDE_ROOT'],
      ['create_directory', { path: 'real/../../escape' }, 'PATH_OUTSIDE_ROOT'],
      ['create_directory', { path: 'a\0b' }, 'PATH_OUTSIDE_ROOT'],
      ['create_directory', { path: long }, 'NAME_INVALID'],
      ['write_file', { path: '../escape.txt', content: 'x' }, 'PATH_OUTSIDE_ROOT'],
      ['write_file', { path: 'a\0b.txt', content: 'x' }, 'PATH_OUTSIDE_ROOT'],
      ['write_file', { path: long, content: 'x' }, 'NAME_INVALID'],
      ['rename_file', { from: 'real/ok.txt', to: '../escape.txt' }, 'PATH_OUTSIDE_ROOT'],
      ['rename_file', { from: '../' + id + '/real/ok.txt', to: 'x.txt' }, 'PATH_OUTSIDE_ROOT'],
      ['rename_file', { from: 'real/ok.txt', to: 'ok\0.txt' }, 'PATH_OUTSIDE_ROOT'],
      ['rename_file', { from: 'real/ok.txt', to: long }, 'NAME_INVALID'],
      ['copy_file', { from: 'real', to: '../escape' }, 'PATH_OUTSIDE_ROOT'],
      ['copy_file', { from: 'real/ok.txt', to: `real/${long}` }, 'NAME_INVALID'],
      ['delete_files', { root: '/', names: ['..'] }, 'PATH_OUTSIDE_ROOT'],
      ['delete_files', { root: '/', names: ['../' + denyId] }, 'NAME_INVALID'],
      ['delete_files', { root: '..', names: [denyId] }, 'PATH_OUTSIDE_ROOT'],
      ['delete_files', { root: '/', names: ['a\0'] }, 'PATH_OUTSIDE_ROOT'],
      ['delete_files', { root: '/', names: ['x'.repeat(1000)] }, 'NAME_INVALID'],
      // over the protocol's cap (1024 characters a name): refused before the Agent looks
      ['delete_files', { root: '/', names: [long] }, 'CONFIG_INVALID'],
      ['chmod_file', { path: '../' + denyId, mode: '777' }, 'PATH_OUTSIDE_ROOT'],
      ['chmod_file', { path: long, mode: '777' }, 'NAME_INVALID'],
      ['stat_file', { path: '../' + denyId }, 'PATH_OUTSIDE_ROOT'],
      ['search_files', { path: '..', query: 'x' }, 'PATH_OUTSIDE_ROOT'],
    ];
    for (const [action, payload, code] of cases) {
      const res = await cmd(action, payload);
      assert.equal(res.success, false, `${action} ${JSON.stringify(payload).slice(0, 80)} succeeded`);
      assert.equal(
        res.error?.code,
        code,
        `${action} ${JSON.stringify(payload).slice(0, 80)}: ${res.error?.message}`,
      );
    }
    assert.deepEqual(await serversDir(), beside);
    assert.deepEqual((await readdir(root)).sort(), ['dir-link', 'file-link', 'real']);
    assert.equal(await readFile(path.join(root, 'real', 'ok.txt'), 'utf8'), 'ok\n');
    // a mode with setuid/setgid is a validation failure
    assert.equal(
      (await cmd('chmod_file', { path: 'real/ok.txt', mode: '4755' })).error?.code,
      'CONFIG_INVALID',
    );
  });

  it('chmod, rename, copy and create through a link or a linked parent are refused; the host is unchanged', async () => {
    const cases: [string, unknown][] = [
      ['chmod_file', { path: 'file-link', mode: '0666' }],
      ['chmod_file', { path: 'dir-link/secret.txt', mode: '0666' }],
      ['chmod_file', { path: 'dir-link', mode: '0777' }],
      ['rename_file', { from: 'dir-link/secret.txt', to: 'stolen.txt' }],
      ['rename_file', { from: 'real/ok.txt', to: 'dir-link/planted.txt' }],
      ['copy_file', { from: 'dir-link/secret.txt', to: 'stolen.txt' }],
      ['copy_file', { from: 'real/ok.txt', to: 'dir-link/planted.txt' }],
      ['create_directory', { path: 'dir-link/planted' }],
      ['write_file', { path: 'dir-link/planted.txt', content: 'x', createOnly: true }],
      ['delete_files', { root: 'dir-link', names: ['secret.txt'] }],
      ['search_files', { path: 'dir-link', query: 'secret' }],
    ];
    for (const [action, payload] of cases) {
      const res = await cmd(action, payload);
      assert.equal(
        res.error?.code,
        'PATH_OUTSIDE_ROOT',
        `${action} ${JSON.stringify(payload)}: ${JSON.stringify(res)}`,
      );
      assert.equal(JSON.stringify(res).includes(SECRET), false);
    }
    await hostUnchanged();
    // a search from the root lists the links as links and never descends them
    const found = await cmd('search_files', { path: '/', query: 'secret' });
    assert.deepEqual(found.data, { matches: [], truncated: false });
    // renaming a link moves the link itself (it stays inside); deleting one removes only the link
    const moved = await cmd('rename_file', { from: 'file-link', to: 'real/moved-link' });
    assert.equal(moved.success, true, JSON.stringify(moved.error));
    assert.equal((await lstat(path.join(root, 'real', 'moved-link'))).isSymbolicLink(), true);
    // copying a tree copies a link as a link: its target's bytes are never read
    const copied = await cmd('copy_file', { from: 'real', to: 'real-copy' });
    assert.equal(copied.success, true, JSON.stringify(copied.error));
    assert.equal((await lstat(path.join(root, 'real-copy', 'moved-link'))).isSymbolicLink(), true);
    assert.equal((await cmd('get_file', { path: 'real-copy/moved-link' })).error?.code, 'PATH_OUTSIDE_ROOT');
    const del = await cmd('delete_files', { root: '/', names: ['dir-link', 'real-copy'] });
    assert.equal(del.success, true, JSON.stringify(del.error));
    assert.deepEqual(del.data, { paths: ['/dir-link', '/real-copy'] });
    await hostUnchanged();
    await symlink(host, path.join(root, 'dir-link'));
  });

  it('a link swapped in between check and use (another process racing) never leads outside', async () => {
    const arena = path.join(root, 'arena');
    await mkdir(path.join(arena, 'real'), { recursive: true });
    await symlink(path.join(arena, 'real'), path.join(arena, 'd'));
    // the real directory, held open: the test itself must never write through the swapped link
    const real = await open(path.join(arena, 'real'), constants.O_RDONLY | constants.O_DIRECTORY);
    const plant = () => writeFile(`/proc/self/fd/${real.fd}/secret.txt`, 'mine').catch(() => undefined);
    await plant();
    // a tree deleted while a directory deep in it is swapped for a link to the host
    const arena2 = path.join(root, 'arena2');
    const tree = path.join(arena2, 'tree');
    const plantTree = async () => {
      await mkdir(path.join(tree, 'd'), { recursive: true }).catch(() => undefined);
      await symlink(host, path.join(tree, 'l')).catch(() => undefined);
    };
    await plantTree();
    const flippers = [spawnFlipper(arena, tree, host, 6000)];
    try {
      const end = Date.now() + 5000;
      let n = 0;
      while (Date.now() < end) {
        n++;
        await plant();
        await cmd('chmod_file', { path: 'arena/d/secret.txt', mode: '0666' });
        await cmd('write_file', { path: 'arena/d/secret.txt', content: 'pwned' });
        await cmd('write_file', { path: 'arena/d/planted.txt', content: 'pwned' });
        await cmd('rename_file', { from: 'arena/d/secret.txt', to: `arena/taken-${n}` });
        await plant();
        await cmd('copy_file', { from: 'arena/d', to: `arena/copy-${n}` });
        await cmd('copy_file', { from: 'arena/d/secret.txt', to: `arena/copied-${n}` });
        await cmd('create_directory', { path: `arena/d/made-${n}` });
        await cmd('delete_files', { root: 'arena/d', names: ['secret.txt'] });
        await cmd('delete_files', { root: 'arena2', names: ['tree'] });
        await plantTree();
        const s = await cmd('search_files', { path: 'arena', query: 'secret' });
        for (const m of (s.data as { matches: { path: string }[] } | undefined)?.matches ?? [])
          assert.ok(m.path.startsWith('/arena/'), m.path);
        if (n % 10 === 0) await hostUnchanged();
      }
      assert.ok(n > 5, `only ${n} rounds`);
    } finally {
      for (const p of flippers) p.kill('SIGKILL');
      await real.close();
    }
    await hostUnchanged();
    // nothing copied out of the host either
    for (const name of await readdir(arena)) {
      const p = path.join(arena, name);
      const st = await lstat(p);
      if (st.isFile()) assert.notEqual(await readFile(p, 'utf8'), SECRET, name);
      if (st.isDirectory())
        for (const inner of await readdir(p)) {
          const q = path.join(p, inner);
          if ((await lstat(q)).isFile())
            assert.notEqual(await readFile(q, 'utf8'), SECRET, `${name}/${inner}`);
        }
    }
  });

  it('works on plain files: stat, sorted list, mkdir -p, rename, copy, chmod, delete many, search', async () => {
    await mkdir(path.join(root, 'w'));
    await writeFile(path.join(root, 'w', 'small.txt'), 'a');
    await writeFile(path.join(root, 'w', 'big.txt'), 'a'.repeat(5000));
    await writeFile(path.join(root, 'w', 'mid.txt'), 'a'.repeat(100));
    await utimes(path.join(root, 'w', 'big.txt'), 1000, 1000);
    const names = async (q: Record<string, unknown>) =>
      ((await cmd('list_files', { path: 'w', ...q })).data as { entries: { name: string }[] }).entries.map(
        (e) => e.name,
      );
    assert.deepEqual(await names({ sort: 'size' }), ['small.txt', 'mid.txt', 'big.txt']);
    assert.deepEqual(await names({ sort: 'size', order: 'desc' }), ['big.txt', 'mid.txt', 'small.txt']);
    assert.deepEqual((await names({ sort: 'modified' }))[0], 'big.txt');
    assert.deepEqual(await names({ order: 'desc', limit: 2 }), ['small.txt', 'mid.txt']);
    const st = await cmd('stat_file', { path: 'w/big.txt' });
    assert.deepEqual(
      { ...(st.data as object), modifiedAt: undefined },
      { name: 'big.txt', path: '/w/big.txt', type: 'file', size: 5000, mode: '0644', modifiedAt: undefined },
    );
    const made = await cmd('create_directory', { path: 'w/a/b/c' });
    assert.deepEqual(made.data, { paths: ['/w/a/b/c'] });
    assert.equal((await cmd('create_directory', { path: 'w/a/b/c' })).error?.code, 'FILE_EXISTS');
    assert.equal((await lstat(path.join(root, 'w/a/b/c'))).uid, f.config.containerUid);
    assert.equal((await cmd('rename_file', { from: 'w/mid.txt', to: 'w/a/mid.txt' })).success, true);
    assert.equal(
      (await cmd('rename_file', { from: 'w/small.txt', to: 'w/big.txt' })).error?.code,
      'FILE_EXISTS',
    );
    assert.equal((await cmd('rename_file', { from: 'w/nope', to: 'w/x' })).error?.code, 'FILE_NOT_FOUND');
    assert.equal((await cmd('copy_file', { from: 'w/a', to: 'w/a/b/inside' })).error?.code, 'CONFIG_INVALID');
    assert.equal((await cmd('copy_file', { from: 'w/a', to: 'w/a2' })).success, true);
    assert.equal(await readFile(path.join(root, 'w/a2/mid.txt'), 'utf8'), 'a'.repeat(100));
    assert.equal((await stat(path.join(root, 'w/a2/b/c'))).isDirectory(), true);
    const ch = await cmd('chmod_file', { path: 'w/big.txt', mode: '0755' });
    assert.equal((ch.data as { mode: string }).mode, '0755');
    assert.equal((await stat(path.join(root, 'w/big.txt'))).mode & 0o7777, 0o755);
    const found = await cmd('search_files', { path: 'w', query: 'MID' });
    assert.deepEqual(
      (found.data as { matches: { path: string }[] }).matches.map((m) => m.path),
      ['/w/a/mid.txt', '/w/a2/mid.txt'],
    );
    const one = await cmd('search_files', { path: 'w', query: 'mid', limit: 1 });
    assert.equal((one.data as { truncated: boolean }).truncated, true);
    // every name is checked before any is removed
    assert.equal(
      (await cmd('delete_files', { root: 'w', names: ['a2', 'missing'] })).error?.code,
      'FILE_NOT_FOUND',
    );
    assert.equal((await stat(path.join(root, 'w/a2'))).isDirectory(), true);
    const del = await cmd('delete_files', { root: 'w', names: ['a2', 'a', 'small.txt'] });
    assert.deepEqual(del.data, { paths: ['/w/a2', '/w/a', '/w/small.txt'] });
    assert.deepEqual(await readdir(path.join(root, 'w')), ['big.txt']);
  });

  it('write_file with a conflict check: a file changed meanwhile is not overwritten (FILE_CHANGED)', async () => {
    await writeFile(path.join(root, 'server.properties'), 'motd=one\n');
    const read = (await cmd('get_file', { path: 'server.properties' })).data as {
      sha256: string;
      modifiedAt: string;
    };
    assert.equal(read.sha256, createHash('sha256').update('motd=one\n').digest('hex'));
    // the game rewrites it in the meantime
    await writeFile(path.join(root, 'server.properties'), 'motd=two\n');
    const stale = await cmd('write_file', {
      path: 'server.properties',
      content: 'motd=mine\n',
      expectedSha256: read.sha256,
    });
    assert.equal(stale.error?.code, 'FILE_CHANGED');
    assert.equal(await readFile(path.join(root, 'server.properties'), 'utf8'), 'motd=two\n');
    await utimes(path.join(root, 'server.properties'), 2000, 2000);
    const staleTime = await cmd('write_file', {
      path: 'server.properties',
      content: 'motd=mine\n',
      expectedModifiedAt: new Date(1000_000).toISOString(),
    });
    assert.equal(staleTime.error?.code, 'FILE_CHANGED');
    const fresh = (await cmd('get_file', { path: 'server.properties' })).data as { sha256: string };
    const ok = await cmd('write_file', {
      path: 'server.properties',
      content: 'motd=mine\n',
      expectedSha256: fresh.sha256,
    });
    assert.equal(ok.success, true, JSON.stringify(ok.error));
    assert.equal(
      (ok.data as { sha256: string }).sha256,
      createHash('sha256').update('motd=mine\n').digest('hex'),
    );
    assert.equal(await readFile(path.join(root, 'server.properties'), 'utf8'), 'motd=mine\n');
    // a checked write over a deleted file does not create it; "new file" does not replace one
    const gone = await cmd('write_file', { path: 'gone.txt', content: 'x', expectedSha256: fresh.sha256 });
    assert.equal(gone.error?.code, 'FILE_CHANGED');
    await assert.rejects(stat(path.join(root, 'gone.txt')), { code: 'ENOENT' });
    const again = await cmd('write_file', { path: 'server.properties', content: 'x', createOnly: true });
    assert.equal(again.error?.code, 'FILE_EXISTS');
    assert.equal(await readFile(path.join(root, 'server.properties'), 'utf8'), 'motd=mine\n');
  });

  it("the template's file_denylist is enforced (FILE_DENIED), listing still shows the files", async () => {
    const droot = path.join(f.dataDir, 'servers', denyId);
    await writeFile(path.join(droot, 'server.jar'), 'jar');
    await mkdir(path.join(droot, 'secret'));
    await writeFile(path.join(droot, 'secret', 'key'), 'k');
    await mkdir(path.join(droot, 'plugins'));
    await writeFile(path.join(droot, 'plugins', 'p.jar'), 'p');
    await mkdir(path.join(droot, 'config'));
    await writeFile(path.join(droot, 'config', 'ops.json'), '[]');
    const cases: [string, unknown][] = [
      ['get_file', { path: 'server.jar' }],
      ['get_file', { path: 'secret/key' }],
      ['get_file', { path: 'config/ops.json' }],
      ['write_file', { path: 'server.jar', content: 'x' }],
      ['write_file', { path: 'new.jar', content: 'x' }],
      ['write_file', { path: 'config/ops.json', content: '[1]' }],
      ['delete_files', { root: '/', names: ['server.jar'] }],
      ['delete_files', { root: '/', names: ['plugins'] }],
      ['delete_files', { root: '/', names: ['secret'] }],
      ['rename_file', { from: 'server.jar', to: 'server.txt' }],
      ['rename_file', { from: 'plugins', to: 'moved' }],
      ['rename_file', { from: 'config/ops.json', to: 'config/ops.txt' }],
      ['copy_file', { from: 'secret', to: 'open' }],
      ['chmod_file', { path: 'server.jar', mode: '0777' }],
      ['create_directory', { path: 'secret/inner' }],
    ];
    for (const [action, payload] of cases) {
      const res = await cmd(action, payload, denyId);
      assert.equal(
        res.error?.code,
        'FILE_DENIED',
        `${action} ${JSON.stringify(payload)}: ${JSON.stringify(res)}`,
      );
    }
    assert.equal(await readFile(path.join(droot, 'server.jar'), 'utf8'), 'jar');
    assert.equal(await readFile(path.join(droot, 'plugins', 'p.jar'), 'utf8'), 'p');
    assert.equal(await readFile(path.join(droot, 'config', 'ops.json'), 'utf8'), '[]');
    const list = (await cmd('list_files', { path: '/' }, denyId)).data as { entries: { name: string }[] };
    assert.ok(list.entries.some((e) => e.name === 'server.jar'));
    // what the list does not match is allowed
    assert.equal(
      (await cmd('write_file', { path: 'config/other.json', content: '{}' }, denyId)).success,
      true,
    );
  });

  it('writes and copies over the disk quota are refused; nothing is written', async () => {
    const qroot = path.join(f.dataDir, 'servers', quotaId);
    await writeFile(path.join(qroot, 'blob'), Buffer.alloc(700 * 1024, 1));
    const copy = await cmd('copy_file', { from: 'blob', to: 'blob2' }, quotaId);
    assert.equal(copy.error?.code, 'INSUFFICIENT_RESOURCES', JSON.stringify(copy));
    await assert.rejects(stat(path.join(qroot, 'blob2')), { code: 'ENOENT' });
    const write = await cmd('write_file', { path: 'more', content: 'a'.repeat(400 * 1024) }, quotaId);
    assert.equal(write.error?.code, 'INSUFFICIENT_RESOURCES');
    await assert.rejects(stat(path.join(qroot, 'more')), { code: 'ENOENT' });
    assert.equal(
      (await cmd('write_file', { path: 'small', content: 'a'.repeat(1024) }, quotaId)).success,
      true,
    );
  });
});

describe("file transfers straight to the Agent's HTTP API", () => {
  let f: Fixture;
  const id = uid('fdirect-');
  before(async () => {
    f = await fixture({ env: { AGENT_API_KEY: `k_${uid()}${uid()}${uid()}`, AGENT_COMMAND_RATE: '100000' } });
    await f.panel.waitConnected();
    const res = await f.panel.command('create_server', { serverId: id, eggConfig: egg('sleep 1000') });
    assert.equal(res.success, true, JSON.stringify(res.error));
  });
  after(async () => {
    await f.cleanup();
  });

  it('a ticket is the only credential, works once, and an upload lands only when complete', async () => {
    const base = `http://127.0.0.1:${f.agent.httpPort}`;
    const grant = async (payload: unknown) => {
      const r = (await f.panel.command('create_transfer', payload as never, { serverId: id })) as Res;
      assert.equal(r.success, true, JSON.stringify(r.error));
      return (r.data as { ticket: string }).ticket;
    };
    const body = Buffer.from('hello world\n');
    const up = await grant({ direction: 'upload', path: 'dir/new/hello.txt', size: body.length });
    const put = (t: string, b: Buffer) =>
      fetch(`${base}/transfers/${t}`, {
        method: 'PUT',
        body: new Uint8Array(b),
        headers: { 'content-type': 'application/octet-stream' },
      });
    const ok = await put(up, body);
    assert.equal(ok.status, 200, await ok.clone().text());
    assert.deepEqual(await ok.json(), { path: '/dir/new/hello.txt', size: body.length });
    const root = path.join(f.dataDir, 'servers', id);
    assert.equal(await readFile(path.join(root, 'dir/new/hello.txt'), 'utf8'), 'hello world\n');
    assert.equal((await put(up, body)).status, 404, 'a used ticket');
    // more bytes than announced: refused, nothing left behind
    const small = await grant({ direction: 'upload', path: 'dir/over.txt', size: 3 });
    assert.equal((await put(small, body)).status, 413);
    assert.deepEqual((await readdir(path.join(root, 'dir'))).sort(), ['new']);
    const down = await grant({ direction: 'download', path: 'dir/new/hello.txt' });
    const got = await fetch(`${base}/transfers/${down}`);
    assert.equal(got.status, 200);
    assert.equal(await got.text(), 'hello world\n');
    assert.equal((await fetch(`${base}/transfers/${down}`)).status, 404);
    assert.equal((await fetch(`${base}/transfers/${'x'.repeat(43)}`)).status, 404);
    // the key-protected API still needs the key
    assert.equal((await fetch(`${base}/api/servers/${id}/files`, { method: 'POST' })).status, 401);
  });
});
