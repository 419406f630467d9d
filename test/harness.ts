/**
 * One real Panel (in-process, SQLite), one real Agent registered to it as a node, and the real
 * Docker Engine: what the system tests under test/ stand on. `stop()` removes every container of
 * that node (servers and installers), stops both processes and deletes the Agent's data.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadAgentConfig, type RunningAgent, startAgent } from '@cap/agent';
import Docker from 'dockerode';
import { type DestinationStream, pino } from 'pino';
import { type Session, startTestPanel, type TestPanel, until } from '../packages/panel/test/helpers.ts';

export const IMAGE = 'ctrl-alt-play/busybox:latest';
export const docker = new Docker({ socketPath: '/var/run/docker.sock' });

/** Every container of a node (servers, installers, an update's `-next`). Stop its Agent first. */
export async function removeNodeContainers(nodeId: string): Promise<void> {
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
}

export interface Stack {
  panel: TestPanel;
  agent: RunningAgent;
  agentDir: string;
  /** the first owner, logged in */
  owner: Session;
  nodeId: string;
  /** containers of one server, running or not */
  containers(serverId: string): Promise<Docker.ContainerInfo[]>;
  stop(): Promise<void>;
}

/** A server on the stack's node (busybox, `sleep 3600`), made with ?wait=true: its id and folder. */
export async function createTestServer(
  stack: Stack,
  name: string,
): Promise<{ serverId: string; dir: string }> {
  const r = await stack.panel.api(stack.owner, 'POST', '/api/servers?wait=true', {
    name,
    nodeId: stack.nodeId,
    image: IMAGE,
    startup: 'sleep 3600',
  });
  if (r.status !== 201) throw new Error(`create server: ${r.status} ${JSON.stringify(r.body)}`);
  const serverId = r.body.id as string;
  return { serverId, dir: path.join(stack.agentDir, 'servers', serverId) };
}

export async function startStack(
  name: string,
  opts: {
    panelEnv?: Record<string, string>;
    agentEnv?: Record<string, string>;
    /** every Panel log line (trace level), e.g. a secrets-in-logs check */
    panelLogStream?: DestinationStream;
    /** every Agent log line (trace level) */
    agentLogStream?: DestinationStream;
  } = {},
): Promise<Stack> {
  const panel = await startTestPanel(
    { PANEL_AGENT_PING_MS: '1000', ...opts.panelEnv },
    opts.panelLogStream ? { logStream: opts.panelLogStream } : {},
  );
  const agentDir = await mkdtemp(path.join(tmpdir(), `cap-${name}-agent-`));
  let agent: RunningAgent | undefined;
  let nodeId = '';
  const stop = async () => {
    // the Agent first: until it stops it may still make a container (an update's, a restart's)
    await agent?.stop();
    if (nodeId) await removeNodeContainers(nodeId);
    await panel.stop();
    await rm(agentDir, { recursive: true, force: true });
  };
  try {
    const owner = await panel.login();
    const node = await panel.createNode(owner, `${name}-node`);
    nodeId = node.id;
    agent = await startAgent(
      loadAgentConfig({
        PANEL_URL: panel.url,
        NODE_ID: node.id,
        AGENT_SECRET: node.agentSecret,
        AGENT_DATA_DIR: agentDir,
        AGENT_HTTP_PORT: '0',
        AGENT_HTTP_HOST: '127.0.0.1',
        AGENT_SFTP_PORT: '0',
        LOG_LEVEL: 'silent',
        ...opts.agentEnv,
      }),
      {
        logger: opts.agentLogStream
          ? pino({ level: 'trace' }, opts.agentLogStream)
          : pino({ level: 'silent' }),
      },
    );
    await until(
      async () => (await panel.api(owner, 'GET', `/api/nodes/${node.id}`)).body?.online === true,
      20_000,
    );
    const running = agent;
    return {
      panel,
      agent: running,
      agentDir,
      owner,
      nodeId,
      containers: (serverId) =>
        docker.listContainers({ all: true, filters: { label: [`ctrl-alt-play.server=${serverId}`] } }),
      stop,
    };
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
}
