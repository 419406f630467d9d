/**
 * The Agent's console mark under a flood, without Docker: one ServerConsole (a fake server, the
 * mark file in a scratch directory) fed `--chunks` chunks of `--lines` lines each, `--per-turn`
 * chunks per event-loop turn (a flood's socket reads come several to a turn; 1 = one a turn).
 * Prints the lines handed on, the wall and CPU time, and — run under strace — the mark's writes:
 *
 *   strace -f -c -e trace=pwrite64 node bench/console-mark.ts [--chunks 200000] [--lines 4] [--per-turn 8]
 *
 * Baseline (before the per-turn mark): a 2 KiB Buffer allocated and one pwrite64 per chunk with
 * a newline, i.e. `--chunks` writes. Measured on the 2-core VM (defaults, load 6–9), before →
 * after: pwrite64 200,000 → 25,000; CPU user 1,121–1,246 → 446–468 ms, system 296–344 → 56–60 ms;
 * with --per-turn 1 both make 200,000 writes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Duplex } from 'node:stream';
import { pino } from 'pino';
import { ServerConsole } from '../packages/agent/src/server/console.ts';
import type { Server } from '../packages/agent/src/server/server.ts';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}
if (process.argv.includes('--help')) {
  console.log('node bench/console-mark.ts [--chunks 200000] [--lines 4] [--per-turn 8]');
  process.exit(0);
}
const CHUNKS = arg('chunks', 200_000);
const LINES = arg('lines', 4);
const PER_TURN = arg('per-turn', 8);

const dir = mkdtempSync(path.join(tmpdir(), 'cap-bench-mark-'));
let handed = 0;
const server = {
  id: 'bench',
  deleted: false,
  log: pino({ level: 'silent' }),
  events: {
    publish: (type: string) => {
      if (type === 'console') handed++;
    },
  },
  onConsoleLine: () => undefined,
  deps: {
    serversDir: dir,
    config: { logThrottleLines: 1_000_000_000, logThrottleIntervalMs: 1000 },
    env: { consoleLog: async () => null },
  },
};
const con = new ServerConsole(server as unknown as Server);
const stream = new Duplex({ read() {}, write: (_c, _e, cb) => cb() });
con.attach(stream);

const cpu0 = process.cpuUsage();
const t0 = performance.now();
let n = 0;
await new Promise<void>((resolve) => {
  const turn = () => {
    for (let i = 0; i < PER_TURN && n < CHUNKS; i++, n++) {
      let chunk = '';
      for (let l = 0; l < LINES; l++) chunk += `n:${n * LINES + l} some console output of a game\r\n`;
      stream.emit('data', chunk);
    }
    if (n < CHUNKS) setImmediate(turn);
    else setImmediate(() => setImmediate(resolve));
  };
  turn();
});
const ms = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
console.log(
  `chunks ${CHUNKS} × ${LINES} lines, ${PER_TURN} per turn: ${handed} lines handed on in ${ms.toFixed(0)} ms, ` +
    `CPU user ${(cpu.user / 1000).toFixed(0)} ms + system ${(cpu.system / 1000).toFixed(0)} ms`,
);
stream.destroy();
con.removeMark();
rmSync(dir, { recursive: true, force: true });
