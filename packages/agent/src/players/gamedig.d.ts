// gamedig 5 ships no types: the little of it the Agent uses (players/query.ts)
declare module 'gamedig' {
  export interface GameDigPlayer {
    name?: unknown;
    raw?: unknown;
  }
  export interface GameDigResult {
    name?: unknown;
    map?: unknown;
    maxplayers?: unknown;
    numplayers?: unknown;
    players?: unknown;
    bots?: unknown;
  }
  export const GameDig: {
    query(options: {
      type: string;
      host: string;
      port?: number;
      givenPortOnly?: boolean;
      socketTimeout?: number;
      attemptTimeout?: number;
      maxRetries?: number;
      maxAttempts?: number;
      requestPlayers?: boolean;
    }): Promise<GameDigResult>;
  };
  export const games: Record<string, unknown>;
}
