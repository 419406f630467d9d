/** Shared setup for the Agent's integration tests: a fake Panel, an Agent, and cleanup of what they made. */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import pino from 'pino';
import { type RunningAgent, startAgent } from '../src/agent.ts';
import { type AgentConfig, loadAgentConfig } from '../src/config/config.ts';
import type { Environment } from '../src/environment/environment.ts';
import { FakePanel, type FakePanelOptions } from './fake-panel.ts';

export const IMAGE = 'ctrl-alt-play/busybox:latest';
export const docker = new Docker({ socketPath: '/var/run/docker.sock' });

export function uid(prefix = 't'): string {
  return `${prefix}${randomBytes(4).toString('hex')}`;
}

export interface Fixture {
  panel: FakePanel;
  agent: RunningAgent;
  config: AgentConfig;
  dataDir: string;
  nodeId: string;
  env: Record<string, string>;
  /** restart the Agent with the same config and data dir */
  restartAgent(): Promise<RunningAgent>;
  cleanup(): Promise<void>;
}

export async function fixture(
  opts: {
    env?: Record<string, string>;
    panel?: Partial<FakePanelOptions>;
    /** wraps the servers' (Docker) environment, at every start of the Agent */
    environment?: (docker: Environment) => Environment;
  } = {},
): Promise<Fixture> {
  const secret = `secret_${randomBytes(8).toString('hex')}`;
  const panel = await new FakePanel({ secret, pingIntervalMs: 200, ...opts.panel }).start();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'cap-agent-'));
  const nodeId = uid('node-');
  const env: Record<string, string> = {
    PANEL_URL: panel.wsUrl,
    NODE_ID: nodeId,
    AGENT_SECRET: secret,
    AGENT_DATA_DIR: dataDir,
    AGENT_HTTP_PORT: '0',
    AGENT_HTTP_HOST: '127.0.0.1',
    AGENT_STATS_INTERVAL_MS: '200',
    AGENT_HEARTBEAT_INTERVAL_MS: '500',
    LOG_LEVEL: process.env.AGENT_TEST_LOG ?? 'silent',
    ...opts.env,
  };
  const config = loadAgentConfig(env);
  const logger = pino({ level: config.logLevel });
  const agentOpts = { logger, ...(opts.environment ? { environment: opts.environment } : {}) };
  const f: Fixture = {
    panel,
    agent: await startAgent(config, agentOpts),
    config,
    dataDir,
    nodeId,
    env,
    async restartAgent() {
      await f.agent.stop();
      f.agent = await startAgent(config, agentOpts);
      return f.agent;
    },
    async cleanup() {
      await f.agent.stop().catch(() => undefined);
      await panel.stop().catch(() => undefined);
      const list = await docker.listContainers({
        all: true,
        filters: { label: [`ctrl-alt-play.node=${nodeId}`] },
      });
      await Promise.all(
        list.map((c) =>
          docker
            .getContainer(c.Id)
            .remove({ force: true })
            .catch(() => undefined),
        ),
      );
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return f;
}

export function egg(startup: string, extra: Record<string, unknown> = {}) {
  return { name: 'test', image: IMAGE, startup, ...extra };
}

/** The next `server_status_changed` of `serverId` to `to`, looking from index `since` of what the Panel received. */
export function waitStatus(f: Fixture, serverId: string, to: string, since: number, timeoutMs = 20_000) {
  return f.panel.waitEvent(
    'server_status_changed',
    (d) => d.serverId === serverId && d.currentStatus === to,
    { since, timeoutMs },
  );
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A port free for both TCP and UDP on `host` (as an allocation would be; games listen on UDP). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const net = await import('node:net');
  const dgram = await import('node:dgram');
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', reject);
      srv.listen(0, host, () => {
        const addr = srv.address();
        srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const sock = dgram.createSocket('udp4');
      sock.once('error', () => resolve(false));
      sock.bind(port, host, () => sock.close(() => resolve(true)));
    });
    if (port > 0 && udpFree) return port;
  }
  throw new Error('no free port');
}
