import { z } from 'zod';

export const ServerStatus = z.enum([
  'installing',
  'install_failed',
  'offline',
  'starting',
  'running',
  'stopping',
  'crashed',
]);
export type ServerStatus = z.infer<typeof ServerStatus>;

/**
 * The server state machine, written down. `crashed` is a resting state: the Agent leaves it
 * for `starting` when it restarts the server by policy, or on a user's start.
 */
export const transitions: Record<ServerStatus, readonly ServerStatus[]> = {
  installing: ['offline', 'install_failed'],
  install_failed: ['installing', 'offline'],
  offline: ['starting', 'installing', 'running'],
  starting: ['running', 'stopping', 'offline', 'crashed'],
  running: ['stopping', 'offline', 'crashed'],
  stopping: ['offline', 'crashed'],
  crashed: ['starting', 'offline', 'installing', 'running'],
};

export function canTransition(from: ServerStatus, to: ServerStatus): boolean {
  return from === to || transitions[from].includes(to);
}

export const PowerAction = z.enum(['start', 'stop', 'restart', 'kill']);
export type PowerAction = z.infer<typeof PowerAction>;
