/**
 * Tunnels to the nodes' Docker Engines (issue 11, docs/contracts.md "Docker through the Panel").
 * One tunnel carries one Engine API exchange: the Panel makes a ticket, tells the node's Agent
 * (docker_tunnel), and the Agent dials OUT to `GET /api/agent/docker-tunnel/<ticket>` with
 * `Upgrade: cap-docker-tunnel` and its link token; once answered 101 that TCP connection is
 * spliced to the Agent's Docker socket. Big bodies and long streams never touch the link.
 *
 * The upgrade is taken off the HTTP server before @fastify/websocket sees it (that plugin turns
 * every upgrade into a WebSocket handshake); everything else goes on to it unchanged.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { AGENT_ID_HEADER, CodedError } from '@cap/protocol';
import { z } from 'zod';
import type { AgentGateway } from '../../relay/agent-gateway.ts';
import type { AgentContainer } from './policy.ts';

const AgentContainerAnswer = z.object({
  agentContainer: z
    .object({ id: z.string().regex(/^[0-9a-f]{64}$/), name: z.string().min(1).max(256) })
    .nullish(),
});

export const DOCKER_TUNNEL_PROTOCOL = 'cap-docker-tunnel';
/** How long the Panel waits for the Agent to dial in once it was told to. */
export const TUNNEL_DIAL_TIMEOUT_MS = 15_000;
const MAX_WAITING = 1000;
const TUNNEL_PATH = /^\/api\/agent\/docker-tunnel\/([A-Za-z0-9_-]{43})$/;

interface Waiting {
  nodeId: string;
  resolve: (s: Duplex) => void;
}

export interface TunnelDeps {
  gateway: AgentGateway;
  /** the node of an Agent's link token (and X-Agent-ID), or null */
  verifyAgent: (token: string, agentId: string) => Promise<string | null>;
}

export class DockerTunnels {
  readonly #waiting = new Map<string, Waiting>();
  readonly #d: TunnelDeps;
  /** tunnels open now (tests: a client that went away leaves none) */
  active = 0;
  constructor(d: TunnelDeps) {
    this.#d = d;
  }

  /** The Agent's own container per node, as its last docker_tunnel answer said (null: none). */
  readonly #agentContainers = new Map<string, AgentContainer | null>();

  agentContainer(nodeId: string): AgentContainer | undefined {
    return this.#agentContainers.get(nodeId) ?? undefined;
  }

  /** A byte pipe to the node's Docker Engine socket (rejects with the Agent's code). */
  async open(nodeId: string, signal?: AbortSignal): Promise<Duplex> {
    if (this.#waiting.size >= MAX_WAITING)
      throw new CodedError('RATE_LIMITED', 'too many Docker requests waiting; try again shortly');
    const ticket = randomBytes(32).toString('base64url');
    let timer: NodeJS.Timeout | undefined;
    let dialled: Duplex | undefined;
    try {
      return await new Promise<Duplex>((resolve, reject) => {
        timer = setTimeout(
          () => reject(new CodedError('TIMEOUT', "the node's Agent did not open the Docker tunnel")),
          TUNNEL_DIAL_TIMEOUT_MS,
        );
        signal?.addEventListener('abort', () => reject(new CodedError('TIMEOUT', 'the client went away')), {
          once: true,
        });
        // both the Agent's answer (which names its own container) and its dial
        let answered = false;
        const settle = () => {
          if (answered && dialled) resolve(dialled);
        };
        this.#waiting.set(ticket, {
          nodeId,
          resolve: (s) => {
            dialled = s;
            if (signal?.aborted) s.destroy();
            else settle();
          },
        });
        this.#d.gateway.request(nodeId, 'docker_tunnel', { ticket }).then((data) => {
          const c = AgentContainerAnswer.safeParse(data);
          this.#agentContainers.set(nodeId, c.success ? (c.data.agentContainer ?? null) : null);
          answered = true;
          settle();
        }, reject);
      });
    } catch (e) {
      dialled?.destroy();
      throw e;
    } finally {
      clearTimeout(timer);
      this.#waiting.delete(ticket);
    }
  }

  /**
   * Takes the Agents' tunnel upgrades off `server` (call after @fastify/websocket registered its
   * listener): a wrong or unknown ticket, a token of another node: 401/404 and the socket closed.
   * `other` may take further upgrades (true: taken); the rest go on to the listeners before.
   */
  install(server: Server, other?: (req: IncomingMessage, socket: Duplex, head: Buffer) => boolean): void {
    const others = server.listeners('upgrade') as ((
      req: IncomingMessage,
      socket: Duplex,
      head: Buffer,
    ) => void)[];
    server.removeAllListeners('upgrade');
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const m = TUNNEL_PATH.exec(req.url ?? '');
      const proto = String(req.headers.upgrade ?? '').toLowerCase();
      if (!m || proto !== DOCKER_TUNNEL_PROTOCOL) {
        if (other?.(req, socket, head)) return;
        for (const l of others) l.call(server, req, socket, head);
        return;
      }
      socket.on('error', () => socket.destroy());
      this.#arrive(req, socket, head, m[1] as string).catch(() => socket.destroy());
    });
  }

  async #arrive(req: IncomingMessage, socket: Duplex, head: Buffer, ticket: string): Promise<void> {
    const refuse = (status: number, text: string) => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    const auth = /^Bearer\s+(\S+)$/i.exec(String(req.headers.authorization ?? ''))?.[1];
    const agentId = req.headers[AGENT_ID_HEADER];
    if (req.method !== 'GET' || !auth || typeof agentId !== 'string') return refuse(401, 'Unauthorized');
    const nodeId = await this.#d.verifyAgent(auth, agentId).catch(() => null);
    if (!nodeId) return refuse(401, 'Unauthorized');
    const w = this.#waiting.get(ticket);
    if (!w || w.nodeId !== nodeId) return refuse(404, 'Not Found');
    this.#waiting.delete(ticket);
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${DOCKER_TUNNEL_PROTOCOL}\r\n\r\n`,
    );
    const s = socket as Socket;
    s.allowHalfOpen = true;
    s.setTimeout(0);
    s.setNoDelay?.(true);
    if (head.length > 0) s.unshift(head);
    this.active++;
    socket.once('close', () => this.active--);
    w.resolve(socket);
  }
}
