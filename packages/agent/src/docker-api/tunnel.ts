/**
 * The Docker Engine API relay's node side (issue 11, docs/contracts.md "Docker through the
 * Panel"): for each docker_tunnel the Agent dials OUT to the Panel (an upgraded connection with
 * its link token) and pipes that connection to its Docker Engine socket, byte for byte, both
 * ways, with backpressure. The Agent does not read the exchange: the Panel authorises and
 * checks each request before it writes it into the tunnel, and ends the tunnel with it.
 */

import { readFile } from 'node:fs/promises';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { CodedError } from '@cap/protocol';
import Docker from 'dockerode';
import type { Logger } from 'pino';
import { dockerOptions } from '../environment/docker/docker.ts';

export const DOCKER_TUNNEL_PROTOCOL = 'cap-docker-tunnel';
export type UpgradeDialer = (pathname: string, protocol: string) => Promise<Duplex>;

/** A connection to the Engine the Agent's Docker client uses (DOCKER_HOST, or the default socket). */
export function connectDocker(dockerHost: string | undefined): Promise<Duplex> {
  const o = dockerOptions(dockerHost);
  return new Promise((resolve, reject) => {
    const sock: net.Socket = o.socketPath
      ? net.connect({ path: o.socketPath, allowHalfOpen: true })
      : o.protocol === 'https'
        ? tls.connect({
            host: String(o.host),
            port: Number(o.port),
            servername: String(o.host),
          })
        : net.connect({ port: Number(o.port), host: String(o.host), allowHalfOpen: true });
    sock.allowHalfOpen = true;
    const ready = o.protocol === 'https' ? 'secureConnect' : 'connect';
    const fail = (e: Error) => reject(new CodedError('DOCKER_ERROR', `Docker is unreachable: ${e.message}`));
    sock.once(ready, () => {
      sock.off('error', fail);
      resolve(sock);
    });
    sock.once('error', fail);
  });
}

/** Pipes two duplexes both ways; ending one side's writes is passed on (half-close), errors end both. */
export function splice(a: Duplex, b: Duplex, onClose: () => void): void {
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    a.destroy();
    b.destroy();
    onClose();
  };
  a.pipe(b);
  b.pipe(a);
  for (const s of [a, b]) {
    s.on('error', close);
    s.on('close', close);
  }
}

/**
 * The container this process runs in, if any: its id from /proc/self/mountinfo (the Engine
 * bind-mounts /etc/hostname from `/var/lib/docker/containers/<id>/`) or /proc/self/cgroup, its
 * name from the Engine. Found once; null when not in a container.
 */
let own: Promise<{ id: string; name: string } | null> | undefined;
export function ownContainer(dockerHost: string | undefined): Promise<{ id: string; name: string } | null> {
  own ??= (async () => {
    const text = [
      await readFile('/proc/self/mountinfo', 'utf8').catch(() => ''),
      await readFile('/proc/self/cgroup', 'utf8').catch(() => ''),
    ].join('\n');
    const id =
      /\/containers\/([0-9a-f]{64})\/(?:hostname|hosts|resolv\.conf)/.exec(text)?.[1] ??
      /(?:docker[-/])([0-9a-f]{64})/.exec(text)?.[1];
    if (!id) return null;
    const info = await new Docker(dockerOptions(dockerHost))
      .getContainer(id)
      .inspect()
      .catch(() => null);
    if (!info) return null;
    return { id: info.Id, name: info.Name.replace(/^\//, '') };
  })();
  return own;
}

/**
 * One tunnel: Docker is connected first (an Engine that is down fails the command at once), then
 * the Panel is dialled in the background and the two are spliced. Dial failures are logged.
 */
export async function openDockerTunnel(o: {
  ticket: string;
  dial: UpgradeDialer;
  dockerHost: string | undefined;
  log: Logger;
}): Promise<void> {
  const docker = await connectDocker(o.dockerHost);
  o.dial(`/api/agent/docker-tunnel/${o.ticket}`, DOCKER_TUNNEL_PROTOCOL).then(
    (panel) => {
      // a client closing its writes (stdin of an exec) must not end the answer's way back
      (panel as net.Socket).allowHalfOpen = true;
      // small writes go at once (Nagle + delayed ACKs cost ~40 ms per exchange otherwise)
      (panel as net.Socket).setNoDelay?.(true);
      splice(panel, docker, () => undefined);
    },
    (e) => {
      docker.destroy();
      o.log.warn({ err: e }, 'docker tunnel: the Panel could not be reached');
    },
  );
}
