/**
 * A real game server transferred while running (issue 16 item 2): OpenTTD from its built-in
 * template runs on node A (its own save made on its console, its config written by the install and
 * the game), is moved to node B onto a new allocation, and afterwards: every file on B is
 * byte-identical (sha256) to the tree A held once the game had stopped for the move, except
 * openttd.cfg, whose [network].server_port line the Agent rewrites at the start on B to the new
 * allocation's port (the template's config.files; nothing else in it may differ); the server runs
 * on B and answers the game's own query protocol (gamedig `openttd`, its server name and client
 * slots) on the NEW port, and no longer on the old one; the source's container and folder are gone.
 * Prints the transfer time and the archive size. Real Panel, two real Agents, real Docker; the
 * image is built by `bash scripts/images/build.sh openttd` (missing: a failure, never a skip).
 */
import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GameDig } from 'gamedig';
import { freePort } from '../packages/agent/test/helpers.ts';
import { type Json, until } from '../packages/panel/test/helpers.ts';
import { docker, type NodeAgent, type Stack, startSecondAgent, startStack } from './harness.ts';
import { exists, treeHashes } from './tree.ts';

const READY_MS = 180_000;
const NAME = `transfer openttd ${process.pid}`;
const MAX_CLIENTS = '9';
/** the one file the start on the target changes (see the header): the Agent's config.files edit */
const REWRITTEN = 'openttd.cfg';

/** The game's own query (OpenTTD's server info over its game port), as a client's server list asks. */
async function query(port: number): Promise<{ name: string; maxplayers: number }> {
  const r = await GameDig.query({
    type: 'openttd',
    host: '127.0.0.1',
    port,
    givenPortOnly: true,
    socketTimeout: 2000,
    attemptTimeout: 5000,
    maxRetries: 1,
  });
  return { name: String(r.name), maxplayers: Number(r.maxplayers) };
}

function tcpConnects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(2000, () => done(false));
  });
}

/** The largest transfer archive (tar.zst) seen so far under the Agents' backups/<server> folders. */
async function archiveSize(dirs: string[]): Promise<number> {
  let max = 0;
  for (const d of dirs) {
    const files = await readdir(d).catch(() => [] as string[]);
    for (const f of files)
      if (f.endsWith('.tar.zst'))
        max = Math.max(max, (await stat(path.join(d, f)).catch(() => null))?.size ?? 0);
  }
  return max;
}

describe('OpenTTD transferred while running: byte-identical files, its port working on the target', () => {
  let stack: Stack;
  let b: NodeAgent;
  const api = (method: string, url: string, body?: unknown) =>
    stack.panel.api(stack.owner, method, url, body);

  before(async () => {
    await docker
      .getImage('ctrl-alt-play/openttd:latest')
      .inspect()
      .catch(() => {
        throw new Error('image ctrl-alt-play/openttd missing: run bash scripts/images/build.sh openttd');
      });
    stack = await startStack('xferttd');
    b = await startSecondAgent(stack, { name: 'xferttd-b' });
  });
  after(async () => {
    await stack?.stop();
  });

  it('runs on A, moves to B on a new port, same files, answers there, gone from A', {
    timeout: 600_000,
  }, async () => {
    const templates = (await api('GET', '/api/templates')).body as Json[];
    const tpl = templates.find((t) => t.name === 'OpenTTD' && t.builtin);
    assert.ok(tpl, 'the built-in OpenTTD template');
    const pool = async (nodeId: string) => {
      const port = await freePort('0.0.0.0');
      const r = await api('POST', `/api/nodes/${nodeId}/allocations`, {
        ip: '0.0.0.0',
        ports: [String(port)],
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return { id: r.body[0].id as string, port };
    };
    const oldAlloc = await pool(stack.nodeId);
    const created = await api('POST', '/api/servers?wait=true', {
      name: NAME,
      nodeId: stack.nodeId,
      templateId: tpl.id,
      environment: { SERVER_NAME: NAME, MAX_CLIENTS },
      allocationId: oldAlloc.id,
      limits: { memory: 1024 },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    const srcDir = path.join(stack.agentDir, 'servers', id);
    const status = async () => (await api('GET', `/api/servers/${id}`)).body.status as string;
    const consoleHas = async (text: string) =>
      (((await api('GET', `/api/servers/${id}/telemetry`)).body?.console ?? []) as string[]).some((l) =>
        l.includes(text),
      );

    await until(async () => (await status()) === 'offline', READY_MS);
    assert.equal((await api('POST', `/api/servers/${id}/power`, { action: 'start' })).status, 202);
    await until(async () => (await status()) === 'running', READY_MS);
    await until(() => consoleHas('Map generated, starting game'), READY_MS);
    await until(
      () =>
        query(oldAlloc.port).then(
          (q) => q.name === NAME,
          () => false,
        ),
      60_000,
    );
    // a file the game itself writes: a save made on its console
    const save = await api('POST', `/api/servers/${id}/command`, { command: 'save transfer-check' });
    assert.ok(save.status === 200 || save.status === 202, JSON.stringify(save.body));
    await until(() => exists(path.join(srcDir, 'save', 'transfer-check.sav')), 30_000);

    const newAlloc = await pool(b.nodeId);
    const t0 = Date.now();
    const r = await api('POST', `/api/servers/${id}/transfer`, {
      nodeId: b.nodeId,
      allocationId: newAlloc.id,
    });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const opId = r.body.transfer.operationId as string;

    // once the stop is done (the operation past `stopping`), the tree A holds is what must move
    let before: Map<string, string> | null = null;
    let cfgA = '';
    let archived = 0;
    const stages: string[] = [];
    const backupDirs = [path.join(stack.agentDir, 'backups', id), path.join(b.agentDir, 'backups', id)];
    await until(async () => {
      const op = (await api('GET', `/api/operations/${opId}`)).body;
      if (stages.at(-1) !== op.stage) stages.push(op.stage);
      if (before === null && !['requested', 'accepted', 'stopping'].includes(op.stage)) {
        before = await treeHashes(srcDir);
        cfgA = await readFile(path.join(srcDir, REWRITTEN), 'utf8');
      }
      archived = Math.max(archived, await archiveSize(backupDirs));
      return op.finishedAt !== null;
    }, 300_000);
    const took = Date.now() - t0;
    const op = (await api('GET', `/api/operations/${opId}`)).body;
    assert.equal(op.success, true, JSON.stringify(op));
    assert.ok(before, `the source tree was read after the stop (stages ${stages})`);
    const want = before as Map<string, string>;
    for (const st of ['archiving', 'restoring', 'starting'])
      assert.ok(stages.includes(st), `stage ${st} seen (${stages})`);
    assert.ok(want.has(path.join('save', 'transfer-check.sav')), 'the game-made save was in the tree');
    assert.ok(want.has(REWRITTEN), `the install's config was in the tree (${[...want.keys()]})`);

    // on B: running, on its new allocation
    const server = (await api('GET', `/api/servers/${id}`)).body;
    assert.equal(server.nodeId, b.nodeId);
    assert.equal(server.allocation.id, newAlloc.id);
    assert.equal(server.allocation.port, newAlloc.port);
    await until(async () => (await status()) === 'running', 30_000);

    // every file byte-identical, but openttd.cfg's server_port line (rewritten at the start on B)
    const dstDir = path.join(b.agentDir, 'servers', id);
    const got = await treeHashes(dstDir);
    const differs = [...new Set([...want.keys(), ...got.keys()])].filter((f) => want.get(f) !== got.get(f));
    assert.deepEqual(differs, [REWRITTEN], `only ${REWRITTEN} differs (${differs})`);
    const portLine = /^server_port\s*=.*$/m;
    const cfgB = await readFile(path.join(dstDir, REWRITTEN), 'utf8');
    assert.match(cfgA, new RegExp(`^server_port\\s*=\\s*${oldAlloc.port}\\s*$`, 'm'));
    assert.match(cfgB, new RegExp(`^server_port\\s*=\\s*${newAlloc.port}\\s*$`, 'm'));
    // the config A had, with the new port in that one line, is the config B has
    const masked = (cfg: string) => cfg.replace(portLine, 'server_port = <port>');
    assert.equal(masked(cfgB), masked(cfgA), 'openttd.cfg differs only in server_port');

    // the game answers on the NEW port with its name and slots; the old port is dead
    let q: { name: string; maxplayers: number } | null = null;
    await until(async () => {
      q = await query(newAlloc.port).catch(() => null);
      return q !== null;
    }, 60_000);
    assert.deepEqual(q, { name: NAME, maxplayers: Number(MAX_CLIENTS) });
    assert.equal(await tcpConnects(oldAlloc.port), false, 'nothing answers on the old port');

    // the source: no container, no folder; the old allocation free
    assert.equal(
      (await stack.containers(id)).filter((c) => c.Labels['ctrl-alt-play.node'] === stack.nodeId).length,
      0,
    );
    assert.equal(await exists(srcDir), false, 'the source folder is gone');
    const srcAllocs = (await api('GET', `/api/nodes/${stack.nodeId}/allocations`)).body as Json[];
    assert.equal(srcAllocs.find((a) => a.id === oldAlloc.id)?.serverId ?? null, null, 'old allocation free');
    const list = (await api('GET', `/api/servers/${id}/transfers`)).body.transfers as Json[];
    assert.equal(list[0]?.state, 'completed');

    console.log(
      `# OpenTTD transfer (running → running): ${took} ms, ${want.size} files, archive ${archived} bytes (tar.zst), stages ${stages.join(' → ')}`,
    );
    await api('POST', `/api/servers/${id}/power`, { action: 'kill' });
  });
});
