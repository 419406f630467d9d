/**
 * A backup offloaded to S3-compatible storage through the Panel, and imported back (issue 10
 * item 4): a ~500 MB tar.zst made on the node streams Agent → Panel (relay) → multipart upload,
 * then the object streams back to the node. The Panel runs in this process, the Agent and the S3
 * server (@20minutes/s3rver, on loopback) in their own, so each RSS is its own. Baseline: the same
 * archive file put with the SDK alone (lib-storage Upload, same part size and queue, read from
 * disk in this process) and fetched back with a GET.
 *   node bench/backup-s3.ts [MiB]      (default 500; part size PANEL_S3_PART_SIZE_MB, default 8)
 *
 * 14:08 UTC on the 2-core development VM shared with other work (load average 9–16), 500 MiB,
 * 16 MiB parts × queue 2 (32 parts), Panel VmRSS peak over its level before:
 *   baseline: SDK Upload from disk   34.2 s  15 MiB/s  +112 MiB
 *   baseline: SDK GET to /dev/null    9.6 s  52 MiB/s   +62 MiB
 *   offload: Agent → Panel → S3      28.9 s  17 MiB/s  +128 MiB   (Agent +1.4 MiB)
 *   import: S3 → Panel → Agent       22.0 s  23 MiB/s   +25 MiB   (Agent +0.1 MiB)
 * 14:48 UTC, the same with 8 MiB parts × queue 2 (63 parts; load average ~12, every figure slower):
 *   baseline: SDK Upload from disk   86.7 s   6 MiB/s   +98 MiB
 *   baseline: SDK GET to /dev/null   38.1 s  13 MiB/s    +0 MiB
 *   offload: Agent → Panel → S3     132.9 s   4 MiB/s   +26 MiB   (Agent +2.5 MiB)
 *   import: S3 → Panel → Agent       60.1 s   8 MiB/s    +2 MiB   (Agent +30 MiB)
 * (each row's "before" is the level the previous row left, which GC had not brought down, so a
 * later row's growth reads smaller). 8 MiB became the default part size.
 * The offload costs the Panel what the SDK's own upload of the file costs (the parts in flight,
 * the part being filled and the SDK's copies of them, before GC), not the backup's size; the
 * imported copy is byte-identical. s3rver (a single Node process writing each part, then
 * concatenating them) is the bottleneck of both rows.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { importBackup, offloadBackup } from '../packages/panel/src/modules/backups/s3-offload.ts';
import { S3Store } from '../packages/panel/src/modules/backups/s3-store.ts';
import type { PanelServices } from '../packages/panel/src/services.ts';
import { startTestPanel, until } from '../packages/panel/test/helpers.ts';
import { BackupRecord } from '../packages/protocol/src/index.ts';
import { IMAGE, removeNodeContainers } from '../test/harness.ts';
import { mib, sampleRss } from './lib/rss.ts';

const MIB = Number(process.argv[2] ?? 500);
if (!Number.isInteger(MIB) || MIB < 1 || MIB > 65536) throw new Error('MiB: 1..65536');
const PART_MB = Number(process.env.PANEL_S3_PART_SIZE_MB ?? 8);
const root = path.resolve(import.meta.dirname, '..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const work = mkdtempSync(path.join(tmpdir(), 'cap-bench-s3-'));
const agentDir = mkdtempSync(path.join(tmpdir(), 'cap-bench-s3-agent-'));
// the S3 server in its own process
const s3proc = spawn(
  process.execPath,
  [
    '--input-type=module',
    '-e',
    `import { startTestS3 } from ${JSON.stringify(path.join(root, 'packages/panel/test/s3.ts'))};
     const s3 = await startTestS3(); console.log(JSON.stringify(s3.env()));
     process.on('SIGTERM', async () => { await s3.stop(); process.exit(0); });`,
  ],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const s3env = JSON.parse(
  await new Promise<string>((resolve) => createInterface({ input: s3proc.stdout! }).once('line', resolve)),
) as Record<string, string>;
const panel = await startTestPanel({
  PANEL_AGENT_PING_MS: '5000',
  ...s3env,
  PANEL_S3_PART_SIZE_MB: String(PART_MB),
});
const services = (panel.app as unknown as { panel: PanelServices }).panel;
const store = services.s3!;
const owner = await panel.login();
const node = await panel.createNode(owner, 's3-bench');
let agent: ChildProcess | undefined;
const rows: string[] = [];
try {
  agent = spawn(process.execPath, [path.join(root, 'packages/cli/bin/ctrl-alt-play.js'), 'agent'], {
    cwd: tmpdir(),
    stdio: 'ignore',
    env: {
      PATH: process.env.PATH ?? '',
      PANEL_URL: panel.url,
      NODE_ID: node.id,
      AGENT_SECRET: node.agentSecret,
      AGENT_DATA_DIR: agentDir,
      AGENT_HTTP_PORT: '0',
      AGENT_SFTP_PORT: '0',
    },
  });
  const agentPid = agent.pid ?? 0;
  await until(
    async () => (await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body?.online === true,
    30_000,
  );
  const made = await panel.api(owner, 'POST', '/api/servers?wait=true', {
    name: 's3-bench',
    nodeId: node.id,
    image: IMAGE,
    startup: 'sleep 36000',
  });
  if (made.status !== 201) throw new Error(`create: ${made.status} ${JSON.stringify(made.body)}`);
  const serverId = made.body.id as string;
  const dir = path.join(agentDir, 'servers', serverId);
  // incompressible data: the archive is as large as the tree
  execFileSync('sh', ['-c', `head -c ${MIB * 1024 * 1024} /dev/urandom > '${dir}/world.bin'`]);
  const rec = BackupRecord.parse(
    await services.gateway.request(
      node.id,
      'backup_create',
      {
        format: 'tar.zst',
        ignore: [],
        commandsBefore: [],
        commandsAfter: [],
        commandWaitSeconds: 0,
        locked: false,
      },
      { serverId, timeoutMs: 600_000 },
    ),
  );
  const archive = path.join(agentDir, 'backups', serverId, `${rec.backupId}.tar.zst`);
  const size = statSync(archive).size;
  const where = { nodeId: node.id, serverId };
  const deps = { gateway: services.gateway, transfers: services.transferRelay, store };

  const measure = async (what: string, act: () => Promise<unknown>) => {
    await sleep(1500);
    const { before, peak, stop } = sampleRss({ panel: process.pid, agent: agentPid });
    const t0 = performance.now();
    await act().finally(stop);
    const ms = performance.now() - t0;
    const rate = `${(size / 1024 / 1024 / (ms / 1000)).toFixed(0)} MiB/s`;
    rows.push(
      `${what.padEnd(34)}${`${(ms / 1000).toFixed(1)} s`.padStart(8)}${rate.padStart(11)}` +
        `   Panel ${mib(before.panel)} → peak ${mib(peak.panel)} (+${mib(peak.panel - before.panel)})` +
        `   Agent +${mib(peak.agent - before.agent)}`,
    );
  };

  // the SDK alone first: the archive file from disk into the bucket, and back
  const raw = new S3Store({ ...services.config.s3!, prefix: 'raw/' });
  const rawKey = raw.keyOf(serverId, rec.backupId, 'tar.zst');
  await measure('baseline: SDK Upload from disk', () => raw.put(rawKey, createReadStream(archive)));
  await measure('baseline: SDK GET to /dev/null', async () => {
    const got = await raw.get(rawKey);
    for await (const _ of got.stream) {
      // drained
    }
  });
  await raw.delete(rawKey);
  raw.close();
  let parts = 0;
  await measure('offload: Agent → Panel → S3', async () => {
    parts = (await offloadBackup(deps, where, rec)).parts;
  });
  await measure('import: S3 → Panel → Agent', () => importBackup(deps, where, rec));
  const back = path.join(agentDir, 'backups', serverId, `${rec.backupId}.tar.zst`);
  const same =
    execFileSync('sha256sum', [back], { encoding: 'utf8' }).split(' ')[0] === rec.sha256
      ? 'identical'
      : 'DIFFERENT';
  console.log(
    `\n${(size / 1024 / 1024).toFixed(0)} MiB tar.zst backup (${MIB} MiB of random data) through the Panel to s3rver on loopback, ${PART_MB} MiB parts × queue ${services.config.s3!.queueSize}, ${parts} parts; imported copy ${same}; VmRSS; node ${process.version}\n`,
  );
  for (const r of rows) console.log(r);
} finally {
  if (agent && agent.exitCode === null) agent.kill('SIGTERM');
  s3proc.kill('SIGTERM');
  await sleep(500);
  await removeNodeContainers(node.id);
  await panel.stop();
  rmSync(work, { recursive: true, force: true });
  rmSync(agentDir, { recursive: true, force: true });
}
