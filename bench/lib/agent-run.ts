/**
 * What the benchmarks that run an Agent in its own process share: their options, the Agent's
 * environment for a test Panel's node, and dropping an executable from the page cache first.
 */
import { execFileSync } from 'node:child_process';

/** `--name value` taken out of argv (undefined when absent). */
export function takeOption(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  if (i < 0) return undefined;
  const v = argv[i + 1];
  if (v === undefined) throw new Error(`${name} needs a value`);
  argv.splice(i, 2);
  return v;
}

/** `K=V K2=V2` as an environment (for --env). */
export function parseEnvList(list: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of list.split(/\s+/).filter(Boolean)) {
    const eq = kv.indexOf('=');
    if (eq < 1) throw new Error(`--env: ${kv} is not K=V`);
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return env;
}

/** The environment an Agent needs to link to a test Panel's node (and nothing of this process's but PATH). */
export function agentEnv(
  panelUrl: string,
  node: { id: string; agentSecret: string },
  dataDir: string,
): Record<string, string> {
  return {
    PATH: process.env['PATH'] ?? '',
    PANEL_URL: panelUrl,
    NODE_ID: node.id,
    AGENT_SECRET: node.agentSecret,
    AGENT_DATA_DIR: dataDir,
    AGENT_HTTP_PORT: '0',
  };
}

/**
 * Drops an executable's pages from the page cache before a start: a file just written (the
 * executable after the build) is wholly cached, and the kernel then maps more of it around each
 * fault (fault-around), which counts as RSS (about 12 MiB here) though the process never uses it.
 */
export function dropFromPageCache(file: string): void {
  execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
}
