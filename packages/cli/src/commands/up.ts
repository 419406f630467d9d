/**
 * `ctrl-alt-play up`: the all-in-one start. The Panel on PORT (default 8080) with SQLite in
 * DATA_DIR (default ./data), plus an Agent for this machine registered automatically: a node
 * "local" is created once and its secret kept in DATA_DIR/local-agent.json (mode 0600), with a
 * default port range (LOCAL_NODE_PORTS) and the address players reach it at (LOCAL_NODE_ADDRESS).
 * In a clone where the web UI was never built, it is built first (once, a few seconds).
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { networkInterfaces } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openPanelAdmin, startPanel } from '@cap/panel';
import { isCodedError } from '@cap/protocol';
import { loginHint, PANEL_ENV_HELP, panelConfigOrExit, waitForSignal } from './panel.ts';

export const summary = 'Panel + an Agent for this machine, registered automatically (the all-in-one start)';

export const DEFAULT_PORTS = '25565-25665';

const USAGE = `usage: ctrl-alt-play up

Runs the Panel and an Agent for this machine in one process.
Configured by environment variables:
${PANEL_ENV_HELP}  AGENT_HTTP_PORT the local Agent's HTTP port (default 8081)
  LOCAL_NODE_PORTS   the local node's port allocations when it is first created, on 0.0.0.0
                     (default ${DEFAULT_PORTS}; "none" for none)
  LOCAL_NODE_ADDRESS where players reach this machine, shown with each server's port (default
                     PANEL_URL's host when it is not localhost, else this machine's first LAN IPv4)
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

/** The address players reach the local node at when LOCAL_NODE_ADDRESS is not given. */
function defaultNodeAddress(publicUrl: string, publicUrlSet: boolean): string {
  const host = new URL(publicUrl).hostname.replace(/^\[|\]$/g, '');
  const loopback = host === 'localhost' || host.startsWith('127.') || host === '::1';
  if (publicUrlSet && !loopback) return host;
  const lan = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal);
  return lan?.address ?? '127.0.0.1';
}

/**
 * A clone where the web UI was never built (`/` would be a JSON 404): build it into webDist now
 * with the web package's own Vite (a few seconds, once). Only into a missing or empty directory.
 */
function ensureWebUi(webDist: string): void {
  if (existsSync(join(webDist, 'index.html'))) return;
  const webRoot = fileURLToPath(new URL('../../../web/', import.meta.url));
  const skip = (why: string): void => {
    process.stderr.write(`up: the web UI is not built (${why}): only the API is served\n`);
  };
  if (!existsSync(join(webRoot, 'vite.config.ts'))) {
    skip('its sources are not here');
    return;
  }
  if (existsSync(webDist) && readdirSync(webDist).length > 0) {
    skip(`${webDist} is not empty and has no index.html; not building into it`);
    return;
  }
  let vite: string;
  try {
    vite = join(
      dirname(createRequire(join(webRoot, 'package.json')).resolve('vite/package.json')),
      'bin/vite.js',
    );
  } catch {
    skip('vite is not installed: run npm install');
    return;
  }
  process.stderr.write(`up: building the web UI into ${webDist} (first run only)\n`);
  const r = spawnSync(process.execPath, [vite, 'build', '--outDir', webDist, '--logLevel', 'warn'], {
    cwd: webRoot,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.status !== 0 || !existsSync(join(webDist, 'index.html'))) skip(`the build failed (exit ${r.status})`);
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
      // the first game server can be created at once: the node comes with a port range
      const ports = env.LOCAL_NODE_PORTS ?? DEFAULT_PORTS;
      if (n.created && ports !== 'none') await admin.addAllocations(n.nodeId, '0.0.0.0', ports.split(','));
    }
    // where players connect: kept once set (an admin may change it on the node's page)
    if (env.LOCAL_NODE_ADDRESS) await admin.setPublicAddress(local.nodeId, env.LOCAL_NODE_ADDRESS);
    else if ((await admin.publicAddress(local.nodeId)) === null)
      await admin.setPublicAddress(local.nodeId, defaultNodeAddress(config.publicUrl, config.publicUrlSet));
  } catch (e) {
    if (!isCodedError(e)) throw e;
    process.stderr.write(`up: the local node: ${e.code}: ${e.message}\n\n${USAGE}`);
    return 2;
  } finally {
    await admin.close();
  }

  ensureWebUi(config.webDist);
  const panel = await startPanel(config);
  const localUrl = `${config.tls ? 'https' : 'http'}://127.0.0.1:${new URL(panel.url).port}`;
  panel.app.panel.agents.setLocalAgentUrl(local.nodeId, localUrl);
  let agent: { httpPort: number; stop(): Promise<void> };
  try {
    const agentConfig = agentMod.loadAgentConfig({
      ...env,
      PANEL_URL: localUrl,
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
