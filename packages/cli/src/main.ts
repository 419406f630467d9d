/**
 * `ctrl-alt-play <command> [args]`: one CLI for the whole project. Each command lives in
 * `commands/<name>.ts` and exports `run(args: string[]): Promise<number | undefined>` and `summary`.
 */
import { existsSync } from 'node:fs';

const commands: Record<string, string> = {
  up: 'Panel + an Agent for this machine, registered automatically (the all-in-one start)',
  panel: 'run the Panel only',
  agent: 'run an Agent (PANEL_URL, NODE_ID, AGENT_SECRET)',
  user: 'user admin: `user create --email E --password P --role owner|admin|spectator`',
  node: 'node admin: `node create --name N` (prints the AGENT_SECRET once)',
  apikey: 'API keys: `apikey create --email E --name N`',
  templates: 'templates: `templates import FILE… [--check] [--json] [--replace]`, `templates list [--json]`',
};

function usage(): string {
  const rows = Object.entries(commands)
    .filter(([name]) => existsSync(new URL(`./commands/${name}.ts`, import.meta.url)))
    .map(([name, summary]) => `  ${name.padEnd(10)} ${summary}`);
  return `usage: ctrl-alt-play <command> [options]\n\ncommands:\n${rows.join('\n')}\n`;
}

const [name, ...args] = process.argv.slice(2);
if (!name || name === '--help' || name === '-h' || name === 'help') {
  process.stdout.write(usage());
  process.exit(name ? 0 : 1);
}
if (!Object.hasOwn(commands, name) || !existsSync(new URL(`./commands/${name}.ts`, import.meta.url))) {
  process.stderr.write(`unknown command: ${name}\n\n${usage()}`);
  process.exit(2);
}
const mod = (await import(`./commands/${name}.ts`)) as {
  run: (args: string[]) => Promise<number | undefined>;
};
const code = await mod.run(args);
if (typeof code === 'number') process.exitCode = code;
