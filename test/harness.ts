/**
 * One real Panel (in-process, SQLite), one real Agent registered to it as a node, and the real
 * Docker Engine: what the system tests under test/ stand on. `stop()` removes every container of
 * that node (servers and installers), stops both processes and deletes the Agent's data.
 * `startSecondAgent(stack)` adds another Agent as another node (own data dir, same Docker).
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
  /** more Agents started with startSecondAgent (each its own node and data dir); stop() stops them */
  agents: NodeAgent[];
  stop(): Promise<void>;
}

/**
 * One more Agent on the stack's Panel (startSecondAgent): its own node, data directory and HTTP
 * port, the same Docker Engine. It can be stopped (servers and files stay, as a crashed or
 * powered-off Agent leaves them) and started again on the same node, data and port.
 */
export interface NodeAgent {
  nodeId: string;
  agentSecret: string;
  agentDir: string;
  /** the Agent running now (replaced by restart()); null while stopped */
  agent: RunningAgent | null;
  /** its HTTP API, http://127.0.0.1:<port> (the same port across restarts) */
  httpUrl: string;
  /** stops the Agent only (its servers keep running, its data stays) */
  stopAgent(): Promise<void>;
  /** starts it again (same node, data dir, env and port) and waits until the Panel lists it online */
  restart(): Promise<void>;
  /** containers of one server on this node */
  containers(serverId: string): Promise<Docker.ContainerInfo[]>;
  /** stops the Agent, removes its node's containers and its data dir (stack.stop() calls it) */
  stop(): Promise<void>;
}

function agentEnv(
  panelUrl: string,
  nodeId: string,
  secret: string,
  dir: string,
  port: number,
  extra: Record<string, string> | undefined,
): Record<string, string> {
  return {
    PANEL_URL: panelUrl,
    NODE_ID: nodeId,
    AGENT_SECRET: secret,
    AGENT_DATA_DIR: dir,
    AGENT_HTTP_PORT: String(port),
    AGENT_HTTP_HOST: '127.0.0.1',
    AGENT_SFTP_PORT: '0',
    LOG_LEVEL: 'silent',
    ...extra,
  };
}

/** Another Agent as another node of the stack's Panel (see NodeAgent); waits until it is online. */
export async function startSecondAgent(
  stack: Stack,
  opts: { name?: string; agentEnv?: Record<string, string> } = {},
): Promise<NodeAgent> {
  const name = opts.name ?? `agent${stack.agents.length + 2}`;
  // its own container names (cap-<name>-<server id>): one Docker Engine holds both nodes' servers
  const env = {
    AGENT_CONTAINER_PREFIX: `cap-${name.toLowerCase().replace(/[^a-z0-9_.-]/g, '')}-`,
    ...opts.agentEnv,
  };
  const agentDir = await mkdtemp(path.join(tmpdir(), `cap-${name}-agent-`));
  const node = await stack.panel.createNode(stack.owner, `${name}-node`);
  let port = 0;
  let stopped = false;
  const online = (want: boolean) =>
    until(
      async () => (await stack.panel.api(stack.owner, 'GET', `/api/nodes/${node.id}`)).body?.online === want,
      20_000,
    );
  const handle: NodeAgent = {
    nodeId: node.id,
    agentSecret: node.agentSecret,
    agentDir,
    agent: null,
    httpUrl: '',
    async stopAgent() {
      const a = handle.agent;
      handle.agent = null;
      await a?.stop();
    },
    async restart() {
      await handle.stopAgent();
      handle.agent = await startAgent(
        loadAgentConfig(agentEnv(stack.panel.url, node.id, node.agentSecret, agentDir, port, env)),
        { logger: pino({ level: 'silent' }) },
      );
      port = handle.agent.httpPort;
      handle.httpUrl = `http://127.0.0.1:${port}`;
      await online(true);
    },
    containers: (serverId) =>
      docker.listContainers({
        all: true,
        filters: { label: [`ctrl-alt-play.server=${serverId}`, `ctrl-alt-play.node=${node.id}`] },
      }),
    async stop() {
      if (stopped) return;
      stopped = true;
      await handle.stopAgent().catch(() => undefined);
      await removeNodeContainers(node.id);
      await rm(agentDir, { recursive: true, force: true });
    },
  };
  stack.agents.push(handle);
  await handle.restart();
  return handle;
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
  const agents: NodeAgent[] = [];
  const stop = async () => {
    for (const a of agents) await a.stop().catch(() => undefined);
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
      loadAgentConfig(agentEnv(panel.url, node.id, node.agentSecret, agentDir, 0, opts.agentEnv)),
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
      agents,
      stop,
    };
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
}
