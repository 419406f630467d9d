/**
 * The Agent request path behind one seam: "send this command to node N, wherever its socket
 * is". Services and relays depend on `AgentGateway`; today's `InProcessAgentGateway` sends over
 * the socket this process holds (relay/agent-hub.ts). A node's coming and going is published on
 * the bus (`node.online` / `node.offline`), not on the gateway.
 */
import type { Action, ActionPayload } from '@cap/protocol';
import type { AgentHub, LinkHealth } from './agent-hub.ts';

export interface AgentRequestOptions {
  serverId?: string;
  /** how long to wait for the response (default: the Panel's command timeout) */
  timeoutMs?: number;
  /** the command's message id (default: a new one) */
  id?: string;
  /** asks for the acknowledgement: the answer comes at once, the end as `operation_completed` */
  operationId?: string;
}

export type AgentRequestPayload<A extends Action> = ActionPayload<A>;

export interface AgentGateway {
  /**
   * Sends the command to the node's Agent and resolves with the response's data; a failed
   * response rejects with its code (CodedError), an absent node with AGENT_OFFLINE, no answer in
   * time with TIMEOUT, a link lost before the answer with AGENT_OFFLINE.
   */
  request<A extends Action>(
    nodeId: string,
    action: A,
    payload: ActionPayload<A>,
    opts?: AgentRequestOptions,
  ): Promise<unknown>;
  /** Whether the node's Agent is connected (to any Panel process). */
  isOnline(nodeId: string): boolean;
  /** Closes the node's link (a removed node), wherever it is held. */
  disconnect(nodeId: string, reason: string): void;
  /** How the node's link has been (null: not linked since this Panel started); optional seam. */
  health?(nodeId: string): LinkHealth | null;
  /** This process's hub took the node's link (a gateway across replicas serves it from here). */
  linked?(nodeId: string): void;
  /** This process's hub lost it (`moved`: to a newer link on another replica). */
  unlinked?(nodeId: string, moved?: boolean): void;
}

/** Today's gateway: the Agent sockets held by this process. The hub is read lazily (it is wired after the services). */
export class InProcessAgentGateway implements AgentGateway {
  readonly #hub: () => AgentHub;
  constructor(hub: () => AgentHub) {
    this.#hub = hub;
  }
  request<A extends Action>(
    nodeId: string,
    action: A,
    payload: ActionPayload<A>,
    opts?: AgentRequestOptions,
  ): Promise<unknown> {
    return this.#hub().request(nodeId, action, payload, opts);
  }
  isOnline(nodeId: string): boolean {
    return this.#hub().isOnline(nodeId);
  }
  disconnect(nodeId: string, reason: string): void {
    this.#hub().disconnect(nodeId, reason);
  }
  health(nodeId: string): LinkHealth | null {
    return this.#hub().health(nodeId);
  }
}
