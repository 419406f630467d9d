/**
 * `ctrl-alt-play agent`: runs an Agent configured from the environment (PANEL_URL, NODE_ID,
 * AGENT_SECRET, AGENT_DATA_DIR, DOCKER_HOST, AGENT_HTTP_PORT…). SIGTERM/SIGINT close the Panel
 * link and the HTTP API cleanly; game servers keep running and are re-attached on the next start.
 */
import { loadAgentConfig, startAgent } from '@cap/agent';
import { isCodedError } from '@cap/protocol';

export const summary = 'run an Agent (PANEL_URL, NODE_ID, AGENT_SECRET)';

const USAGE = `usage: ctrl-alt-play agent

Configured by environment variables:
  PANEL_URL        wss:// or https:// address of the Panel (required; ws:// or http:// only
                   to loopback, or with AGENT_ALLOW_INSECURE=1)
  AGENT_PANEL_CERT_SHA256  pin the Panel's certificate (SHA-256; a self-signed one works)
  NODE_ID          this node's id in the Panel (required)
  AGENT_SECRET     the secret the Panel printed when the node was created (required)
  AGENT_DATA_DIR   credentials and server files (default ./data/agent)
  DOCKER_HOST      Docker Engine address (default unix:///var/run/docker.sock)
  AGENT_HTTP_PORT  HTTP API port (default 8081; 0 = random)
  AGENT_HTTP_HOST  HTTP API address (default 127.0.0.1; 0.0.0.0 opens it to the network)
  AGENT_API_KEY    the HTTP API's only key (without it only /health answers)
  AGENT_HTTP_RATE, AGENT_LINK_MAX_MESSAGE_BYTES, AGENT_CORS_ORIGINS, AGENT_CRASH_TIMEOUT, AGENT_LOG_THROTTLE_LINES,
  AGENT_LOG_THROTTLE_INTERVAL_MS, AGENT_STATS_INTERVAL_MS, AGENT_NAME, AGENT_BIND_IP, LOG_LEVEL
`;

export async function run(args: string[]): Promise<number | undefined> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  let config: ReturnType<typeof loadAgentConfig>;
  try {
    config = loadAgentConfig(process.env);
  } catch (e) {
    if (isCodedError(e)) {
      process.stderr.write(`${e.code}: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    throw e;
  }
  const agent = await startAgent(config);
  await new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      process.stderr.write(`agent: ${signal}, closing the panel link (game servers keep running)\n`);
      agent.stop().finally(resolve);
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });
  return 0;
}
