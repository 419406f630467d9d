/**
 * A large upload and download through the Panel's relay (issue 10: "2 GB must work with neither
 * Panel nor Agent holding it in memory"). The Panel runs in this process, the Agent in its own
 * (from source), the browser is `curl` (its own process too), so each RSS is its own. Prints the
 * Panel's and the Agent's VmRSS before, the most seen during (sampled every 100 ms) with, for the Panel, its heap and external memory (process.memoryUsage()) and after each
 * direction, the throughput, and `cat` of the same file on the same disk as the baseline.
 *   node bench/file-transfer.ts [MiB]      (default 2048)
 *
 * Where the growth came from (14:05 UTC, 512 MiB, load average ~10): the Panel's heap +3 MiB, its
 * arrayBuffers +64 MiB: socket chunks already written on, garbage that V8 collects only after
 * 64 MiB of external memory (and marks for 100–300 ms at transfer speed). Now both ends run a
 * minor GC every 50 ms while a body streams (packages/protocol/src/runtime/reclaim.ts).
 *   before, 512 MiB: upload Panel +67.9 / Agent +69.0 MiB, download Panel +50.1 / Agent +0.1 MiB
 *   after, 2048 MiB (14:16 UTC, load ~12): upload Panel +17.0 / Agent +26.0 MiB, download Panel
 *   +8.8 / Agent +25.9 MiB (the Panel's arrayBuffers +8–12 MiB); byte-identical both ways
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTestPanel, until } from '../packages/panel/test/helpers.ts';
import { IMAGE, removeNodeContainers } from '../test/harness.ts';
import { agentEnv } from './lib/agent-run.ts';
import { mib, rssKiB, sampleRss } from './lib/rss.ts';

const MIB = Number(process.argv[2] ?? 2048);
if (!Number.isInteger(MIB) || MIB < 1 || MIB > 65536) throw new Error('MiB: 1..65536');
const SIZE = MIB * 1024 * 1024;
const root = path.resolve(import.meta.dirname, '..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function run(cmd: string, args: string[]): Promise<{ code: number; out: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => {
      out += d;
    });
    c.once('error', reject);
    c.once('exit', (code) => resolve({ code: code ?? -1, out, ms: performance.now() - t0 }));
  });
}

const sha = (file: string) => execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(' ')[0];

const work = mkdtempSync(path.join(tmpdir(), 'cap-bench-transfer-'));
const agentDir = mkdtempSync(path.join(tmpdir(), 'cap-bench-transfer-agent-'));
const panel = await startTestPanel({ PANEL_AGENT_PING_MS: '5000' });
const owner = await panel.login();
const node = await panel.createNode(owner, 'transfer-bench');
let agent: ChildProcess | undefined;
const rows: string[] = [];
try {
  agent = spawn(process.execPath, [path.join(root, 'packages/cli/bin/ctrl-alt-play.js'), 'agent'], {
    cwd: tmpdir(),
    stdio: 'ignore',
    env: agentEnv(panel.url, node, agentDir),
  });
  const agentPid = agent.pid ?? 0;
  await until(
    async () => (await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body?.online === true,
    30_000,
  );
  const made = await panel.api(owner, 'POST', '/api/servers?wait=true', {
    name: 'transfer-bench',
    nodeId: node.id,
    image: IMAGE,
    startup: 'sleep 36000',
  });
  if (made.status !== 201) throw new Error(`create: ${made.status} ${JSON.stringify(made.body)}`);
  const serverId = made.body.id as string;
  const source = path.join(work, 'source.bin');
  execFileSync('sh', ['-c', `head -c ${SIZE} /dev/urandom > '${source}'`]);
  const sourceSha = sha(source);

  const measure = async (what: string, act: () => Promise<{ code: number; out: string; ms: number }>) => {
    await sleep(2000);
    // the Panel's own split (it runs in this process): V8 heap, memory outside it (Buffers), and
    // of that the ArrayBuffers, so that a growth can be told apart from the allocator's
    const m0 = process.memoryUsage();
    const mPeak = { heapUsed: m0.heapUsed, external: m0.external, arrayBuffers: m0.arrayBuffers };
    const { before, peak, stop } = sampleRss(
      { panel: process.pid, agent: agentPid },
      {
        onSample: () => {
          const m = process.memoryUsage();
          mPeak.heapUsed = Math.max(mPeak.heapUsed, m.heapUsed);
          mPeak.external = Math.max(mPeak.external, m.external);
          mPeak.arrayBuffers = Math.max(mPeak.arrayBuffers, m.arrayBuffers);
        },
      },
    );
    const r = await act().finally(stop);
    if (r.code !== 0) throw new Error(`${what}: curl exited ${r.code}: ${r.out}`);
    await sleep(2000);
    const afterRss = { panel: rssKiB(process.pid), agent: rssKiB(agentPid) };
    const rate = `${(MIB / (r.ms / 1000)).toFixed(0)} MiB/s`;
    rows.push(
      `${what.padEnd(22)}${`${(r.ms / 1000).toFixed(1)} s`.padStart(9)}${rate.padStart(12)}` +
        `   Panel ${mib(before.panel)} → ${mib(peak.panel)} → ${mib(afterRss.panel)}` +
        `   Agent ${mib(before.agent)} → ${mib(peak.agent)} → ${mib(afterRss.agent)}` +
        `   (+${mib(peak.panel - before.panel)} / +${mib(peak.agent - before.agent)} peak)`,
      `${''.padEnd(43)}Panel peak over before: heap +${mib((mPeak.heapUsed - m0.heapUsed) / 1024)}, external +${mib((mPeak.external - m0.external) / 1024)} (arrayBuffers +${mib((mPeak.arrayBuffers - m0.arrayBuffers) / 1024)})`,
    );
    return r;
  };
  const grant = async (body: Record<string, unknown>) => {
    const ask = () => panel.api(owner, 'POST', `/api/servers/${serverId}/files/transfers`, body);
    // once more when fetch's pooled connection went stale during a long transfer (ECONNRESET)
    const g = await ask().catch(ask);
    if (g.status !== 201) throw new Error(`grant: ${g.status} ${JSON.stringify(g.body)}`);
    return `${panel.url}${g.body.url as string}`;
  };

  const upUrl = await grant({ direction: 'upload', path: 'big.bin', size: SIZE });
  const up = await measure('upload (relay)', () =>
    run('curl', ['-sS', '-f', '-T', source, '-H', 'content-type: application/octet-stream', upUrl]),
  );
  const stored = path.join(agentDir, 'servers', serverId, 'big.bin');
  if (statSync(stored).size !== SIZE || sha(stored) !== sourceSha)
    throw new Error(`upload differs: ${up.out}`);
  const downUrl = await grant({ direction: 'download', path: 'big.bin' });
  const fetched = path.join(work, 'fetched.bin');
  await measure('download (relay)', () => run('curl', ['-sS', '-f', '-o', fetched, downUrl]));
  if (sha(fetched) !== sourceSha) throw new Error('download differs');
  rmSync(fetched);
  const t0 = performance.now();
  execFileSync('sh', ['-c', `cat '${source}' > '${fetched}'`]);
  const catMs = performance.now() - t0;
  rows.push(
    `${'baseline: cat a → b'.padEnd(22)}${`${(catMs / 1000).toFixed(1)} s`.padStart(9)}${`${(MIB / (catMs / 1000)).toFixed(0)} MiB/s`.padStart(12)}`,
  );
  console.log(
    `\n${MIB} MiB through the Panel relay (curl ⇄ Panel ⇄ Agent on loopback), byte-identical both ways; VmRSS before → peak → after; node ${process.version}\n`,
  );
  for (const r of rows) console.log(r);
} finally {
  if (agent && agent.exitCode === null) agent.kill('SIGTERM');
  await sleep(500);
  await removeNodeContainers(node.id);
  await panel.stop();
  rmSync(work, { recursive: true, force: true });
  rmSync(agentDir, { recursive: true, force: true });
}
