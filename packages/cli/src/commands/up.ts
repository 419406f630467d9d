/**
 * `ctrl-alt-play up`: the all-in-one start. The Panel on PORT (default 8080) with SQLite in
 * DATA_DIR (default ./data), plus an Agent for this machine registered automatically: a node
 * "local" is created once and its secret kept in DATA_DIR/local-agent.json (mode 0600).
 */
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { openPanelAdmin, startPanel } from '@cap/panel';
import { isCodedError } from '@cap/protocol';
import { loginHint, PANEL_ENV_HELP, panelConfigOrExit, waitForSignal } from './panel.ts';

export const summary = 'Panel + an Agent for this machine, registered automatically (the all-in-one start)';

const USAGE = `usage: ctrl-alt-play up

Runs the Panel and an Agent for this machine in one process.
Configured by environment variables:
${PANEL_ENV_HELP}  AGENT_HTTP_PORT the local Agent's HTTP port (default 8081)
  DOCKER_HOST     Docker Engine address (default unix:///var/run/docker.sock)
`;

interface LocalAgentFile {
  nodeId: string;
  agentSecret: string;
}

type AgentModule = {
  loadAgentConfig: (env: Record<string, string | undefined>) => unknown;
  startAgent: (config: never) => Promise<{ httpPort: number; stop(): Promise<void> }>;
};

async function importAgent(): Promise<AgentModule | string> {
  try {
    return (await import('@cap/agent')) as unknown as AgentModule;
  } catch (e) {
    return `the Agent package (@cap/agent) cannot be loaded: ${(e as Error).message}`;
  }
}

/** Other addresses the Panel answers on, when it listens on all interfaces and PANEL_URL is the default. */
function lanUrls(host: string, port: string, publicUrl: string): string[] {
  if (host !== '0.0.0.0' || !publicUrl.includes('://localhost')) return [];
  const ips = Object.values(networkInterfaces())
    .flat()
    .filter((i) => i && i.family === 'IPv4' && !i.internal)
    .map((i) => i?.address);
  return ips.length ? [`          also http://${ips.join(`:${port}, http://`)}:${port}`] : [];
}

export async function run(args: string[]): Promise<number | undefined> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  const env = { ...process.env };
  const config = panelConfigOrExit(env, USAGE);
  if (typeof config === 'number') return config;

  const agentMod = await importAgent();
  if (typeof agentMod === 'string') {
    process.stderr.write(`up: ${agentMod}\nRun \`ctrl-alt-play panel\` for the Panel alone.\n`);
    return 1;
  }

  // The local node and its secret, kept across restarts.
  const credFile = join(config.dataDir, 'local-agent.json');
  const admin = await openPanelAdmin(config);
  let local: LocalAgentFile | undefined;
  try {
    if (existsSync(credFile)) {
      const saved = JSON.parse(readFileSync(credFile, 'utf8')) as LocalAgentFile;
      if (saved.nodeId && saved.agentSecret && (await admin.nodeExists(saved.nodeId))) local = saved;
    }
    if (!local) {
      const n = await admin.ensureNode('local');
      local = { nodeId: n.nodeId, agentSecret: n.agentSecret };
      writeFileSync(credFile, JSON.stringify(local), { mode: 0o600 });
      chmodSync(credFile, 0o600);
    }
  } finally {
    await admin.close();
  }

  const panel = await startPanel(config);
  let agent: { httpPort: number; stop(): Promise<void> };
  try {
    const agentConfig = agentMod.loadAgentConfig({
      ...env,
      PANEL_URL: `${config.tls ? 'https' : 'http'}://127.0.0.1:${new URL(panel.url).port}`,
      // HTTPS: the local Agent pins the Panel's own certificate (it may well be self-signed)
      ...(config.tls
        ? { AGENT_PANEL_CERT_SHA256: new X509Certificate(readFileSync(config.tls.certFile)).fingerprint256 }
        : {}),
      NODE_ID: local.nodeId,
      AGENT_SECRET: local.agentSecret,
      AGENT_DATA_DIR: env.AGENT_DATA_DIR ?? join(config.dataDir, 'agent'),
      AGENT_NAME: env.AGENT_NAME ?? 'local',
    });
    agent = await agentMod.startAgent(agentConfig as never);
  } catch (e) {
    await panel.stop();
    if (isCodedError(e)) {
      process.stderr.write(`up: the local Agent did not start: ${e.code}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }

  process.stderr.write(
    [
      '',
      `Ctrl-Alt-Play is up.`,
      `  Panel:  ${config.publicUrl}   (listening on ${config.host}:${new URL(panel.url).port})`,
      ...lanUrls(config.host, new URL(panel.url).port, config.publicUrl),
      `  Agent:  node "local" (${local.nodeId}), HTTP on :${agent.httpPort}`,
      `  Data:   ${config.dataDir}${config.databaseUrl ? ' (database: PostgreSQL)' : ' (database: panel.sqlite)'}`,
      `  ${loginHint(config, panel.app.setupUrl)}`,
      '',
    ].join('\n'),
  );
  const signal = await waitForSignal();
  process.stderr.write(`up: ${signal}, stopping (game servers keep running)\n`);
  await agent.stop().catch(() => undefined);
  await panel.stop();
  return 0;
}
