/**
 * A server transfer's archive direct Agent to Agent vs through the Panel relay (issue 16), the same
 * server and files each way: the real Panel (this process), two real Agents (this process, HTTP
 * API on loopback: AGENT_API_KEY), the real Docker Engine. A stopped busybox server with an
 * incompressible file of N MiB goes A → B with B's transferUrl set (direct), then B → A with A's
 * unset (relayed). Prints the streaming time the Panel measured (backup_import ticket to the
 * target's verified result), the whole transfer, the bytes the Panel relayed, and the raw
 * baseline: `cat` of the same archive size on the same disk.
 *   node bench/transfer-path.ts [MiB]      (default 256)
 *
 * Figures (2 December 2026, 256 MiB, the 2-core machine shared with others, load average 21–29):
 *   run 1: direct streaming 16.3 s, whole 83.3 s, 0 B relayed; relayed 4.4 s, whole 55.0 s;
 *          cat 0.7 s (387 MiB/s)
 *   run 2: direct streaming 10.5 s (24 MiB/s), whole 48.2 s, 0 B relayed; relayed 11.8 s
 *          (22 MiB/s), whole 43.5 s, 256 MiB relayed; cat 0.5 s (563 MiB/s)
 * On loopback both ways cost about the same (the target's sha256 + write dominates; the load
 * makes single runs swing by 3×); what direct saves is the Panel's bandwidth and CPU (0 bytes
 * through it) and, between real hosts, one network hop.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../packages/panel/test/helpers.ts';
import { IMAGE, startSecondAgent, startStack } from '../test/harness.ts';

const MIB = Number(process.argv[2] ?? 256);
if (!Number.isInteger(MIB) || MIB < 1 || MIB > 16384) throw new Error('MiB: 1..16384');
const KEY = 'bench-transfer-path-key-0123456789';

const stack = await startStack('bench-xfer', { agentEnv: { AGENT_API_KEY: KEY } });
const rows: string[] = [];
try {
  const b = await startSecondAgent(stack, { name: 'bench-xfer-b', agentEnv: { AGENT_API_KEY: KEY } });
  const api = (method: string, url: string, body?: unknown) =>
    stack.panel.api(stack.owner, method, url, body);
  const pool = async (nodeId: string) => {
    const r = await api('POST', `/api/nodes/${nodeId}/allocations`, {
      ip: '0.0.0.0',
      ports: [String(await freePort())],
    });
    if (r.status !== 201) throw new Error(`pool: ${JSON.stringify(r.body)}`);
    return r.body[0].id as string;
  };
  const made = await api('POST', '/api/servers?wait=true', {
    name: 'bench-xfer',
    nodeId: stack.nodeId,
    image: IMAGE,
    startup: 'sleep 36000',
    allocationId: await pool(stack.nodeId),
  });
  if (made.status !== 201) throw new Error(`create: ${made.status} ${JSON.stringify(made.body)}`);
  const id = made.body.id as string;
  const dir = path.join(stack.agentDir, 'servers', id);
  await mkdir(dir, { recursive: true });
  execFileSync('sh', ['-c', `head -c ${MIB * 1024 * 1024} /dev/urandom > '${dir}/world.bin'`]);
  const sha = (p: string) => execFileSync('sha256sum', [p], { encoding: 'utf8' }).split(' ')[0];
  const original = sha(path.join(dir, 'world.bin'));

  const move = async (what: string, to: string, toDir: string) => {
    const relayed0 = stack.panel.app.panel.transferRelay.uploadedBytes;
    const t0 = performance.now();
    await pool(to);
    const r = await api('POST', `/api/servers/${id}/transfer`, { nodeId: to });
    if (r.status !== 202) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
    // polled (a request held for the whole transfer may meet a stale pooled connection)
    const opId = r.body.transfer.operationId as string;
    let op = (await api('GET', `/api/operations/${opId}`)).body;
    while (op.finishedAt === null) {
      await new Promise((res) => setTimeout(res, 100));
      op = (await api('GET', `/api/operations/${opId}`).catch(() => ({ body: op }))).body;
    }
    const ms = performance.now() - t0;
    if (op.success !== true) throw new Error(`${what}: ${JSON.stringify(op)}`);
    const t = ((await api('GET', `/api/servers/${id}/transfers`)).body.transfers as { path: string }[])[0];
    const got = sha(path.join(toDir, 'servers', id, 'world.bin'));
    if (got !== original) throw new Error(`${what}: the file differs`);
    const relayed = stack.panel.app.panel.transferRelay.uploadedBytes - relayed0;
    return { path: t?.path ?? '?', ms, relayed };
  };
  const streamed: Record<string, number> = {};
  const off = stack.panel.app.panel.bus.subscribe('operation', (e) => {
    const m = e.stage === 'streaming' ? /sent .* in ([\d.]+) s/.exec(e.message ?? '') : null;
    if (m?.[1]) streamed[e.operationId] = Number(m[1]);
  });
  const last = () => Object.values(streamed).at(-1) ?? Number.NaN;

  await api('PATCH', `/api/nodes/${b.nodeId}`, { transferUrl: b.httpUrl });
  const direct = await move('direct A → B', b.nodeId, b.agentDir);
  const directStream = last();
  await api('PATCH', `/api/nodes/${stack.nodeId}`, { transferUrl: null });
  const relay = await move('relayed B → A', stack.nodeId, stack.agentDir);
  const relayStream = last();
  off();
  const rate = (s: number) => `${(MIB / s).toFixed(0)} MiB/s`;
  rows.push(
    `direct  (${direct.path}): streaming ${directStream.toFixed(1)} s (${rate(directStream)}), whole transfer ${(direct.ms / 1000).toFixed(1)} s, Panel relayed ${direct.relayed} B`,
    `relayed (${relay.path}):  streaming ${relayStream.toFixed(1)} s (${rate(relayStream)}), whole transfer ${(relay.ms / 1000).toFixed(1)} s, Panel relayed ${(relay.relayed / 1024 / 1024).toFixed(1)} MiB`,
  );
  const work = mkdtempSync(path.join(tmpdir(), 'cap-bench-xfer-'));
  const c0 = performance.now();
  execFileSync('sh', ['-c', `cat '${stack.agentDir}/servers/${id}/world.bin' > '${work}/copy.bin'`]);
  const cat = (performance.now() - c0) / 1000;
  rmSync(work, { recursive: true, force: true });
  rows.push(`baseline: cat of the file on the same disk ${cat.toFixed(1)} s (${rate(cat)})`);
  console.log(
    `\n${MIB} MiB incompressible server files transferred between two Agents on loopback, byte-identical; node ${process.version}\n`,
  );
  for (const r of rows) console.log(r);
} finally {
  await stack.stop();
}
