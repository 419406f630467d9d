/**
 * The Agent on its own: the entry of dist/agent.cjs and of the single executable
 * (`ctrl-alt-play-agent [--version|--help]`, configured by the environment like
 * `ctrl-alt-play agent`). No top-level await: the executable's main script is CommonJS.
 */
import { AGENT_VERSION } from '@cap/agent';
import { PROTOCOL_VERSION } from '@cap/protocol';
import { run } from '../commands/agent.ts';
import { versionLine } from './build-info.ts';

const args = process.argv.slice(2).filter((a) => a !== 'agent');
if (args.includes('--version') || args.includes('-v')) {
  process.stdout.write(versionLine('ctrl-alt-play-agent', AGENT_VERSION, PROTOCOL_VERSION));
} else {
  run(args).then(
    (code) => {
      if (typeof code === 'number') process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`agent: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
