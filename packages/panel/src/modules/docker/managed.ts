/**
 * Managed containers (issue 11): a game server's container, as the Agent labels it
 * (`ctrl-alt-play.managed=true`, `ctrl-alt-play.server=<id>`, `ctrl-alt-play.node=<id>`), of a
 * server the Panel has on that node. Through the relay its power actions run the server's power
 * action (the Panel's state and desired state stay right) and are answered in Docker's shape;
 * removing or updating it is refused (DOCKER_MANAGED_CONTAINER: delete or edit the server).
 */
import { CodedError } from '@cap/protocol';
import { z } from 'zod';
import type { PanelServices } from '../../services.ts';
import { exchange, HEADERS_TIMEOUT_MS, readCapped } from './proxy.ts';

export const LABEL_SERVER = 'ctrl-alt-play.server';
export const LABEL_NODE = 'ctrl-alt-play.node';
export const LABEL_MANAGED = 'ctrl-alt-play.managed';

const POWER = /^\/containers\/([^/]+)\/(start|stop|restart|kill)$/;
const UPDATE = /^\/containers\/([^/]+)\/update$/;
const REMOVE = /^\/containers\/([^/]+)$/;

const Inspect = z.object({
  Id: z.string(),
  Config: z.object({ Labels: z.record(z.string(), z.string()).nullish() }).passthrough(),
  State: z.object({ Running: z.boolean() }).passthrough(),
});

export type ManagedAsk =
  | { kind: 'power'; ref: string; action: 'start' | 'stop' | 'restart' | 'kill' }
  | { kind: 'refuse'; ref: string; what: string };

/** What a request would do to a container that may be managed (null: nothing that matters). */
export function managedAsk(method: string, path: string): ManagedAsk | null {
  let m = POWER.exec(path);
  if (method === 'POST' && m)
    return { kind: 'power', ref: m[1] as string, action: m[2] as 'start' | 'stop' | 'restart' | 'kill' };
  m = UPDATE.exec(path);
  if (method === 'POST' && m) return { kind: 'refuse', ref: m[1] as string, what: 'updated' };
  m = REMOVE.exec(path);
  if (method === 'DELETE' && m) return { kind: 'refuse', ref: m[1] as string, what: 'removed' };
  return null;
}

/** The server a container on `nodeId` belongs to (its labels, and a server the Panel has there). */
export async function managedServerOf(
  s: PanelServices,
  nodeId: string,
  ref: string,
): Promise<{ serverId: string; running: boolean } | null> {
  const tunnel = await s.dockerTunnels.open(nodeId);
  try {
    const res = await exchange(tunnel, {
      method: 'GET',
      path: `/containers/${encodeURIComponent(ref)}/json`,
      headers: { host: 'docker' },
    });
    const body = await readCapped(res, 4 * 1024 * 1024);
    if (res.statusCode !== 200) return null;
    const info = Inspect.safeParse(JSON.parse(body.toString('utf8')));
    if (!info.success) return null;
    const labels = new Map(Object.entries(info.data.Config.Labels ?? {}));
    const serverId = labels.get(LABEL_SERVER);
    if (labels.get(LABEL_MANAGED) !== 'true' || !serverId) return null;
    if (labels.has(LABEL_NODE) && labels.get(LABEL_NODE) !== nodeId) return null;
    const node = await s.servers.nodeIdOf(serverId).catch(() => null);
    if (node !== nodeId) return null;
    return { serverId, running: info.data.State.Running };
  } finally {
    tunnel.destroy();
  }
}

/**
 * Runs the server's power action for a managed container and answers as the Engine would:
 * 204 done, 304 nothing to do (start while running, stop while stopped), 409 kill while stopped.
 */
export async function managedPower(
  s: PanelServices,
  serverId: string,
  running: boolean,
  action: 'start' | 'stop' | 'restart' | 'kill',
  actor: string,
): Promise<{ status: number; body?: { message: string } }> {
  if (action === 'start' && running) return { status: 304 };
  if (action === 'stop' && !running) return { status: 304 };
  if (action === 'kill' && !running)
    return { status: 409, body: { message: `Container of server ${serverId} is not running` } };
  const r = await s.servers.powerAndWait(serverId, action, actor, HEADERS_TIMEOUT_MS);
  if (!r.success)
    throw new CodedError(
      'DOCKER_ERROR',
      `the server's ${action} failed: ${r.code ?? 'error'}${r.message ? `: ${r.message}` : ''}`,
      { details: { serverId, operationId: r.operationId } },
    );
  return { status: 204 };
}

export function refuseManaged(serverId: string, what: string): never {
  throw new CodedError(
    'DOCKER_MANAGED_CONTAINER',
    `this container is game server ${serverId}'s: it is not ${what} through Docker (delete or edit the server instead)`,
    { details: { serverId } },
  );
}
