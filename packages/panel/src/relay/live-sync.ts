/**
 * How a replica's live state of a server is made complete before a browser's `subscribed` is
 * built from it (issue 15). One process sees every event of its servers: nothing to do. Across
 * replicas see relay/nats-live.ts.
 */
export interface LiveSync {
  /** Resolves once this replica's live state of the server is as complete as it can be made. */
  ready(serverId: string, nodeId: string): Promise<void>;
  close(): void;
}

/** One process: its live state is complete already. */
export class LocalLiveSync implements LiveSync {
  async ready(): Promise<void> {}
  close(): void {}
}
