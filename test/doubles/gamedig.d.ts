// gamedig 5 ships no types: the part of its API the tests use
declare module 'gamedig' {
  export interface QueryResult {
    name: string;
    map: string;
    maxplayers: number;
    numplayers: number;
    players: { name?: string; raw?: unknown }[];
    bots: { name?: string }[];
    raw?: unknown;
  }
  export const GameDig: {
    query(options: {
      type: string;
      host: string;
      port?: number;
      maxRetries?: number;
      socketTimeout?: number;
      attemptTimeout?: number;
    }): Promise<QueryResult>;
  };
}
